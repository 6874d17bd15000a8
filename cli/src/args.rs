//! The command line's shape (clap).

use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};
use taskrow::{Outcome, TaskState};

use crate::parse::{Target, TimeSpec, duration};

const AFTER_HELP: &str = "\
Tasks are named by code or id: a plain number is an id (`taskrow show 42`); write `code:42` for a
code made of digits and `id:42` to be explicit.

Examples:
  taskrow migrate up
  taskrow list --state failed
  taskrow show order-42
  taskrow reset --failed --type order.sync --dry-run
  taskrow logs --outcome failed --since 1h
  taskrow cancel --state pending --biz-type order --dry-run
  taskrow delete --state cancelled --code-prefix import- --yes
  taskrow stats --watch --interval 5
  taskrow pause emails
  taskrow queues
  taskrow purge --older-than 7d --dry-run
  taskrow schedules
  taskrow schedules remove nightly-report
  taskrow serve --listen 127.0.0.1:8080
  taskrow workers
  taskrow health --worker web-1 --max-age 30";

/// The taskrow operator command line.
#[derive(Debug, Parser)]
#[command(
    name = "taskrow",
    version,
    about = "Inspect, reset, run, cancel and purge the tasks of a taskrow database.",
    after_help = AFTER_HELP
)]
pub(crate) struct Cli {
    /// The database: `sqlite://tasks.db`, `mysql://user:password@host:3306/database` or
    /// `postgres://user:password@host:5432/database`.
    #[arg(
        long,
        env = "TASKROW_DATABASE_URL",
        hide_env_values = true,
        global = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create, roll back or inspect the taskrow tables.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// List tasks, oldest id first, one page at a time.
    List(ListArgs),
    /// Show one task: its fields, its payload and its log rows.
    Show {
        /// The task's code or id.
        task: Target,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Log rows, one per run: the newest --limit of them, oldest first, by code, id, outcome
    /// and start time.
    Logs(LogsArgs),
    /// Counts by state, type, queue and priority, the oldest due task, failures in the last
    /// hour, and rows that cannot be read.
    Stats(StatsArgs),
    /// Make tasks run again: pending, attempts back to 0, due now.
    Reset(ResetArgs),
    /// Cancel a task, or every task matching the filters: it stays in the table but never
    /// runs until it is reset. Tasks the cancel refuses (running under a live lease,
    /// succeeded) are skipped and named.
    Cancel(BulkArgs),
    /// Delete a task, or every task matching the filters (asks first; log rows stay). Tasks
    /// running under a live lease are skipped and named. A row that cannot be read is deleted
    /// by its code or id.
    Delete(DeleteArgs),
    /// Run one task now in this process and print how it ended (needs the task types compiled
    /// into this binary; exits with 1 when the run fails).
    Run {
        /// The task's code or id.
        task: Target,
    },
    /// Delete finished tasks and log rows older than a duration.
    Purge(PurgeArgs),
    /// Pause a queue: workers claim none of its tasks until it is resumed (runs already
    /// started finish).
    Pause {
        /// The queue's name.
        queue: String,
    },
    /// Resume a paused queue: workers claim its due tasks again.
    Resume {
        /// The queue's name.
        queue: String,
    },
    /// List the queues (those holding tasks, and those ever paused) with their state and
    /// their tasks per state.
    Queues {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the periodic tasks' schedules (name, spec, time zone, last and next tick), or
    /// remove one.
    Schedules {
        #[command(subcommand)]
        action: Option<SchedulesAction>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Serve the web dashboard (loopback by default; any other address needs --token).
    Serve(crate::serve::ServeArgs),
    /// List the workers in the registry (id, host, queues, concurrency, running, last beat,
    /// alive or gone).
    Workers {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check health for an orchestrator: exit 0 when the database answers, its schema is
    /// current and what --worker / --max-age ask holds; 1 otherwise. Prints one line saying
    /// why.
    Health(crate::workers::HealthArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum SchedulesAction {
    /// Delete a schedule's row (the tasks it enqueued stay). Workers that still register the
    /// schedule stop ticking it until they start again and register it anew, so remove it
    /// once no running version registers it.
    Remove {
        /// The schedule's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum MigrateAction {
    /// Apply the pending taskrow migrations (creates a SQLite file that does not exist yet).
    Up,
    /// Roll back taskrow migrations, dropping their tables and the tasks in them.
    Down {
        /// How many migrations to roll back, newest first.
        #[arg(long, default_value_t = 1, conflicts_with = "all")]
        steps: u32,
        /// Roll back every taskrow migration.
        #[arg(long)]
        all: bool,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Show which taskrow migrations are applied and which are pending.
    Status,
}

/// Filters shared by `list`, `reset`, `cancel` and `delete`.
#[derive(Debug, Args)]
pub(crate) struct FilterArgs {
    /// Only tasks of this biz type (repeat for several).
    #[arg(long = "biz-type", value_name = "BIZ_TYPE")]
    pub biz_types: Vec<String>,
    /// Only tasks of this type name (repeat for several).
    #[arg(long = "type", value_name = "TYPE")]
    pub task_types: Vec<String>,
    /// Only tasks in this queue (repeat for several).
    #[arg(long = "queue", value_name = "QUEUE")]
    pub queues: Vec<String>,
    /// Only tasks whose code starts with this (literally: no wildcards).
    #[arg(long, value_name = "PREFIX")]
    pub code_prefix: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only tasks in this state: pending, running, succeeded, failed, cancelled (repeat, or
    /// separate with commas).
    #[arg(long = "state", value_name = "STATE", value_delimiter = ',')]
    pub states: Vec<TaskState>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only tasks a worker could claim by then (pending tasks due, running tasks whose lease
    /// expires): an RFC 3339 time, `now`, `10m` (from now) or `-1h` (an hour ago).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub due_before: Option<TimeSpec>,
    /// Most rows to show.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub limit: u64,
    /// Start after this id (the last id of the previous page).
    #[arg(long, value_name = "ID")]
    pub after_id: Option<i64>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).multiple(true).args(["task", "failed", "cancelled"])))]
pub(crate) struct ResetArgs {
    /// The task's code or id (or use --failed / --cancelled).
    #[arg(conflicts_with_all = ["failed", "cancelled"])]
    pub task: Option<Target>,
    /// Reset every failed task matching the filters.
    #[arg(long)]
    pub failed: bool,
    /// Reset every cancelled task matching the filters.
    #[arg(long)]
    pub cancelled: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Show what would be reset, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Redraw every --interval until Ctrl-C.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between redraws with --watch.
    #[arg(long, value_name = "SECS", default_value_t = 2, requires = "watch",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub interval: u64,
    /// Stop --watch after this many rounds (by default it runs until Ctrl-C).
    #[arg(long, value_name = "N", requires = "watch",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// Only runs of the task with this code (the log outlives a deleted task).
    #[arg(long, value_name = "CODE")]
    pub code: Option<String>,
    /// Only runs of the task with this id.
    #[arg(long = "id", value_name = "ID")]
    pub task_id: Option<i64>,
    /// Only runs that ended so: succeeded, retrying, failed, lease_lost, interrupted,
    /// worker_lost (repeat, or separate with commas).
    #[arg(long = "outcome", value_name = "OUTCOME", value_delimiter = ',')]
    pub outcomes: Vec<Outcome>,
    /// Only runs started since then: an RFC 3339 time, or a duration ago (`1h`, `30m`, `7d`;
    /// `-1h` says the same).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<TimeSpec>,
    /// Most rows to show: the newest matching ones.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub limit: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One task, or every task matching the filters (at least one is needed: a bare `cancel` or
/// `delete` touches nothing).
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).multiple(true)
    .args(["task", "states", "biz_types", "task_types", "queues", "code_prefix"])))]
pub(crate) struct BulkArgs {
    /// The task's code or id (or select tasks with --state and the filters).
    pub task: Option<Target>,
    /// Only tasks in this state: pending, running, succeeded, failed, cancelled (repeat, or
    /// separate with commas).
    #[arg(long = "state", value_name = "STATE", value_delimiter = ',')]
    pub states: Vec<TaskState>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Show what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    #[command(flatten)]
    pub which: BulkArgs,
    /// Delete the matching tasks without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PurgeArgs {
    /// Remove what last changed longer ago than this: 30m, 12h, 7d, 2w.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub older_than: Duration,
    /// Purge failed tasks too (by default only succeeded and cancelled ones go).
    #[arg(long)]
    pub include_failed: bool,
    /// Keep the log rows.
    #[arg(long)]
    pub keep_logs: bool,
    /// Count what would be purged, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl Cli {
    /// Checks the definition (clap's debug asserts).
    #[cfg(test)]
    pub(crate) fn check() {
        use clap::CommandFactory;
        Self::command().debug_assert();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn definition_is_valid() {
        super::Cli::check();
    }
}
