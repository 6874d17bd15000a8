//! taskrow keeps tasks as rows in your own database and runs them until they succeed.
//!
//! - A task is a serde struct implementing [`Task`]; it is stored as JSON beside its typetag
//!   name and restored as a `Box<dyn Task>`.
//! - A [`Client`] enqueues tasks into a [`TaskStore`] (memory, SQLite or MySQL) and builds
//!   [`Worker`]s that claim due tasks under a lease, run them, retry failures per their
//!   [`RetryPolicy`], and log every run.
//! - A [`Schedule`] (cron expression or fixed interval) registered on workers enqueues a task at
//!   every tick, once among all the instances that register it ([`schedule`]).
//! - Started workers keep a row each in the worker registry ([`registry`]), read with
//!   [`Client::workers`] and judged by [`Client::health`].
//! - Semantics: at least once; never twice at once while a lease holds; nothing lost. See the
//!   [`TaskStore`] contract.
//!
//! Dependency lines a user needs: `taskrow`, one store crate (`taskrow-sqlite`,
//! `taskrow-mysql`, or `taskrow-memory` for tests), `tokio`. `serde`, `typetag`,
//! `async-trait` and `chrono` are re-exported: derive with
//! `#[derive(taskrow::serde::Serialize, taskrow::serde::Deserialize)]` plus
//! `#[serde(crate = "taskrow::serde")]`; bring typetag into scope with `use taskrow::typetag;`
//! (its macro expands to `typetag::…` paths) and mark impls with
//! `#[typetag::serde(name = "…")]` and `#[taskrow::async_trait]`.

pub mod bulk;
pub mod client;
pub mod clock;
pub mod context;
pub mod error;
pub mod metrics;
pub mod options;
pub mod policy;
pub mod record;
pub mod registry;
pub mod retention;
pub mod retry;
mod runner;
pub mod schedule;
pub mod store;
pub mod task;
mod wait;
pub mod worker;

pub use async_trait::async_trait;
pub use bulk::{BulkAction, BulkReport, Skipped};
pub use client::{Client, ClientBuilder};
pub use clock::{Clock, DatabaseClock, DatabaseClockConfig, ManualClock, SystemClock};
pub use context::{Data, MissingData, Shutdown, TaskContext};
pub use error::{BoxError, Error, Result, TaskError, TaskErrorKind};
pub use options::{DEFAULT_MAX_ATTEMPTS, EnqueueOptions, Start};
pub use policy::failure_result;
pub use record::{
    CancelAction, DEFAULT_QUEUE, Dispatch, Lease, NewTask, OnSuccess, Outcome, Priority, TaskLog,
    TaskRecord, TaskState,
};
pub use registry::{HealthCheck, HealthReport, WorkerBeat, WorkerRecord};
pub use retention::Retention;
pub use retry::{Jitter, RetryPolicy};
pub use runner::RunReport;
pub use schedule::{
    AdvanceStatus, MissedTicks, NewSchedule, Schedule, ScheduleAdvance, ScheduleRecord,
};
pub use store::{
    ClaimOne, ClaimRequest, ExtendStatus, Finish, FinishResult, FinishStatus, ListedRow, LogFilter,
    Page, Purge, PurgeReport, QueueInfo, ResetTarget, StateCount, TaskFilter, TaskRef, TaskStore,
    UnreadableRow,
};
pub use task::{LoadError, Task, TaskDefaults};
pub use wait::TaskEnd;
pub use worker::{DrainReport, ShutdownReport, Worker, WorkerBuilder, WorkerHandle, WorkerHealth};

// Re-exported so users need no direct dependency lines for them.
pub use chrono;
pub use chrono_tz;
pub use serde;
pub use serde_json;
pub use typetag;
