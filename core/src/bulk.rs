//! Cancel or delete every task matching a [`TaskFilter`], one guarded write per task, with the
//! single-task operation's refusals reported instead of stopping the batch.
//!
//! Each task goes through [`TaskStore::cancel`] or [`TaskStore::delete`] itself, so a bulk
//! operation keeps exactly their semantics (a cancel marks a task running under a live lease,
//! whose worker then stops it, and a delete refuses and skips it; a lost run is logged). It is not one transaction: tasks that change meanwhile are
//! judged as they are when their turn comes, and a task inserted behind the walk may be missed.

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::record::{CancelAction, TaskRecord, TaskState};
use crate::store::{ListedRow, Page, TaskFilter, TaskRef, TaskStore};

/// Rows read per page while walking the matching tasks.
const WALK_PAGE: u64 = 500;

/// What a bulk operation does to each matching task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BulkAction {
    /// [`TaskStore::cancel`].
    Cancel,
    /// [`TaskStore::delete`].
    Delete,
}

/// A matching task a bulk operation left alone, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Skipped {
    /// Row id.
    pub id: i64,
    /// The task's code.
    pub code: String,
    /// Why: the single-task operation's refusal (running under a live lease, succeeded,
    /// already cancelled, a row that cannot be read).
    pub reason: String,
}

/// What a bulk operation did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct BulkReport {
    /// The tasks changed (cancelled: as they are now; deleted: as they were), in id order. In a
    /// dry run, the tasks that would change, as they are.
    pub done: Vec<TaskRecord>,
    /// The matching tasks left alone, in id order.
    pub skipped: Vec<Skipped>,
}

/// Applies `action` to every task matching `filter` at `now`, walking them in id order; with
/// `dry_run`, changes nothing and reports what would happen (judged by
/// [`TaskRecord::check_cancel`] / [`TaskRecord::check_delete`]). Refusals
/// ([`Error::Running`], [`Error::Succeeded`], [`Error::CorruptRow`], [`Error::WrongState`])
/// and rows the store cannot read are [`BulkReport::skipped`]; a task gone meanwhile is left
/// out; any other error ends the walk and is returned (the tasks already done stay done).
pub async fn apply_matching(
    store: &dyn TaskStore,
    action: BulkAction,
    filter: &TaskFilter,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<BulkReport> {
    let mut report = BulkReport::default();
    let mut page = Page::first(WALK_PAGE);
    loop {
        let rows = store.list_rows(filter, &page).await?;
        for row in &rows {
            let task = match row {
                ListedRow::Task(t) => t,
                ListedRow::Unreadable(u) => {
                    report.skipped.push(Skipped {
                        id: u.id,
                        code: u.code.clone(),
                        reason: format!("the row cannot be read: {}", u.reason),
                    });
                    continue;
                }
            };
            let skip = |reason: String| Skipped {
                id: task.id,
                code: task.code.clone(),
                reason,
            };
            let verdict = if dry_run {
                match action {
                    BulkAction::Cancel => match task.check_cancel(now) {
                        Ok(CancelAction::Cancel | CancelAction::Mark) => Ok(Some((**task).clone())),
                        Ok(CancelAction::Nothing) => Ok(None),
                        Err(e) => Err(e),
                    },
                    BulkAction::Delete => task.check_delete(now).map(|()| Some((**task).clone())),
                }
            } else {
                let target = TaskRef::Id(task.id);
                match action {
                    BulkAction::Cancel => match task.check_cancel(now) {
                        Ok(CancelAction::Nothing) => Ok(None),
                        _ => store.cancel(&target, now).await.map(Some),
                    },
                    BulkAction::Delete => store.delete(&target, now).await.map(Some),
                }
            };
            match verdict {
                Ok(Some(t)) => report.done.push(t),
                Ok(None) => report
                    .skipped
                    .push(skip(if task.state == TaskState::Running {
                        "its cancel is requested already".to_owned()
                    } else {
                        "already cancelled".to_owned()
                    })),
                Err(
                    e @ (Error::Running { .. }
                    | Error::Succeeded(_)
                    | Error::CorruptRow { .. }
                    | Error::WrongState { .. }),
                ) => report.skipped.push(skip(e.to_string())),
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        match rows.last() {
            Some(last) if rows.len() as u64 == page.limit => {
                page = Page::after(last.id(), WALK_PAGE);
            }
            _ => return Ok(report),
        }
    }
}
