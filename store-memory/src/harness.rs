//! A harness for unit tests of task handlers: a memory store, a manual clock and a client,
//! with helpers to run what is due and move time to reach retries — no sleeping.
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//! use taskrow::{async_trait, EnqueueOptions, Outcome, RetryPolicy, Task, TaskContext, TaskError, TaskState};
//! use taskrow::typetag;
//! use taskrow_memory::TestHarness;
//!
//! /// Stands in for a flaky downstream service.
//! #[derive(Default)]
//! struct Inventory { calls: AtomicU32 }
//!
//! #[derive(taskrow::serde::Serialize, taskrow::serde::Deserialize)]
//! #[serde(crate = "taskrow::serde")]
//! struct Reserve { sku: String }
//!
//! #[typetag::serde(name = "inventory.reserve")]
//! #[async_trait]
//! impl Task for Reserve {
//!     async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
//!         let inv = ctx.data::<Inventory>()?;
//!         if inv.calls.fetch_add(1, Ordering::SeqCst) < 2 {
//!             return Err(TaskError::msg(format!("inventory busy for {}", self.sku)));
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let h = TestHarness::with_client(|c| c.data(Inventory::default()));
//! let opts = EnqueueOptions::new().code("reserve-1").retry(RetryPolicy::fixed(Duration::from_secs(60)));
//! h.enqueue(&Reserve { sku: "A-1".into() }, opts).await.unwrap();
//!
//! h.run_due().await.unwrap();                       // attempt 1 fails
//! assert_eq!(h.task("reserve-1").await.unwrap().state, TaskState::Pending);
//! h.run_due().await.unwrap();                       // not due yet: nothing runs
//! h.advance(Duration::from_secs(60));
//! h.run_due().await.unwrap();                       // attempt 2 fails
//! h.advance(Duration::from_secs(60));
//! let r = h.run_due().await.unwrap();               // attempt 3 succeeds; the row is deleted
//! assert_eq!(r.succeeded, 1);
//!
//! let outcomes: Vec<_> = h.logs("reserve-1").await.unwrap().iter().map(|l| l.outcome).collect();
//! assert_eq!(outcomes, [Outcome::Retrying, Outcome::Retrying, Outcome::Succeeded]);
//! assert!(h.task("reserve-1").await.is_err()); // gone: success deletes by default
//! # }
//! ```
//!
//! The memory store has no transactions: code that enqueues inside a SeaORM transaction is
//! tested against SQLite instead (`taskrow-sqlite` with `sqlite::memory:`), which needs no
//! server either.

use std::time::Duration;

use chrono::{DateTime, Utc};
use taskrow::{
    Client, ClientBuilder, DrainReport, EnqueueOptions, Jitter, LogFilter, ManualClock, Result,
    Task, TaskLog, TaskRecord, TaskRef, TaskState, TaskStore, Worker,
};

use crate::MemoryStore;

/// Where a harness's clock starts: 2026-01-01T00:00:00Z.
pub fn harness_epoch() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("a valid time")
        .with_timezone(&Utc)
}

/// A memory store, a manual clock, a client and a worker that runs due tasks in the caller.
/// Jitter is off, so retry times are exact.
#[derive(Debug)]
pub struct TestHarness {
    store: MemoryStore,
    clock: ManualClock,
    client: Client,
    worker: Worker,
}

impl Default for TestHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl TestHarness {
    /// A harness with no registered data.
    pub fn new() -> Self {
        Self::with_client(|c| c)
    }

    /// A harness whose client is configured by `configure` (register data there).
    pub fn with_client(configure: impl FnOnce(ClientBuilder) -> ClientBuilder) -> Self {
        let store = MemoryStore::new();
        let clock = ManualClock::new(harness_epoch());
        let builder = Client::builder(store.clone())
            .clock(clock.clone())
            .jitter(Jitter::fixed(0.0))
            .id("test-harness")
            .heartbeat(None);
        let client = configure(builder)
            .build()
            .unwrap_or_else(|e| panic!("the harness's client settings: {e}"));
        let worker = client
            .worker()
            .heartbeat(None)
            .build()
            .expect("the harness's worker settings are valid");
        Self {
            store,
            clock,
            client,
            worker,
        }
    }

    /// The client (enqueue, run-now).
    pub fn client(&self) -> &Client {
        &self.client
    }
    /// The store.
    pub fn store(&self) -> &MemoryStore {
        &self.store
    }
    /// The clock.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }
    /// The current (manual) time.
    pub fn now(&self) -> DateTime<Utc> {
        taskrow::Clock::now(&self.clock)
    }

    /// Enqueues a task.
    pub async fn enqueue(&self, task: &dyn Task, options: EnqueueOptions) -> Result<TaskRecord> {
        self.client.enqueue(task, options).await
    }

    /// Runs every task due now until none is due, and says what happened.
    pub async fn run_due(&self) -> Result<DrainReport> {
        self.worker.run_until_idle().await
    }

    /// Moves the clock forward.
    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    /// Runs what is due, then moves the clock to the next pending task's run time and runs
    /// again, until no task is pending or `max_rounds` rounds have run. Returns the totals.
    pub async fn run_until_settled(&self, max_rounds: usize) -> Result<DrainReport> {
        let mut total = DrainReport::default();
        for _ in 0..max_rounds {
            let r = self.run_due().await?;
            total.executed += r.executed;
            total.succeeded += r.succeeded;
            total.retried += r.retried;
            total.failed += r.failed;
            total.lease_lost += r.lease_lost;
            total.interrupted += r.interrupted;
            let next = self
                .store
                .list(
                    &taskrow::TaskFilter::all().states([TaskState::Pending]),
                    &taskrow::Page::first(u64::MAX),
                )
                .await?
                .into_iter()
                .filter_map(|t| t.next_run_at)
                .min();
            match next {
                None => break,
                Some(t) if t > self.now() => self.clock.set(t),
                Some(_) => {}
            }
        }
        Ok(total)
    }

    /// A task by code (or id).
    pub async fn task(&self, target: impl Into<TaskRef>) -> Result<TaskRecord> {
        TaskStore::get(&self.store, &target.into()).await
    }

    /// The log rows of a code, oldest first.
    pub async fn logs(&self, code: &str) -> Result<Vec<TaskLog>> {
        TaskStore::logs(&self.store, &LogFilter::code(code)).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use taskrow::serde::{Deserialize, Serialize};
    use taskrow::typetag;
    use taskrow::{
        EnqueueOptions, Outcome, RetryPolicy, Task, TaskContext, TaskError, TaskState, async_trait,
    };

    use super::{TestHarness, harness_epoch};

    #[derive(Serialize, Deserialize)]
    #[serde(crate = "taskrow::serde")]
    struct FailsUntilAttempt(u32);

    #[typetag::serde(name = "harness.fails_until_attempt")]
    #[async_trait]
    impl Task for FailsUntilAttempt {
        async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
            if ctx.attempt() < self.0 {
                return Err(TaskError::msg("not yet"));
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn run_until_settled_jumps_the_clock_to_each_retry() {
        let h = TestHarness::new();
        let backoff = RetryPolicy::exponential(Duration::from_secs(10), Duration::from_secs(60))
            .with_jitter(0.0);
        h.enqueue(
            &FailsUntilAttempt(4),
            EnqueueOptions::new().code("t").retry(backoff),
        )
        .await
        .unwrap();
        h.enqueue(
            &FailsUntilAttempt(99),
            EnqueueOptions::new().code("gives-up").max_attempts(2),
        )
        .await
        .unwrap();

        let r = h.run_until_settled(10).await.unwrap();
        assert_eq!((r.executed, r.succeeded, r.failed), (6, 1, 1));
        // Retries after 10 s, 20 s and 40 s of backoff; `gives-up` retried once after 60 s.
        let starts: Vec<_> = h
            .logs("t")
            .await
            .unwrap()
            .iter()
            .map(|l| (l.started_at - harness_epoch()).num_seconds())
            .collect();
        assert_eq!(starts, [0, 10, 30, 70]);
        assert_eq!(h.logs("t").await.unwrap()[3].outcome, Outcome::Succeeded);
        assert_eq!(h.task("gives-up").await.unwrap().state, TaskState::Failed);
    }
}
