//! Retention: workers purge old finished tasks and old log rows themselves, in bounded
//! batches, so the tables do not grow without end ([`Retention`], set with
//! [`crate::worker::WorkerBuilder::retention`]).

use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, warn};

use crate::clock::sub;
use crate::error::{Error, Result};
use crate::record::TaskState;
use crate::runner::Env;
use crate::store::{Purge, PurgeReport};

/// How long finished tasks and log rows are kept by default: 30 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// What a worker purges, and how often.
///
/// On by default: succeeded and cancelled tasks kept on success (`keep_on_success`) and log
/// rows are removed 30 days ([`DEFAULT_RETENTION`]) after their last change (tasks) or start
/// (log rows); failed tasks are never removed by it — they wait for someone to reset or delete
/// them (their older log rows do go). Every worker purges about every 10 minutes, starting at a
/// random point of that interval so that many workers spread out, in batches of at most 1,000
/// rows of each table, at most 100 batches a round (the rest in the next round). Concurrent
/// purges by several workers are safe: a row is deleted once, whoever gets there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    tasks_after: Option<Duration>,
    logs_after: Option<Duration>,
    every: Duration,
    batch: u64,
    max_batches: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            tasks_after: Some(DEFAULT_RETENTION),
            logs_after: Some(DEFAULT_RETENTION),
            every: Duration::from_secs(600),
            batch: 1_000,
            max_batches: 100,
        }
    }
}

impl Retention {
    /// The default: tasks and log rows kept 30 days.
    pub fn new() -> Self {
        Self::default()
    }
    /// Nothing is purged by workers (purge by hand: `Client::purge`, `taskrow purge`).
    pub fn off() -> Self {
        Self {
            tasks_after: None,
            logs_after: None,
            ..Self::default()
        }
    }
    /// Succeeded and cancelled tasks go this long after their last change (`None`: kept).
    pub fn tasks_after(mut self, age: Option<Duration>) -> Self {
        self.tasks_after = age;
        self
    }
    /// Log rows go this long after their run started (`None`: kept).
    pub fn logs_after(mut self, age: Option<Duration>) -> Self {
        self.logs_after = age;
        self
    }
    /// How often a worker purges (default 10 minutes).
    pub fn every(mut self, d: Duration) -> Self {
        self.every = d;
        self
    }
    /// Most rows of each table one purge statement removes (default 1,000).
    pub fn batch(mut self, n: u64) -> Self {
        self.batch = n;
        self
    }
    /// Whether anything is purged at all.
    pub fn is_on(&self) -> bool {
        self.tasks_after.is_some() || self.logs_after.is_some()
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.is_on() && self.every.is_zero() {
            return Err(Error::Config(
                "the retention interval must be longer than zero (or turn retention off with `Retention::off()`)".into(),
            ));
        }
        if self.batch == 0 {
            return Err(Error::Config(
                "the retention batch must be at least 1 row".into(),
            ));
        }
        Ok(())
    }
}

/// Purges every [`Retention::every`] until `stop` fires. The first round comes at a random
/// point of the first interval.
pub(crate) async fn run(env: Env, retention: Retention, mut stop: watch::Receiver<bool>) {
    if !retention.is_on() {
        return;
    }
    let first = retention.every.mul_f64(rand_fraction());
    let mut pause = first;
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(pause) => {}
        }
        match round(&env, &retention, &stop).await {
            Ok(r) if r.tasks + r.logs > 0 => {
                debug!(worker = %env.worker, tasks = r.tasks, logs = r.logs, "taskrow retention purged old rows");
            }
            Ok(_) => {}
            Err(e) => {
                warn!(worker = %env.worker, error = %e, "taskrow retention could not purge; it tries again next round");
            }
        }
        pause = retention.every;
    }
}

/// One round: batches of each table until one comes back short, at most
/// `max_batches` of them, stopping early at `stop`.
async fn round(
    env: &Env,
    retention: &Retention,
    stop: &watch::Receiver<bool>,
) -> Result<PurgeReport> {
    env.clock.ready().await?;
    let now = env.clock.now();
    let mut total = PurgeReport::default();
    let cuts = [
        retention.tasks_after.map(|age| {
            Purge::before(sub(now, age))
                .states([TaskState::Succeeded, TaskState::Cancelled])
                .logs(false)
        }),
        retention
            .logs_after
            .map(|age| Purge::before(sub(now, age)).states([]).logs(true)),
    ];
    for purge in cuts.into_iter().flatten() {
        let purge = purge.limit(retention.batch);
        for _ in 0..retention.max_batches {
            if *stop.borrow() {
                return Ok(total);
            }
            let r = env.store.purge(&purge).await?;
            total.tasks += r.tasks;
            total.logs += r.logs;
            if r.tasks.max(r.logs) < retention.batch {
                break;
            }
        }
    }
    Ok(total)
}

/// A fraction in `[0, 1)` from the random low bits of a v7 UUID.
fn rand_fraction() -> f64 {
    let bits = uuid::Uuid::now_v7().as_u128() & ((1u128 << 53) - 1);
    bits as f64 / (1u64 << 53) as f64
}
