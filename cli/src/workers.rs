//! `taskrow workers` (the worker registry) and `taskrow health` (a check an orchestrator
//! calls: exit status 0 or 1, one line saying why).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use taskrow::{Client, HealthCheck, HealthReport, TaskStore, WorkerRecord};

use crate::commands::{CliError, Io};
use crate::parse::duration;
use crate::render::{self, Table};

/// `taskrow health`'s arguments.
#[derive(Debug, Clone, Args)]
pub(crate) struct HealthArgs {
    /// Also require this worker's registry row to be alive (beaten within its last three
    /// beat intervals).
    #[arg(long, value_name = "ID")]
    pub worker: Option<String>,
    /// Require the last beat (of --worker, or of any worker) to be at most this old: seconds
    /// (`30`) or a duration (`30s`, `2m`).
    #[arg(long, value_name = "SECS", value_parser = max_age)]
    pub max_age: Option<Duration>,
    /// Print the report as JSON (the exit status stays 0 or 1).
    #[arg(long)]
    pub json: bool,
}

/// A maximum age: a plain number of seconds, or a duration (`30s`, `2m`).
fn max_age(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<u64>() {
        Ok(n) => Ok(Duration::from_secs(n)),
        Err(_) => duration(s),
    }
}

/// A client for judging the registry: its clock follows the database's where the store has
/// one (as the workers' does by default), so beats are judged by the time they were stamped
/// with.
fn client(store: Arc<dyn TaskStore>) -> Result<Client, CliError> {
    Ok(Client::builder(store).build()?)
}

/// `taskrow workers [--json]`: every registry row, alive or gone.
pub(crate) async fn workers(
    store: Arc<dyn TaskStore>,
    json: bool,
    io: &mut Io<'_>,
) -> Result<ExitCode, CliError> {
    let client = client(store)?;
    let rows = client.workers().await?;
    let now = client.clock().now();
    if json {
        let text = serde_json::to_string_pretty(&rows)
            .unwrap_or_else(|e| format!("\"cannot print JSON: {e}\""));
        writeln!(io.out, "{text}")?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        writeln!(
            io.out,
            "no workers: a started worker registers itself and removes its row when it stops"
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    write!(io.out, "{}", table(&rows, now))?;
    let alive = rows.iter().filter(|w| w.alive).count();
    writeln!(
        io.out,
        "{alive} alive, {} gone (gone: three beats missed; such rows are pruned after an hour)",
        rows.len() - alive
    )?;
    Ok(ExitCode::SUCCESS)
}

fn table(rows: &[WorkerRecord], now: chrono::DateTime<chrono::Utc>) -> String {
    let mut t = Table::new(&[
        "ID",
        "HOST",
        "PID",
        "QUEUES",
        "CONCURRENCY",
        "RUNNING",
        "STARTED",
        "LAST BEAT",
        "STATE",
    ]);
    for w in rows {
        t.row(vec![
            w.id.clone(),
            w.host.clone(),
            w.pid.to_string(),
            if w.queues.is_empty() {
                "(all)".to_owned()
            } else {
                w.queues.join(",")
            },
            w.concurrency.to_string(),
            w.running.to_string(),
            render::time(w.started_at),
            render::ago(w.last_beat, now),
            if w.alive { "alive" } else { "gone" }.to_owned(),
        ]);
    }
    t.render("")
}

/// `taskrow health`: opens the database itself, so that a database it cannot reach is an
/// unhealthy answer (exit status 1) rather than an error of the command line.
pub(crate) async fn health(url: &str, args: HealthArgs, io: &mut Io<'_>) -> ExitCode {
    let mut check = HealthCheck::new();
    if let Some(id) = &args.worker {
        check = check.worker(id.clone());
    }
    if let Some(d) = args.max_age {
        check = check.max_age(d);
    }
    let report = match crate::open(url).await {
        Err(e) => HealthReport::unhealthy(format!("database: {e}"), chrono::Utc::now()),
        Ok(db) => match client(db.store) {
            Err(e) => HealthReport::unhealthy(e.to_string(), chrono::Utc::now()),
            Ok(c) => c.health(&check).await,
        },
    };
    let written = if args.json {
        let text = serde_json::to_string_pretty(&json!(report))
            .unwrap_or_else(|e| format!("\"cannot print JSON: {e}\""));
        writeln!(io.out, "{text}")
    } else if report.healthy {
        writeln!(io.out, "healthy: {}", report.reason)
    } else {
        writeln!(io.out, "unhealthy: {}", report.reason)
    };
    if written.is_err() || !report.healthy {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
