//! The batch claim's steps on SQLite (run by `taskrow_sql::claim::claim` under the store's one
//! writer, in an immediate transaction): select the due ids and states (highest priority, then oldest due, first),
//! then mark them claimed with one `UPDATE … WHERE id IN (…) RETURNING *`.
//!
//! The ids are read first so the rows come back in due order (`RETURNING` gives no order, and
//! cannot see the `run_at` the claim overwrites); only the rows running under an expired lease
//! are read whole, by the shared settling of lost runs, between the two. Nothing else writes
//! meanwhile: the store's writer lock keeps this process's writers out, and `BEGIN IMMEDIATE`
//! other processes.

use sea_orm::DbErr;
use taskrow::ClaimRequest;
use taskrow_sql::WriteTxn;
use taskrow_sql::claim::{Claim, Due, due_ids, in_order, mark_claimed};
use taskrow_sql::entity::task;

/// Reads the ids and states of up to `limit` due rows.
pub(crate) async fn read_due(
    txn: &WriteTxn,
    req: &ClaimRequest,
    claim: &Claim,
    limit: usize,
) -> Result<Vec<Due>, DbErr> {
    let due: Vec<(i64, i16)> = due_ids(req, claim, limit).into_tuple().all(&**txn).await?;
    Ok(due
        .into_iter()
        .map(|(id, state)| Due::id_and_state(id, state))
        .collect())
}

/// Marks the rows claimed and returns them, in the order read, from `UPDATE … RETURNING *`.
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
