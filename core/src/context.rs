//! What a running task sees: its identity, the attempt, shutdown, and shared data.

use std::any::{Any, TypeId, type_name};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::record::Lease;
use crate::store::{Finish, FinishResult};

/// Typed values shared with task handlers — the Rust counterpart of the seeds' Spring bean
/// lookup. Register each service once on the [`crate::Client`]; handlers fetch it by type.
#[derive(Clone, Default)]
pub struct Data {
    map: HashMap<TypeId, (Arc<dyn Any + Send + Sync>, &'static str)>,
}

impl Data {
    /// No data.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value`, replacing a value of the same type.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.insert_arc(Arc::new(value));
    }

    /// Adds a value already in an `Arc`.
    pub fn insert_arc<T: Send + Sync + 'static>(&mut self, value: Arc<T>) {
        self.map.insert(
            TypeId::of::<T>(),
            (value as Arc<dyn Any + Send + Sync>, type_name::<T>()),
        );
    }

    /// The value of type `T`.
    pub fn get<T: Send + Sync + 'static>(&self) -> Result<&T, MissingData> {
        self.map
            .get(&TypeId::of::<T>())
            .and_then(|(v, _)| v.downcast_ref::<T>())
            .ok_or(MissingData(type_name::<T>()))
    }

    /// The value of type `T`, as a shared handle.
    pub fn get_arc<T: Send + Sync + 'static>(&self) -> Result<Arc<T>, MissingData> {
        self.map
            .get(&TypeId::of::<T>())
            .and_then(|(v, _)| v.clone().downcast::<T>().ok())
            .ok_or(MissingData(type_name::<T>()))
    }
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.map.values().map(|(_, n)| n))
            .finish()
    }
}

/// A handler asked for data that was never registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no data of type `{0}` is registered: add it with Client::builder(..).data(value)")]
pub struct MissingData(pub &'static str);

/// Tells a running task to stop: its worker is shutting down, or its lease could not be
/// confirmed and is about to end (the run is aborted shortly after; see the crate's README,
/// *A run never outlives its lease*).
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    pub(crate) fn new(rx: watch::Receiver<bool>) -> Self {
        Self { rx }
    }

    /// A signal that never fires (run-now in the caller).
    pub fn never() -> Self {
        // With the sender dropped, the value stays `false` and `wait` never completes.
        let (_, rx) = watch::channel(false);
        Self { rx }
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        *self.rx.borrow()
    }

    /// Completes when shutdown begins: select on it to wind a long task down.
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                // The sender is gone: shutdown can no longer be signalled.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// What a running task knows about itself and its worker.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub(crate) id: i64,
    pub(crate) code: String,
    pub(crate) task_type: String,
    pub(crate) biz_type: String,
    pub(crate) queue: String,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) worker: String,
    pub(crate) shutdown: Shutdown,
    pub(crate) cancel: Shutdown,
    pub(crate) data: Arc<Data>,
    pub(crate) lease: Lease,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) started: Instant,
    pub(crate) clock: Arc<dyn Clock>,
}

impl TaskContext {
    /// The task's row id.
    pub fn id(&self) -> i64 {
        self.id
    }
    /// The task's unique code: a natural idempotency key.
    pub fn code(&self) -> &str {
        &self.code
    }
    /// The task's type name.
    pub fn task_type(&self) -> &str {
        &self.task_type
    }
    /// The task's biz type.
    pub fn biz_type(&self) -> &str {
        &self.biz_type
    }
    /// The task's queue.
    pub fn queue(&self) -> &str {
        &self.queue
    }
    /// This run's attempt number (1 for the first run).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    /// Most runs (`None`: until success).
    pub fn max_attempts(&self) -> Option<u32> {
        self.max_attempts
    }
    /// Whether this is the last attempt.
    pub fn is_last_attempt(&self) -> bool {
        self.max_attempts.is_some_and(|m| self.attempt >= m)
    }
    /// The id of the worker running the task.
    pub fn worker(&self) -> &str {
        &self.worker
    }
    /// The stop signal: fires when the worker shuts down, or when this run's lease could not
    /// be confirmed and is about to end. Select on it to wind a long task down; a run that
    /// ignores it is aborted at the shutdown deadline or before its lease ends.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }
    /// Whether the run has been told to stop (shutdown, or a lease about to be lost).
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_shutting_down()
    }
    /// Completes when a cancel of this task was requested ([`crate::Client::cancel`] of a
    /// running task, the CLI's `taskrow cancel`, the dashboard) and the worker saw it at a
    /// heartbeat. Select on it to stop early and cleanly: whatever the handler returns after
    /// it, the run ends cancelled, and a handler still running after the worker's cancel grace
    /// ([`crate::WorkerBuilder::cancel_grace`]) is aborted. With heartbeats off it never
    /// fires: the request then takes effect when the run ends (cancelled unless it succeeded).
    pub async fn cancelled(&self) {
        self.cancel.wait().await
    }
    /// Whether a cancel of this task was requested and seen (see [`TaskContext::cancelled`]).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_shutting_down()
    }
    /// Shared data of type `T`, registered on the client. Use `?` in a handler: a missing type
    /// becomes a retryable failure naming it.
    pub fn data<T: Send + Sync + 'static>(&self) -> Result<&T, MissingData> {
        self.data.get::<T>()
    }
    /// The claim this run holds: the task's id and this run's claim token. A write fenced by
    /// it applies only while no other claim has taken the task.
    pub fn lease(&self) -> Lease {
        self.lease
    }
    /// The time now on the worker's clock (the client's: a database-following clock, or a
    /// manual one in tests).
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
    /// This run's success, for a store to apply inside the handler's own transaction (the SQL
    /// stores' `complete_in`): the business write and the task's end then commit together.
    /// Its duration runs until this call. The worker's own finish of the run, after the
    /// handler returns `Ok`, then finds the run already logged as succeeded and writes
    /// nothing more.
    pub fn success(&self) -> Finish {
        let duration_ms = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        Finish {
            lease: self.lease,
            code: self.code.clone(),
            task_type: self.task_type.clone(),
            queue: self.queue.clone(),
            worker: self.worker.clone(),
            attempt: self.attempt,
            started_at: self.started_at,
            duration_ms,
            result: FinishResult::Succeeded,
        }
    }
    /// Shared data of type `T` as an `Arc`, to move into spawned work.
    pub fn data_arc<T: Send + Sync + 'static>(&self) -> Result<Arc<T>, MissingData> {
        self.data.get_arc::<T>()
    }
}
