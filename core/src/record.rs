//! What a store keeps: task rows and log rows.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::retry::RetryPolicy;

/// Where a task is in its life. Stored as a small integer, as in seed 000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// 0: waiting to run: new, or waiting for its next retry (then `attempts > 0` and
    /// `last_error` is set).
    Pending,
    /// 1: claimed by a worker under a lease.
    Running,
    /// 2: succeeded, kept because the task asked for [`OnSuccess::Keep`].
    Succeeded,
    /// 3: failed for good (attempts exhausted, or a permanent error); kept until reset.
    Failed,
    /// 4: cancelled by hand; kept until reset or deleted.
    Cancelled,
}

impl TaskState {
    /// Every state, in code order.
    pub const ALL: [TaskState; 5] = [
        Self::Pending,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The stored code (0 to 4).
    pub fn code(self) -> i16 {
        match self {
            Self::Pending => 0,
            Self::Running => 1,
            Self::Succeeded => 2,
            Self::Failed => 3,
            Self::Cancelled => 4,
        }
    }

    /// The state for a stored code, or `None` for a value out of range.
    pub fn from_code(code: i16) -> Option<Self> {
        Self::ALL.get(usize::try_from(code).ok()?).copied()
    }

    /// The lower-case name (`pending`, `running`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TaskState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s) || st.code().to_string() == s)
            .ok_or_else(|| {
                format!(
                    "unknown task state `{s}`: use pending, running, succeeded, failed or cancelled"
                )
            })
    }
}

/// What success does with the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnSuccess {
    /// Delete the row (seed 003). The log rows stay.
    #[default]
    Delete,
    /// Keep the row in state [`TaskState::Succeeded`] (seed 000).
    Keep,
}

impl OnSuccess {
    /// The stored code: 0 delete, 1 keep.
    pub fn code(self) -> i16 {
        match self {
            Self::Delete => 0,
            Self::Keep => 1,
        }
    }
    /// The value for a stored code.
    pub fn from_code(code: i16) -> Option<Self> {
        match code {
            0 => Some(Self::Delete),
            1 => Some(Self::Keep),
            _ => None,
        }
    }
}

/// How a task was meant to run (seed 000's `execute_mode` and `thread_way`), kept on the row so
/// an operator can see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dispatch {
    /// 0: left to the worker's scheduler (execute_mode 2).
    #[default]
    Scheduled,
    /// 1: run right after commit, spawned (execute_mode 1, thread_way 1 async).
    ImmediateSpawned,
    /// 2: run right after commit, awaited by the caller (execute_mode 1, thread_way 2 sync).
    ImmediateAwaited,
}

impl Dispatch {
    /// The stored code (0 to 2).
    pub fn code(self) -> i16 {
        match self {
            Self::Scheduled => 0,
            Self::ImmediateSpawned => 1,
            Self::ImmediateAwaited => 2,
        }
    }
    /// The value for a stored code.
    pub fn from_code(code: i16) -> Option<Self> {
        match code {
            0 => Some(Self::Scheduled),
            1 => Some(Self::ImmediateSpawned),
            2 => Some(Self::ImmediateAwaited),
            _ => None,
        }
    }
}

/// How urgent a task is among the due ones: a claim takes every due task of a higher level
/// before any of a lower one, then the oldest due first. Stored as a small integer that sorts
/// the way claims take it (0 high, 1 normal, 2 low), so one ascending index
/// `(priority, run_at, id)` serves the claim on every database.
///
/// Three levels on purpose: enough to put urgent work ahead and background work behind, few
/// enough that nobody encodes an ordering in them (that is what the due time is for). Strict
/// order means a steady flood of higher-level tasks can starve lower ones: to reserve capacity
/// for some work, give it its own queue ([`crate::WorkerBuilder::queue`]).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// 0: claimed before every normal and low task that is due.
    High,
    /// 1: the default.
    #[default]
    Normal,
    /// 2: claimed only when no high or normal task is due (for the claimant's queues and
    /// filters).
    Low,
}

impl Priority {
    /// Every level, in claim order (first claimed first).
    pub const ALL: [Priority; 3] = [Self::High, Self::Normal, Self::Low];

    /// The stored code: 0 high, 1 normal, 2 low (ascending = claim order).
    pub fn code(self) -> i16 {
        match self {
            Self::High => 0,
            Self::Normal => 1,
            Self::Low => 2,
        }
    }

    /// The level for a stored code, or `None` for a value out of range.
    pub fn from_code(code: i16) -> Option<Self> {
        Self::ALL.get(usize::try_from(code).ok()?).copied()
    }

    /// The lower-case name (`high`, `normal`, `low`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Normal => "normal",
            Self::Low => "low",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s) || p.code().to_string() == s)
            .ok_or_else(|| format!("unknown priority `{s}`: use high, normal or low"))
    }
}

/// The queue of a task that names none.
pub const DEFAULT_QUEUE: &str = "default";
/// Longest queue name, in characters.
pub const MAX_QUEUE_CHARS: usize = 64;

fn default_queue() -> String {
    DEFAULT_QUEUE.to_owned()
}

/// Longest kept error text, in characters (seed 003 cuts at 5000).
pub const MAX_ERROR_CHARS: usize = 5000;
/// Longest code, type name, name and worker id, in characters.
pub const MAX_CODE_CHARS: usize = 255;
/// Longest biz type, in characters (seed 003: `VARCHAR(64)`).
pub const MAX_BIZ_TYPE_CHARS: usize = 64;

/// Cuts an error text to [`MAX_ERROR_CHARS`] characters, marking the cut.
pub fn bound_error(s: &str) -> String {
    if s.chars().count() <= MAX_ERROR_CHARS {
        return s.to_owned();
    }
    const MARK: &str = " …[truncated]";
    let keep = MAX_ERROR_CHARS - MARK.chars().count();
    let mut out: String = s.chars().take(keep).collect();
    out.push_str(MARK);
    out
}

/// A task ready to be inserted: what [`crate::Client::enqueue`] builds from a task and its
/// options. Stores insert it as given.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NewTask {
    /// Unique code.
    pub code: String,
    /// The typetag name of the task's type.
    pub task_type: String,
    /// The task's fields as JSON.
    pub payload: String,
    /// Human-readable name.
    pub name: String,
    /// Longer description.
    pub description: Option<String>,
    /// Business type, for filtering and for workers that only run some.
    pub biz_type: String,
    /// The queue it waits in ([`DEFAULT_QUEUE`] unless set).
    pub queue: String,
    /// How urgent it is among due tasks.
    pub priority: Priority,
    /// First time the task may run.
    pub run_at: DateTime<Utc>,
    /// Most runs, the first included; `None` runs until success.
    pub max_attempts: Option<u32>,
    /// When failed attempts run again.
    pub retry: RetryPolicy,
    /// Longest one run may take.
    pub timeout: Option<Duration>,
    /// What success does with the row.
    pub on_success: OnSuccess,
    /// How the task was meant to run.
    pub dispatch: Dispatch,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A task row. Stores build it field by field (it is not `non_exhaustive` for that reason).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Row id.
    pub id: i64,
    /// Unique code.
    pub code: String,
    /// The typetag name of the task's type.
    pub task_type: String,
    /// The task's fields as JSON.
    pub payload: String,
    /// Human-readable name.
    pub name: String,
    /// Longer description.
    pub description: Option<String>,
    /// Business type.
    pub biz_type: String,
    /// The queue it waits in.
    #[serde(default = "default_queue")]
    pub queue: String,
    /// How urgent it is among due tasks.
    #[serde(default)]
    pub priority: Priority,
    /// Current state.
    pub state: TaskState,
    /// Runs started so far (counted at claim).
    pub attempts: u32,
    /// Most runs, the first included; `None` runs until success.
    pub max_attempts: Option<u32>,
    /// When failed attempts run again.
    pub retry: RetryPolicy,
    /// Longest one run may take (the worker's default when `None`).
    pub timeout: Option<Duration>,
    /// What success does with the row.
    pub on_success: OnSuccess,
    /// How the task was meant to run.
    pub dispatch: Dispatch,
    /// Pending: when it may run next. `None` in other states.
    pub next_run_at: Option<DateTime<Utc>>,
    /// Running: when its lease expires. `None` in other states.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Running: the worker holding the lease (kept after, to show who ran it last).
    pub lease_owner: Option<String>,
    /// The last failure, bounded to [`MAX_ERROR_CHARS`].
    pub last_error: Option<String>,
    /// Bumped by every claim and update.
    pub version: i64,
    /// The fencing token of the last claim: set by every claim, unchanged by heartbeats and
    /// kept after the run ends (`None` before the first claim). Finishes and lease extensions
    /// are accepted only with the current claim's token.
    #[serde(default)]
    pub claim_token: Option<i64>,
    /// When the last claim was made (`None` before the first claim).
    #[serde(default)]
    pub claimed_at: Option<DateTime<Utc>>,
    /// When the current or last run became due (its run time as the claim found it: the
    /// next run time of a pending task, the lease expiry of a task whose worker was lost).
    /// `claimed_at − due_at` is the run's pickup lag. `None` before the first claim.
    #[serde(default)]
    pub due_at: Option<DateTime<Utc>>,
    /// Runs interrupted from outside (a shutdown, a lease that could not be kept) whose attempt
    /// was given back. Past [`MAX_INTERRUPTIONS`] an interruption counts as a failed attempt, so
    /// that a task interrupted by every deploy still ends.
    #[serde(default)]
    pub interruptions: u32,
    /// When an operator asked to cancel the task while it ran ([`crate::TaskStore::cancel`]
    /// of a running task): its worker sees the mark at its next heartbeat and stops the run,
    /// which then ends cancelled. Kept on the finished row to show the request; a claim never
    /// starts a marked task again, and reset clears the mark. `None`: never asked.
    #[serde(default)]
    pub cancel_requested_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// How many interruptions (shutdowns, lost leases) give their attempt back; later ones count as
/// failed attempts.
pub const MAX_INTERRUPTIONS: u32 = 3;

/// A new random fencing token for a claim: non-zero, unrelated to any earlier one, so that a
/// `(task id, claim token)` pair never repeats, even where a database reuses a deleted row's id.
pub fn new_claim_token() -> i64 {
    use std::hash::{BuildHasher, RandomState};
    let seed = uuid::Uuid::now_v7().as_u128();
    let h = RandomState::new().hash_one(seed) as i64;
    if h == 0 { 1 } else { h }
}

impl TaskRecord {
    /// The row a store holds right after inserting `new` under `id`: pending, 0 attempts,
    /// version 0, due at `new.run_at`, created and updated at `new.created_at`.
    pub fn inserted(id: i64, new: NewTask) -> Self {
        Self {
            id,
            code: new.code,
            task_type: new.task_type,
            payload: new.payload,
            name: new.name,
            description: new.description,
            biz_type: new.biz_type,
            queue: new.queue,
            priority: new.priority,
            state: TaskState::Pending,
            attempts: 0,
            max_attempts: new.max_attempts,
            retry: new.retry,
            timeout: new.timeout,
            on_success: new.on_success,
            dispatch: new.dispatch,
            next_run_at: Some(new.run_at),
            lease_expires_at: None,
            lease_owner: None,
            last_error: None,
            version: 0,
            claim_token: None,
            claimed_at: None,
            due_at: None,
            interruptions: 0,
            cancel_requested_at: None,
            created_at: new.created_at,
            updated_at: new.created_at,
        }
    }

    /// The lease this record was claimed under (meaningful when `state` is running).
    pub fn lease(&self) -> Lease {
        Lease {
            id: self.id,
            token: self.claim_token.unwrap_or(0),
        }
    }

    /// Whether the task is running under a lease that expired by `now`: its worker is presumed
    /// lost, and the next claim settles that run ([`TaskLog::worker_lost`]).
    pub fn lease_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.state == TaskState::Running && self.lease_expires_at.is_some_and(|t| t <= now)
    }

    /// The refusal for a task running under a live lease ([`crate::Error::Running`]).
    pub fn running_error(&self) -> crate::Error {
        crate::Error::Running {
            code: self.code.clone(),
            owner: self.lease_owner.clone().unwrap_or_default(),
            until: self.lease_expires_at.unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    /// Whether [`crate::TaskStore::claim_one`] may take this task at `now`, or its refusal. The
    /// one definition every store applies.
    pub fn check_claim_one(&self, only_pending: bool, now: DateTime<Utc>) -> crate::Result<()> {
        match self.state {
            TaskState::Pending => Ok(()),
            TaskState::Failed if !only_pending => Ok(()),
            TaskState::Failed => Err(crate::Error::WrongState {
                code: self.code.clone(),
                state: self.state,
                what: "only a pending task is dispatched at once; run it now by hand, or reset it \
                       to let the scheduler run it"
                    .into(),
            }),
            TaskState::Running if self.lease_live_at(now) => Err(self.running_error()),
            TaskState::Running => Ok(()),
            TaskState::Cancelled => Err(crate::Error::Cancelled(self.code.clone())),
            TaskState::Succeeded => Err(crate::Error::Succeeded(self.code.clone())),
        }
    }

    /// Whether a single [`crate::TaskStore::reset`] may apply at `now`, or its refusal.
    pub fn check_reset(&self, now: DateTime<Utc>) -> crate::Result<()> {
        match self.state {
            TaskState::Running if self.lease_live_at(now) => Err(self.running_error()),
            TaskState::Succeeded => Err(crate::Error::Succeeded(self.code.clone())),
            _ => Ok(()),
        }
    }

    /// What [`crate::TaskStore::cancel`] does to this task at `now`, or its refusal. The one
    /// definition every store applies.
    pub fn check_cancel(&self, now: DateTime<Utc>) -> crate::Result<CancelAction> {
        match self.state {
            TaskState::Cancelled => Ok(CancelAction::Nothing),
            TaskState::Succeeded => Err(crate::Error::Succeeded(self.code.clone())),
            TaskState::Running if self.lease_live_at(now) => {
                Ok(if self.cancel_requested_at.is_some() {
                    CancelAction::Nothing
                } else {
                    CancelAction::Mark
                })
            }
            _ => Ok(CancelAction::Cancel),
        }
    }

    /// Whether [`crate::TaskStore::delete`] may remove this task at `now`, or its refusal.
    pub fn check_delete(&self, now: DateTime<Utc>) -> crate::Result<()> {
        if self.lease_live_at(now) {
            return Err(self.running_error());
        }
        Ok(())
    }

    /// Whether attempts are used up.
    pub fn attempts_exhausted(&self) -> bool {
        self.max_attempts.is_some_and(|m| self.attempts >= m)
    }

    /// Whether a running task's lease is still live at `now`.
    pub fn lease_live_at(&self, now: DateTime<Utc>) -> bool {
        self.state == TaskState::Running && self.lease_expires_at.is_some_and(|t| t > now)
    }
}

/// What [`crate::TaskStore::cancel`] does to a task ([`TaskRecord::check_cancel`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelAction {
    /// Nothing: it is cancelled already, or runs with a cancel requested already.
    Nothing,
    /// It becomes cancelled at once: pending, failed, or running under an expired lease.
    Cancel,
    /// It runs under a live lease: it is marked ([`TaskRecord::cancel_requested_at`]), and its
    /// worker stops the run at its next heartbeat.
    Mark,
}

/// Proof of a claim: the row and the claim's fencing token. Every finish, lease extension and
/// release names it; a write whose token is no longer the row's (another claim took the task)
/// is refused as lease lost. Heartbeats leave the token as it is, so a write retried after a
/// lost reply still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    /// Row id.
    pub id: i64,
    /// The claim's fencing token ([`TaskRecord::claim_token`]).
    pub token: i64,
}

/// How one execution ended, as logged. Every run leaves exactly one log row, keyed by its
/// task and claim token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// 1: the handler succeeded.
    Succeeded,
    /// 2: the handler failed and the task was rescheduled.
    Retrying,
    /// 3: the handler failed and the task failed for good.
    Failed,
    /// 4: the run ended after another claimant took the task; its result was not applied.
    LeaseLost,
    /// 5: the run was stopped from outside before it ended (the worker shut down, or its lease
    /// could not be confirmed in time); the task runs again and, up to [`MAX_INTERRUPTIONS`],
    /// the attempt is given back.
    Interrupted,
    /// 6: no result came back: the worker's lease expired (it crashed, was killed, or lost the
    /// database). Written by whoever settles the task next (a claim, reset, cancel or delete).
    WorkerLost,
    /// 7: the run was cancelled on request ([`crate::TaskStore::cancel`] of a running task):
    /// its worker stopped it, or it ended without success after the request; the task is
    /// cancelled.
    Cancelled,
}

impl Outcome {
    /// Every outcome, in code order.
    pub const ALL: [Outcome; 7] = [
        Self::Succeeded,
        Self::Retrying,
        Self::Failed,
        Self::LeaseLost,
        Self::Interrupted,
        Self::WorkerLost,
        Self::Cancelled,
    ];

    /// The stored code (1 to 7).
    pub fn code(self) -> i16 {
        match self {
            Self::Succeeded => 1,
            Self::Retrying => 2,
            Self::Failed => 3,
            Self::LeaseLost => 4,
            Self::Interrupted => 5,
            Self::WorkerLost => 6,
            Self::Cancelled => 7,
        }
    }
    /// The value for a stored code.
    pub fn from_code(code: i16) -> Option<Self> {
        match code {
            1 => Some(Self::Succeeded),
            2 => Some(Self::Retrying),
            3 => Some(Self::Failed),
            4 => Some(Self::LeaseLost),
            5 => Some(Self::Interrupted),
            6 => Some(Self::WorkerLost),
            7 => Some(Self::Cancelled),
            _ => None,
        }
    }
    /// The lower-case name (`succeeded`, `retrying`, `failed`, `lease_lost`, `interrupted`,
    /// `worker_lost`, `cancelled`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::LeaseLost => "lease_lost",
            Self::Interrupted => "interrupted",
            Self::WorkerLost => "worker_lost",
            Self::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str().eq_ignore_ascii_case(s) || o.code().to_string() == s)
            .ok_or_else(|| {
                format!(
                    "unknown outcome `{s}`: use succeeded, retrying, failed, lease_lost, \
                     interrupted, worker_lost or cancelled"
                )
            })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One log row: one execution of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskLog {
    /// Log row id.
    pub id: i64,
    /// The task's row id (the row may be gone after success).
    pub task_id: i64,
    /// The task's code.
    pub code: String,
    /// The task's type name.
    pub task_type: String,
    /// Which attempt this was (1-based).
    pub attempt: u32,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// How long it ran, in milliseconds.
    pub duration_ms: i64,
    /// How it ended.
    pub outcome: Outcome,
    /// The error, bounded to [`MAX_ERROR_CHARS`].
    pub error: Option<String>,
    /// The worker that ran it.
    pub worker: String,
    /// The claim this run held (`None` on rows written before claim tokens existed). A task
    /// has at most one log row per claim token.
    #[serde(default)]
    pub claim_token: Option<i64>,
}

impl TaskLog {
    /// The log row for `finish`, applied (`outcome` from the finish) or refused
    /// ([`Outcome::LeaseLost`] with [`crate::Finish::lease_lost_error`]).
    pub fn of_finish(id: i64, finish: &crate::Finish, applied: bool) -> Self {
        let (outcome, error) = if applied {
            (finish.outcome(), finish.error().map(bound_error))
        } else {
            (Outcome::LeaseLost, Some(finish.lease_lost_error()))
        };
        Self {
            id,
            task_id: finish.lease.id,
            code: finish.code.clone(),
            task_type: finish.task_type.clone(),
            attempt: finish.attempt,
            started_at: finish.started_at,
            duration_ms: finish.duration_ms,
            outcome,
            error,
            worker: finish.worker.clone(),
            claim_token: Some(finish.lease.token),
        }
    }

    /// The log row of a run whose worker was lost: `task` as it is found running under a lease
    /// that expired by `now`, about to be reclaimed (or failed, when `last` says it was its
    /// last attempt). The run is dated from its claim; its duration is how long its lease was
    /// held.
    pub fn worker_lost(id: i64, task: &TaskRecord, now: DateTime<Utc>, last: bool) -> Self {
        let expired = task.lease_expires_at.unwrap_or(now);
        let started = task.claimed_at.unwrap_or(expired);
        let owner = task.lease_owner.clone().unwrap_or_default();
        let error = format!(
            "worker lost: no result came back from `{owner}`, whose lease expired at {expired} \
             (the process crashed, was killed, or lost the database; a task it had claimed \
             ahead of a free slot may not have started){}",
            if last {
                "; that was the last attempt, so the task failed"
            } else {
                "; the task runs again"
            }
        );
        Self {
            id,
            task_id: task.id,
            code: task.code.clone(),
            task_type: task.task_type.clone(),
            attempt: task.attempts,
            started_at: started,
            duration_ms: (expired - started).num_milliseconds().max(0),
            outcome: Outcome::WorkerLost,
            error: Some(bound_error(&error)),
            worker: owner,
            claim_token: task.claim_token,
        }
    }

    /// The log row of a lost run whose task had a cancel requested
    /// ([`TaskRecord::cancel_requested_at`]): like [`TaskLog::worker_lost`], but the claim that
    /// settles it cancels the task instead of running it again.
    pub fn worker_lost_cancelled(id: i64, task: &TaskRecord, now: DateTime<Utc>) -> Self {
        let mut log = Self::worker_lost(id, task, now, false);
        let owner = task.lease_owner.as_deref().unwrap_or_default();
        log.error = Some(bound_error(&format!(
            "worker lost: no result came back from `{owner}` after a cancel was requested, so \
             the task is cancelled instead of run again"
        )));
        log
    }

    /// The last error of a task cancelled because its worker was lost after a cancel was
    /// requested ([`TaskLog::worker_lost_cancelled`]).
    pub fn worker_lost_cancelled_error(task: &TaskRecord) -> String {
        format!(
            "cancelled on request: `{}` stopped renewing its lease before it stopped the run; \
             reset the task to run it again",
            task.lease_owner.as_deref().unwrap_or("?")
        )
    }

    /// The error kept on a task failed because its worker was lost during its last attempt.
    pub fn worker_lost_failure(task: &TaskRecord) -> String {
        format!(
            "the worker was lost during the last attempt ({} of {}): `{}` stopped renewing its \
             lease; reset the task to run it again",
            task.attempts,
            task.max_attempts.unwrap_or(task.attempts),
            task.lease_owner.as_deref().unwrap_or("?")
        )
    }
}
