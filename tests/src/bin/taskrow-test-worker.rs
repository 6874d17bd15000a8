//! `taskrow-test-worker`: one worker process for the fault suite and the multi-instance drain.
//!
//! ```text
//! taskrow-test-worker --url URL --records DIR [--concurrency N] [--lease-ms MS]
//!     [--heartbeat-ms MS (0: none)] [--poll-ms MS] [--shutdown-timeout-ms MS] [--exit-when-idle]
//!     [--worker-id ID] [--clock database|system] [--clock-skew-ms N] [--schedule-every-ms MS]
//! taskrow-test-worker hold-sqlite-lock --url URL --millis MS
//! taskrow-test-worker run-now --code CODE [the first form's options]
//! ```
//!
//! The first form runs a taskrow worker on the database at URL (`sqlite://…`, `mysql://…` or
//! `postgres://…`, already migrated; or `TASKROW_TEST_WORKER_URL`) with the fault suite's task
//! types, their handlers recording every run in `DIR/runs-<pid>.log` (`faults.aborts` aborts
//! the process here, and only here). It shuts down gracefully on SIGTERM or SIGINT, and with
//! `--exit-when-idle` once no task is pending or running. It logs to stderr (`RUST_LOG`
//! overrides the default filter), including every change of the worker's health (`worker
//! health: …`).
//!
//! `--clock` picks the client's clock: `database` is taskrow's default on MySQL/MariaDB and
//! PostgreSQL (a `DatabaseClock`, refused on a store without a time of its own), `system` this
//! host's wall clock moved by `--clock-skew-ms` (a local clock that runs N ms ahead, behind when
//! negative: a host whose clock is wrong). The skew cannot be given to the database clock: it reads
//! no wall clock at all, only the database's time and this host's monotonic clock, which is its
//! point. Without `--clock`, the client gets taskrow's default for the store. Once the clock can be
//! trusted, the process logs one `clock report` line: how far its local time source and its
//! client's clock are ahead of the database's time (`local_ahead_ms`, `client_ahead_ms`; measured
//! against `TaskStore::database_time`, to within half a round trip).
//!
//! `--schedule-every-ms` registers the schedule `faults.tick` on the worker: a `faults.drain`
//! task enqueued every MS milliseconds (at least 1 s), each tick once among all the processes
//! that register it.
//!
//! The third form builds a client as the first does and calls `Client::run_now` on one task
//! at once, as a fresh process would (the CLI's `taskrow run`, say): it prints
//! `run-now: ran …` with the run's outcome, or `run-now: refused: …` with the error (exit
//! status 3 when the task was running under a live lease, 1 for another error).
//!
//! The second form holds the SQLite database's write lock (`BEGIN IMMEDIATE`) for MS
//! milliseconds, printing `locked` once it has it and `released` after.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use taskrow::{Client, Clock, Page, TaskFilter, TaskState, TaskStore, WorkerHealth};
use taskrow_tests::faults::tasks::AbortAllowed;
use taskrow_tests::faults::{ClockChoice, Recorder, SkewedClock, WorkerConfig};
use tracing::{error, info, warn};

fn main() -> ExitCode {
    // Block SIGTERM and SIGINT before any thread starts, so every thread inherits the mask and
    // the signals wait for `sigwait` below instead of killing the process.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    if let Err(e) = signals.thread_block() {
        eprintln!("cannot block SIGTERM: {e}");
        return ExitCode::from(2);
    }

    let args: Vec<String> = std::env::args().skip(1).collect();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=error,sea_orm=warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            return ExitCode::from(2);
        }
    };

    if args.first().map(String::as_str) == Some("hold-sqlite-lock") {
        return runtime.block_on(hold_sqlite_lock(&args[1..]));
    }
    if args.first().map(String::as_str) == Some("run-now") {
        let mut rest = args[1..].to_vec();
        let Some(at) = rest.iter().position(|a| a == "--code") else {
            eprintln!("taskrow-test-worker run-now: --code CODE is missing");
            return ExitCode::from(2);
        };
        let Some(code) = rest.get(at + 1).cloned() else {
            eprintln!("taskrow-test-worker run-now: --code needs a value");
            return ExitCode::from(2);
        };
        rest.drain(at..=at + 1);
        let cfg = match WorkerConfig::parse(&rest) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("taskrow-test-worker run-now: {e}");
                return ExitCode::from(2);
            }
        };
        return runtime.block_on(run_now(cfg, code));
    }

    let cfg = match WorkerConfig::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("taskrow-test-worker: {e}");
            return ExitCode::from(2);
        }
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<Signal>();
    std::thread::spawn(move || {
        if let Ok(sig) = signals.wait() {
            let _ = tx.send(sig);
        }
    });
    runtime.block_on(run(cfg, rx))
}

async fn connect(url: &str) -> taskrow::Result<Arc<dyn TaskStore>> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("sqlite:") {
        Ok(Arc::new(taskrow_sqlite::SqliteStore::connect(url).await?))
    } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        Ok(Arc::new(
            taskrow_postgres::PostgresStore::connect(url).await?,
        ))
    } else {
        Ok(Arc::new(taskrow_mysql::MysqlStore::connect(url).await?))
    }
}

/// How many tasks are pending or running (0 or 1: enough to know whether any is left).
async fn left(store: &Arc<dyn TaskStore>) -> taskrow::Result<usize> {
    let filter = TaskFilter::all().states([TaskState::Pending, TaskState::Running]);
    Ok(store.list(&filter, &Page::first(1)).await?.len())
}

async fn run(cfg: WorkerConfig, mut signal: tokio::sync::oneshot::Receiver<Signal>) -> ExitCode {
    let pid = std::process::id();
    let store = match connect(&cfg.url).await {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot open the store");
            return ExitCode::from(1);
        }
    };
    let recorder = match Recorder::open(&cfg.records) {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, dir = %cfg.records.display(), "cannot open the run record");
            return ExitCode::from(1);
        }
    };
    let client = match build_client(&cfg, &store, recorder) {
        Ok(c) => c,
        Err(code) => return code,
    };
    tokio::spawn(report_clock(
        store.clone(),
        client.clock().clone(),
        SkewedClock::new(cfg.clock_skew_ms),
        cfg.clock.map_or("default", ClockChoice::name),
    ));
    let mut builder = client
        .worker()
        .concurrency(cfg.concurrency)
        .lease(cfg.lease)
        .heartbeat(cfg.heartbeat)
        .poll_interval(cfg.poll)
        .shutdown_timeout(cfg.shutdown_timeout);
    if let Some(every) = cfg.schedule_every {
        match taskrow::Schedule::every(taskrow_tests::faults::process::SCHEDULE_NAME, every) {
            Ok(s) => {
                builder =
                    builder.schedule(s.task(taskrow_tests::faults::tasks::Drain { millis: 1 }))
            }
            Err(e) => {
                error!(error = %e, "bad schedule");
                return ExitCode::from(2);
            }
        }
    }
    let worker = builder.start();
    let worker = match worker {
        Ok(w) => w,
        Err(e) => {
            error!(error = %e, "cannot start the worker");
            return ExitCode::from(1);
        }
    };
    info!(pid, worker = client.id(), "taskrow-test-worker running");

    let mut health = worker.health();
    info!(health = ?health, "worker health: {}", describe(&health));
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut ticks = 0_u64;
    loop {
        tokio::select! {
            sig = &mut signal => {
                info!(signal = ?sig.ok(), "signal received: shutting down gracefully");
                break;
            }
            _ = tick.tick() => {}
        }
        ticks += 1;
        let now = worker.health();
        if now != health {
            info!(health = ?now, "worker health: {}", describe(&now));
            health = now;
        }
        // Every 200 ms.
        if cfg.exit_when_idle && ticks.is_multiple_of(4) {
            match left(&store).await {
                Ok(0) => {
                    info!("no task is pending or running: shutting down");
                    break;
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "cannot check for tasks left"),
            }
        }
    }
    let report = worker.shutdown().await;
    info!(
        finished = report.finished,
        released = report.released,
        "taskrow-test-worker stopped"
    );
    ExitCode::SUCCESS
}

/// The client of a worker process (or of `run-now`): the fault suite's worker data, the
/// configured lease, heartbeat, id and clock.
fn build_client(
    cfg: &WorkerConfig,
    store: &Arc<dyn TaskStore>,
    recorder: Recorder,
) -> Result<Client, ExitCode> {
    let mut builder = Client::builder(store.clone())
        .data(recorder)
        .data(AbortAllowed)
        .lease(cfg.lease)
        .heartbeat(cfg.heartbeat);
    if let Some(id) = &cfg.id {
        builder = builder.id(id.clone());
    }
    let local = SkewedClock::new(cfg.clock_skew_ms);
    match cfg.clock {
        Some(ClockChoice::System) => builder = builder.clock(local),
        Some(ClockChoice::Database) if !store.has_database_time() => {
            error!(url = %cfg.url, "--clock database: this store has no time of its own");
            return Err(ExitCode::from(2));
        }
        // The default clock of a store with a time of its own is the database clock.
        Some(ClockChoice::Database) | None => {}
    }
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => {
            error!(error = %e, "cannot build the client");
            return Err(ExitCode::from(2));
        }
    };
    let clock_kind = format!("{:?}", client.clock());
    if cfg.clock == Some(ClockChoice::Database) && !clock_kind.starts_with("DatabaseClock") {
        error!(clock = %clock_kind, "--clock database, but the client's default clock is not a DatabaseClock");
        return Err(ExitCode::from(2));
    }
    Ok(client)
}

/// `run-now`: one `Client::run_now` from a fresh client, as a one-shot process makes it.
async fn run_now(cfg: WorkerConfig, code: String) -> ExitCode {
    let store = match connect(&cfg.url).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("run-now: cannot open the store: {e}");
            return ExitCode::from(1);
        }
    };
    let recorder = match Recorder::open(&cfg.records) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("run-now: cannot open the run record: {e}");
            return ExitCode::from(1);
        }
    };
    let client = match build_client(&cfg, &store, recorder) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.run_now(code.as_str()).await {
        Ok(r) => {
            println!(
                "run-now: ran {} attempt {} in {} ms: {}",
                r.code, r.attempt, r.duration_ms, r.outcome
            );
            ExitCode::SUCCESS
        }
        Err(e @ taskrow::Error::Running { .. }) => {
            println!("run-now: refused: {e}");
            ExitCode::from(3)
        }
        Err(e) => {
            println!("run-now: failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// A health state in a word or two, for the log.
fn describe(h: &WorkerHealth) -> String {
    match h {
        WorkerHealth::Starting => "starting".to_owned(),
        WorkerHealth::Running => "running".to_owned(),
        WorkerHealth::Paused(why) => format!("paused: {why}"),
        WorkerHealth::Stopped(None) => "stopped".to_owned(),
        WorkerHealth::Stopped(Some(why)) => format!("stopped: {why}"),
        other => format!("{other:?}"),
    }
}

/// Once `clock` can be trusted, logs how far `local` (this process's own time source) and
/// `clock` (the client's) are ahead of the database's time, read in the middle of a round trip.
async fn report_clock(
    store: Arc<dyn TaskStore>,
    clock: Arc<dyn Clock>,
    local: SkewedClock,
    kind: &'static str,
) {
    for _ in 0..100 {
        if clock.check().is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = (local.now(), clock.now());
    let sent = std::time::Instant::now();
    let db = store.database_time().await;
    let half = sent.elapsed() / 2;
    let Ok(Some(db)) = db else {
        info!(
            clock = kind,
            "clock report: the store has no time of its own"
        );
        return;
    };
    let half = taskrow::chrono::TimeDelta::from_std(half).unwrap_or_default();
    let at =
        |t: taskrow::chrono::DateTime<taskrow::chrono::Utc>| (t + half - db).num_milliseconds();
    info!(
        clock = kind,
        local_ahead_ms = at(before.0),
        client_ahead_ms = at(before.1),
        round_trip_ms = (half * 2).num_milliseconds(),
        "clock report"
    );
}

async fn hold_sqlite_lock(args: &[String]) -> ExitCode {
    use sea_orm::sqlx::{Connection, Executor, sqlite::SqliteConnection};
    use std::io::Write;

    let mut url = None;
    let mut millis = 3000;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--url", Some(v)) => url = Some(v.clone()),
            ("--millis", Some(v)) => millis = v.parse().unwrap_or(millis),
            _ => {
                eprintln!("hold-sqlite-lock --url URL --millis MS");
                return ExitCode::from(2);
            }
        }
    }
    let Some(url) = url else {
        eprintln!("hold-sqlite-lock needs --url");
        return ExitCode::from(2);
    };
    let result = async {
        let mut conn = SqliteConnection::connect(&url).await?;
        conn.execute("BEGIN IMMEDIATE").await?;
        // The reader may be gone by the time of the second line: ignore write errors.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "locked").and_then(|()| out.flush());
        tokio::time::sleep(Duration::from_millis(millis)).await;
        conn.execute("COMMIT").await?;
        let _ = writeln!(out, "released").and_then(|()| out.flush());
        conn.close().await
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hold-sqlite-lock: {e}");
            ExitCode::from(1)
        }
    }
}
