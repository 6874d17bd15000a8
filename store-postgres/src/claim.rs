//! The batch claim's steps on PostgreSQL (run by `taskrow_sql::claim::claim` in one short
//! `READ COMMITTED` transaction). The read claims as it reads, in one statement:
//!
//! ```sql
//! WITH taskrow_due AS (
//!     SELECT <every column> FROM taskrow_task WHERE <due>
//!     ORDER BY priority, run_at, id LIMIT $n FOR UPDATE SKIP LOCKED),
//! taskrow_taken AS (
//!     UPDATE taskrow_task SET <the claim>
//!     WHERE id IN (SELECT id FROM taskrow_due WHERE state = <pending>) RETURNING id)
//! SELECT *, (SELECT COUNT(*) FROM taskrow_taken) AS taskrow_taken
//! FROM taskrow_due ORDER BY priority, run_at, id
//! ```
//!
//! The due rows are locked and read whole (as locked: under `READ COMMITTED` a row changed
//! since the statement's snapshot is read as it is now, or skipped if no longer due); the
//! pending ones are claimed by the same statement, and come back as the `UPDATE` left them
//! (`as_claimed`: the rows stay locked, so the update saw what was read). The running ones —
//! lost runs, under an expired lease — are only locked: they are settled first (logged, and
//! failed at their last attempt) by the shared code, and the rest taken with one
//! `UPDATE … WHERE id IN (…) RETURNING *`, in the same transaction.
//!
//! `SKIP LOCKED` makes concurrent claimers pass over each other's rows instead of waiting. The
//! `LIMIT` sits in the locking read, so a claim locks at most the rows it takes.

use sea_orm::sea_query::{
    Asterisk, CommonTableExpression, Expr, ExprTrait, LockBehavior, LockType, Order,
    PostgresQueryBuilder, Query, WithClause,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, FromQueryResult, QueryFilter, QuerySelect,
    QueryTrait, Statement,
};
use taskrow::{ClaimRequest, TaskState};
use taskrow_sql::WriteTxn;
use taskrow_sql::claim::{Claim, Due, as_claimed, claim_update, due_rows, in_order, mark_claimed};
use taskrow_sql::entity::task::{self, Column};

/// The name of the locked due rows in the claim statement.
const DUE: &str = "taskrow_due";
/// The name of the claimed ids in the claim statement, and of the column counting them.
const TAKEN: &str = "taskrow_taken";

/// The claim statement (see the module's docs): up to `limit` due rows locked and read whole,
/// the pending ones among them claimed as `claim` says.
pub(crate) fn claim_statement(req: &ClaimRequest, claim: &Claim, limit: usize) -> Statement {
    let read = due_rows(req, claim, limit)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .into_query();
    let pending = Query::select()
        .column(Column::Id)
        .from(DUE)
        .and_where(Expr::col(Column::State).eq(TaskState::Pending.code()))
        .to_owned();
    let mut take = claim_update(claim)
        .filter(Column::Id.in_subquery(pending))
        .into_query();
    take.returning_col(Column::Id);
    let with = WithClause::new()
        .cte(
            CommonTableExpression::new()
                .query(read)
                .table_name(DUE)
                .to_owned(),
        )
        .cte(
            CommonTableExpression::new()
                .query(take)
                .table_name(TAKEN)
                .to_owned(),
        )
        .to_owned();
    let (sql, values) = Query::select()
        .column(Asterisk)
        .expr_as(Expr::cust(format!("(SELECT COUNT(*) FROM {TAKEN})")), TAKEN)
        .from(DUE)
        .order_by(Column::Priority, Order::Asc)
        .order_by(Column::RunAt, Order::Asc)
        .order_by(Column::Id, Order::Asc)
        .to_owned()
        .with(with)
        .build(PostgresQueryBuilder);
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// Locks and reads up to `limit` due rows whole, claiming the pending ones (see the module's
/// docs); the running ones come back as found, for the settling of lost runs.
pub(crate) async fn read_due(
    txn: &WriteTxn,
    req: &ClaimRequest,
    claim: &Claim,
    limit: usize,
) -> Result<Vec<Due>, DbErr> {
    let rows = txn
        .query_all_raw(claim_statement(req, claim, limit))
        .await?;
    let mut due = Vec::with_capacity(rows.len());
    let mut taken = 0;
    for row in &rows {
        taken = row.try_get::<i64>("", TAKEN)?;
        let found = task::Model::from_query_result(row, "")?;
        due.push(if found.state == TaskState::Pending.code() {
            let claimed = as_claimed(found.clone(), claim);
            Due::claimed(found, claimed)
        } else {
            Due::whole(found)
        });
    }
    let pending = due.iter().filter(|d| d.claimed.is_some()).count();
    if usize::try_from(taken).ok() != Some(pending) {
        // The rows are locked by the read that the update follows: this cannot happen. Should
        // it, the rows read are not what the update changed; claim nothing rather than run
        // stale rows.
        return Err(DbErr::Custom(format!(
            "the claim locked {pending} pending rows but updated {taken}"
        )));
    }
    Ok(due)
}

/// Marks the locked rows (runs of lost workers, settled) claimed and returns them, in the order
/// read, from `UPDATE … RETURNING *`.
pub(crate) async fn take_due(
    txn: &WriteTxn,
    due: Vec<Due>,
    claim: &Claim,
) -> Result<Vec<task::Model>, DbErr> {
    let ids: Vec<i64> = due.iter().map(|d| d.id).collect();
    let rows = mark_claimed(&ids, claim)
        .exec_with_returning(&**txn)
        .await?;
    Ok(in_order(&ids, rows))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn one_statement_reads_locks_and_claims() {
        let now = "2026-01-01T00:00:00Z".parse().unwrap();
        let req = ClaimRequest::new("w", 10, Duration::from_secs(60), now);
        let claim = Claim::new("w", now, now);
        let sql = claim_statement(&req, &claim, 10).sql;
        for part in [
            "WITH \"taskrow_due\" AS (SELECT ",
            "ORDER BY \"taskrow_task\".\"priority\" ASC, \"taskrow_task\".\"run_at\" ASC, \"taskrow_task\".\"id\" ASC LIMIT $",
            "FOR UPDATE SKIP LOCKED)",
            "\"taskrow_taken\" AS (UPDATE \"taskrow_task\" SET ",
            "WHERE \"taskrow_task\".\"id\" IN (SELECT \"id\" FROM \"taskrow_due\" WHERE \"state\" = $",
            "RETURNING \"id\")",
            "SELECT *, (SELECT COUNT(*) FROM taskrow_taken) AS \"taskrow_taken\" FROM \"taskrow_due\"",
        ] {
            assert!(sql.contains(part), "{part}\nin\n{sql}");
        }
    }
}
