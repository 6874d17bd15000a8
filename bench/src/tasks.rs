//! The benchmark's tasks and what their handlers report to the measuring code.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use taskrow::serde::{Deserialize, Serialize};
use taskrow::{Task, TaskContext, TaskError, async_trait, typetag};
use tokio::sync::Notify;

/// Wall-clock microseconds since the epoch: comparable between processes on one machine.
pub fn wall_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// What handlers (taskrow's and the floor's) report: runs counted, pickup latencies.
#[derive(Debug)]
pub struct Stats {
    done: AtomicU64,
    /// The count a waiter waits for: runs wake it only on reaching it, so a drain does not
    /// pay for a wake-up per task.
    target: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
    notify: Notify,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            done: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            latencies_us: Mutex::new(Vec::new()),
            notify: Notify::new(),
        }
    }
}

impl Stats {
    /// Forgets everything counted so far.
    pub fn reset(&self) {
        self.done.store(0, Ordering::SeqCst);
        self.target.store(u64::MAX, Ordering::SeqCst);
        self.latencies_us
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Counts one run.
    pub fn ran(&self) {
        let done = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        if done >= self.target.load(Ordering::SeqCst) {
            self.notify.notify_one();
        }
    }

    /// Counts one run of a task enqueued at `sent_us` (wall clock), started now.
    pub fn picked_up(&self, sent_us: i64) {
        let lat = u64::try_from(wall_us() - sent_us).unwrap_or(0);
        self.latencies_us
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(lat);
        self.ran();
    }

    /// Runs counted since the last reset.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::SeqCst)
    }

    /// Waits until `count` runs have been counted; `false` after `timeout`.
    pub async fn wait_for(&self, count: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        self.target.store(count, Ordering::SeqCst);
        loop {
            if self.done() >= count {
                return true;
            }
            if tokio::time::timeout_at(deadline, self.notify.notified())
                .await
                .is_err()
            {
                return self.done() >= count;
            }
        }
    }

    /// The latencies recorded since the last reset, in microseconds.
    pub fn latencies(&self) -> Vec<u64> {
        self.latencies_us
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A task that does nothing but count itself.
#[derive(Debug, Serialize, Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct Noop {
    /// Its number (so payloads differ, as real ones do).
    pub i: u64,
}

#[typetag::serde(name = "bench.noop")]
#[async_trait]
impl Task for Noop {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        ctx.data::<Stats>()?.ran();
        Ok(())
    }
}

/// A task that reports how long after its enqueue it started.
#[derive(Debug, Serialize, Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct Probe {
    /// Wall-clock microseconds just before the enqueue call.
    pub sent_us: i64,
}

#[typetag::serde(name = "bench.probe")]
#[async_trait]
impl Task for Probe {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        ctx.data::<Stats>()?.picked_up(self.sent_us);
        Ok(())
    }
}

/// The `sent_us` of a probe's JSON payload (the floor reads it without taskrow).
pub fn probe_sent_us(payload: &str) -> Option<i64> {
    taskrow::serde_json::from_str::<Probe>(payload)
        .ok()
        .map(|p| p.sent_us)
}
