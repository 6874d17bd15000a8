//! Pieces of the batch claim that every dialect shares: which rows are due, and what a claim
//! writes. Each dialect's `claim.rs` puts them together with its own locking.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select, UpdateMany,
};
use taskrow::{ClaimRequest, TaskState};

use crate::entity::task::{self, Column};
use crate::time::sql;

/// The rows a claim at `now` may take: pending tasks due by `now` and running tasks whose
/// lease expired by then (finished rows have a `NULL` `run_at`), of the requested biz types and
/// task types, but none of the excluded ids.
pub fn due_condition(req: &ClaimRequest, now: DateTime<Utc>) -> Condition {
    let mut c = Condition::all()
        .add(Column::RunAt.lte(sql(now)))
        .add(Column::State.is_in([TaskState::Pending.code(), TaskState::Running.code()]));
    if !req.biz_types.is_empty() {
        c = c.add(Column::BizType.is_in(req.biz_types.iter().cloned()));
    }
    if !req.task_types.is_empty() {
        c = c.add(Column::TaskType.is_in(req.task_types.iter().cloned()));
    }
    if !req.exclude_ids.is_empty() {
        c = c.add(Column::Id.is_not_in(req.exclude_ids.iter().copied()));
    }
    c
}

/// `SELECT id … WHERE <due> ORDER BY run_at, id LIMIT <limit>`: the ids a claim takes, oldest
/// due first. Read it with `.into_tuple::<i64>()`; a dialect adds its row locking.
pub fn due_ids(req: &ClaimRequest, now: DateTime<Utc>) -> Select<task::Entity> {
    task::Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(due_condition(req, now))
        .order_by_asc(Column::RunAt)
        .order_by_asc(Column::Id)
        .limit(u64::try_from(req.limit).unwrap_or(u64::MAX))
}

/// `SELECT * … WHERE <due> ORDER BY run_at, id LIMIT <limit>`: the rows a claim takes, oldest
/// due first, whole (for a dialect that cannot return them from its `UPDATE` and locks them in
/// this read instead); a dialect adds its row locking.
pub fn due_rows(req: &ClaimRequest, now: DateTime<Utc>) -> Select<task::Entity> {
    task::Entity::find()
        .filter(due_condition(req, now))
        .order_by_asc(Column::RunAt)
        .order_by_asc(Column::Id)
        .limit(u64::try_from(req.limit).unwrap_or(u64::MAX))
}

/// `row` as [`mark_claimed`] leaves it: running, one more attempt and version, the lease owner
/// `worker`, `run_at` the lease expiry `until`, updated `now`. For a row locked since it was
/// read, so that the `UPDATE` saw the same values.
pub fn as_claimed(
    row: task::Model,
    worker: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> task::Model {
    task::Model {
        state: TaskState::Running.code(),
        attempts: row.attempts.saturating_add(1),
        version: row.version + 1,
        lease_owner: Some(worker.to_owned()),
        run_at: Some(sql(until)),
        updated_at: sql(now),
        ..row
    }
}

/// `UPDATE … SET state = running, attempts + 1, version + 1, lease owner, lease expiry
/// WHERE id IN (<ids>)`: the claim of rows the caller has made sure it may take.
pub fn mark_claimed(
    ids: &[i64],
    worker: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> UpdateMany<task::Entity> {
    task::Entity::update_many()
        .col_expr(Column::State, Expr::value(TaskState::Running.code()))
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .col_expr(Column::Version, Expr::col(Column::Version).add(1))
        .col_expr(Column::LeaseOwner, Expr::value(worker.to_owned()))
        .col_expr(Column::RunAt, Expr::value(sql(until)))
        .col_expr(Column::UpdatedAt, Expr::value(sql(now)))
        .filter(Column::Id.is_in(ids.iter().copied()))
}

/// `rows` in the order of `ids` (rows whose id is not listed are dropped).
pub fn in_order(ids: &[i64], rows: Vec<task::Model>) -> Vec<task::Model> {
    let mut by_id: HashMap<i64, task::Model> = rows.into_iter().map(|r| (r.id, r)).collect();
    ids.iter().filter_map(|id| by_id.remove(id)).collect()
}
