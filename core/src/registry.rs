//! The worker registry: one row per worker, kept fresh by the worker itself, so operators (the
//! dashboard, `taskrow workers`, a health check) see which workers are alive now.
//!
//! A started worker beats ([`crate::TaskStore::beat_worker`]) at its start and then every
//! [`beat_interval`] — its id, host, pid, queues, concurrency, how many runs it has now, and
//! when it started — and removes its row at a clean shutdown
//! ([`crate::TaskStore::remove_worker`]). Each beat says when its row goes stale: after
//! [`MISSED_BEATS`] beats missed ([`WorkerBeat::stale_at`]). A row past that time is *gone*
//! (a killed process, a lost host, a worker cut off from the database); listing judges it by
//! the `now` it is given ([`WorkerRecord::alive`]). Gone rows stay visible for
//! [`GONE_KEPT`], then workers prune them, [`PRUNE_BATCH`] at a time
//! ([`crate::TaskStore::prune_workers`]).
//!
//! Times come from the worker's clock, as every taskrow time does, so on MySQL and PostgreSQL
//! (whose default clock follows the database's) hosts whose clocks disagree still agree on who
//! is alive.
//!
//! A failed beat is a warning in the log, never a reason to stop running tasks: the registry is
//! for people and orchestrators, not for the claims, which never read it. Workers running at
//! once under one id share (and overwrite) one row: give each its own id (the default one is
//! unique per process).
//!
//! [`Worker::run_until_idle`](crate::Worker::run_until_idle) runs in its caller and registers
//! nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::{add, truncate_micros};
use crate::error::{Error, Result};

/// Beats a row may miss before it is gone.
pub const MISSED_BEATS: u32 = 3;

/// The longest time between two beats of a worker: a worker beats at its heartbeat interval,
/// but at least this often.
pub const MAX_BEAT_INTERVAL: Duration = Duration::from_secs(10);

/// How long a gone worker's row stays visible before workers prune it.
pub const GONE_KEPT: Duration = Duration::from_secs(3600);

/// Most rows one prune removes (a worker prunes at its start and every
/// [`PRUNE_EVERY_BEATS`] beats).
pub const PRUNE_BATCH: u64 = 100;

/// How many beats a worker lets pass between two prunes.
pub const PRUNE_EVERY_BEATS: u32 = 30;

/// Longest host name and version kept (longer ones are cut).
pub const MAX_HOST_CHARS: usize = 255;

/// Longest version text kept.
pub const MAX_VERSION_CHARS: usize = 64;

/// How often a worker with this heartbeat beats: its heartbeat interval, at most
/// [`MAX_BEAT_INTERVAL`] (and that with heartbeats off).
pub fn beat_interval(heartbeat: Option<Duration>) -> Duration {
    heartbeat
        .unwrap_or(MAX_BEAT_INTERVAL)
        .min(MAX_BEAT_INTERVAL)
        .max(Duration::from_millis(10))
}

/// This host's name: `$HOSTNAME`, else `/etc/hostname`, else `host`.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned())
}

fn cut(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// One beat of a worker, as [`crate::TaskStore::beat_worker`] stores it: the row of
/// [`WorkerBeat::id`] becomes exactly this (inserted, or replaced).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerBeat {
    /// The worker's id (the lease owner of its claims).
    pub id: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The queues it runs; empty: every queue.
    pub queues: Vec<String>,
    /// Most runs at once (over all its queues).
    pub concurrency: u32,
    /// Runs going on now.
    pub running: u32,
    /// The taskrow version it runs.
    pub version: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The time of this beat (the row's last beat).
    pub now: DateTime<Utc>,
    /// When the row is gone unless another beat comes first.
    pub stale_at: DateTime<Utc>,
}

impl WorkerBeat {
    /// A beat of worker `id` at `now`, beating every `interval` (gone [`MISSED_BEATS`]
    /// intervals later), from this host and process, running this taskrow version, with no
    /// queue named, concurrency 1 and nothing running.
    pub fn new(
        id: impl Into<String>,
        started_at: DateTime<Utc>,
        now: DateTime<Utc>,
        interval: Duration,
    ) -> Self {
        let now = truncate_micros(now);
        Self {
            id: id.into(),
            host: cut(&host_name(), MAX_HOST_CHARS),
            pid: std::process::id(),
            queues: Vec::new(),
            concurrency: 1,
            running: 0,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: truncate_micros(started_at),
            now,
            stale_at: truncate_micros(add(now, interval * MISSED_BEATS)),
        }
    }
    /// The host (cut to [`MAX_HOST_CHARS`]).
    pub fn host(mut self, host: impl AsRef<str>) -> Self {
        self.host = cut(host.as_ref(), MAX_HOST_CHARS);
        self
    }
    /// The process id.
    pub fn pid(mut self, pid: u32) -> Self {
        self.pid = pid;
        self
    }
    /// The queues it runs.
    pub fn queues(mut self, q: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.queues = q.into_iter().map(Into::into).collect();
        self
    }
    /// Most runs at once.
    pub fn concurrency(mut self, n: u32) -> Self {
        self.concurrency = n;
        self
    }
    /// Runs going on now.
    pub fn running(mut self, n: u32) -> Self {
        self.running = n;
        self
    }

    /// Checks what a store checks before it writes the beat: a valid worker id
    /// ([`crate::options::validate_worker_id`]), valid queue names, a host and version that
    /// fit, and a stale time after the beat. [`Error::InvalidInput`] otherwise.
    pub fn validate(&self) -> Result<()> {
        crate::options::validate_worker_id(&self.id)?;
        for q in &self.queues {
            crate::options::validate_queue(q)?;
        }
        if self.host.chars().count() > MAX_HOST_CHARS {
            return Err(Error::InvalidInput(format!(
                "worker `{}`: the host name is longer than {MAX_HOST_CHARS} characters",
                self.id
            )));
        }
        if self.version.chars().count() > MAX_VERSION_CHARS {
            return Err(Error::InvalidInput(format!(
                "worker `{}`: the version is longer than {MAX_VERSION_CHARS} characters",
                self.id
            )));
        }
        if self.stale_at <= self.now {
            return Err(Error::InvalidInput(format!(
                "worker `{}`: a beat's stale time ({}) must be after the beat ({})",
                self.id, self.stale_at, self.now
            )));
        }
        Ok(())
    }

    /// The queues as a store keeps them in one text column: space-separated (queue names
    /// hold no whitespace), empty for every queue.
    pub fn queues_text(&self) -> String {
        self.queues.join(" ")
    }
}

/// The queues of a stored text column ([`WorkerBeat::queues_text`]).
pub fn queues_from_text(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// A worker's row, as [`crate::TaskStore::workers`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WorkerRecord {
    /// The worker's id.
    pub id: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The queues it runs; empty: every queue.
    pub queues: Vec<String>,
    /// Most runs at once.
    pub concurrency: u32,
    /// Runs going on at its last beat.
    pub running: u32,
    /// The taskrow version it runs.
    pub version: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last beat.
    pub last_beat: DateTime<Utc>,
    /// When its row goes stale without another beat.
    pub stale_at: DateTime<Utc>,
    /// Whether it is alive at the time the list was asked for: `stale_at` is after it.
    pub alive: bool,
}

impl WorkerRecord {
    /// The row a beat leaves, judged alive or gone at `now`. Stores build their records with
    /// it, so they all judge the same way.
    pub fn from_beat(beat: &WorkerBeat, now: DateTime<Utc>) -> Self {
        Self {
            id: beat.id.clone(),
            host: beat.host.clone(),
            pid: beat.pid,
            queues: beat.queues.clone(),
            concurrency: beat.concurrency,
            running: beat.running,
            version: beat.version.clone(),
            started_at: beat.started_at,
            last_beat: beat.now,
            stale_at: beat.stale_at,
            alive: false,
        }
        .judged(now)
    }

    /// This record with [`WorkerRecord::alive`] judged at `now`.
    pub fn judged(mut self, now: DateTime<Utc>) -> Self {
        self.alive = self.stale_at > now;
        self
    }

    /// How long ago its last beat was, at `now` (zero for a beat in the future).
    pub fn beat_age(&self, now: DateTime<Utc>) -> Duration {
        (now - self.last_beat).to_std().unwrap_or(Duration::ZERO)
    }
}

/// What a health check asks ([`crate::Client::health`]): always that the database answers and
/// its schema is the one this version knows; with a worker id, that this worker's row is alive
/// (and, with a maximum age, that its last beat is no older); with only a maximum age, that
/// some alive worker beat within it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthCheck {
    /// This worker must be alive.
    pub worker: Option<String>,
    /// The last beat (of `worker`, or of some worker) must be at most this old.
    pub max_age: Option<Duration>,
}

impl HealthCheck {
    /// The database and its schema only.
    pub fn new() -> Self {
        Self::default()
    }
    /// This worker must be alive.
    pub fn worker(mut self, id: impl Into<String>) -> Self {
        self.worker = Some(id.into());
        self
    }
    /// The last beat must be at most this old.
    pub fn max_age(mut self, d: Duration) -> Self {
        self.max_age = Some(d);
        self
    }

    /// Judges the registry as read at `now` (the database and schema already found fine).
    pub fn judge(&self, now: DateTime<Utc>, workers: &[WorkerRecord]) -> HealthReport {
        let alive = workers.iter().filter(|w| w.alive).count();
        let secs = |d: Duration| format!("{:.1} s", d.as_secs_f64());
        let mut report = HealthReport {
            healthy: true,
            reason: String::new(),
            workers_alive: alive,
            worker: None,
            checked_at: now,
        };
        let fail = |mut r: HealthReport, reason: String| {
            r.healthy = false;
            r.reason = reason;
            r
        };
        if let Some(id) = &self.worker {
            let Some(w) = workers.iter().find(|w| &w.id == id) else {
                return fail(
                    report,
                    format!(
                        "worker `{id}` is not in the registry: it never started, shut down, \
                         or its row was pruned"
                    ),
                );
            };
            report.worker = Some(w.clone());
            let age = w.beat_age(now);
            if !w.alive {
                return fail(
                    report,
                    format!(
                        "worker `{id}` is gone: its last beat was {} ago ({} beats missed)",
                        secs(age),
                        MISSED_BEATS
                    ),
                );
            }
            if let Some(max) = self.max_age
                && age > max
            {
                return fail(
                    report,
                    format!(
                        "worker `{id}`'s last beat was {} ago, more than the {} allowed",
                        secs(age),
                        secs(max)
                    ),
                );
            }
            report.reason = format!(
                "ok: database and schema fine; worker `{id}` alive, last beat {} ago, {} of {} \
                 slots running",
                secs(age),
                w.running,
                w.concurrency
            );
            return report;
        }
        if let Some(max) = self.max_age {
            let fresh = workers
                .iter()
                .filter(|w| w.alive && w.beat_age(now) <= max)
                .count();
            if fresh == 0 {
                return fail(
                    report,
                    format!("no worker beat within the last {}", secs(max)),
                );
            }
            report.reason = format!(
                "ok: database and schema fine; {fresh} worker(s) beat within the last {}",
                secs(max)
            );
            return report;
        }
        report.reason = format!("ok: database and schema fine; {alive} worker(s) alive");
        report
    }
}

/// What a health check found ([`crate::Client::health`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// Whether every condition asked holds.
    pub healthy: bool,
    /// One line: what holds, or the first thing that does not.
    pub reason: String,
    /// How many workers are alive (0 when the registry could not be read).
    pub workers_alive: usize,
    /// The worker asked about, when it has a row.
    pub worker: Option<WorkerRecord>,
    /// When it was checked (the client's clock).
    pub checked_at: DateTime<Utc>,
}

impl HealthReport {
    /// An unhealthy report: `reason` says why.
    pub fn unhealthy(reason: impl Into<String>, now: DateTime<Utc>) -> Self {
        Self {
            healthy: false,
            reason: reason.into(),
            workers_alive: 0,
            worker: None,
            checked_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + secs, 0).unwrap()
    }

    #[test]
    fn beats_at_the_heartbeat_at_most_every_ten_seconds() {
        assert_eq!(
            beat_interval(Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            beat_interval(Some(Duration::from_secs(20))),
            MAX_BEAT_INTERVAL
        );
        assert_eq!(beat_interval(None), MAX_BEAT_INTERVAL);
        let b = WorkerBeat::new("w", t(0), t(5), Duration::from_secs(2));
        assert_eq!(b.stale_at, t(11), "three beats after the beat");
    }

    #[test]
    fn queues_round_trip_through_their_text() {
        let b = WorkerBeat::new("w", t(0), t(0), Duration::from_secs(1)).queues(["a,b", "c.d"]);
        assert_eq!(queues_from_text(&b.queues_text()), ["a,b", "c.d"]);
        assert!(queues_from_text("").is_empty());
    }

    #[test]
    fn health_judges_worker_and_age() {
        let fresh = WorkerRecord::from_beat(
            &WorkerBeat::new("w", t(0), t(100), Duration::from_secs(10)),
            t(105),
        );
        let gone = WorkerRecord::from_beat(
            &WorkerBeat::new("old", t(0), t(0), Duration::from_secs(10)),
            t(105),
        );
        let all = [fresh, gone];
        let judge = |c: HealthCheck| c.judge(t(105), &all);
        let r = judge(HealthCheck::new());
        assert!(r.healthy && r.workers_alive == 1, "{r:?}");
        assert!(judge(HealthCheck::new().worker("w")).healthy);
        let r = judge(HealthCheck::new().worker("old"));
        assert!(!r.healthy && r.reason.contains("is gone"), "{r:?}");
        let r = judge(
            HealthCheck::new()
                .worker("w")
                .max_age(Duration::from_secs(4)),
        );
        assert!(
            !r.healthy && r.reason.contains("more than the 4.0 s"),
            "{r:?}"
        );
        assert!(judge(HealthCheck::new().max_age(Duration::from_secs(5))).healthy);
        let r = judge(HealthCheck::new().max_age(Duration::from_secs(4)));
        assert!(!r.healthy, "{r:?}");
    }
}
