//! The store contract: what every backend (memory, SQLite, MySQL) does the same way.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::record::{Lease, NewTask, Outcome, Priority, TaskLog, TaskRecord, TaskState};
use crate::registry::{WorkerBeat, WorkerRecord};
use crate::schedule::{AdvanceStatus, NewSchedule, ScheduleAdvance, ScheduleRecord};

/// A task named by row id or by code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TaskRef {
    /// By row id.
    Id(i64),
    /// By unique code.
    Code(String),
}

impl fmt::Display for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskRef::Id(id) => write!(f, "with id {id}"),
            TaskRef::Code(c) => write!(f, "with code `{c}`"),
        }
    }
}

impl From<i64> for TaskRef {
    fn from(id: i64) -> Self {
        TaskRef::Id(id)
    }
}
impl From<&str> for TaskRef {
    fn from(code: &str) -> Self {
        TaskRef::Code(code.to_owned())
    }
}
impl From<String> for TaskRef {
    fn from(code: String) -> Self {
        TaskRef::Code(code)
    }
}
impl From<&TaskRecord> for TaskRef {
    fn from(task: &TaskRecord) -> Self {
        TaskRef::Id(task.id)
    }
}
impl From<&TaskRef> for TaskRef {
    fn from(r: &TaskRef) -> Self {
        r.clone()
    }
}
impl From<&String> for TaskRef {
    fn from(code: &String) -> Self {
        TaskRef::Code(code.clone())
    }
}

/// What a worker asks of [`TaskStore::claim`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClaimRequest {
    /// The claiming worker's id, kept as the lease owner.
    pub worker: String,
    /// Most tasks to claim.
    pub limit: usize,
    /// How long the lease lasts from `now`.
    pub lease: Duration,
    /// The current time (from the worker's clock).
    pub now: DateTime<Utc>,
    /// Only tasks of these biz types (all when empty).
    pub biz_types: Vec<String>,
    /// Only tasks of these type names (all when empty).
    pub task_types: Vec<String>,
    /// Only tasks of these queues (all when empty). Paused queues are left out either way.
    pub queues: Vec<String>,
    /// Never these task ids (a worker's own running tasks, whose leases may have expired).
    pub exclude_ids: Vec<i64>,
}

impl ClaimRequest {
    /// A request for up to `limit` due tasks of any kind.
    pub fn new(
        worker: impl Into<String>,
        limit: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            worker: worker.into(),
            limit,
            lease,
            now,
            biz_types: Vec::new(),
            task_types: Vec::new(),
            queues: Vec::new(),
            exclude_ids: Vec::new(),
        }
    }
    /// Only tasks of these biz types.
    pub fn biz_types(mut self, b: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.biz_types = b.into_iter().map(Into::into).collect();
        self
    }
    /// Only tasks of these type names.
    pub fn task_types(mut self, t: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.task_types = t.into_iter().map(Into::into).collect();
        self
    }
    /// Only tasks of these queues.
    pub fn queues(mut self, q: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.queues = q.into_iter().map(Into::into).collect();
        self
    }
    /// Never these task ids.
    pub fn exclude_ids(mut self, ids: impl IntoIterator<Item = i64>) -> Self {
        self.exclude_ids = ids.into_iter().collect();
        self
    }
}

/// What [`TaskStore::claim_one`] is asked (run-now and immediate dispatch).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClaimOne {
    /// The claiming worker's id.
    pub worker: String,
    /// How long the lease lasts from `now`.
    pub lease: Duration,
    /// The current time.
    pub now: DateTime<Utc>,
    /// Claim only a pending task (immediate dispatch): a failed task is refused with
    /// [`crate::Error::WrongState`].
    pub only_pending: bool,
}

impl ClaimOne {
    /// A run-now claim: pending (due or not) or failed tasks.
    pub fn new(worker: impl Into<String>, lease: Duration, now: DateTime<Utc>) -> Self {
        Self {
            worker: worker.into(),
            lease,
            now,
            only_pending: false,
        }
    }
    /// Claim only a pending task.
    pub fn only_pending(mut self) -> Self {
        self.only_pending = true;
        self
    }
}

/// The result of one execution, handed to [`TaskStore::finish`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Finish {
    /// The lease the run held.
    pub lease: Lease,
    /// The task's code (for the log row, which outlives the task).
    pub code: String,
    /// The task's type name (for the log row).
    pub task_type: String,
    /// The task's queue (for metrics).
    pub queue: String,
    /// The worker that ran it.
    pub worker: String,
    /// Which attempt this was.
    pub attempt: u32,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// How long it ran, in milliseconds.
    pub duration_ms: i64,
    /// What to do with the task.
    pub result: FinishResult,
}

impl Finish {
    /// The finish of a run of `task` (as claimed, or with the lease since extended).
    pub fn new(
        task: &TaskRecord,
        lease: Lease,
        worker: impl Into<String>,
        started_at: DateTime<Utc>,
        duration_ms: i64,
        result: FinishResult,
    ) -> Self {
        Self {
            lease,
            code: task.code.clone(),
            task_type: task.task_type.clone(),
            queue: task.queue.clone(),
            worker: worker.into(),
            attempt: task.attempts,
            started_at,
            duration_ms,
            result,
        }
    }

    /// The outcome logged when the finish is applied.
    pub fn outcome(&self) -> Outcome {
        match self.result {
            FinishResult::Succeeded => Outcome::Succeeded,
            FinishResult::Retry { .. } => Outcome::Retrying,
            FinishResult::Failed { .. } => Outcome::Failed,
            FinishResult::Interrupted { .. } => Outcome::Interrupted,
            FinishResult::Cancelled { .. } => Outcome::Cancelled,
        }
    }

    /// The error text of this run, if it failed.
    pub fn error(&self) -> Option<&str> {
        match &self.result {
            FinishResult::Succeeded => None,
            FinishResult::Retry { error, .. }
            | FinishResult::Failed { error }
            | FinishResult::Interrupted { error, .. }
            | FinishResult::Cancelled { error } => Some(error),
        }
    }

    /// The error logged when the finish is refused as lease lost.
    pub fn lease_lost_error(&self) -> String {
        match &self.result {
            FinishResult::Succeeded => "lease lost: the run succeeded but another claim had taken the task; result not applied".to_owned(),
            FinishResult::Interrupted { error, .. } | FinishResult::Cancelled { error } => crate::record::bound_error(&format!(
                "lease lost: the run was stopped ({error}) and another claim had taken the task meanwhile"
            )),
            FinishResult::Retry { error, .. } | FinishResult::Failed { error } => {
                crate::record::bound_error(&format!(
                    "lease lost: the run failed ({error}) after another claim had taken the task; result not applied"
                ))
            }
        }
    }
}

/// What a finished run does to its task. Exhaustive on purpose: every store must apply every
/// variant, so a new one is a breaking change that each store's `match` points out.
#[derive(Debug, Clone, PartialEq)]
pub enum FinishResult {
    /// Success: delete the row, or keep it as succeeded ([`crate::OnSuccess`]).
    Succeeded,
    /// Failure with attempts left: pending again, due at `at`, `error` kept as last error.
    Retry {
        /// Next run time.
        at: DateTime<Utc>,
        /// The error (bounded).
        error: String,
    },
    /// Failure for good: state failed, `error` kept as last error.
    Failed {
        /// The error (bounded).
        error: String,
    },
    /// The run was stopped from outside (shutdown, a lease that could not be kept): pending
    /// again, due at `at`, `error` kept as last error, the attempt given back (`attempts − 1`)
    /// and `interruptions + 1`. The runner sends it only while
    /// [`crate::record::MAX_INTERRUPTIONS`] allows; later interruptions are failed attempts.
    Interrupted {
        /// Next run time.
        at: DateTime<Utc>,
        /// Why the run was stopped (bounded).
        error: String,
    },
    /// The run was stopped because a cancel was requested ([`TaskStore::cancel`] of a running
    /// task, seen by the worker at a heartbeat): state cancelled, `error` kept as last error.
    Cancelled {
        /// How the run ended (bounded).
        error: String,
    },
}

impl FinishResult {
    /// The result as a store keeps it: the error bounded to
    /// [`crate::record::MAX_ERROR_CHARS`], the retry time in whole microseconds. Stores apply
    /// this, not the raw value, so they all keep the same text and time.
    pub fn normalized(&self) -> Self {
        match self {
            Self::Succeeded => Self::Succeeded,
            Self::Retry { at, error } => Self::Retry {
                at: crate::clock::truncate_micros(*at),
                error: crate::record::bound_error(error),
            },
            Self::Failed { error } => Self::Failed {
                error: crate::record::bound_error(error),
            },
            Self::Interrupted { at, error } => Self::Interrupted {
                at: crate::clock::truncate_micros(*at),
                error: crate::record::bound_error(error),
            },
            Self::Cancelled { error } => Self::Cancelled {
                error: crate::record::bound_error(error),
            },
        }
    }

    /// What a store applies when the task this result is for has a cancel requested
    /// ([`TaskRecord::cancel_requested_at`]): a success stands (the work was done before the
    /// worker saw the request), any other end becomes [`FinishResult::Cancelled`] with the
    /// run's own error, so a cancelled task is never rescheduled. `None`: no change.
    pub fn when_cancel_requested(&self) -> Option<Self> {
        match self {
            Self::Succeeded | Self::Cancelled { .. } => None,
            Self::Retry { error, .. }
            | Self::Failed { error }
            | Self::Interrupted { error, .. } => Some(Self::Cancelled {
                error: crate::record::bound_error(&format!(
                    "cancelled on request; the run had ended without success: {error}"
                )),
            }),
        }
    }
}

/// Whether a guarded write took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishStatus {
    /// The write was applied (now, or by an earlier try of the same finish whose reply was
    /// lost).
    Applied,
    /// Another claim had taken the task: the task was not changed.
    LeaseLost,
}

/// What a lease extension ([`TaskStore::extend_lease`], a heartbeat) found besides the lease
/// it extended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExtendStatus {
    /// The lease was extended; nothing else to do.
    Extended,
    /// The lease was extended, and a cancel was requested for the task
    /// ([`TaskStore::cancel`] of a running task): the worker signals the handler and stops the
    /// run after its grace period, finishing it [`FinishResult::Cancelled`].
    CancelRequested,
}

/// Which tasks [`TaskStore::list`] and [`TaskStore::reset`] look at. Empty lists match all.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct TaskFilter {
    /// Only these states.
    pub states: Vec<TaskState>,
    /// Only these biz types.
    pub biz_types: Vec<String>,
    /// Only these type names.
    pub task_types: Vec<String>,
    /// Only these queues.
    pub queues: Vec<String>,
    /// Only codes starting with this.
    pub code_prefix: Option<String>,
    /// Only tasks a claim at this time could take: pending tasks due by then and running tasks
    /// whose lease expires by then.
    pub due_before: Option<DateTime<Utc>>,
}

impl TaskFilter {
    /// Matches every task.
    pub fn all() -> Self {
        Self::default()
    }
    /// Only these states.
    pub fn states(mut self, s: impl IntoIterator<Item = TaskState>) -> Self {
        self.states = s.into_iter().collect();
        self
    }
    /// Only these biz types.
    pub fn biz_types(mut self, b: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.biz_types = b.into_iter().map(Into::into).collect();
        self
    }
    /// Only these type names.
    pub fn task_types(mut self, t: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.task_types = t.into_iter().map(Into::into).collect();
        self
    }
    /// Only these queues.
    pub fn queues(mut self, q: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.queues = q.into_iter().map(Into::into).collect();
        self
    }
    /// Only codes starting with `p`.
    pub fn code_prefix(mut self, p: impl Into<String>) -> Self {
        self.code_prefix = Some(p.into());
        self
    }
    /// Only tasks claimable at `t`.
    pub fn due_before(mut self, t: DateTime<Utc>) -> Self {
        self.due_before = Some(t);
        self
    }

    /// Whether `r` matches (the reference semantics; SQL stores express the same in SQL).
    pub fn matches(&self, r: &TaskRecord) -> bool {
        (self.states.is_empty() || self.states.contains(&r.state))
            && (self.biz_types.is_empty() || self.biz_types.contains(&r.biz_type))
            && (self.task_types.is_empty() || self.task_types.contains(&r.task_type))
            && (self.queues.is_empty() || self.queues.contains(&r.queue))
            && self
                .code_prefix
                .as_ref()
                .is_none_or(|p| r.code.starts_with(p.as_str()))
            && self
                .due_before
                .is_none_or(|t| r.next_run_at.or(r.lease_expires_at).is_some_and(|d| d <= t))
    }
}

/// A page of [`TaskStore::list`]: rows in id order after `after_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Page {
    /// Start after this id (from the start when `None`).
    pub after_id: Option<i64>,
    /// Most rows.
    pub limit: u64,
}

impl Page {
    /// The first `limit` rows.
    pub fn first(limit: u64) -> Self {
        Self {
            after_id: None,
            limit,
        }
    }
    /// `limit` rows after `id`.
    pub fn after(id: i64, limit: u64) -> Self {
        Self {
            after_id: Some(id),
            limit,
        }
    }
}

impl Default for Page {
    fn default() -> Self {
        Self::first(100)
    }
}

/// Which log rows [`TaskStore::logs`] returns, in id (time) order. Empty lists match all.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct LogFilter {
    /// Only rows of this task id.
    pub task_id: Option<i64>,
    /// Only rows of this code.
    pub code: Option<String>,
    /// Only these outcomes.
    pub outcomes: Vec<Outcome>,
    /// Only runs started at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Most rows (all when `None`): the oldest matching ones, or the newest with `newest`.
    pub limit: Option<u64>,
    /// With `limit`, keep the newest matching rows instead of the oldest (still returned oldest
    /// first): the tail of the log.
    pub newest: bool,
}

impl LogFilter {
    /// The log of one task, by id.
    pub fn task(id: i64) -> Self {
        Self {
            task_id: Some(id),
            ..Self::default()
        }
    }
    /// The log of one code (kept after a task is deleted).
    pub fn code(code: impl Into<String>) -> Self {
        Self {
            code: Some(code.into()),
            ..Self::default()
        }
    }
    /// Only these outcomes.
    pub fn outcomes(mut self, o: impl IntoIterator<Item = Outcome>) -> Self {
        self.outcomes = o.into_iter().collect();
        self
    }
    /// Only runs started at or after `t`.
    pub fn since(mut self, t: DateTime<Utc>) -> Self {
        self.since = Some(t);
        self
    }
    /// Most rows.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }
    /// With a limit, the newest rows (the tail of the log), still oldest first.
    pub fn newest(mut self) -> Self {
        self.newest = true;
        self
    }

    /// Whether `l` matches (the reference semantics).
    pub fn matches(&self, l: &TaskLog) -> bool {
        self.task_id.is_none_or(|id| l.task_id == id)
            && self.code.as_ref().is_none_or(|c| &l.code == c)
            && (self.outcomes.is_empty() || self.outcomes.contains(&l.outcome))
            && self.since.is_none_or(|t| l.started_at >= t)
    }
}

/// Tasks of one type, queue and priority in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCount {
    /// Type name.
    pub task_type: String,
    /// Queue.
    pub queue: String,
    /// Priority.
    pub priority: Priority,
    /// State.
    pub state: TaskState,
    /// How many.
    pub count: u64,
}

/// A queue as [`TaskStore::queues`] reports it: every queue that holds a task or was ever
/// paused or resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueInfo {
    /// The queue's name.
    pub name: String,
    /// Whether it is paused: claims leave its tasks alone.
    pub paused: bool,
    /// When it was last paused or resumed (`None` if never).
    pub changed_at: Option<DateTime<Utc>>,
    /// Its tasks per state (only non-zero counts, in state order).
    pub counts: Vec<(TaskState, u64)>,
}

impl QueueInfo {
    /// A queue's entry: `name`, paused or not, changed at `changed_at`, with these counts.
    pub fn new(
        name: impl Into<String>,
        paused: bool,
        changed_at: Option<DateTime<Utc>>,
        counts: Vec<(TaskState, u64)>,
    ) -> Self {
        Self {
            name: name.into(),
            paused,
            changed_at,
            counts,
        }
    }

    /// How many of its tasks are in `state`.
    pub fn count(&self, state: TaskState) -> u64 {
        self.counts
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    }
}

/// Which tasks [`TaskStore::reset`] runs again.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ResetTarget {
    /// One task: pending, failed, cancelled, or running under an expired lease.
    One(TaskRef),
    /// Every failed or cancelled task matching the filter (its `states`, if given, narrow that
    /// further).
    Matching(TaskFilter),
}

/// What [`TaskStore::purge`] removes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Purge {
    /// Remove rows last changed (tasks) or started (logs) before this time.
    pub before: DateTime<Utc>,
    /// Which task states to purge: finished ones only (succeeded, failed, cancelled).
    pub states: Vec<TaskState>,
    /// Also purge log rows started before `before`.
    pub logs: bool,
    /// At most this many task rows and this many log rows, the oldest ids first (`None`: all).
    /// Bounded batches keep each purge's transaction and locks short.
    pub limit: Option<u64>,
    /// Remove nothing: answer how many rows the purge would remove now.
    pub dry_run: bool,
}

impl Purge {
    /// Succeeded and cancelled tasks, and log rows, older than `before`. Failed tasks stay until
    /// someone decides (add them with [`Purge::states`]).
    pub fn before(before: DateTime<Utc>) -> Self {
        Self {
            before,
            states: vec![TaskState::Succeeded, TaskState::Cancelled],
            logs: true,
            limit: None,
            dry_run: false,
        }
    }
    /// Remove nothing, only count what would go (an operator's `purge --dry-run`).
    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }
    /// At most `n` task rows and `n` log rows, the oldest ids first.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }
    /// Purge these finished states.
    pub fn states(mut self, s: impl IntoIterator<Item = TaskState>) -> Self {
        self.states = s.into_iter().collect();
        self
    }
    /// Whether to purge log rows too.
    pub fn logs(mut self, yes: bool) -> Self {
        self.logs = yes;
        self
    }
}

/// How many rows [`TaskStore::purge`] removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PurgeReport {
    /// Task rows.
    pub tasks: u64,
    /// Log rows.
    pub logs: u64,
}

/// A task row the store holds but cannot read: a value this version does not know (state 9,
/// a priority out of range, a retry policy that is not one), written by hand or by another
/// version. Reads that meet one answer [`crate::Error::CorruptRow`]; [`TaskStore::list_rows`]
/// shows it in its place and [`TaskStore::delete_unreadable`] removes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnreadableRow {
    /// Row id.
    pub id: i64,
    /// The row's code, as stored.
    pub code: String,
    /// The row's type name, as stored.
    pub task_type: String,
    /// Why it cannot be read (the [`crate::Error::CorruptRow`] reason).
    pub reason: String,
}

impl UnreadableRow {
    /// A row `id` with this code and type that cannot be read because of `reason`.
    pub fn new(
        id: i64,
        code: impl Into<String>,
        task_type: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            id,
            code: code.into(),
            task_type: task_type.into(),
            reason: reason.into(),
        }
    }

    /// The refusal of [`TaskStore::delete_unreadable`] for row `id` (code `code`) that can be
    /// read: every store answers it in the same words.
    pub fn readable(id: i64, code: &str) -> crate::Error {
        crate::Error::InvalidInput(format!(
            "task `{code}` (id {id}) can be read, so it is not deleted as an unreadable row: \
             delete it as a task (which refuses a task running under a live lease)"
        ))
    }
}

/// One row of [`TaskStore::list_rows`]: a task, or a row the store cannot read.
#[derive(Debug, Clone, PartialEq)]
pub enum ListedRow {
    /// A task.
    Task(Box<TaskRecord>),
    /// A row this version cannot read, in its place in id order.
    Unreadable(UnreadableRow),
}

impl ListedRow {
    /// The row's id.
    pub fn id(&self) -> i64 {
        match self {
            ListedRow::Task(t) => t.id,
            ListedRow::Unreadable(u) => u.id,
        }
    }
    /// The task, if the row could be read.
    pub fn task(&self) -> Option<&TaskRecord> {
        match self {
            ListedRow::Task(t) => Some(t),
            ListedRow::Unreadable(_) => None,
        }
    }
}

/// Where tasks live.
///
/// # Contract
///
/// Every store — memory, SQLite, MySQL, and any other — behaves as written here, and the
/// conformance suite in `taskrow-tests` checks every point. Stores take the current time as an
/// argument (from the caller's [`crate::Clock`]) and never read a clock of their own.
///
/// - **States** are pending (0), running (1), succeeded (2), failed (3), cancelled (4).
///   A pending task is *due* when its next run time is at or before now; a running task is due
///   again when its lease expiry is at or before now (its worker is presumed dead).
/// - **Record fields**: a pending task has `next_run_at` and no `lease_expires_at`; a running
///   one has `lease_expires_at` and `lease_owner`, no `next_run_at`; other states have
///   neither time. `lease_owner` is kept after the lease ends, to show who ran it last.
///   `updated_at` is `created_at` at insert and `now` after every change.
/// - **Input**: claims check the worker id ([`crate::options::validate_worker_id`]: at most
///   [`crate::record::MAX_CODE_CHARS`] characters, not empty) and answer
///   [`crate::Error::InvalidInput`] before touching a row. Inserts check [`crate::options::validate`] themselves and answer
///   [`crate::Error::InvalidInput`], so a row altered after [`crate::EnqueueOptions::build`]
///   is refused the same way by every store. Codes compare exactly (case and trailing spaces
///   count); a code prefix filter is literal (no wildcards).
/// - **Versions**: every claim and every update of a row bumps its `version` by one (the
///   optimistic lock of read-decide-write operations).
/// - **Fencing**: every claim sets a new random `claim_token` (and `claimed_at`); heartbeats
///   leave it alone. A finish, lease extension or release names a [`Lease`] (id + token) and
///   takes effect only while the task is running under that token; otherwise it is refused as
///   lease lost and changes nothing on the task.
/// - **Idempotent finish**: a finish retried after an unknown outcome (the reply lost after
///   COMMIT) recognises its own earlier result by the log row of its `(task id, claim token)`
///   and answers [`FinishStatus::Applied`] again without a second log row, also when success
///   deleted the row. A lease extension retried the same way simply succeeds again.
/// - **Attempts** are counted at claim ([`TaskStore::claim`], [`TaskStore::claim_one`]), so a
///   run that kills its worker still uses an attempt. [`TaskStore::release`] and an
///   [`FinishResult::Interrupted`] finish give it back.
/// - **Lost workers**: a running task whose lease expired is settled by the next claim that
///   reaches it: its last run is logged as [`Outcome::WorkerLost`] (under that run's claim
///   token); then, if attempts are left, it is claimed again, and if that was its last attempt,
///   it becomes failed ([`TaskLog::worker_lost_failure`]) and is not returned. So no claim ever
///   starts a run past `max_attempts`. Reset, cancel and delete of such a task log the lost run
///   the same way.
/// - **Claim order**: a claim takes due tasks by [`Priority`] (high first), then by due time
///   (oldest first), then by id. Strict order: while higher-level tasks stay due, lower ones
///   wait; a queue with its own worker slots reserves capacity instead.
/// - **Queues**: every task is in one queue (validated on insert); a paused queue's tasks are
///   not claimed until it is resumed.
/// - **Never twice at once**: of any number of concurrent claimants, at most one gets a given
///   task while its lease is live.
/// - **Nothing lost**: a row leaves the table only by a successful finish with
///   [`crate::OnSuccess::Delete`], by [`TaskStore::delete`] (or
///   [`TaskStore::delete_unreadable`] for a row that cannot be read) or by [`TaskStore::purge`].
/// - **Unreadable rows** (values this version does not know, written by hand or by another
///   version) fail the reads that meet them with [`crate::Error::CorruptRow`] naming the row,
///   except [`TaskStore::list_rows`], which shows them in place, and [`TaskStore::counts`] and
///   [`TaskStore::queues`], which leave them out; claims never run them.
/// - **Logs**: [`TaskStore::finish`] writes one log row per execution, in the same transaction
///   as the task change, including refused (lease-lost) ones; a refused finish whose run was
///   already logged as worker lost turns that row into its lease-lost row (one row per run).
/// - **Cancel requests**: [`TaskStore::cancel`] of a task running under a live lease marks it
///   (`cancel_requested_at`) instead of refusing. The mark is reported by every later
///   [`TaskStore::extend_lease`] of that run ([`ExtendStatus::CancelRequested`]); a finish or
///   release of the marked run ends the task cancelled unless the run succeeded
///   ([`FinishResult::when_cancel_requested`]); a claim never starts a marked task again (one
///   whose lease expired is settled as cancelled, its lost run logged); run-now refuses it
///   while its lease lives and clears the mark when it runs it after; reset clears it.
/// - **Schedules** ([`crate::schedule`]): one row per schedule name. A tick moves a row only
///   by a conditional update from the tick read to the next ([`TaskStore::advance_schedule`]),
///   in one transaction with the insert of that tick's task, so of any number of contenders
///   exactly one moves a given tick and its task is inserted exactly once.
/// - **Workers** ([`crate::registry`]): one row per worker id, which a beat inserts or replaces
///   whole ([`TaskStore::beat_worker`]); listing judges each row alive while its `stale_at` is
///   after the `now` given ([`TaskStore::workers`]). Claims never read these rows.
/// - **Errors**: a duplicate code is [`crate::Error::DuplicateCode`]; a missing task
///   [`crate::Error::NotFound`]; refusals are [`crate::Error::Running`],
///   [`crate::Error::Cancelled`], [`crate::Error::Succeeded`], [`crate::Error::WrongState`];
///   database failures are [`crate::Error::Backend`] with `transient` set when a retry may
///   work.
#[async_trait]
pub trait TaskStore: Send + Sync + fmt::Debug + 'static {
    /// Inserts one task in state pending with 0 attempts and version 0, and returns its row.
    /// A code that exists fails with [`crate::Error::DuplicateCode`] and changes nothing.
    async fn insert(&self, task: NewTask) -> Result<TaskRecord>;

    /// Inserts many tasks in one transaction: all or none. A duplicate code (against the table
    /// or within the batch) fails with [`crate::Error::DuplicateCode`] naming it, and nothing
    /// is inserted. Returns how many rows were inserted.
    async fn insert_many(&self, tasks: Vec<NewTask>) -> Result<u64>;

    /// Inserts the task unless its code exists. Returns the row and `true` when inserted, or
    /// the existing row (unchanged, whatever its state) and `false`.
    async fn insert_if_absent(&self, task: NewTask) -> Result<(TaskRecord, bool)>;

    /// Claims up to `req.limit` due tasks (see the contract): the highest [`Priority`] first,
    /// then the oldest due, then the lowest id; limited to `req.biz_types` / `req.task_types` /
    /// `req.queues` when given, never one of `req.exclude_ids`, and never a task of a paused
    /// queue ([`TaskStore::set_queue_paused`], read in the claim's own transaction). Each
    /// claimed task becomes running with `attempts + 1`, `version + 1`, a new claim token,
    /// `claimed_at = req.now`, lease owner `req.worker` and lease expiry `req.now + req.lease`.
    /// Expired leases met on the way are settled first (see *Lost workers*); one at its last
    /// attempt is failed, and one with a cancel requested is cancelled, instead of claimed,
    /// and neither counts against `req.limit`'s result. Every claim clears
    /// `cancel_requested_at`.
    /// Returns the claimed rows as they are after the claim.
    async fn claim(&self, req: &ClaimRequest) -> Result<Vec<TaskRecord>>;

    /// Claims one task for run-now, due or not, with the seed's optimistic lock (an update
    /// guarded by the version read), like [`TaskStore::claim`] sets it (new claim token).
    /// Claimable: pending, failed (unless `only_pending`), and running under an expired lease
    /// (its lost run is logged first; run-now, an operator's decision, runs it even past its
    /// last attempt, while `only_pending` fails it as a claim would and answers
    /// [`crate::Error::WrongState`]). Refused: running under a live lease
    /// ([`crate::Error::Running`]), cancelled ([`crate::Error::Cancelled`]), succeeded
    /// ([`crate::Error::Succeeded`]), failed when `only_pending` ([`crate::Error::WrongState`]).
    async fn claim_one(&self, target: &TaskRef, req: &ClaimOne) -> Result<TaskRecord>;

    /// Applies a batch of finished runs in one transaction and answers per item, in order.
    /// An item whose task still runs under its claim token is applied (success deletes or
    /// keeps per `on_success`; retry makes it pending, due at `at`, with `last_error`; failed
    /// makes it failed with `last_error`; interrupted makes it pending, due at `at`, with
    /// `last_error`, `attempts − 1` and `interruptions + 1`; each clears the lease expiry and
    /// bumps the version) and logged with its outcome and claim token. An item whose run is
    /// logged already under its token with its own outcome (a retry after a lost reply) is
    /// answered [`FinishStatus::Applied`] and changes nothing. Any other item changes nothing
    /// on the task, is logged as [`Outcome::LeaseLost`] (replacing a
    /// [`Outcome::WorkerLost`] row of the same run) and answered [`FinishStatus::LeaseLost`].
    /// A task with a cancel requested gets [`FinishResult::when_cancel_requested`] instead of
    /// the item's result (cancelled, logged [`Outcome::Cancelled`], unless it succeeded); a
    /// retry of such an item finds that row and is answered [`FinishStatus::Applied`].
    /// [`FinishResult::Cancelled`] makes the task cancelled with `last_error`.
    async fn finish(&self, batch: Vec<Finish>, now: DateTime<Utc>) -> Result<Vec<FinishStatus>>;

    /// Hands claimed tasks that never started back: pending, due `now`, attempts − 1, lease
    /// cleared, version + 1, guarded by the claim token; a task with a cancel requested becomes
    /// cancelled instead (attempts − 1, no due time). No log row (nothing ran). Answers per
    /// lease, in order.
    async fn release(&self, leases: &[Lease], now: DateTime<Utc>) -> Result<Vec<FinishStatus>>;

    /// Extends a claim's lease to `until` (a heartbeat), bumping the version but keeping the
    /// claim token, so the same call may be repeated after a lost reply. Answers
    /// [`ExtendStatus::CancelRequested`] when the task has a cancel requested (read in the
    /// same transaction), [`ExtendStatus::Extended`] otherwise.
    /// [`crate::Error::LeaseLost`] if the task no longer runs under `lease.token`.
    async fn extend_lease(
        &self,
        lease: Lease,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ExtendStatus>;

    /// One task by id or code, or [`crate::Error::NotFound`].
    async fn get(&self, target: &TaskRef) -> Result<TaskRecord>;

    /// Tasks matching the filter, in id order, one page. A matching row the store cannot
    /// read fails the whole page with [`crate::Error::CorruptRow`] naming it (see
    /// [`TaskStore::list_rows`], which shows it instead).
    async fn list(&self, filter: &TaskFilter, page: &Page) -> Result<Vec<TaskRecord>>;

    /// [`TaskStore::list`] that goes on past rows it cannot read: the same rows in the same
    /// order and page, each a [`ListedRow::Task`], or a [`ListedRow::Unreadable`] with the
    /// decode error for a row that [`TaskStore::list`] would fail on. A filter on states,
    /// priorities or queues matches a row by its stored values (a state this version does not
    /// know matches no state filter). Operator tools list with it.
    async fn list_rows(&self, filter: &TaskFilter, page: &Page) -> Result<Vec<ListedRow>>;

    /// Rows holding a state, priority, on-success or dispatch code this version does not know,
    /// or a negative count (attempts, interruptions, timeout, max attempts below 1), in id
    /// order, one page: what [`TaskStore::counts`] and [`TaskStore::queues`] leave out. (A row
    /// whose JSON columns are garbage is found by [`TaskStore::list_rows`].) A store that
    /// cannot hold such rows (memory) answers none.
    async fn unreadable(&self, page: &Page) -> Result<Vec<UnreadableRow>>;

    /// Log rows matching the filter, oldest first.
    async fn logs(&self, filter: &LogFilter) -> Result<Vec<TaskLog>>;

    /// How many tasks there are of each type, queue and priority in each state (only non-zero
    /// counts), ordered by type, queue, priority and state. Rows whose state or priority this
    /// version does not know are left out ([`TaskStore::unreadable`] lists them).
    async fn counts(&self) -> Result<Vec<StateCount>>;

    /// Pauses (`paused`) or resumes a queue at `now`: while paused, [`TaskStore::claim`] takes
    /// none of its tasks; runs already started go on, and run-now
    /// ([`TaskStore::claim_one`]) still runs one task by hand. The queue need not hold tasks
    /// yet. Pausing a paused queue (or resuming a running one) keeps its state and time. A name
    /// [`crate::options::validate_queue`] refuses is [`crate::Error::InvalidInput`].
    async fn set_queue_paused(&self, queue: &str, paused: bool, now: DateTime<Utc>) -> Result<()>;

    /// Every queue that holds a task or was ever paused or resumed, by name, with its paused
    /// state and its tasks per state (rows of a state this version does not know left out).
    async fn queues(&self) -> Result<Vec<QueueInfo>>;

    /// Makes tasks run again: pending, attempts 0, interruptions 0, due `now`, last error
    /// cleared, lease cleared, cancel request cleared, version + 1. One task: refuses a running
    /// task under a live lease
    /// ([`crate::Error::Running`]) and a succeeded one ([`crate::Error::Succeeded`]).
    /// Returns how many tasks were reset.
    async fn reset(&self, target: &ResetTarget, now: DateTime<Utc>) -> Result<u64>;

    /// Cancels a task ([`TaskRecord::check_cancel`]): pending, failed or running under an
    /// expired lease become cancelled (version + 1); a cancelled one stays so. A task running
    /// under a live lease stays running and is marked (`cancel_requested_at = now`, version +
    /// 1; a second cancel keeps the first mark): its worker stops the run at its next
    /// heartbeat (see *Cancel requests*). Returns the task as it is after. Refuses a succeeded
    /// task ([`crate::Error::Succeeded`]).
    async fn cancel(&self, target: &TaskRef, now: DateTime<Utc>) -> Result<TaskRecord>;

    /// Deletes a task (its log rows stay) and returns it as it was. Refuses a running task
    /// under a live lease ([`crate::Error::Running`]). A row the store cannot read answers
    /// [`crate::Error::CorruptRow`] and stays: see [`TaskStore::delete_unreadable`].
    async fn delete(&self, target: &TaskRef, now: DateTime<Utc>) -> Result<TaskRecord>;

    /// Deletes a row the store cannot read (its log rows stay) and returns what could be read
    /// of it. Nothing about its lease can be known, so this is an operator's decision. A row
    /// that can be read is refused with [`crate::Error::InvalidInput`] (use
    /// [`TaskStore::delete`], which keeps its refusals); a missing one is
    /// [`crate::Error::NotFound`].
    async fn delete_unreadable(&self, target: &TaskRef) -> Result<UnreadableRow>;

    /// Removes tasks in `purge.states` (finished states only, else
    /// [`crate::Error::InvalidInput`]) last updated strictly before `purge.before`, and log rows
    /// started strictly before it when `purge.logs`. With `purge.dry_run` it removes nothing
    /// and answers the counts the same purge would remove now (`limit` included).
    async fn purge(&self, purge: &Purge) -> Result<PurgeReport>;

    /// Checks that the store's schema is the one this version of taskrow knows: `Ok` when it
    /// is, [`crate::Error::Schema`] naming the migration to run (an older schema) or the
    /// version to deploy (a newer one) otherwise. Workers call it before they claim. A store
    /// without a schema answers `Ok`; a wrapper forwards it (no default, so none forgets to).
    async fn check_schema(&self) -> Result<()>;

    /// Whether the store can read the database's own time ([`TaskStore::database_time`]).
    /// A [`crate::Client`] on such a store follows that time by default
    /// ([`crate::clock::DatabaseClock`]), so hosts need not agree on theirs.
    fn has_database_time(&self) -> bool;

    /// The database's current time as the database sees it now (MySQL `UTC_TIMESTAMP(6)`,
    /// PostgreSQL `clock_timestamp()`, not a transaction's start), or `None` for a store
    /// without a time of its own (memory, SQLite: one host). The one place a store reads a
    /// clock; its other statements take `now` from the caller.
    async fn database_time(&self) -> Result<Option<DateTime<Utc>>>;

    /// Wake-ups from other processes: a counter that changes when another process (or a
    /// transaction of this one, at its commit) enqueued work, so that workers claim at once
    /// instead of at their next poll — PostgreSQL's LISTEN/NOTIFY. `None` for a store without
    /// them (workers then rely on their poll and on this process's own enqueues). Bursts are
    /// coalesced: a worker sees "changed", not how many.
    fn wakeups(&self) -> Option<tokio::sync::watch::Receiver<u64>>;

    /// Registers a schedule (a worker does at its start) and returns its row. No row of that
    /// name: one is inserted with `last_tick = now` (ticks start after the registration),
    /// `next_tick` as given, and every time `now`. A row with the same fingerprint: only
    /// `registered_at = now` changes. A row with another fingerprint (a changed definition):
    /// spec, time zone, task type, fingerprint and `next_tick` are replaced, `last_tick`
    /// becomes `max(last_tick, now)` (the new definition ticks after the change), and
    /// `registered_at = updated_at = now`. Concurrent registrations of one name leave one row.
    async fn register_schedule(&self, schedule: &NewSchedule) -> Result<ScheduleRecord>;

    /// Moves a schedule's last tick, in one transaction: when the row named `advance.name` has
    /// `last_tick = advance.from` and `fingerprint = advance.fingerprint`, sets `last_tick =
    /// advance.to`, `next_tick = advance.next_tick`, `updated_at = advance.now`, inserts
    /// `advance.task` (if any) unless a task with its code exists, and answers
    /// [`AdvanceStatus::Advanced`]; otherwise (moved by another, changed, removed) changes
    /// nothing and answers [`AdvanceStatus::Lost`]. `to` not after `from` is
    /// [`crate::Error::InvalidInput`], and so is a task the insert checks refuse.
    async fn advance_schedule(&self, advance: &ScheduleAdvance) -> Result<AdvanceStatus>;

    /// Every schedule row, by name.
    async fn schedules(&self) -> Result<Vec<ScheduleRecord>>;

    /// Deletes a schedule's row and returns it as it was ([`crate::Error::ScheduleNotFound`]
    /// when there is none). Tasks it enqueued stay.
    async fn remove_schedule(&self, name: &str) -> Result<ScheduleRecord>;

    /// Stores a worker's beat: its row (by [`WorkerBeat::id`]) becomes exactly the beat's
    /// fields, inserted if there is none, replaced whole if there is one (also one left by an
    /// earlier process with the same id). A beat [`WorkerBeat::validate`] refuses is
    /// [`crate::Error::InvalidInput`] and changes nothing. Concurrent beats of one id leave one
    /// row.
    async fn beat_worker(&self, beat: &WorkerBeat) -> Result<()>;

    /// Every worker row, by id, each judged alive or gone at `now`
    /// ([`WorkerRecord::alive`]: its `stale_at` is after `now`). Gone rows are listed too,
    /// until [`TaskStore::prune_workers`] removes them.
    async fn workers(&self, now: DateTime<Utc>) -> Result<Vec<WorkerRecord>>;

    /// Removes a worker's row (a worker does at its clean shutdown). Answers whether there was
    /// one; a missing row is no error.
    async fn remove_worker(&self, id: &str) -> Result<bool>;

    /// Removes at most `limit` worker rows whose `stale_at` is before `gone_before`, the
    /// longest gone first, and answers how many it removed. A row beaten meanwhile (its
    /// `stale_at` moved past `gone_before`) is kept, so any number of workers may prune at
    /// once.
    async fn prune_workers(&self, gone_before: DateTime<Utc>, limit: u64) -> Result<u64>;
}

macro_rules! forward_store {
    ($ty:ty) => {
        #[async_trait]
        impl<T: TaskStore + ?Sized> TaskStore for $ty {
            async fn insert(&self, task: NewTask) -> Result<TaskRecord> {
                (**self).insert(task).await
            }
            async fn insert_many(&self, tasks: Vec<NewTask>) -> Result<u64> {
                (**self).insert_many(tasks).await
            }
            async fn insert_if_absent(&self, task: NewTask) -> Result<(TaskRecord, bool)> {
                (**self).insert_if_absent(task).await
            }
            async fn claim(&self, req: &ClaimRequest) -> Result<Vec<TaskRecord>> {
                (**self).claim(req).await
            }
            async fn claim_one(&self, target: &TaskRef, req: &ClaimOne) -> Result<TaskRecord> {
                (**self).claim_one(target, req).await
            }
            async fn finish(
                &self,
                batch: Vec<Finish>,
                now: DateTime<Utc>,
            ) -> Result<Vec<FinishStatus>> {
                (**self).finish(batch, now).await
            }
            async fn release(
                &self,
                leases: &[Lease],
                now: DateTime<Utc>,
            ) -> Result<Vec<FinishStatus>> {
                (**self).release(leases, now).await
            }
            async fn extend_lease(
                &self,
                lease: Lease,
                until: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> Result<ExtendStatus> {
                (**self).extend_lease(lease, until, now).await
            }
            async fn get(&self, target: &TaskRef) -> Result<TaskRecord> {
                (**self).get(target).await
            }
            async fn list(&self, filter: &TaskFilter, page: &Page) -> Result<Vec<TaskRecord>> {
                (**self).list(filter, page).await
            }
            async fn list_rows(&self, filter: &TaskFilter, page: &Page) -> Result<Vec<ListedRow>> {
                (**self).list_rows(filter, page).await
            }
            async fn unreadable(&self, page: &Page) -> Result<Vec<UnreadableRow>> {
                (**self).unreadable(page).await
            }
            async fn logs(&self, filter: &LogFilter) -> Result<Vec<TaskLog>> {
                (**self).logs(filter).await
            }
            async fn counts(&self) -> Result<Vec<StateCount>> {
                (**self).counts().await
            }
            async fn set_queue_paused(
                &self,
                queue: &str,
                paused: bool,
                now: DateTime<Utc>,
            ) -> Result<()> {
                (**self).set_queue_paused(queue, paused, now).await
            }
            async fn queues(&self) -> Result<Vec<QueueInfo>> {
                (**self).queues().await
            }
            async fn reset(&self, target: &ResetTarget, now: DateTime<Utc>) -> Result<u64> {
                (**self).reset(target, now).await
            }
            async fn cancel(&self, target: &TaskRef, now: DateTime<Utc>) -> Result<TaskRecord> {
                (**self).cancel(target, now).await
            }
            async fn delete(&self, target: &TaskRef, now: DateTime<Utc>) -> Result<TaskRecord> {
                (**self).delete(target, now).await
            }
            async fn delete_unreadable(&self, target: &TaskRef) -> Result<UnreadableRow> {
                (**self).delete_unreadable(target).await
            }
            async fn purge(&self, purge: &Purge) -> Result<PurgeReport> {
                (**self).purge(purge).await
            }
            async fn check_schema(&self) -> Result<()> {
                (**self).check_schema().await
            }
            fn has_database_time(&self) -> bool {
                (**self).has_database_time()
            }
            async fn database_time(&self) -> Result<Option<DateTime<Utc>>> {
                (**self).database_time().await
            }
            fn wakeups(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
                (**self).wakeups()
            }
            async fn register_schedule(&self, schedule: &NewSchedule) -> Result<ScheduleRecord> {
                (**self).register_schedule(schedule).await
            }
            async fn advance_schedule(&self, advance: &ScheduleAdvance) -> Result<AdvanceStatus> {
                (**self).advance_schedule(advance).await
            }
            async fn schedules(&self) -> Result<Vec<ScheduleRecord>> {
                (**self).schedules().await
            }
            async fn remove_schedule(&self, name: &str) -> Result<ScheduleRecord> {
                (**self).remove_schedule(name).await
            }
            async fn beat_worker(&self, beat: &WorkerBeat) -> Result<()> {
                (**self).beat_worker(beat).await
            }
            async fn workers(&self, now: DateTime<Utc>) -> Result<Vec<WorkerRecord>> {
                (**self).workers(now).await
            }
            async fn remove_worker(&self, id: &str) -> Result<bool> {
                (**self).remove_worker(id).await
            }
            async fn prune_workers(&self, gone_before: DateTime<Utc>, limit: u64) -> Result<u64> {
                (**self).prune_workers(gone_before, limit).await
            }
        }
    };
}

forward_store!(Arc<T>);
forward_store!(Box<T>);
