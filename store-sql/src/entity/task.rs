//! `taskrow_task`: one row per task.

use std::time::Duration;

use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::entity::prelude::*;

use crate::time::from_sql;
use taskrow::{
    Dispatch, Error, NewTask, OnSuccess, Priority, Result, RetryPolicy, TaskRecord, TaskState,
};

/// A `taskrow_task` row as stored. Times are UTC, kept without a zone (see
/// [`crate::time::sql`]).
///
/// `run_at` holds the time that matters for the row's state: a pending task's next run time, a
/// running task's lease expiry, and `NULL` for finished tasks, so that one index range
/// (`run_at <= now`) finds every claimable row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "taskrow_task")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Unique code.
    #[sea_orm(unique)]
    pub code: String,
    /// The typetag name of the task's type.
    pub task_type: String,
    /// The task's fields as JSON (`LONGTEXT` on MySQL).
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    /// Human-readable name.
    pub name: String,
    /// Longer description.
    #[sea_orm(column_type = "Text", nullable)]
    pub description: Option<String>,
    /// Business type.
    pub biz_type: String,
    /// [`TaskState::code`]: 0 pending, 1 running, 2 succeeded, 3 failed, 4 cancelled.
    pub state: i16,
    /// Runs started (counted at claim).
    pub attempts: i32,
    /// Most runs, the first included; `NULL` for unlimited.
    pub max_attempts: Option<i32>,
    /// [`RetryPolicy::to_json`].
    pub retry_policy: String,
    /// Longest run, in milliseconds.
    pub timeout_ms: Option<i64>,
    /// [`OnSuccess::code`].
    pub on_success: i16,
    /// [`Dispatch::code`].
    pub dispatch: i16,
    /// Pending: next run time; running: lease expiry; otherwise `NULL`.
    pub run_at: Option<DateTime>,
    /// The worker that claimed the task last.
    pub lease_owner: Option<String>,
    /// The last failure.
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    /// Bumped by every claim and update.
    pub version: i64,
    /// Creation time.
    pub created_at: DateTime,
    /// Last change.
    pub updated_at: DateTime,
    /// The fencing token of the last claim (`NULL` before the first): set by every claim,
    /// unchanged by heartbeats, kept after the run. Finishes, lease extensions and releases
    /// are guarded by it.
    pub claim_token: Option<i64>,
    /// When the last claim was made.
    pub claimed_at: Option<DateTime>,
    /// Interrupted runs whose attempt was given back (reset sets it to 0).
    pub interruptions: i32,
    /// The queue.
    pub queue: String,
    /// [`Priority::code`]: 0 high, 1 normal, 2 low (ascending is claim order).
    pub priority: i16,
    /// When the current or last run became due: the run time the last claim found.
    pub due_at: Option<DateTime>,
    /// When a cancel was requested while the task ran (`NULL`: never, or cleared by a claim
    /// or reset).
    pub cancel_requested_at: Option<DateTime>,
}

/// No relations: log rows outlive their tasks, so there is no foreign key.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The row `insert` stores for `task` (id 0 until the database assigns one): pending, no
    /// attempts, version 0, never claimed, updated when created.
    pub fn new_row(task: &NewTask) -> Self {
        Self {
            id: 0,
            code: task.code.clone(),
            task_type: task.task_type.clone(),
            payload: task.payload.clone(),
            name: task.name.clone(),
            description: task.description.clone(),
            biz_type: task.biz_type.clone(),
            state: TaskState::Pending.code(),
            attempts: 0,
            max_attempts: task
                .max_attempts
                .map(|m| i32::try_from(m).unwrap_or(i32::MAX)),
            retry_policy: task.retry.to_json(),
            timeout_ms: task
                .timeout
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            on_success: task.on_success.code(),
            dispatch: task.dispatch.code(),
            run_at: Some(crate::time::sql(task.run_at)),
            lease_owner: None,
            last_error: None,
            version: 0,
            created_at: crate::time::sql(task.created_at),
            updated_at: crate::time::sql(task.created_at),
            claim_token: None,
            claimed_at: None,
            interruptions: 0,
            queue: task.queue.clone(),
            priority: task.priority.code(),
            due_at: None,
            cancel_requested_at: None,
        }
    }

    /// The active model inserting this row, letting the database pick the id.
    pub fn into_insert(self) -> ActiveModel {
        ActiveModel {
            id: NotSet,
            code: Set(self.code),
            task_type: Set(self.task_type),
            payload: Set(self.payload),
            name: Set(self.name),
            description: Set(self.description),
            biz_type: Set(self.biz_type),
            state: Set(self.state),
            attempts: Set(self.attempts),
            max_attempts: Set(self.max_attempts),
            retry_policy: Set(self.retry_policy),
            timeout_ms: Set(self.timeout_ms),
            on_success: Set(self.on_success),
            dispatch: Set(self.dispatch),
            run_at: Set(self.run_at),
            lease_owner: Set(self.lease_owner),
            last_error: Set(self.last_error),
            version: Set(self.version),
            created_at: Set(self.created_at),
            updated_at: Set(self.updated_at),
            claim_token: Set(self.claim_token),
            claimed_at: Set(self.claimed_at),
            interruptions: Set(self.interruptions),
            queue: Set(self.queue),
            priority: Set(self.priority),
            due_at: Set(self.due_at),
            cancel_requested_at: Set(self.cancel_requested_at),
        }
    }

    /// The active model inserting this new row ([`Model::new_row`]), letting the database pick
    /// the id. The columns a new row leaves at the table's defaults (no lease owner, error,
    /// claim, interruption, due time or cancel request) are not sent: a multi-row insert binds
    /// 19 values a row instead of 26 (batch enqueue on PostgreSQL, 500 rows a statement, went
    /// from 0.6 to about 0.7 of the floor's).
    pub fn into_insert_new(self) -> ActiveModel {
        debug_assert!(
            self.lease_owner.is_none()
                && self.last_error.is_none()
                && self.claim_token.is_none()
                && self.claimed_at.is_none()
                && self.interruptions == 0
                && self.due_at.is_none()
                && self.cancel_requested_at.is_none(),
            "into_insert_new is for new rows; insert other rows with into_insert"
        );
        ActiveModel {
            lease_owner: NotSet,
            last_error: NotSet,
            claim_token: NotSet,
            claimed_at: NotSet,
            interruptions: NotSet,
            due_at: NotSet,
            cancel_requested_at: NotSet,
            ..self.into_insert()
        }
    }

    /// The task state, or [`Error::CorruptRow`] for a code out of range.
    pub fn task_state(&self) -> Result<TaskState> {
        TaskState::from_code(self.state).ok_or_else(|| self.corrupt(format!(
            "state {} is not a task state (0 pending, 1 running, 2 succeeded, 3 failed, 4 cancelled)",
            self.state
        )))
    }

    fn corrupt(&self, reason: String) -> Error {
        Error::CorruptRow {
            id: self.id,
            reason,
        }
    }

    /// The row as taskrow's [`TaskRecord`]; values this version cannot read are
    /// [`Error::CorruptRow`].
    pub fn into_record(self) -> Result<TaskRecord> {
        let state = self.task_state()?;
        let attempts = u32::try_from(self.attempts)
            .map_err(|_| self.corrupt(format!("attempts is negative ({})", self.attempts)))?;
        let interruptions = u32::try_from(self.interruptions).map_err(|_| {
            self.corrupt(format!(
                "interruptions is negative ({})",
                self.interruptions
            ))
        })?;
        let max_attempts = self
            .max_attempts
            .map(|m| {
                u32::try_from(m).ok().filter(|&m| m > 0).ok_or_else(|| {
                    self.corrupt(format!("max_attempts must be at least 1, not {m}"))
                })
            })
            .transpose()?;
        let retry = RetryPolicy::from_json(&self.retry_policy).map_err(|e| {
            self.corrupt(format!(
                "retry_policy `{}` is not a retry policy: {e}",
                self.retry_policy
            ))
        })?;
        let timeout = self
            .timeout_ms
            .map(|ms| {
                u64::try_from(ms)
                    .map(Duration::from_millis)
                    .map_err(|_| self.corrupt(format!("timeout_ms is negative ({ms})")))
            })
            .transpose()?;
        let on_success = OnSuccess::from_code(self.on_success).ok_or_else(|| {
            self.corrupt(format!(
                "on_success {} is not 0 (delete) or 1 (keep)",
                self.on_success
            ))
        })?;
        let dispatch = Dispatch::from_code(self.dispatch).ok_or_else(|| {
            self.corrupt(format!(
                "dispatch {} is not 0 (scheduled), 1 (immediate, spawned) or 2 (immediate, awaited)",
                self.dispatch
            ))
        })?;
        let priority = Priority::from_code(self.priority).ok_or_else(|| {
            self.corrupt(format!(
                "priority {} is not 0 (high), 1 (normal) or 2 (low)",
                self.priority
            ))
        })?;
        let (next_run_at, lease_expires_at) = match state {
            TaskState::Pending => (self.run_at.map(from_sql), None),
            TaskState::Running => (None, self.run_at.map(from_sql)),
            _ => (None, None),
        };
        // Field by field (`TaskRecord` is built by stores for that reason): the serde round
        // trip through a JSON value this replaced cost about 55,000 instructions a row, an
        // eighth of a SQLite drain's (callgrind).
        Ok(TaskRecord {
            id: self.id,
            code: self.code,
            task_type: self.task_type,
            payload: self.payload,
            name: self.name,
            description: self.description,
            biz_type: self.biz_type,
            queue: self.queue,
            priority,
            state,
            attempts,
            max_attempts,
            retry,
            timeout,
            on_success,
            dispatch,
            next_run_at,
            lease_expires_at,
            lease_owner: self.lease_owner,
            last_error: self.last_error,
            version: self.version,
            claim_token: self.claim_token,
            claimed_at: self.claimed_at.map(from_sql),
            due_at: self.due_at.map(from_sql),
            interruptions,
            cancel_requested_at: self.cancel_requested_at.map(from_sql),
            created_at: from_sql(self.created_at),
            updated_at: from_sql(self.updated_at),
        })
    }
}
