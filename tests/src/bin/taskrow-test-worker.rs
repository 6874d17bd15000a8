//! `taskrow-test-worker`: one worker process for the fault suite and the multi-instance drain.
//!
//! ```text
//! taskrow-test-worker --url URL --records DIR [--concurrency N] [--lease-ms MS]
//!     [--heartbeat-ms MS (0: none)] [--poll-ms MS] [--shutdown-timeout-ms MS] [--exit-when-idle]
//!     [--worker-id ID]
//! taskrow-test-worker hold-sqlite-lock --url URL --millis MS
//! ```
//!
//! The first form runs a taskrow worker on the database at URL (`sqlite://…` or `mysql://…`,
//! already migrated; or `TASKROW_TEST_WORKER_URL`) with the fault suite's task types, their
//! handlers recording every run in `DIR/runs-<pid>.log` (`faults.aborts` aborts the process
//! here, and only here). It shuts down gracefully on SIGTERM
//! or SIGINT, and with `--exit-when-idle` once no task is pending or running. It logs to
//! stderr (`RUST_LOG` overrides the default filter).
//!
//! The second form holds the SQLite database's write lock (`BEGIN IMMEDIATE`) for MS
//! milliseconds, printing `locked` once it has it and `released` after.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use taskrow::{Client, Page, TaskFilter, TaskState, TaskStore};
use taskrow_tests::faults::tasks::AbortAllowed;
use taskrow_tests::faults::{Recorder, WorkerConfig};
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
    if url.starts_with("sqlite:") {
        Ok(Arc::new(taskrow_sqlite::SqliteStore::connect(url).await?))
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
    let mut builder = Client::builder_arc(store.clone())
        .data(recorder)
        .data(AbortAllowed)
        .lease(cfg.lease)
        .heartbeat(cfg.heartbeat);
    if let Some(id) = &cfg.id {
        builder = builder.id(id.clone());
    }
    let client = builder.build();
    let worker = client
        .worker()
        .concurrency(cfg.concurrency)
        .lease(cfg.lease)
        .heartbeat(cfg.heartbeat)
        .poll_interval(cfg.poll)
        .shutdown_timeout(cfg.shutdown_timeout)
        .start();
    let worker = match worker {
        Ok(w) => w,
        Err(e) => {
            error!(error = %e, "cannot start the worker");
            return ExitCode::from(1);
        }
    };
    info!(pid, worker = client.id(), "taskrow-test-worker running");

    loop {
        tokio::select! {
            sig = &mut signal => {
                info!(signal = ?sig.ok(), "signal received: shutting down gracefully");
                break;
            }
            () = tokio::time::sleep(Duration::from_millis(200)), if cfg.exit_when_idle => {
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
    }
    let report = worker.shutdown().await;
    info!(
        finished = report.finished,
        released = report.released,
        "taskrow-test-worker stopped"
    );
    ExitCode::SUCCESS
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
