//! `taskrow_task_log`: one row per execution.

use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::entity::prelude::*;
use taskrow::record::bound_error;
use taskrow::serde_json::{self, json};
use taskrow::{Error, Finish, Outcome, Result, TaskLog};

/// A `taskrow_task_log` row as stored. Times are UTC, kept without a zone.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "taskrow_task_log")]
pub struct Model {
    /// Log row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The task's row id (the task may be gone).
    pub task_id: i64,
    /// The task's code.
    pub code: String,
    /// The task's type name.
    pub task_type: String,
    /// Which attempt this was (1-based).
    pub attempt: i32,
    /// When the run started.
    pub started_at: DateTime,
    /// How long it ran, in milliseconds.
    pub duration_ms: i64,
    /// [`Outcome::code`]: 1 succeeded, 2 retrying, 3 failed, 4 lease lost, 5 interrupted,
    /// 6 worker lost.
    pub outcome: i16,
    /// The error, if the run failed.
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    /// The worker that ran it.
    pub worker: String,
    /// The claim the run held (`NULL` on rows written before claim tokens). Unique with
    /// `task_id`: one row per run.
    pub claim_token: Option<i64>,
}

/// No relations (log rows outlive their tasks).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The log row of a finished run, logged with `outcome` and `error` under the run's claim
    /// token.
    pub fn insert_for(f: &Finish, outcome: Outcome, error: Option<&str>) -> ActiveModel {
        ActiveModel {
            id: NotSet,
            task_id: Set(f.lease.id),
            code: Set(f.code.clone()),
            task_type: Set(f.task_type.clone()),
            attempt: Set(i32::try_from(f.attempt).unwrap_or(i32::MAX)),
            started_at: Set(crate::time::sql(f.started_at)),
            duration_ms: Set(f.duration_ms),
            outcome: Set(outcome.code()),
            error: Set(error.map(bound_error)),
            worker: Set(f.worker.clone()),
            claim_token: Set(Some(f.lease.token)),
        }
    }

    /// The active model writing `log` (every column but the id): to insert a row core built
    /// (such as [`TaskLog::worker_lost`]), or to overwrite one with `update_many().set(…)`.
    pub fn from_log(log: &TaskLog) -> ActiveModel {
        ActiveModel {
            id: NotSet,
            task_id: Set(log.task_id),
            code: Set(log.code.clone()),
            task_type: Set(log.task_type.clone()),
            attempt: Set(i32::try_from(log.attempt).unwrap_or(i32::MAX)),
            started_at: Set(crate::time::sql(log.started_at)),
            duration_ms: Set(log.duration_ms),
            outcome: Set(log.outcome.code()),
            error: Set(log.error.as_deref().map(bound_error)),
            worker: Set(log.worker.clone()),
            claim_token: Set(log.claim_token),
        }
    }

    /// The row as taskrow's [`TaskLog`]; values this version cannot read are
    /// [`Error::CorruptRow`] (naming the log row's id).
    pub fn into_log(self) -> Result<TaskLog> {
        let corrupt = |reason: String| Error::CorruptRow {
            id: self.id,
            reason: format!("(log row) {reason}"),
        };
        let outcome = Outcome::from_code(self.outcome).ok_or_else(|| {
            corrupt(format!(
                "outcome {} is not an outcome (1 succeeded, 2 retrying, 3 failed, 4 lease lost, \
                 5 interrupted, 6 worker lost)",
                self.outcome
            ))
        })?;
        let attempt = u32::try_from(self.attempt)
            .map_err(|_| corrupt(format!("attempt is negative ({})", self.attempt)))?;
        // `TaskLog` is `#[non_exhaustive]`: built through its serde form, as `TaskRecord` is.
        let v = json!({
            "id": self.id,
            "task_id": self.task_id,
            "code": self.code,
            "task_type": self.task_type,
            "attempt": attempt,
            "started_at": crate::time::from_sql(self.started_at),
            "duration_ms": self.duration_ms,
            "outcome": outcome,
            "error": self.error,
            "worker": self.worker,
            "claim_token": self.claim_token,
        });
        serde_json::from_value(v).map_err(|e| corrupt(format!("cannot build a log record: {e}")))
    }
}
