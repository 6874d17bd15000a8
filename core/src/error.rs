//! Errors: [`Error`] from taskrow and its stores, [`TaskError`] from task handlers.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::TaskRef;

/// A boxed error with its source chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with taskrow's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in taskrow or a store. Every store maps the same situation to the same
/// variant; the conformance suite checks it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No task has this id or code.
    #[error("task {0} not found: check the id or code (`taskrow list` shows what exists)")]
    NotFound(TaskRef),

    /// No schedule has this name.
    #[error("schedule `{0}` not found: `taskrow schedules` lists them")]
    ScheduleNotFound(String),

    /// A task with this code exists already.
    #[error(
        "a task with code `{0}` already exists: codes are unique; use another code, or enqueue_if_absent to get the existing task"
    )]
    DuplicateCode(String),

    /// The write named a lease that another claim or update has replaced.
    #[error(
        "lease lost on task {id}: another worker claimed it or it was changed after this run began; the result was not applied"
    )]
    LeaseLost {
        /// Row id.
        id: i64,
    },

    /// The task runs under a live lease elsewhere.
    #[error(
        "task `{code}` is running under a live lease held by `{owner}` until {until}: wait for it, or retry after the lease expires"
    )]
    Running {
        /// The task's code.
        code: String,
        /// The lease holder.
        owner: String,
        /// Lease expiry.
        until: DateTime<Utc>,
    },

    /// The task was cancelled; it must be reset before it can run.
    #[error("task `{0}` is cancelled: reset it first to run it again")]
    Cancelled(String),

    /// The task succeeded already (and was kept).
    #[error("task `{0}` has already succeeded: enqueue a new task to run it again")]
    Succeeded(String),

    /// The operation does not apply to a task in this state.
    #[error("task `{code}` is {state}: {what}")]
    WrongState {
        /// The task's code.
        code: String,
        /// Its state.
        state: crate::TaskState,
        /// What cannot be done, and what to do instead.
        what: String,
    },

    /// Input that cannot be stored: a code too long, an empty type name, and so on.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// The database's schema is not the one this version of taskrow knows: older (a migration
    /// has not run) or newer (a later taskrow migrated it).
    #[error("schema mismatch: {0}")]
    Schema(String),

    /// A setting that cannot work (concurrency 0, a lease shorter than the heartbeat …).
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The task could not be turned into JSON.
    #[error("cannot serialize task `{task_type}`: {source}")]
    Serialize {
        /// The task's type name.
        task_type: String,
        /// What serde said.
        source: serde_json::Error,
    },

    /// A stored row holds a value this version cannot read (an out-of-range state, say).
    #[error("task row {id} cannot be read: {reason}; fix or delete the row")]
    CorruptRow {
        /// Row id.
        id: i64,
        /// What is wrong with it.
        reason: String,
    },

    /// The database URL is malformed or names an unsupported scheme.
    #[error("bad database URL `{url}`: {reason}")]
    BadUrl {
        /// The URL, without its password.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The server refused the login: a wrong user or password, or a user that may not use
    /// this database from this host.
    #[error(
        "the database at `{url}` refused the login: {source}; check the user and password in the URL, and that this user may use the database from this host"
    )]
    AccessDenied {
        /// The URL, without its password.
        url: String,
        /// The driver's error.
        source: BoxError,
    },

    /// The server runs, but the database the URL names does not exist (or a SQLite file is
    /// missing).
    #[error("no database at `{url}`: {source}; {hint}")]
    NoSuchDatabase {
        /// The URL, without its password.
        url: String,
        /// What to do.
        hint: String,
        /// The driver's error.
        source: BoxError,
    },

    /// The database server cannot be reached.
    #[error(
        "cannot connect to the database at `{url}`: {source}; check that the server runs and that the URL's host and port are right"
    )]
    Unreachable {
        /// The URL, without its password.
        url: String,
        /// The driver's error.
        source: BoxError,
    },

    /// The taskrow tables are missing.
    #[error(
        "the taskrow tables are missing from this database: run the migrations first (`taskrow migrate up`, or `connect_and_migrate`)"
    )]
    NotMigrated,

    /// The database failed; `transient` says whether trying again may work (SQLite busy, MySQL
    /// deadlock or lock-wait timeout, a dropped connection).
    #[error("database error ({}): {source}", if *.transient { "transient, retry later" } else { "permanent" })]
    Backend {
        /// Whether trying again may work.
        transient: bool,
        /// The driver's error.
        source: BoxError,
    },

    /// The clock cannot be trusted to judge due times and leases right now (a clock that
    /// follows the database could not measure it lately).
    #[error("the clock cannot be trusted: {0}")]
    Clock(String),

    /// [`crate::Client::wait`] gave up: the task had not ended within the time it was given.
    /// The task is left as it is.
    #[error(
        "task {task} has not ended within {timeout:?}: it is {state}; wait longer, or look at it with `taskrow show` and its log"
    )]
    WaitTimeout {
        /// The task waited for.
        task: TaskRef,
        /// How long was waited.
        timeout: Duration,
        /// The state it was last seen in.
        state: String,
    },

    /// The worker was shut down.
    #[error("the worker is shut down")]
    Shutdown,
}

impl Error {
    /// Whether trying the same call again may work.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Backend { transient, .. } => *transient,
            Error::Unreachable { .. } => true,
            _ => false,
        }
    }

    /// A backend error with its source.
    pub fn backend(transient: bool, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            transient,
            source: source.into(),
        }
    }
}

/// What a task handler returns when it fails.
///
/// Any `std::error::Error` converts with `?` into a retryable error. [`TaskError::permanent`]
/// fails the task for good; [`TaskError::retry_at`] asks for a specific next run time.
///
/// `TaskError` deliberately does not implement `std::error::Error` itself, so that the blanket
/// conversion from every error type can exist (as with `anyhow::Error`).
pub struct TaskError {
    kind: TaskErrorKind,
    error: BoxError,
}

/// How a failed attempt continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskErrorKind {
    /// Try again per the retry policy, while attempts remain.
    Retry,
    /// Do not try again: the task fails now.
    Permanent,
    /// Try again at this time (while attempts remain), whatever the policy says.
    RetryAt(DateTime<Utc>),
    /// Try again after this delay (while attempts remain), whatever the policy says.
    RetryAfter(Duration),
}

#[derive(Debug)]
struct Message(String);
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Message {}

impl TaskError {
    /// A retryable error with a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self::retry(Message(message.to_string()))
    }

    /// A retryable error.
    pub fn retry(error: impl Into<BoxError>) -> Self {
        Self {
            kind: TaskErrorKind::Retry,
            error: error.into(),
        }
    }

    /// An error that fails the task for good: no more attempts.
    pub fn permanent(error: impl Into<BoxError>) -> Self {
        Self {
            kind: TaskErrorKind::Permanent,
            error: error.into(),
        }
    }

    /// Retry at `at` instead of the policy's time (attempts still count).
    pub fn retry_at(error: impl Into<BoxError>, at: DateTime<Utc>) -> Self {
        Self {
            kind: TaskErrorKind::RetryAt(at),
            error: error.into(),
        }
    }

    /// Retry after `delay` instead of the policy's delay (attempts still count).
    pub fn retry_after(error: impl Into<BoxError>, delay: Duration) -> Self {
        Self {
            kind: TaskErrorKind::RetryAfter(delay),
            error: error.into(),
        }
    }

    /// Makes this error permanent.
    pub fn into_permanent(mut self) -> Self {
        self.kind = TaskErrorKind::Permanent;
        self
    }

    /// How the attempt continues.
    pub fn kind(&self) -> TaskErrorKind {
        self.kind
    }

    /// The underlying error.
    pub fn error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.error
    }

    /// The error and its sources, joined by `: `.
    pub fn full_message(&self) -> String {
        let mut s = self.error.to_string();
        let mut src = self.error.source();
        while let Some(e) = src {
            let part = e.to_string();
            if !s.ends_with(&part) {
                s.push_str(": ");
                s.push_str(&part);
            }
            src = e.source();
        }
        s
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskError")
            .field("kind", &self.kind)
            .field("error", &self.error)
            .finish()
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full_message())
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for TaskError {
    fn from(e: E) -> Self {
        Self::retry(e)
    }
}
