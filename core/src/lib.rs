#![doc = include_str!("../README.md")]

pub mod client;
pub mod clock;
pub mod context;
pub mod error;
pub mod options;
pub mod policy;
pub mod record;
pub mod retry;
mod runner;
pub mod store;
pub mod task;
pub mod worker;

pub use async_trait::async_trait;
pub use client::{Client, ClientBuilder};
pub use clock::{Clock, ManualClock, SystemClock};
pub use context::{Data, MissingData, Shutdown, TaskContext};
pub use error::{BoxError, Error, Result, TaskError, TaskErrorKind};
pub use options::{DEFAULT_MAX_ATTEMPTS, EnqueueOptions, Start};
pub use policy::failure_result;
pub use record::{Dispatch, Lease, NewTask, OnSuccess, Outcome, TaskLog, TaskRecord, TaskState};
pub use retry::{Jitter, RetryPolicy};
pub use runner::RunReport;
pub use store::{
    ClaimOne, ClaimRequest, Finish, FinishResult, FinishStatus, LogFilter, Page, Purge,
    PurgeReport, ResetTarget, StateCount, TaskFilter, TaskRef, TaskStore,
};
pub use task::{LoadError, Task, TaskDefaults};
pub use worker::{DrainReport, ShutdownReport, Worker, WorkerBuilder, WorkerHandle};

// Re-exported so users need no direct dependency lines for them.
pub use chrono;
pub use serde;
pub use serde_json;
pub use typetag;
