//! What a failed attempt leads to: the one place where retry policy, attempts and the
//! handler's wishes meet. Stores only apply the result.

use chrono::{DateTime, Utc};

use crate::clock::{add, truncate_micros};
use crate::error::TaskErrorKind;
use crate::record::{TaskRecord, bound_error};
use crate::retry::Jitter;
use crate::store::FinishResult;

/// The finish for a failed run of `task` (as claimed, so `task.attempts` counts this run).
///
/// Permanent errors, and failures on the last allowed attempt, fail the task; otherwise it
/// is retried at the time the handler asked for, or `now` plus the policy's delay.
pub fn failure_result(
    task: &TaskRecord,
    kind: TaskErrorKind,
    message: &str,
    now: DateTime<Utc>,
    jitter: &Jitter,
) -> FinishResult {
    let error = bound_error(message);
    if kind == TaskErrorKind::Permanent || task.attempts_exhausted() {
        return FinishResult::Failed { error };
    }
    let at = match kind {
        TaskErrorKind::RetryAt(t) => truncate_micros(t),
        TaskErrorKind::RetryAfter(d) => add(now, d),
        _ => add(now, task.retry.delay(task.attempts, jitter.next_f64())),
    };
    FinishResult::Retry {
        at: truncate_micros(at),
        error,
    }
}

/// The finish for a run of `task` stopped from outside before it ended (the worker shut down,
/// or the run's lease could not be confirmed in time): not the handler's failure, so the
/// attempt is given back and the task is due again at `now` — up to
/// [`crate::record::MAX_INTERRUPTIONS`] times. Past that bound an interruption counts as a
/// failed attempt, so that a task interrupted on every deploy still ends.
pub fn interruption_result(
    task: &TaskRecord,
    reason: &str,
    now: DateTime<Utc>,
    jitter: &Jitter,
) -> FinishResult {
    if task.interruptions < crate::record::MAX_INTERRUPTIONS || task.max_attempts.is_none() {
        return FinishResult::Interrupted {
            at: truncate_micros(now),
            error: bound_error(&format!("interrupted: {reason}; it will run again")),
        };
    }
    let message = format!(
        "interrupted: {reason}; interrupted {} times before, so this run counts as a failed attempt",
        task.interruptions
    );
    failure_result(task, TaskErrorKind::Retry, &message, now, jitter)
}
