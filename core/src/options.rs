//! Enqueue options: how one task is stored and retried.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::{add, truncate_micros};
use crate::error::{Error, Result};
use crate::record::{
    DEFAULT_QUEUE, Dispatch, MAX_BIZ_TYPE_CHARS, MAX_CODE_CHARS, MAX_QUEUE_CHARS, NewTask,
    OnSuccess, Priority,
};
use crate::retry::RetryPolicy;
use crate::task::{Task, TaskDefaults, to_row};

/// Default most runs, the first included: seed 003's `max_retry_count = 3` plus the first run.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;

/// How to store one task. Unset fields take the task type's [`TaskDefaults`], then the
/// library defaults: a generated code, run now, 4 attempts, a fixed 60 s retry interval, the
/// worker's timeout, delete on success.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct EnqueueOptions {
    /// Unique code (generated when `None`).
    pub code: Option<String>,
    /// Human-readable name (the type name when `None`).
    pub name: Option<String>,
    /// Longer description.
    pub description: Option<String>,
    /// Business type (empty when `None`).
    pub biz_type: Option<String>,
    /// The queue ([`DEFAULT_QUEUE`] when `None` and the type sets none).
    pub queue: Option<String>,
    /// The priority ([`Priority::Normal`] when `None` and the type sets none).
    pub priority: Option<Priority>,
    /// When the task may first run.
    pub start: Option<Start>,
    /// Most runs: `Some(Some(n))`, or `Some(None)` for unlimited.
    pub max_attempts: Option<Option<u32>>,
    /// Retry policy.
    pub retry: Option<RetryPolicy>,
    /// Longest one run may take.
    pub timeout: Option<Duration>,
    /// What success does with the row.
    pub on_success: Option<OnSuccess>,
    /// How the task is meant to run (set by the dispatch API).
    pub dispatch: Option<Dispatch>,
}

/// When a task may first run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// After a delay from enqueue.
    After(Duration),
    /// At an absolute time.
    At(DateTime<Utc>),
}

impl EnqueueOptions {
    /// All defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// This unique code (seed 003's `job_code`).
    pub fn code(mut self, c: impl Into<String>) -> Self {
        self.code = Some(c.into());
        self
    }
    /// This name.
    pub fn name(mut self, n: impl Into<String>) -> Self {
        self.name = Some(n.into());
        self
    }
    /// This description.
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = Some(d.into());
        self
    }
    /// This biz type.
    pub fn biz_type(mut self, b: impl Into<String>) -> Self {
        self.biz_type = Some(b.into());
        self
    }
    /// Put it in this queue (default [`DEFAULT_QUEUE`]): workers run the queues they are given
    /// ([`crate::WorkerBuilder::queue`]), each with its own slots, and a queue can be paused.
    /// A name is 1 to [`MAX_QUEUE_CHARS`] characters, without spaces or control characters.
    pub fn queue(mut self, q: impl Into<String>) -> Self {
        self.queue = Some(q.into());
        self
    }
    /// This priority (default [`Priority::Normal`]): among due tasks a claim takes higher
    /// levels first, then the oldest due.
    pub fn priority(mut self, p: Priority) -> Self {
        self.priority = Some(p);
        self
    }
    /// First run no earlier than `d` after enqueue.
    pub fn delay(mut self, d: Duration) -> Self {
        self.start = Some(Start::After(d));
        self
    }
    /// First run no earlier than `t`.
    pub fn run_at(mut self, t: DateTime<Utc>) -> Self {
        self.start = Some(Start::At(t));
        self
    }
    /// At most `n` runs, the first included (`n ≥ 1`).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(Some(n));
        self
    }
    /// Run until success (seed 000's consistency tasks).
    pub fn unlimited_attempts(mut self) -> Self {
        self.max_attempts = Some(None);
        self
    }
    /// This retry policy.
    pub fn retry(mut self, p: RetryPolicy) -> Self {
        self.retry = Some(p);
        self
    }
    /// This timeout per run.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
    /// Keep the row as succeeded (seed 000) instead of deleting it (seed 003).
    pub fn keep_on_success(mut self) -> Self {
        self.on_success = Some(OnSuccess::Keep);
        self
    }
    /// What success does.
    pub fn on_success(mut self, o: OnSuccess) -> Self {
        self.on_success = Some(o);
        self
    }
    /// How the task is meant to run.
    pub fn dispatch(mut self, d: Dispatch) -> Self {
        self.dispatch = Some(d);
        self
    }

    /// Builds the row for `task` at time `now`: options first, then the type's defaults, then
    /// the library's. Checks lengths and values so every store rejects the same input.
    pub fn build(&self, task: &dyn Task, now: DateTime<Utc>) -> Result<NewTask> {
        let (task_type, payload) = to_row(task)?;
        let d: TaskDefaults = task.defaults();
        let now = truncate_micros(now);
        let run_at = match self.start {
            None => now,
            Some(Start::After(delay)) => add(now, delay),
            Some(Start::At(t)) => truncate_micros(t),
        };
        let code = match &self.code {
            Some(c) => c.clone(),
            None => format!("{task_type}-{}", uuid::Uuid::now_v7().simple()),
        };
        let new = NewTask {
            code,
            name: self
                .name
                .clone()
                .or(d.name)
                .unwrap_or_else(|| task_type.clone()),
            task_type,
            payload,
            description: self.description.clone(),
            biz_type: self.biz_type.clone().or(d.biz_type).unwrap_or_default(),
            queue: self
                .queue
                .clone()
                .or(d.queue)
                .unwrap_or_else(|| DEFAULT_QUEUE.to_owned()),
            priority: self.priority.or(d.priority).unwrap_or_default(),
            run_at,
            max_attempts: self
                .max_attempts
                .or(d.max_attempts)
                .unwrap_or(Some(DEFAULT_MAX_ATTEMPTS)),
            retry: self.retry.or(d.retry).unwrap_or_default(),
            timeout: self.timeout.or(d.timeout),
            on_success: self.on_success.or(d.on_success).unwrap_or_default(),
            dispatch: self.dispatch.unwrap_or_default(),
            created_at: now,
        };
        validate(&new)?;
        Ok(new)
    }
}

/// Checks a worker id, as every store does before a claim ([`crate::TaskStore::claim`],
/// [`crate::TaskStore::claim_one`]) and the builders do before a client or worker exists: not
/// empty, at most [`MAX_CODE_CHARS`] characters (the lease owner and log columns).
pub fn validate_worker_id(id: &str) -> Result<()> {
    let n = id.chars().count();
    if n == 0 {
        return Err(Error::InvalidInput(
            "the worker id must not be empty: leave it unset for the default (host, pid and a random part)".into(),
        ));
    }
    if n > MAX_CODE_CHARS {
        return Err(Error::InvalidInput(format!(
            "the worker id is {n} characters long; at most {MAX_CODE_CHARS} fit in the lease owner column: choose a shorter id"
        )));
    }
    Ok(())
}

/// Checks a queue name, as every store does on insert and on pause or resume, and the worker
/// builder does for [`crate::WorkerBuilder::queue`]: 1 to [`MAX_QUEUE_CHARS`] characters, none
/// of them whitespace or a control character (names are typed on command lines and compared
/// exactly).
pub fn validate_queue(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidInput(format!(
            "the queue name must not be empty: leave it unset for the `{DEFAULT_QUEUE}` queue"
        )));
    }
    let n = name.chars().count();
    if n > MAX_QUEUE_CHARS {
        return Err(Error::InvalidInput(format!(
            "the queue name `{name}` is {n} characters long; at most {MAX_QUEUE_CHARS} fit: choose a shorter name"
        )));
    }
    if let Some(c) = name.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::InvalidInput(format!(
            "the queue name {name:?} contains {c:?}: use letters, digits and punctuation such as `-`, `_` or `.`, without spaces"
        )));
    }
    Ok(())
}

/// Checks a lease and heartbeat pair, as [`crate::ClientBuilder::build`] and
/// [`crate::WorkerBuilder::build`] do: the lease longer than zero, and a heartbeat (if any)
/// longer than zero and at most half the lease, so that a lease survives one failed beat.
pub fn validate_lease(lease: Duration, heartbeat: Option<Duration>) -> Result<()> {
    if lease.is_zero() {
        return Err(Error::Config("the lease must be longer than zero".into()));
    }
    if let Some(h) = heartbeat {
        if h.is_zero() {
            return Err(Error::Config(
                "the heartbeat must be longer than zero (or None to disable it)".into(),
            ));
        }
        if h > lease / 2 {
            return Err(Error::Config(format!(
                "the heartbeat ({h:?}) must be at most half the lease ({lease:?}), so that a lease \
                 outlives a failed beat; a third of the lease is a good choice"
            )));
        }
    }
    Ok(())
}

/// Checks a row before insert: the limits every store shares.
pub fn validate(t: &NewTask) -> Result<()> {
    let check = |what: &str, v: &str, max: usize, empty_ok: bool| -> Result<()> {
        if !empty_ok && v.is_empty() {
            return Err(Error::InvalidInput(format!("{what} must not be empty")));
        }
        let n = v.chars().count();
        if n > max {
            return Err(Error::InvalidInput(format!(
                "{what} is {n} characters long; at most {max} fit"
            )));
        }
        Ok(())
    };
    check("the code", &t.code, MAX_CODE_CHARS, false)?;
    check("the task type name", &t.task_type, MAX_CODE_CHARS, false)?;
    check("the name", &t.name, MAX_CODE_CHARS, true)?;
    check("the biz type", &t.biz_type, MAX_BIZ_TYPE_CHARS, true)?;
    validate_queue(&t.queue)?;
    if t.max_attempts == Some(0) {
        return Err(Error::InvalidInput(
            "max attempts must be at least 1 (it counts the first run); use unlimited_attempts() for no limit".into(),
        ));
    }
    if t.max_attempts.is_some_and(|m| m > i32::MAX as u32) {
        return Err(Error::InvalidInput("max attempts is too large".into()));
    }
    if t.timeout.is_some_and(|d| d.is_zero()) {
        return Err(Error::InvalidInput(
            "a timeout must be longer than zero".into(),
        ));
    }
    Ok(())
}
