//! What each subcommand does.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm_migration::{MigrationStatus, MigratorTrait};
use serde_json::json;
use taskrow::task::from_row;
use taskrow::{
    Client, ClientBuilder, Clock, Error, ListedRow, LoadError, LogFilter, Outcome, Page, Priority,
    Purge, ResetTarget, RunReport, SystemClock, TaskFilter, TaskRecord, TaskRef, TaskState,
    TaskStore, UnreadableRow,
};
use taskrow_migration::Migrator;
use taskrow_sql::url::redact;

use crate::args::{
    Cli, Command, FilterArgs, ListArgs, MigrateAction, PurgeArgs, ResetArgs, SchedulesAction,
    StatsArgs,
};
use crate::parse::Target;
use crate::render::{self, Table};
use crate::{Backend, Opened, backend, open};

/// Where a command reads and writes.
pub(crate) struct Io<'a> {
    pub stdin: &'a mut (dyn BufRead + Send),
    pub out: &'a mut (dyn Write + Send),
    pub err: &'a mut (dyn Write + Send),
    /// Whether `out` is a terminal (`stats --watch` then clears the screen between rounds).
    pub tty: bool,
}

/// Why a command failed: one line for the operator, or an output nobody reads any more.
#[derive(Debug)]
pub(crate) enum CliError {
    /// What went wrong and what to do, in one line.
    Message(String),
    /// Stdout's reader went away (`taskrow list | head -1`): the command ends quietly, with
    /// status 0, as the reader asked for no more.
    ClosedOutput,
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Message(m) => f.write_str(m),
            CliError::ClosedOutput => f.write_str("the output was closed by its reader"),
        }
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Message(e.to_string())
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return CliError::ClosedOutput;
        }
        CliError::Message(format!("cannot write the output: {e}"))
    }
}

impl From<String> for CliError {
    fn from(s: String) -> Self {
        CliError::Message(s)
    }
}

pub(crate) type Result<T, E = CliError> = std::result::Result<T, E>;

/// Page size when a command walks every matching task.
const SCAN_PAGE: u64 = 1_000;
/// Most due tasks `stats` reads to find the oldest one.
const STATS_SCAN_LIMIT: u64 = 100_000;
/// Most unreadable rows `stats` names.
const STATS_UNREADABLE_LIMIT: u64 = 100;

/// Runs the parsed command line.
pub(crate) async fn execute(
    cli: Cli,
    configure: impl FnOnce(ClientBuilder) -> ClientBuilder,
    io: &mut Io<'_>,
) -> Result<ExitCode> {
    let Some(url) = cli.database_url.filter(|u| !u.trim().is_empty()) else {
        return Err(CliError::Message(
            "no database given: pass --database-url URL or set TASKROW_DATABASE_URL \
             (`sqlite://tasks.db`, `mysql://user:password@host:3306/database`, \
             `postgres://user:password@host:5432/database`)"
                .to_owned(),
        ));
    };
    let creates = matches!(
        cli.command,
        Command::Migrate {
            action: MigrateAction::Up
        }
    );
    let url = if creates {
        create_if_missing(&url)
    } else {
        url
    };
    if let Command::Health(args) = cli.command {
        // Its own answer to every failure: unhealthy, exit status 1.
        return Ok(crate::workers::health(&url, args, io).await);
    }
    // The store explains a failed connection (a missing SQLite file names `migrate up`).
    let db = open(&url).await?;
    if !matches!(cli.command, Command::Migrate { .. }) {
        // Every other command reads and writes the tables as this version knows them: an older
        // or newer schema is named before a query fails on a missing column.
        db.store.check_schema().await.map_err(explain_schema)?;
    }
    let now = SystemClock.now();
    match cli.command {
        Command::Migrate { action } => migrate(&db, &url, action, io).await,
        Command::List(args) => list(&*db.store, args, now, io).await,
        Command::Show { task, json } => show(&*db.store, &task, json, io).await,
        Command::Logs(args) => crate::logs::logs(&*db.store, args, now, io).await,
        Command::Stats(args) => stats_command(&*db.store, args, io).await,
        Command::Reset(args) => reset(&*db.store, args, now, io).await,
        Command::Cancel(args) => crate::bulk::cancel(&*db.store, args, now, io).await,
        Command::Delete(args) => crate::bulk::delete(&*db.store, args, now, io).await,
        Command::Run { task } => run(db.store.clone(), &task, configure, io).await,
        Command::Purge(args) => purge(&*db.store, args, now, io).await,
        Command::Pause { queue } => pause(&*db.store, &queue, true, now, io).await,
        Command::Resume { queue } => pause(&*db.store, &queue, false, now, io).await,
        Command::Queues { json } => queues(&*db.store, json, io).await,
        Command::Schedules { action: None, json } => schedules(&*db.store, now, json, io).await,
        Command::Schedules {
            action: Some(SchedulesAction::Remove { name }),
            ..
        } => remove_schedule(&*db.store, &name, io).await,
        Command::Serve(args) => crate::serve::serve(db.store.clone(), args, configure, io).await,
        Command::Workers { json } => crate::workers::workers(db.store.clone(), json, io).await,
        Command::Health(args) => Ok(crate::workers::health(&url, args, io).await),
    }
}

/// A SQLite URL that creates its file when missing (for `migrate up`).
fn create_if_missing(url: &str) -> String {
    let memory = url.starts_with("sqlite::memory:") || url.contains("mode=memory");
    if !matches!(backend(url), Ok(Backend::Sqlite)) || memory || url.contains("mode=") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}mode=rwc")
}

/// A schema this version does not know, with the command that fixes an older one.
fn explain_schema(e: Error) -> CliError {
    match e {
        Error::Schema(m) if m.contains("has not run") => {
            CliError::Message(format!("schema mismatch: {m}; here: `taskrow migrate up`"))
        }
        e => e.into(),
    }
}

/// A task-level error, with a hint when a number was read as an id.
pub(crate) fn explain(e: Error, target: &Target) -> CliError {
    match (&e, &target.0) {
        (Error::NotFound(_), TaskRef::Id(id)) => CliError::Message(format!(
            "{e}; a number is read as an id: for a code made of digits write `code:{id}`"
        )),
        _ => e.into(),
    }
}

fn migration_error(what: &str, e: sea_orm_migration::DbErr) -> CliError {
    CliError::Message(format!("{what}: {e}"))
}

async fn migrate(
    db: &Opened,
    url: &str,
    action: MigrateAction,
    io: &mut Io<'_>,
) -> Result<ExitCode> {
    let conn = &db.db;
    match action {
        MigrateAction::Status => {
            let all = Migrator::get_migration_with_status_read_only(conn)
                .await
                .map_err(|e| migration_error("cannot read the migration status", e))?;
            let mut t = Table::new(&["STATUS", "MIGRATION"]);
            let mut pending = 0;
            for m in &all {
                let status = match m.status() {
                    MigrationStatus::Applied => "applied",
                    MigrationStatus::Pending => {
                        pending += 1;
                        "pending"
                    }
                };
                t.row(vec![status.to_owned(), m.name().to_owned()]);
            }
            write!(io.out, "{}", t.render(""))?;
            if pending == 0 {
                writeln!(io.out, "the taskrow tables are up to date")?;
            } else {
                writeln!(
                    io.out,
                    "{pending} migration(s) pending: run `taskrow migrate up`"
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        MigrateAction::Up => {
            let pending = Migrator::get_pending_migrations_read_only(conn)
                .await
                .map_err(|e| migration_error("cannot read the migration status", e))?;
            if pending.is_empty() {
                writeln!(
                    io.out,
                    "nothing to apply: the taskrow tables are up to date"
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            Migrator::up(conn, None)
                .await
                .map_err(|e| migration_error("the migration failed", e))?;
            for m in &pending {
                writeln!(io.out, "applied {}", m.name())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        MigrateAction::Down { steps, all, yes } => {
            let applied = Migrator::get_applied_migrations_read_only(conn)
                .await
                .map_err(|e| migration_error("cannot read the migration status", e))?;
            let n = if all {
                applied.len()
            } else {
                (steps as usize).min(applied.len())
            };
            if n == 0 {
                writeln!(
                    io.out,
                    "nothing to roll back: no taskrow migration is applied"
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            let names: Vec<&str> = applied.iter().rev().take(n).map(|m| m.name()).collect();
            if !yes {
                write!(
                    io.err,
                    "this rolls back {n} taskrow migration(s) on `{}`: {}\n\
                     the tables they created are dropped, with every task and log row in them.\n\
                     type `yes` to go on: ",
                    redact(url),
                    names.join(", ")
                )?;
                io.err.flush()?;
                let mut answer = String::new();
                io.stdin.read_line(&mut answer)?;
                let answer = answer.trim().to_ascii_lowercase();
                if answer != "yes" && answer != "y" {
                    return Err(CliError::Message(
                        "aborted: nothing was rolled back (pass --yes to skip the question)"
                            .to_owned(),
                    ));
                }
            }
            Migrator::down(conn, Some(n as u32))
                .await
                .map_err(|e| migration_error("the rollback failed", e))?;
            for name in names {
                writeln!(io.out, "rolled back {name}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The filter of `list`, `reset --failed`, and bulk `cancel` and `delete`.
pub(crate) fn filter(states: Vec<TaskState>, f: FilterArgs) -> TaskFilter {
    let mut filter = TaskFilter::all()
        .states(states)
        .biz_types(f.biz_types)
        .task_types(f.task_types)
        .queues(f.queues);
    if let Some(p) = f.code_prefix {
        filter = filter.code_prefix(p);
    }
    filter
}

/// Every row matching `filter`, page by page, up to `cap` rows: the tasks, and the rows that
/// cannot be read (which a scan goes past).
async fn scan(
    store: &dyn TaskStore,
    filter: &TaskFilter,
    cap: u64,
) -> Result<(Vec<TaskRecord>, Vec<UnreadableRow>)> {
    let (mut tasks, mut unreadable) = (Vec::new(), Vec::new());
    let mut seen = 0;
    let mut page = Page::first(SCAN_PAGE.min(cap));
    loop {
        let rows = store.list_rows(filter, &page).await?;
        let full = rows.len() as u64 == page.limit;
        seen += rows.len() as u64;
        let last = rows.last().map(ListedRow::id);
        for row in rows {
            match row {
                ListedRow::Task(t) => tasks.push(*t),
                ListedRow::Unreadable(u) => unreadable.push(u),
            }
        }
        let left = cap - seen;
        match last {
            Some(id) if full && left > 0 => page = Page::after(id, SCAN_PAGE.min(left)),
            _ => return Ok((tasks, unreadable)),
        }
    }
}

async fn list(
    store: &dyn TaskStore,
    args: ListArgs,
    now: DateTime<Utc>,
    io: &mut Io<'_>,
) -> Result<ExitCode> {
    let mut f = filter(args.states, args.filter);
    if let Some(t) = args.due_before {
        f = f.due_before(t.resolve(now));
    }
    let page = match args.after_id {
        Some(id) => Page::after(id, args.limit),
        None => Page::first(args.limit),
    };
    // Rows that cannot be read show in their place instead of failing the page.
    let rows = store.list_rows(&f, &page).await?;
    if args.json {
        let v: Vec<_> = rows.iter().map(render::listed_json).collect();
        writeln!(io.out, "{}", pretty(&v))?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        writeln!(io.out, "no tasks match")?;
        return Ok(ExitCode::SUCCESS);
    }
    write!(io.out, "{}", render::listed_table(&rows))?;
    let corrupt = rows.iter().filter(|r| r.task().is_none()).count() as u64;
    if corrupt > 0 {
        writeln!(
            io.out,
            "{corrupt} row{} cannot be read (state `corrupt`): fix {} in the database, or \
             `taskrow delete ID` to remove {}",
            plural(corrupt),
            if corrupt == 1 { "it" } else { "them" },
            if corrupt == 1 { "it" } else { "them" },
        )?;
    }
    if rows.len() as u64 == args.limit
        && let Some(last) = rows.last()
    {
        writeln!(
            io.out,
            "{} tasks shown; more may follow: add --after-id {}",
            rows.len(),
            last.id()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn pretty(v: &impl taskrow::serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("\"cannot print JSON: {e}\""))
}

async fn show(
    store: &dyn TaskStore,
    target: &Target,
    json: bool,
    io: &mut Io<'_>,
) -> Result<ExitCode> {
    let task = match store.get(&target.0).await {
        Ok(t) => t,
        Err(Error::NotFound(r)) => return show_gone(store, target, r, json, io).await,
        Err(Error::CorruptRow { id, reason }) => {
            return show_corrupt(store, id, &reason, json, io).await;
        }
        Err(e) => return Err(explain(e, target)),
    };
    let logs = store.logs(&LogFilter::task(task.id)).await?;
    if json {
        let v = ShowJson {
            task: Some(render::task_json(&task)),
            corrupt: None,
            log: &logs,
        };
        writeln!(io.out, "{}", pretty(&v))?;
        return Ok(ExitCode::SUCCESS);
    }
    let r = &task;
    let mut fields: Vec<(&str, String)> = vec![
        ("id", r.id.to_string()),
        ("code", r.code.clone()),
        ("type", r.task_type.clone()),
        ("name", r.name.clone()),
    ];
    if let Some(d) = &r.description {
        fields.push(("description", d.clone()));
    }
    fields.extend([
        ("biz type", render::or_dash(&r.biz_type)),
        ("queue", r.queue.clone()),
        ("priority", r.priority.to_string()),
        ("state", r.state.to_string()),
        ("attempts", render::attempts(r)),
        ("next run", render::opt_time(r.next_run_at)),
        (
            "lease",
            match (&r.lease_owner, r.lease_expires_at) {
                (Some(o), Some(t)) => format!("held by {o} until {}", render::time(t)),
                (Some(o), None) => format!("none (last held by {o})"),
                _ => "none".to_owned(),
            },
        ),
        ("retry", render::retry(&r.retry)),
        (
            "timeout",
            r.timeout.map_or_else(
                || "the worker's default".to_owned(),
                |t| render::millis(t.as_millis() as u64),
            ),
        ),
        ("on success", format!("{:?}", r.on_success).to_lowercase()),
        ("dispatch", dispatch(r.dispatch)),
        ("created", render::time(r.created_at)),
        ("updated", render::time(r.updated_at)),
        ("version", r.version.to_string()),
    ]);
    for (k, v) in fields {
        writeln!(io.out, "{k:<12} {v}")?;
    }
    match &r.last_error {
        Some(e) => {
            writeln!(io.out, "last error")?;
            for line in e.lines() {
                writeln!(io.out, "  {line}")?;
            }
        }
        None => writeln!(io.out, "{:<12} -", "last error")?,
    }
    writeln!(io.out, "payload")?;
    for line in pretty(&render::payload_value(&r.payload)).lines() {
        writeln!(io.out, "  {line}")?;
    }
    write_log(&logs, io)?;
    Ok(ExitCode::SUCCESS)
}

/// `show --json`: the task (`null` when its row is gone) and its log rows.
#[derive(Debug, taskrow::serde::Serialize)]
#[serde(crate = "taskrow::serde")]
struct ShowJson<'a> {
    task: Option<render::TaskJson<'a>>,
    /// Why the row cannot be read, when it cannot (`task` is then `null`).
    #[serde(skip_serializing_if = "Option::is_none")]
    corrupt: Option<&'a str>,
    log: &'a [taskrow::TaskLog],
}

/// `show` of a row that cannot be read: why, and its log rows, instead of an error.
async fn show_corrupt(
    store: &dyn TaskStore,
    id: i64,
    reason: &str,
    json: bool,
    io: &mut Io<'_>,
) -> Result<ExitCode> {
    let logs = store.logs(&LogFilter::task(id)).await?;
    if json {
        let v = ShowJson {
            task: None,
            corrupt: Some(reason),
            log: &logs,
        };
        writeln!(io.out, "{}", pretty(&v))?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        io.out,
        "task row {id} cannot be read: {reason}\nfix it in the database, or `taskrow delete {id}` \
         to remove it (its log rows stay)"
    )?;
    write_log(&logs, io)?;
    Ok(ExitCode::SUCCESS)
}

fn dispatch(d: taskrow::Dispatch) -> String {
    match d {
        taskrow::Dispatch::Scheduled => "scheduled".to_owned(),
        taskrow::Dispatch::ImmediateSpawned => "immediate, spawned".to_owned(),
        taskrow::Dispatch::ImmediateAwaited => "immediate, awaited".to_owned(),
    }
}

fn write_log(logs: &[taskrow::TaskLog], io: &mut Io<'_>) -> Result<()> {
    if logs.is_empty() {
        writeln!(io.out, "log: no runs yet")?;
    } else {
        writeln!(
            io.out,
            "log ({} run{})",
            logs.len(),
            plural(logs.len() as u64)
        )?;
        write!(io.out, "{}", render::log_table(logs, "  "))?;
    }
    Ok(())
}

/// `show` for a task that is not in the table: its log rows if it ran (a task deleted on
/// success leaves them), else the not-found error.
async fn show_gone(
    store: &dyn TaskStore,
    target: &Target,
    r: TaskRef,
    json: bool,
    io: &mut Io<'_>,
) -> Result<ExitCode> {
    let filter = match &target.0 {
        TaskRef::Id(id) => LogFilter::task(*id),
        TaskRef::Code(c) => LogFilter::code(c.clone()),
    };
    let logs = store.logs(&filter).await?;
    if logs.is_empty() {
        return Err(explain(Error::NotFound(r), target));
    }
    if json {
        let v = ShowJson {
            task: None,
            corrupt: None,
            log: &logs,
        };
        writeln!(io.out, "{}", pretty(&v))?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        io.out,
        "task {r} is no longer in the table (deleted after it succeeded, or by hand); its log \
         rows remain"
    )?;
    write_log(&logs, io)?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `stats`, once or (`--watch`) every interval until Ctrl-C or `--count` rounds.
async fn stats_command(
    store: &dyn TaskStore,
    args: StatsArgs,
    io: &mut Io<'_>,
) -> Result<ExitCode> {
    if !args.watch {
        return stats(store, SystemClock.now(), args.json, io).await;
    }
    let interval = std::time::Duration::from_secs(args.interval);
    let mut round = 0;
    loop {
        round += 1;
        let now = SystemClock.now();
        // With --json each round is one JSON document (it carries its own `now`), for a
        // reader that parses a stream; text rounds get a heading.
        if !args.json {
            if io.tty {
                // Clear the screen and go home: the redraw replaces the last round.
                write!(io.out, "\x1b[2J\x1b[H")?;
            } else if round > 1 {
                writeln!(io.out)?;
            }
            writeln!(
                io.out,
                "taskrow stats at {}, every {}s (Ctrl-C to stop)",
                render::time(now),
                args.interval
            )?;
        }
        stats(store, now, args.json, io).await?;
        io.out.flush()?;
        if args.count.is_some_and(|n| round >= n) {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            r = tokio::signal::ctrl_c() => {
                r.map_err(|e| CliError::Message(format!("cannot wait for Ctrl-C: {e}")))?;
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
}

async fn stats(
    store: &dyn TaskStore,
    now: DateTime<Utc>,
    json: bool,
    io: &mut Io<'_>,
) -> Result<ExitCode> {
    // Rows of a state or priority this version cannot read are left out of the counts and
    // listed below instead.
    let counts = store.counts().await?;
    let mut by_state: BTreeMap<TaskState, u64> = TaskState::ALL.iter().map(|s| (*s, 0)).collect();
    let mut by_type: BTreeMap<String, BTreeMap<TaskState, u64>> = BTreeMap::new();
    let mut by_queue: BTreeMap<String, BTreeMap<TaskState, u64>> = BTreeMap::new();
    let mut by_priority: BTreeMap<Priority, BTreeMap<TaskState, u64>> = BTreeMap::new();
    for c in &counts {
        *by_state.entry(c.state).or_default() += c.count;
        for m in [
            by_type.entry(c.task_type.clone()).or_default(),
            by_queue.entry(c.queue.clone()).or_default(),
            by_priority.entry(c.priority).or_default(),
        ] {
            *m.entry(c.state).or_default() += c.count;
        }
    }
    let paused: BTreeMap<String, bool> = store
        .queues()
        .await?
        .into_iter()
        .map(|q| (q.name, q.paused))
        .collect();
    for (q, p) in &paused {
        if *p {
            by_queue.entry(q.clone()).or_default();
        }
    }
    let total: u64 = by_state.values().sum();

    let (due, due_unreadable) =
        scan(store, &TaskFilter::all().due_before(now), STATS_SCAN_LIMIT).await?;
    let capped = (due.len() + due_unreadable.len()) as u64 >= STATS_SCAN_LIMIT;
    // What no count holds: rows with codes out of range, and due rows that cannot be read.
    let mut unreadable: BTreeMap<i64, UnreadableRow> = store
        .unreadable(&Page::first(STATS_UNREADABLE_LIMIT))
        .await?
        .into_iter()
        .chain(due_unreadable)
        .map(|u| (u.id, u))
        .collect();
    while unreadable.len() as u64 > STATS_UNREADABLE_LIMIT {
        unreadable.pop_last();
    }
    let oldest = due
        .iter()
        .filter_map(|t| t.next_run_at.or(t.lease_expires_at).map(|at| (at, t)))
        .min_by_key(|(at, t)| (*at, t.id));

    let since = now - TimeDelta::hours(1);
    let failures = store
        .logs(
            &LogFilter::default()
                .outcomes([Outcome::Failed, Outcome::Retrying])
                .since(since),
        )
        .await?;
    let failed = failures
        .iter()
        .filter(|l| l.outcome == Outcome::Failed)
        .count();
    let retrying = failures.len() - failed;

    if json {
        let v = json!({
            "now": now,
            "total": total,
            "by_state": by_state.iter().map(|(s, n)| (s.as_str(), *n)).collect::<BTreeMap<_, _>>(),
            "by_type": by_type.iter().map(|(t, m)| {
                (t.clone(), m.iter().map(|(s, n)| (s.as_str(), *n)).collect::<BTreeMap<_, _>>())
            }).collect::<BTreeMap<_, _>>(),
            "by_queue": by_queue.iter().map(|(q, m)| {
                let mut v = json!(m.iter().map(|(s, n)| (s.as_str(), *n)).collect::<BTreeMap<_, _>>());
                v["paused"] = json!(paused.get(q).copied().unwrap_or(false));
                (q.clone(), v)
            }).collect::<BTreeMap<_, _>>(),
            "by_priority": by_priority.iter().map(|(p, m)| {
                (p.as_str(), m.iter().map(|(s, n)| (s.as_str(), *n)).collect::<BTreeMap<_, _>>())
            }).collect::<BTreeMap<_, _>>(),
            "due": { "count": due.len(), "at_least": capped },
            "oldest_due": oldest.map(|(at, t)| json!({
                "id": t.id, "code": t.code, "task_type": t.task_type, "state": t.state, "due_at": at,
            })),
            "failures_last_hour": { "failed": failed, "retrying": retrying },
            "unreadable": unreadable.values().map(render::unreadable_json).collect::<Vec<_>>(),
        });
        writeln!(io.out, "{}", pretty(&v))?;
        return Ok(ExitCode::SUCCESS);
    }

    writeln!(io.out, "tasks by state")?;
    let mut t = Table::new(&["STATE", ">TASKS"]);
    for (s, n) in &by_state {
        t.row(vec![s.to_string(), n.to_string()]);
    }
    t.row(vec!["total".to_owned(), total.to_string()]);
    write!(io.out, "{}", t.render("  "))?;

    writeln!(io.out)?;
    let by_priority: BTreeMap<String, _> = by_priority
        .into_iter()
        .map(|(p, m)| (p.to_string(), m))
        .collect();
    let by_queue: BTreeMap<String, _> = by_queue
        .into_iter()
        .map(|(q, m)| {
            let name = if paused.get(&q).copied().unwrap_or(false) {
                format!("{q} (paused)")
            } else {
                q
            };
            (name, m)
        })
        .collect();
    for (what, column, rows) in [
        ("type", "TYPE", &by_type),
        ("queue", "QUEUE", &by_queue),
        ("priority", "PRIORITY", &by_priority),
    ] {
        if what != "type" {
            writeln!(io.out)?;
        }
        write_state_table(what, column, rows, io)?;
    }

    writeln!(io.out)?;
    let count = if capped {
        format!("at least {}", due.len())
    } else {
        due.len().to_string()
    };
    match oldest {
        None => writeln!(io.out, "due now: 0")?,
        Some((at, task)) => writeln!(
            io.out,
            "due now: {count}; the oldest is `{}` (id {}, {}, {}), due since {} ({})",
            task.code,
            task.id,
            task.task_type,
            task.state,
            render::time(at),
            render::ago(at, now)
        )?,
    }
    writeln!(
        io.out,
        "failures in the last hour: {} ({failed} failed for good, {retrying} retrying)",
        failures.len()
    )?;
    if !unreadable.is_empty() {
        writeln!(
            io.out,
            "unreadable rows: {} (not in the counts; fix them in the database or `taskrow delete ID`)",
            unreadable.len()
        )?;
        for u in unreadable.values() {
            writeln!(
                io.out,
                "  `{}` (id {}, {}): {}",
                u.code,
                u.id,
                u.task_type,
                render::cut(&u.reason, 120)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A table of task counts per state, one row per key (a type, a queue or a priority).
fn write_state_table(
    what: &str,
    column: &str,
    rows: &BTreeMap<String, BTreeMap<TaskState, u64>>,
    io: &mut Io<'_>,
) -> Result<()> {
    if rows.is_empty() {
        writeln!(io.out, "tasks by {what}: none")?;
        return Ok(());
    }
    writeln!(io.out, "tasks by {what}")?;
    let mut header = vec![column.to_owned()];
    header.extend(
        TaskState::ALL
            .iter()
            .map(|s| format!(">{}", s.as_str().to_uppercase())),
    );
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut t = Table::new(&header);
    for (key, m) in rows {
        let mut row = vec![key.clone()];
        row.extend(
            TaskState::ALL
                .iter()
                .map(|s| m.get(s).copied().unwrap_or(0).to_string()),
        );
        t.row(row);
    }
    write!(io.out, "{}", t.render("  "))?;
    Ok(())
}

async fn pause(
    store: &dyn TaskStore,
    queue: &str,
    paused: bool,
    now: DateTime<Utc>,
    io: &mut Io<'_>,
) -> Result<ExitCode> {
    store.set_queue_paused(queue, paused, now).await?;
    if paused {
        writeln!(
            io.out,
            "paused queue `{queue}`: workers claim none of its tasks until `taskrow resume {queue}` \
             (runs already started finish)"
        )?;
    } else {
        writeln!(
            io.out,
            "resumed queue `{queue}`: workers claim its due tasks at their next poll"
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn queues(store: &dyn TaskStore, json: bool, io: &mut Io<'_>) -> Result<ExitCode> {
    let queues = store.queues().await?;
    if json {
        let v: Vec<_> = queues
            .iter()
            .map(|q| {
                json!({
                    "name": q.name,
                    "paused": q.paused,
                    "changed_at": q.changed_at,
                    "counts": q.counts.iter().map(|(s, n)| (s.as_str(), *n)).collect::<BTreeMap<_, _>>(),
                })
            })
            .collect();
        writeln!(io.out, "{}", pretty(&v))?;
        return Ok(ExitCode::SUCCESS);
    }
    if queues.is_empty() {
        writeln!(
            io.out,
            "no queues: no task is stored and none was ever paused"
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut header = vec!["QUEUE".to_owned(), "STATE".to_owned()];
    header.extend(
        TaskState::ALL
            .iter()
            .map(|s| format!(">{}", s.as_str().to_uppercase())),
    );
    header.push("SINCE".to_owned());
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut t = Table::new(&header);
    for q in &queues {
        let mut row = vec![
            q.name.clone(),
            if q.paused { "paused" } else { "running" }.to_owned(),
        ];
        row.extend(TaskState::ALL.iter().map(|s| q.count(*s).to_string()));
        row.push(render::opt_time(q.changed_at));
        t.row(row);
    }
    write!(io.out, "{}", t.render(""))?;
    Ok(ExitCode::SUCCESS)
}

async fn reset(
    store: &dyn TaskStore,
    args: ResetArgs,
    now: DateTime<Utc>,
    io: &mut Io<'_>,
) -> Result<ExitCode> {
    if let Some(target) = &args.task {
        let f = &args.filter;
        if !f.biz_types.is_empty()
            || !f.task_types.is_empty()
            || !f.queues.is_empty()
            || f.code_prefix.is_some()
        {
            return Err(CliError::Message(
                "--biz-type, --type, --queue and --code-prefix select tasks for `reset --failed` or \
                 `reset --cancelled`; they do not apply to one named task"
                    .to_owned(),
            ));
        }
        return reset_one(store, target, args.dry_run, now, io).await;
    }
    let mut states = Vec::new();
    if args.failed {
        states.push(TaskState::Failed);
    }
    if args.cancelled {
        states.push(TaskState::Cancelled);
    }
    let what = states
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" or ");
    let f = filter(states, args.filter);
    if args.dry_run {
        let (rows, _) = scan(store, &f, u64::MAX).await?;
        if rows.is_empty() {
            writeln!(
                io.out,
                "dry run: no {what} task matches; nothing would change"
            )?;
        } else {
            write!(io.out, "{}", render::task_table(&rows))?;
            writeln!(
                io.out,
                "dry run: would reset {} {what} task{}; nothing changed",
                rows.len(),
                plural(rows.len() as u64)
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let n = store.reset(&ResetTarget::Matching(f), now).await?;
    writeln!(
        io.out,
        "reset {n} {what} task{}: pending again, attempts 0, due now",
        plural(n)
    )?;
    Ok(ExitCode::SUCCESS)
}

async fn reset_one(
    store: &dyn TaskStore,
    target: &Target,
    dry_run: bool,
    now: DateTime<Utc>,
    io: &mut Io<'_>,
) -> Result<ExitCode> {
    let task = store.get(&target.0).await.map_err(|e| explain(e, target))?;
    if dry_run {
        // The refusals `reset` itself would answer.
        if task.lease_live_at(now) {
            return Err(Error::Running {
                code: task.code,
                owner: task.lease_owner.unwrap_or_default(),
                until: task.lease_expires_at.unwrap_or(now),
            }
            .into());
        }
        if task.state == TaskState::Succeeded {
            return Err(Error::Succeeded(task.code).into());
        }
        write!(
            io.out,
            "{}",
            render::task_table(std::slice::from_ref(&task))
        )?;
        writeln!(
            io.out,
            "dry run: would reset task `{}` ({}, attempts {}) to pending, attempts 0, due now; \
             nothing changed",
            task.code,
            task.state,
            render::attempts(&task)
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let n = store
        .reset(&ResetTarget::One(target.0.clone()), now)
        .await
        .map_err(|e| explain(e, target))?;
    writeln!(
        io.out,
        "reset {n} task: `{}` (id {}, was {}) is pending again, attempts 0, due now",
        task.code, task.id, task.state
    )?;
    Ok(ExitCode::SUCCESS)
}

async fn schedules(
    store: &dyn TaskStore,
    now: DateTime<Utc>,
    json: bool,
    io: &mut Io<'_>,
) -> Result<ExitCode> {
    let rows = store.schedules().await?;
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "name": r.name, "spec": r.spec, "time_zone": r.time_zone,
                    "task_type": r.task_type, "fingerprint": r.fingerprint,
                    "last_tick": r.last_tick, "next_tick": r.next_tick,
                    "created_at": r.created_at, "registered_at": r.registered_at,
                    "updated_at": r.updated_at,
                })
            })
            .collect();
        writeln!(io.out, "{}", pretty(&json!(v)))?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        writeln!(
            io.out,
            "no schedules: workers register theirs when they start"
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&[
        "NAME",
        "SPEC",
        "TZ",
        "TYPE",
        "LAST TICK",
        "NEXT TICK",
        "REGISTERED",
    ]);
    for r in &rows {
        t.row(vec![
            r.name.clone(),
            r.spec.clone(),
            r.time_zone.clone(),
            r.task_type.clone(),
            render::time(r.last_tick),
            render::opt_time(r.next_tick),
            render::ago(r.registered_at, now),
        ]);
    }
    write!(io.out, "{}", t.render(""))?;
    writeln!(
        io.out,
        "(only workers that register a schedule tick it: one no running worker registers \
         keeps its row until `taskrow schedules remove NAME`)"
    )?;
    Ok(ExitCode::SUCCESS)
}

async fn remove_schedule(store: &dyn TaskStore, name: &str, io: &mut Io<'_>) -> Result<ExitCode> {
    let row = store.remove_schedule(name).await?;
    writeln!(
        io.out,
        "removed schedule `{}` ({}, last tick {}); its tasks stay. A worker that still \
         registers it ticks it again after its next start",
        row.name,
        row.spec,
        render::time(row.last_tick)
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Whether any task type is linked into this binary (typetag's registry is not empty).
pub(crate) fn task_types_linked() -> bool {
    let probe = json!({ "\u{1}taskrow-cli probe": null });
    match serde_json::from_value::<Box<dyn taskrow::Task>>(probe) {
        Ok(_) => true,
        Err(e) => !e.to_string().contains("there are no variants"),
    }
}

async fn run(
    store: Arc<dyn TaskStore>,
    target: &Target,
    configure: impl FnOnce(ClientBuilder) -> ClientBuilder,
    io: &mut Io<'_>,
) -> Result<ExitCode> {
    let task = store.get(&target.0).await.map_err(|e| explain(e, target))?;
    // Check that this binary can load the task before claiming it: a claim uses an attempt.
    match from_row(&task.task_type, &task.payload) {
        Ok(_) => {}
        Err(LoadError::UnknownType(ty)) if !task_types_linked() => {
            return Err(CliError::Message(format!(
                "this binary has no task types compiled in, so it cannot run task `{}` (type \
                 `{ty}`); nothing was run: build your own binary that links your tasks and calls \
                 taskrow_cli::run_cli (see the README, \"Operating taskrow\"), or let a worker \
                 run it (`taskrow reset` makes it due now)",
                task.code
            )));
        }
        Err(e) => {
            return Err(CliError::Message(format!(
                "cannot run task `{}`: {e}; nothing was run",
                task.code
            )));
        }
    }
    let client: Client = configure(Client::builder(store)).build()?;
    let report = client
        .run_now(target.0.clone())
        .await
        .map_err(|e| explain(e, target))?;
    write_report(&report, io)?;
    Ok(if report.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn write_report(r: &RunReport, io: &mut Io<'_>) -> Result<()> {
    let head = format!(
        "ran task `{}` (id {}), attempt {}, in {}: {}",
        r.code,
        r.id,
        r.attempt,
        render::millis(r.duration_ms.max(0) as u64),
        r.outcome
    );
    match r.outcome {
        Outcome::Succeeded => writeln!(io.out, "{head}")?,
        Outcome::Retrying => writeln!(
            io.out,
            "{head}: {}; next run at {}",
            r.error.as_deref().unwrap_or("-"),
            render::opt_time(r.next_run_at)
        )?,
        Outcome::Failed => writeln!(
            io.out,
            "{head} for good: {}; fix the cause, then `taskrow reset {}`",
            r.error.as_deref().unwrap_or("-"),
            r.id
        )?,
        Outcome::LeaseLost => writeln!(
            io.out,
            "{head}: another worker took the task over while it ran; this run's result was not \
             applied"
        )?,
        Outcome::Interrupted => writeln!(
            io.out,
            "{head}: {}; it runs again",
            r.error.as_deref().unwrap_or("-")
        )?,
        _ => writeln!(io.out, "{head}: {}", r.error.as_deref().unwrap_or("-"))?,
    }
    Ok(())
}

async fn purge(
    store: &dyn TaskStore,
    args: PurgeArgs,
    now: DateTime<Utc>,
    io: &mut Io<'_>,
) -> Result<ExitCode> {
    let age = TimeDelta::from_std(args.older_than)
        .map_err(|_| CliError::Message("--older-than is too long".to_owned()))?;
    let before = now
        .checked_sub_signed(age)
        .ok_or_else(|| CliError::Message("--older-than is too long".to_owned()))?;
    let mut states = vec![TaskState::Succeeded, TaskState::Cancelled];
    if args.include_failed {
        states.push(TaskState::Failed);
    }
    let what = states
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut purge = Purge::before(before).states(states).logs(!args.keep_logs);
    if args.dry_run {
        purge = purge.dry_run();
    }
    let report = store.purge(&purge).await?;
    let logs = if args.keep_logs {
        "log rows kept".to_owned()
    } else {
        format!("{} log row{}", report.logs, plural(report.logs))
    };
    let (verb, tail) = if args.dry_run {
        ("dry run: would purge", "; nothing changed")
    } else {
        ("purged", "")
    };
    writeln!(
        io.out,
        "{verb} {} task{} ({what}) and {logs}, older than {} (before {}){tail}",
        report.tasks,
        plural(report.tasks),
        render::millis(args.older_than.as_millis() as u64),
        render::time(before)
    )?;
    Ok(ExitCode::SUCCESS)
}
