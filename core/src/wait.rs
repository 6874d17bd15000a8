//! Waiting for a task to end: [`Client::wait`] and [`TaskEnd`].

use std::fmt;
use std::time::Duration;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::record::{Outcome, TaskLog, TaskRecord, TaskState};
use crate::store::{LogFilter, TaskRef};

/// How a task ended, as [`Client::wait`] saw it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TaskEnd {
    /// A run succeeded. `log` is that run's log row when the log has it (success may have
    /// deleted the task's row; the log outlives it).
    Succeeded {
        /// The succeeding run's log row.
        log: Option<TaskLog>,
    },
    /// It ran out of attempts or failed permanently; `error` is the last run's error.
    Failed {
        /// The last error.
        error: Option<String>,
        /// The task's row, still kept for a reset after the fix.
        task: Box<TaskRecord>,
    },
    /// An operator cancelled it.
    Cancelled {
        /// The task's row.
        task: Box<TaskRecord>,
    },
    /// Its row was deleted before any run succeeded (`taskrow delete`, [`Client::delete`]).
    Deleted,
}

impl TaskEnd {
    /// Whether a run succeeded.
    pub fn succeeded(&self) -> bool {
        matches!(self, TaskEnd::Succeeded { .. })
    }
}

impl fmt::Display for TaskEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskEnd::Succeeded { .. } => f.write_str("succeeded"),
            TaskEnd::Failed { error: Some(e), .. } => write!(f, "failed: {e}"),
            TaskEnd::Failed { error: None, .. } => f.write_str("failed"),
            TaskEnd::Cancelled { .. } => f.write_str("cancelled"),
            TaskEnd::Deleted => f.write_str("deleted"),
        }
    }
}

/// The first pause between two looks; it doubles up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(5);
/// The longest pause between two looks.
const MAX_POLL: Duration = Duration::from_millis(250);

impl Client {
    /// Waits until the task named by code, id or record has ended, and answers how: succeeded
    /// (also when success deleted its row: the log says so), failed (with its error), cancelled,
    /// or deleted. A pending task waiting for a retry has not ended; waiting goes on through
    /// its retries.
    ///
    /// Looks at the task with a pause that grows from 5 ms to 250 ms, so a long wait costs
    /// about four reads a second. Fails with [`Error::WaitTimeout`] when `timeout` passes
    /// first (the task is left as it is), and with [`Error::NotFound`] when no task or log row
    /// has this code or id.
    ///
    /// `timeout` is real time, not the client's clock: a [`crate::ManualClock`] in a test does
    /// not make it pass.
    pub async fn wait(&self, task: impl Into<TaskRef>, timeout: Duration) -> Result<TaskEnd> {
        let target = task.into();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = FIRST_POLL;
        // The row's id once seen: a code may be reused by a new task after this one's row is
        // gone, so the row and the log are read by id from then on.
        let mut seen = None;
        loop {
            let looked_up = match seen {
                Some(id) => TaskRef::Id(id),
                None => target.clone(),
            };
            let last_state = match self.store().get(&looked_up).await {
                Ok(record) => {
                    let row = record.id;
                    seen = Some(row);
                    match ended(record) {
                        Ok(TaskEnd::Succeeded { .. }) => {
                            // Kept on success: the log row of the succeeding run.
                            let logs = self.store().logs(&LogFilter::task(row)).await?;
                            let log = logs.into_iter().rfind(|l| l.outcome == Outcome::Succeeded);
                            return Ok(TaskEnd::Succeeded { log });
                        }
                        Ok(end) => return Ok(end),
                        Err(state) => state.as_str().to_owned(),
                    }
                }
                Err(Error::NotFound(_)) => return self.gone(&target, seen).await,
                Err(e) => return Err(e),
            };
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Error::WaitTimeout {
                    task: target,
                    timeout,
                    state: last_state,
                });
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    /// The end of a task whose row is gone (`seen`: its id, if this wait saw the row): its
    /// last log row says whether a run succeeded.
    async fn gone(&self, target: &TaskRef, seen: Option<i64>) -> Result<TaskEnd> {
        let filter = match (seen, target) {
            (Some(id), _) | (None, &TaskRef::Id(id)) => LogFilter::task(id),
            (None, TaskRef::Code(code)) => LogFilter::code(code.clone()),
        };
        let logs = self.store().logs(&filter).await?;
        // By code with no row seen: of the tasks that had this code, the latest is meant.
        let latest = logs.iter().map(|l| l.task_id).max();
        let last = logs.into_iter().rfind(|l| Some(l.task_id) == latest);
        match last {
            Some(log) if log.outcome == Outcome::Succeeded => {
                Ok(TaskEnd::Succeeded { log: Some(log) })
            }
            Some(_) => Ok(TaskEnd::Deleted),
            None if seen.is_some() => Ok(TaskEnd::Deleted),
            None => Err(Error::NotFound(target.clone())),
        }
    }
}

/// The end a row shows, or the state it is still in.
fn ended(record: TaskRecord) -> std::result::Result<TaskEnd, TaskState> {
    match record.state {
        TaskState::Succeeded => Ok(TaskEnd::Succeeded { log: None }),
        TaskState::Failed => Ok(TaskEnd::Failed {
            error: record.last_error.clone(),
            task: Box::new(record),
        }),
        TaskState::Cancelled => Ok(TaskEnd::Cancelled {
            task: Box::new(record),
        }),
        state @ (TaskState::Pending | TaskState::Running) => Err(state),
    }
}
