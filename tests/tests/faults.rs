//! The fault suite: taskrow under crashed workers, database outages, bad rows and bad
//! handlers, heartbeats cut for one worker, commit replies lost on the wire, handlers that
//! abort their process, long tasks claimed ahead and shutdowns on a last attempt, on SQLite,
//! MariaDB/MySQL and PostgreSQL, and the multi-instance drain (4 worker processes). Since issue
//! 12: a worker whose clock runs ahead (database clock and system clock), a one-shot
//! `run_now` on a host whose wall clock runs ahead (libfaketime), and a real database crash (a
//! private MariaDB instance killed with SIGKILL and restarted on its data). Since issue 14:
//! PostgreSQL in every scenario that applies to it, a private PostgreSQL instance killed with
//! SIGKILL mid-drain, and commit replies lost on PostgreSQL's wire. Since issue 15: periodic
//! ticks enqueued exactly once by 3 worker processes registering one schedule.
//!
//! ```text
//! TASKROW_MYSQL_URL=mysql://root@127.0.0.1:3306 \
//! TASKROW_POSTGRES_URL=postgres://postgres@127.0.0.1:5432 \
//!     cargo test -p taskrow-tests --test faults
//! ```
//!
//! The scenarios run one after another (they start worker processes and time leases), each
//! with a deadline, and the suite ends with a markdown table: scenario, backend, tasks, faults
//! injected, lost, executed twice at once, final states. `TASKROW_FAULTS_REPORT=path` also
//! writes the table there. Kill moments come from a seed, printed at the start; set
//! `TASKROW_FAULTS_SEED` to replay one. Arguments filter scenarios by name as libtest's do
//! (`cargo test -p taskrow-tests --test faults -- crashed_workers`); `--list` lists them.
//!
//! MySQL scenarios skip (printing `skipped: …`) without `TASKROW_MYSQL_URL`, PostgreSQL ones
//! without `TASKROW_POSTGRES_URL`, except under `CI=true`, where they fail. The database
//! crashes need no server URL: they start their own MariaDB (`mariadb-install-db` and
//! `mariadbd`, from `apt-get install mariadb-server`) and PostgreSQL (`initdb` and `postgres`,
//! from `apt-get install postgresql`; as the `postgres` account when run as root) and fail,
//! saying so, when they are missing. The `run_now` skew scenario needs libfaketime
//! (`apt-get install faketime`): it skips without it, except under `CI=true`, where it fails.

mod faults {
    pub mod attempts;
    pub mod clocks;
    pub mod common;
    pub mod handlers;
    pub mod instance;
    pub mod leases;
    pub mod processes;
    pub mod proxy;
    pub mod wire;
}

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use faults::common::{Backend, Row};

/// A scenario's run: its row, or `None` when its backend is not available here.
type Run = fn(Backend, u64) -> Pin<Box<dyn Future<Output = Option<Row>> + Send>>;

struct Scenario {
    /// `<id>::<backend>`.
    name: String,
    /// The table's scenario column.
    title: &'static str,
    backend: Backend,
    run: Run,
    /// Longest it may take.
    limit: Duration,
}

fn scenarios() -> Vec<Scenario> {
    use Backend::{Mysql, Postgres, Sqlite};
    use faults::{
        attempts as a, clocks as c, handlers as h, instance as i, leases as l, processes as p,
    };
    let all = [Sqlite, Mysql, Postgres];
    let servers = [Mysql, Postgres];
    let mut v = Vec::new();
    let mut add = |id: &str, title: &'static str, backends: &[Backend], run: Run, secs: u64| {
        for &b in backends {
            v.push(Scenario {
                name: format!("{id}::{}", b.name()),
                title,
                backend: b,
                run,
                limit: Duration::from_secs(secs),
            });
        }
    };
    add(
        "multi_instance",
        "multi-instance drain: 4 worker processes",
        &all,
        |b, s| Box::pin(p::multi_instance(b, s)),
        120,
    );
    add(
        "periodic_ticks",
        "periodic ticks: 3 worker processes register one schedule (every 1 s)",
        &all,
        |b, s| Box::pin(p::periodic_ticks(b, s)),
        90,
    );
    add(
        "crashed_workers",
        "crashed workers: kill -9 mid-drain",
        &all,
        |b, s| Box::pin(p::crashed_workers(b, s)),
        120,
    );
    add(
        "graceful_shutdown",
        "graceful shutdown under load (SIGTERM)",
        &all,
        |b, s| Box::pin(p::graceful_shutdown(b, s)),
        90,
    );
    add(
        "registry_rows",
        "worker registry: kill -9 one worker, SIGTERM another",
        &all,
        |b, s| Box::pin(p::registry_rows(b, s)),
        90,
    );
    add(
        "database_outage",
        "database outage: TCP proxy cut, then restored",
        &servers,
        |b, s| Box::pin(p::database_outage(b, s)),
        120,
    );
    add(
        "write_lock_held",
        "write lock held by another process",
        &[Sqlite],
        |b, s| Box::pin(p::write_lock_held(b, s)),
        60,
    );
    add(
        "bad_rows",
        "bad rows inserted by hand",
        &all,
        |b, s| Box::pin(h::bad_rows(b, s)),
        60,
    );
    add(
        "unreadable_claimable_row",
        "bad row: claimable row with an unreadable column",
        &all,
        |b, s| Box::pin(h::unreadable_claimable_row(b, s)),
        60,
    );
    add(
        "bad_handlers",
        "bad handlers: panic, hang past timeout, 1 MB error",
        &all,
        |b, s| Box::pin(h::bad_handlers(b, s)),
        60,
    );
    add(
        "lease_expiry",
        "lease expiry under a slow handler (no heartbeat)",
        &all,
        |b, s| Box::pin(h::lease_expiry(b, s)),
        60,
    );
    add(
        "heartbeat",
        "heartbeats keep a long task's lease",
        &all,
        |b, s| Box::pin(h::heartbeat_keeps_lease(b, s)),
        60,
    );
    add(
        "heartbeats_cut",
        "heartbeats cut for one worker (its own proxy), a second worker polling",
        &servers,
        |b, s| Box::pin(l::heartbeats_cut(b, s)),
        60,
    );
    add(
        "commit_reply_lost",
        "commit reply lost on the wire (proxy drops the answer to COMMIT)",
        &servers,
        |b, s| Box::pin(l::commit_reply_lost(b, s)),
        90,
    );
    add(
        "aborting_task",
        "a task that aborts its process on every run",
        &all,
        |b, s| Box::pin(a::aborting_task(b, s)),
        60,
    );
    add(
        "claim_ahead",
        "2 worker processes × long tasks, default claim-ahead",
        &all,
        |b, s| Box::pin(l::claim_ahead_long_tasks(b, s)),
        60,
    );
    add(
        "shutdown_last_attempt",
        "shutdown on the last attempt (SIGTERM, handler ignores it)",
        &all,
        |b, s| Box::pin(a::shutdown_last_attempt(b, s)),
        60,
    );
    add(
        "clock_skew",
        "clock skew: worker-b's local clock 2 × lease ahead (database clock, then system clock)",
        &servers,
        |b, s| Box::pin(c::clock_skew(b, s)),
        90,
    );
    add(
        "run_now_skewed_host",
        "run_now from a fresh process whose wall clock runs 2 × lease ahead (libfaketime)",
        &[Mysql],
        |b, s| Box::pin(c::run_now_skewed_host(b, s)),
        60,
    );
    add(
        "db_crash",
        "database crash: a private MariaDB killed with SIGKILL mid-drain, restarted on its data",
        &[Mysql],
        |b, s| Box::pin(i::db_crash(b, s)),
        120,
    );
    add(
        "db_crash",
        "database crash: a private PostgreSQL killed with SIGKILL mid-drain, restarted on its data",
        &[Postgres],
        |b, s| Box::pin(i::db_crash(b, s)),
        120,
    );
    v
}

/// libtest-style arguments: name filters, `--exact`, `--skip`, `--list`.
#[derive(Default)]
struct Args {
    filters: Vec<String>,
    skips: Vec<String>,
    exact: bool,
    list: bool,
    ignored: bool,
}

impl Args {
    fn parse() -> Self {
        let mut a = Args::default();
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--list" => a.list = true,
                "--exact" => a.exact = true,
                "--ignored" => a.ignored = true,
                "--skip" => a.skips.extend(it.next()),
                "--format" | "--test-threads" | "--color" | "--logfile" | "-Z" => {
                    it.next();
                }
                s if s.starts_with('-') => {}
                s => a.filters.push(s.to_owned()),
            }
        }
        a
    }

    fn selects(&self, name: &str) -> bool {
        let hit = |f: &String| {
            if self.exact {
                name == f
            } else {
                name.contains(f.as_str())
            }
        };
        !self.ignored
            && (self.filters.is_empty() || self.filters.iter().any(hit))
            && !self.skips.iter().any(|s| name.contains(s.as_str()))
    }
}

struct Line {
    title: &'static str,
    backend: &'static str,
    result: Result<Option<Row>, String>,
    secs: f64,
}

fn table(lines: &[Line]) -> String {
    let mut t = String::from(
        "| scenario | backend | tasks | faults injected | lost | executed twice at once | final states | result | time |\n\
         |---|---|---:|---|---:|---|---|---|---:|\n",
    );
    for l in lines {
        let (row, result) = match &l.result {
            Ok(Some(r)) => (Some(r), "pass".to_owned()),
            Ok(None) => (None, "skipped".to_owned()),
            Err(e) => (None, format!("FAIL: {e}")),
        };
        let cell = |f: &dyn Fn(&Row) -> String| row.map_or_else(|| "–".to_owned(), f);
        t.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} s |\n",
            l.title,
            l.backend,
            cell(&|r| r.tasks.to_string()),
            cell(&|r| r.faults.clone()),
            cell(&|r| r.lost.to_string()),
            cell(&|r| r.twice_at_once.clone()),
            cell(&|r| r.final_states.clone()),
            result.replace('|', "\\|").replace('\n', " "),
            l.secs
        ));
    }
    t
}

fn main() -> ExitCode {
    let args = Args::parse();
    let all = scenarios();
    if args.list {
        if !args.ignored {
            for s in &all {
                println!("{}: test", s.name);
            }
        }
        return ExitCode::SUCCESS;
    }
    let selected: Vec<Scenario> = all.into_iter().filter(|s| args.selects(&s.name)).collect();
    let seed = std::env::var("TASKROW_FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()) ^ faults::common::now_seed());
    println!(
        "\nrunning {} fault scenarios, seed {seed} (replay with TASKROW_FAULTS_SEED={seed})",
        selected.len()
    );
    // The bad-handler scenario's planned panics are expected: keep their reports out of the
    // output. Every other panic is reported as usual.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let planned = taskrow_tests::faults::tasks::Panics::MESSAGE;
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied());
        if msg != Some(planned) {
            default_hook(info);
        }
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("cannot start tokio");

    let suite = Instant::now();
    let mut lines = Vec::new();
    for s in selected {
        println!("\n=== {} ({})", s.name, s.title);
        let started = Instant::now();
        let result = runtime.block_on(async {
            let mut task = tokio::spawn((s.run)(s.backend, seed));
            match tokio::time::timeout(s.limit, &mut task).await {
                Ok(Ok(row)) => Ok(row),
                Ok(Err(e)) if e.is_panic() => {
                    let p = e.into_panic();
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_else(|| "panicked".to_owned());
                    Err(msg)
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => {
                    task.abort();
                    let _ = task.await;
                    Err(format!("did not finish within {:?}", s.limit))
                }
            }
        });
        let secs = started.elapsed().as_secs_f64();
        match &result {
            Ok(Some(_)) => println!("--- {}: ok ({secs:.1} s)", s.name),
            Ok(None) => println!("--- {}: skipped", s.name),
            Err(e) => println!("--- {}: FAILED ({secs:.1} s): {e}", s.name),
        }
        lines.push(Line {
            title: s.title,
            backend: s.backend.name(),
            result,
            secs,
        });
    }
    let failed = lines.iter().filter(|l| l.result.is_err()).count();
    let passed = lines
        .iter()
        .filter(|l| matches!(l.result, Ok(Some(_))))
        .count();
    let skipped = lines.len() - failed - passed;
    let total = suite.elapsed().as_secs_f64();
    let t = table(&lines);
    println!("\n{t}");
    if let Ok(path) = std::env::var("TASKROW_FAULTS_REPORT") {
        let report = format!("seed {seed}, {total:.0} s\n\n{t}");
        if let Err(e) = std::fs::write(&path, report) {
            eprintln!("cannot write {path}: {e}");
        }
    }
    println!(
        "test result: {}. {passed} passed; {failed} failed; {skipped} skipped; finished in {total:.1}s (seed {seed})\n",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
