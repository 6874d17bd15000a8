//! The batch claim, shared by every dialect: which rows are due, what a claim writes, and how
//! it settles the runs of lost workers on the way. A dialect supplies the two steps that differ
//! ([`crate::Dialect::read_due`], [`crate::Dialect::take_due`]); [`claim`] runs them in one
//! write transaction.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Select, UpdateMany,
};
use taskrow::{ClaimRequest, Priority, TaskLog, TaskRecord, TaskState};

use crate::dialect::{Dialect, WriteTxn};
use crate::entity::task::Column;
use crate::entity::{queue, task, task_log};
use crate::time::sql;

/// What a claim writes on every row it takes: the lease owner and expiry, the claim's fencing
/// token and its time. All times in stored form ([`crate::time::stored`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claim {
    /// The claiming worker (the lease owner).
    pub worker: String,
    /// The claim's time (`claimed_at`, `updated_at`).
    pub now: DateTime<Utc>,
    /// The lease expiry.
    pub until: DateTime<Utc>,
    /// The claim's fencing token ([`taskrow::record::new_claim_token`]), one for every row
    /// of the claim.
    pub token: i64,
    /// Whether the claim's reads leave out the paused queues themselves (a subquery of
    /// `taskrow_queue`, [`crate::Dialect::PAUSED_IN_READ`]), so that [`claim`] reads no list of
    /// them first.
    pub paused_in_read: bool,
    /// The paused queues whose tasks the claim leaves alone (read by [`claim`] in its
    /// transaction).
    pub paused: Vec<String>,
}

impl Claim {
    /// A claim by `worker` at `now`, leased until `until`, under a new fencing token.
    pub fn new(worker: impl Into<String>, now: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        Self {
            worker: worker.into(),
            now,
            until,
            token: taskrow::record::new_claim_token(),
            paused: Vec::new(),
            paused_in_read: false,
        }
    }
}

/// A due row as a claim's read ([`crate::Dialect::read_due`]) found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Row id.
    pub id: i64,
    /// [`TaskState::code`]: pending, or running (under an expired lease, since it is due).
    pub state: i16,
    /// The whole row, when the dialect read it whole (MySQL, which cannot return rows from
    /// its `UPDATE`). [`claim`] reads the rows running under an expired lease itself when the
    /// dialect did not.
    pub row: Option<task::Model>,
    /// The row as the claim left it, when the dialect's read claimed it already: PostgreSQL
    /// claims the pending rows in the statement that finds them (a pending row has no lost
    /// run to settle). `None` for the rows [`crate::Dialect::take_due`] still has to take.
    pub claimed: Option<task::Model>,
}

impl Due {
    /// A row read whole.
    pub fn whole(row: task::Model) -> Self {
        Self {
            id: row.id,
            state: row.state,
            row: Some(row),
            claimed: None,
        }
    }

    /// A row known by its id and state only.
    pub fn id_and_state(id: i64, state: i16) -> Self {
        Self {
            id,
            state,
            row: None,
            claimed: None,
        }
    }

    /// A pending row, `found` as read, that the read claimed already: `claimed` is the row
    /// after the claim.
    pub fn claimed(found: task::Model, claimed: task::Model) -> Self {
        Self {
            claimed: Some(claimed),
            ..Self::whole(found)
        }
    }

    fn running(&self) -> bool {
        self.state == TaskState::Running.code()
    }
}

/// The rows `claim` may take: pending tasks due by its `now` and running tasks whose lease
/// expired by then (finished rows have a `NULL` `run_at`), of the requested biz types, task
/// types and queues, but none of the excluded ids nor of the claim's paused queues.
///
/// `priority IN (<every level>)` changes no result but lets the databases read the claim index
/// `(priority, run_at, id)` as one range per level, in index order (see the queues migration).
pub fn due_condition(req: &ClaimRequest, claim: &Claim) -> Condition {
    let mut c = Condition::all();
    if !req.queues.is_empty() {
        c = c.add(Column::Queue.is_in(req.queues.iter().cloned()));
    }
    c = c
        .add(Column::Priority.is_in(Priority::ALL.map(Priority::code)))
        .add(Column::RunAt.lte(sql(claim.now)))
        .add(Column::State.is_in([TaskState::Pending.code(), TaskState::Running.code()]));
    if !claim.paused.is_empty() {
        c = c.add(Column::Queue.is_not_in(claim.paused.iter().cloned()));
    }
    if claim.paused_in_read {
        c = c.add(
            Column::Queue.not_in_subquery(
                Query::select()
                    .column(queue::Column::Name)
                    .from(queue::Entity)
                    .and_where(Expr::col(queue::Column::Paused).eq(true))
                    .to_owned(),
            ),
        );
    }
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

/// `SELECT id, state … WHERE <due> ORDER BY priority, run_at, id LIMIT <limit>`: the rows a
/// claim takes, highest priority first, then oldest due. Read it with
/// `.into_tuple::<(i64, i16)>()`; a dialect adds its row locking.
pub fn due_ids(req: &ClaimRequest, claim: &Claim, limit: usize) -> Select<task::Entity> {
    due_rows(req, claim, limit)
        .select_only()
        .column(Column::Id)
        .column(Column::State)
}

/// `SELECT * … WHERE <due> ORDER BY priority, run_at, id LIMIT <limit>`: the rows a claim
/// takes, highest priority first, then oldest due, whole (for a dialect that cannot return
/// them from its `UPDATE` and locks them in this read instead); a dialect adds its row locking.
pub fn due_rows(req: &ClaimRequest, claim: &Claim, limit: usize) -> Select<task::Entity> {
    task::Entity::find()
        .filter(due_condition(req, claim))
        .order_by_asc(Column::Priority)
        .order_by_asc(Column::RunAt)
        .order_by_asc(Column::Id)
        .limit(u64::try_from(limit).unwrap_or(u64::MAX))
}

/// `row` as [`mark_claimed`] leaves it: running, one more attempt and version, the claim's
/// owner, expiry (in `run_at`), token and time, updated at the claim's time. For a row locked
/// since it was read, so that the `UPDATE` saw the same values.
pub fn as_claimed(row: task::Model, claim: &Claim) -> task::Model {
    task::Model {
        state: TaskState::Running.code(),
        attempts: row.attempts.saturating_add(1),
        version: row.version + 1,
        lease_owner: Some(claim.worker.clone()),
        due_at: row.run_at,
        run_at: Some(sql(claim.until)),
        claim_token: Some(claim.token),
        claimed_at: Some(sql(claim.now)),
        cancel_requested_at: None,
        updated_at: sql(claim.now),
        ..row
    }
}

/// `UPDATE … SET state = running, attempts + 1, version + 1, lease owner, lease expiry, claim
/// token, claimed at WHERE <filter>`: the claim's write, for the caller to narrow to the rows
/// it may take.
pub fn claim_update(claim: &Claim) -> UpdateMany<task::Entity> {
    task::Entity::update_many()
        .col_expr(Column::State, Expr::value(TaskState::Running.code()))
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .col_expr(Column::Version, Expr::col(Column::Version).add(1))
        .col_expr(Column::LeaseOwner, Expr::value(claim.worker.clone()))
        // Before `run_at` changes: MySQL assigns left to right, seeing earlier assignments;
        // SQLite and PostgreSQL read the row as it was.
        .col_expr(Column::DueAt, Expr::col(Column::RunAt))
        .col_expr(Column::RunAt, Expr::value(sql(claim.until)))
        .col_expr(Column::ClaimToken, Expr::value(claim.token))
        .col_expr(Column::ClaimedAt, Expr::value(sql(claim.now)))
        .col_expr(
            Column::CancelRequestedAt,
            Expr::value(Option::<chrono::NaiveDateTime>::None),
        )
        .col_expr(Column::UpdatedAt, Expr::value(sql(claim.now)))
}

/// [`claim_update`] `WHERE id IN (<ids>)`: the claim of rows the caller has made sure it may
/// take.
pub fn mark_claimed(ids: &[i64], claim: &Claim) -> UpdateMany<task::Entity> {
    claim_update(claim).filter(Column::Id.is_in(ids.iter().copied()))
}

/// `UPDATE … SET state = failed, last_error = <why>, run_at = NULL, version + 1, updated_at =
/// now WHERE id = ? AND version = ?`: `found`, running under an expired lease at its last
/// attempt, fails because its worker was lost ([`TaskLog::worker_lost_failure`]); guarded by
/// the version it was found with.
pub fn fail_lost_run(found: &TaskRecord, now: DateTime<Utc>) -> UpdateMany<task::Entity> {
    settle_lost_run(
        found,
        now,
        TaskState::Failed,
        TaskLog::worker_lost_failure(found),
    )
}

/// `UPDATE … SET state = <state>, last_error = <why>, run_at = NULL, version + 1, updated_at =
/// now WHERE id = ? AND version = ?`: the end of a lost run's task.
fn settle_lost_run(
    found: &TaskRecord,
    now: DateTime<Utc>,
    state: TaskState,
    why: String,
) -> UpdateMany<task::Entity> {
    task::Entity::update_many()
        .col_expr(Column::State, Expr::value(state.code()))
        .col_expr(Column::LastError, Expr::value(why))
        .col_expr(
            Column::RunAt,
            Expr::value(Option::<chrono::NaiveDateTime>::None),
        )
        .col_expr(Column::Version, Expr::col(Column::Version).add(1))
        .col_expr(Column::UpdatedAt, Expr::value(sql(now)))
        .filter(Column::Id.eq(found.id))
        .filter(Column::Version.eq(found.version))
}

/// `UPDATE … SET state = cancelled, last_error = <why>, run_at = NULL, version + 1, updated_at
/// = now WHERE id = ? AND version = ?`: `found`, running under an expired lease with a cancel
/// requested, is cancelled because its worker was lost before it stopped the run
/// ([`TaskLog::worker_lost_cancelled_error`]); guarded by the version it was found with.
pub fn cancel_lost_run(found: &TaskRecord, now: DateTime<Utc>) -> UpdateMany<task::Entity> {
    settle_lost_run(
        found,
        now,
        TaskState::Cancelled,
        TaskLog::worker_lost_cancelled_error(found),
    )
}

/// `rows` in the order of `ids` (rows whose id is not listed are dropped).
pub fn in_order(ids: &[i64], rows: Vec<task::Model>) -> Vec<task::Model> {
    let mut by_id: HashMap<i64, task::Model> = rows.into_iter().map(|r| (r.id, r)).collect();
    ids.iter().filter_map(|id| by_id.remove(id)).collect()
}

/// The batch claim of [`taskrow::TaskStore::claim`] on `txn`, a write transaction of
/// `dialect`: reads up to `req.limit` due rows ([`crate::Dialect::read_due`]), settles the lost
/// runs among them ([`settle_lost_runs`]), takes the rest ([`crate::Dialect::take_due`]; the
/// rows the read claimed already need no taking), and reads again for the places the failed
/// ones left, until the limit is reached or nothing more is due. Returns the claimed rows as
/// stored after the claim, in claim order (priority, due time, id) within each read.
///
/// Every read leaves out the rows read before (a zero lease would make the rows just claimed
/// due again), and every read after the first follows one that failed at least one row, so
/// the reads end.
///
/// The paused queues are read first, in the same transaction (or, where the dialect says so,
/// by each read itself), and left out of every read: a
/// pause committed before the claim began is honoured by it.
pub async fn claim<D: Dialect>(
    dialect: &D,
    txn: &WriteTxn,
    req: &ClaimRequest,
    claim: &Claim,
) -> Result<Vec<task::Model>, DbErr> {
    let mut claimed = Vec::new();
    let mut req = req.clone();
    let mut claim = claim.clone();
    if D::PAUSED_IN_READ {
        claim.paused_in_read = true;
    } else {
        let paused: Vec<String> = queue::Entity::find()
            .select_only()
            .column(queue::Column::Name)
            .filter(queue::Column::Paused.eq(true))
            .into_tuple()
            .all(&**txn)
            .await?;
        if req.queues.is_empty() {
            claim.paused = paused;
        } else {
            req.queues.retain(|q| !paused.contains(q));
            if req.queues.is_empty() {
                return Ok(claimed);
            }
        }
    }
    let claim = &claim;
    while claimed.len() < req.limit {
        let want = req.limit - claimed.len();
        let due = dialect.read_due(txn, &req, claim, want).await?;
        let read = due.len();
        req.exclude_ids.extend(due.iter().map(|d| d.id));
        let (take, failed) = settle_lost_runs(&**txn, due, claim.now).await?;
        claimed.extend(take_rest(dialect, txn, take, claim).await?);
        if failed == 0 || read < want {
            break;
        }
    }
    Ok(claimed)
}

/// The rows of `due` after the claim, in its order: those the read claimed already as they
/// are, the others taken by [`crate::Dialect::take_due`].
async fn take_rest<D: Dialect>(
    dialect: &D,
    txn: &WriteTxn,
    due: Vec<Due>,
    claim: &Claim,
) -> Result<Vec<task::Model>, DbErr> {
    if due.iter().all(|d| d.claimed.is_some()) {
        return Ok(due.into_iter().filter_map(|d| d.claimed).collect());
    }
    if due.iter().all(|d| d.claimed.is_none()) {
        return dialect.take_due(txn, due, claim).await;
    }
    let order: Vec<i64> = due.iter().map(|d| d.id).collect();
    let (done, rest): (Vec<Due>, Vec<Due>) = due.into_iter().partition(|d| d.claimed.is_some());
    let mut rows: Vec<task::Model> = done.into_iter().filter_map(|d| d.claimed).collect();
    rows.extend(dialect.take_due(txn, rest, claim).await?);
    Ok(in_order(&order, rows))
}

/// Settles the runs of lost workers among `due`, the rows a claim at `now` read (locked, or
/// under SQLite's one writer): each row running under an expired lease gets its
/// [`TaskLog::worker_lost`] row (under that run's claim token); one at its last attempt
/// becomes failed ([`TaskLog::worker_lost_failure`], no due time, version + 1), and one with a
/// cancel requested becomes cancelled ([`TaskLog::worker_lost_cancelled`]). Returns the rows
/// still to take, in their order, and how many were failed or cancelled.
///
/// A running row this version cannot read is taken as it is: the claim's caller fails it as
/// unreadable, and its lost run goes unlogged.
pub async fn settle_lost_runs<C: ConnectionTrait>(
    conn: &C,
    mut due: Vec<Due>,
    now: DateTime<Utc>,
) -> Result<(Vec<Due>, usize), DbErr> {
    // The whole rows of the running ones, where the dialect read ids only.
    let missing: Vec<i64> = due
        .iter()
        .filter(|d| d.running() && d.row.is_none())
        .map(|d| d.id)
        .collect();
    if !missing.is_empty() {
        let mut rows: HashMap<i64, task::Model> = task::Entity::find()
            .filter(Column::Id.is_in(missing))
            .all(conn)
            .await?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        for d in due.iter_mut().filter(|d| d.running() && d.row.is_none()) {
            d.row = rows.remove(&d.id);
        }
    }
    let mut logs = Vec::new();
    let mut failed = HashSet::new();
    for d in due.iter().filter(|d| d.running()) {
        let Some(found) = d.row.clone().and_then(|r| r.into_record().ok()) else {
            continue;
        };
        if !found.lease_expired_at(now) {
            continue;
        }
        let cancel = found.cancel_requested_at.is_some();
        let last = !cancel && found.attempts_exhausted();
        logs.push(task_log::Model::from_log(&if cancel {
            TaskLog::worker_lost_cancelled(0, &found, now)
        } else {
            TaskLog::worker_lost(0, &found, now, last)
        }));
        if last || cancel {
            let settle = if cancel {
                cancel_lost_run(&found, now)
            } else {
                fail_lost_run(&found, now)
            };
            let n = settle.exec(conn).await?.rows_affected;
            if n != 1 {
                // The row is locked (or the writer held) since it was read: this cannot
                // happen. Should it, claim nothing rather than act on a stale row.
                return Err(DbErr::Custom(format!(
                    "the claim read task {} but could not settle its lost run",
                    d.id
                )));
            }
            failed.insert(d.id);
        }
    }
    if !logs.is_empty() {
        task_log::Entity::insert_many(logs)
            .exec_without_returning(conn)
            .await?;
    }
    let n = failed.len();
    due.retain(|d| !failed.contains(&d.id));
    Ok((due, n))
}
