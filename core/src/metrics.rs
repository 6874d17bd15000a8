//! Metrics through the [`metrics`] facade: taskrow records, the application chooses the
//! exporter (Prometheus, StatsD, …) by installing a recorder. Without one, nothing is kept.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | [`ENQUEUED`] | counter | `task_type`, `queue` | tasks stored (a consistency task at its transaction's commit) |
//! | [`RUNS`] | counter | `task_type`, `queue`, `outcome` | runs whose result was written: `succeeded`, `retrying`, `failed`, `interrupted`, or `lease_lost` when the store refused it |
//! | [`RUN_DURATION`] | histogram, seconds | `task_type`, `queue`, `outcome` | how long each counted run ran |
//! | [`PICKUP_LAG`] | histogram, seconds | `task_type`, `queue` | from when a run became due to its claim |
//! | [`RUNNING`] | gauge | `queue` | runs in progress in this process |
//!
//! Runs of other processes are counted there; a run whose worker died is logged as
//! `worker_lost` by whoever settles it and is not counted here.

use chrono::{DateTime, Utc};
use metrics::{counter, gauge, histogram};

use crate::record::{Outcome, TaskRecord};
use crate::store::{Finish, FinishStatus};

/// Counter of tasks enqueued.
pub const ENQUEUED: &str = "taskrow_enqueued_total";
/// Counter of runs by outcome.
pub const RUNS: &str = "taskrow_runs_total";
/// Histogram of run durations, in seconds.
pub const RUN_DURATION: &str = "taskrow_run_duration_seconds";
/// Histogram of pickup lag (due → claimed), in seconds.
pub const PICKUP_LAG: &str = "taskrow_pickup_lag_seconds";
/// Gauge of runs in progress in this process.
pub const RUNNING: &str = "taskrow_running";

/// Counts `n` tasks of `task_type` stored in `queue`. The client calls it; a store that
/// enqueues by itself (a transaction's tasks, at commit) calls it too.
pub fn enqueued(task_type: &str, queue: &str, n: u64) {
    counter!(ENQUEUED, "task_type" => task_type.to_owned(), "queue" => queue.to_owned())
        .increment(n);
}

/// Counts a run whose result the store answered: its outcome, or `lease_lost` when refused.
pub(crate) fn finished(f: &Finish, status: FinishStatus) {
    let outcome = match status {
        FinishStatus::Applied => f.outcome(),
        FinishStatus::LeaseLost => Outcome::LeaseLost,
    };
    let labels = [
        ("task_type", f.task_type.clone()),
        ("queue", f.queue.clone()),
        ("outcome", outcome.as_str().to_owned()),
    ];
    counter!(RUNS, &labels).increment(1);
    histogram!(RUN_DURATION, &labels).record(f.duration_ms.max(0) as f64 / 1000.0);
}

/// A run in progress: counted in [`RUNNING`] until dropped (also when the run is aborted).
pub(crate) struct Running {
    queue: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        gauge!(RUNNING, "queue" => self.queue.clone()).decrement(1.0);
    }
}

/// Counts a run starting: its pickup lag and one more running.
pub(crate) fn started(task: &TaskRecord) -> Running {
    let queue = task.queue.as_str();
    if let (Some(due), Some(claimed)) = (task.due_at, task.claimed_at) {
        histogram!(PICKUP_LAG, "task_type" => task.task_type.clone(), "queue" => queue.to_owned())
            .record(seconds_between(due, claimed));
    }
    gauge!(RUNNING, "queue" => queue.to_owned()).increment(1.0);
    Running {
        queue: queue.to_owned(),
    }
}

/// `to − from` in seconds, 0 when `to` is earlier (a task run before it was due).
fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX).max(0) as f64 / 1e6
}
