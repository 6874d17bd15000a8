//! The batch claim's steps on MySQL (run by `taskrow_sql::claim::claim` in one short
//! `READ COMMITTED` transaction): select the due rows whole,
//! `ORDER BY priority, run_at, id LIMIT n FOR UPDATE SKIP LOCKED`, and mark them claimed with
//! `UPDATE … WHERE id IN (…)`. MySQL has no `UPDATE … RETURNING`; the rows are locked from the
//! read to the commit, so the claimed rows are the ones read with the `UPDATE`'s changes made
//! in memory (`as_claimed`), without reading them again. The whole rows also serve the
//! settling of lost runs, which needs the rows as found.
//!
//! `SKIP LOCKED` makes concurrent claimers pass over each other's rows instead of waiting;
//! `READ COMMITTED` keeps InnoDB from taking gap locks that would make a second claimer see no
//! rows although due rows exist.

use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{DbErr, QuerySelect};
use taskrow::ClaimRequest;
use taskrow_sql::WriteTxn;
use taskrow_sql::claim::{Claim, Due, as_claimed, due_rows, mark_claimed};
use taskrow_sql::entity::task;

/// Reads up to `limit` due rows whole, locked (`FOR UPDATE SKIP LOCKED`).
pub(crate) async fn read_due(
    txn: &WriteTxn,
    req: &ClaimRequest,
    claim: &Claim,
    limit: usize,
) -> Result<Vec<Due>, DbErr> {
    let rows = due_rows(req, claim, limit)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .all(&**txn)
        .await?;
    Ok(rows.into_iter().map(Due::whole).collect())
}

/// Marks the locked rows claimed and returns them as the `UPDATE` left them.
pub(crate) async fn take_due(
    txn: &WriteTxn,
    due: Vec<Due>,
    claim: &Claim,
) -> Result<Vec<task::Model>, DbErr> {
    let ids: Vec<i64> = due.iter().map(|d| d.id).collect();
    let marked = mark_claimed(&ids, claim).exec(&**txn).await?.rows_affected;
    if marked != ids.len() as u64 {
        // The rows are locked since the read: this cannot happen. Should it, the rows read
        // are not what the update changed; claim nothing rather than run stale rows.
        return Err(DbErr::Custom(format!(
            "the claim locked {} rows but updated {marked}",
            ids.len()
        )));
    }
    due.into_iter()
        .map(|d| match d.row {
            Some(row) => Ok(as_claimed(row, claim)),
            None => Err(DbErr::Custom(format!(
                "the claim read task {} without its row",
                d.id
            ))),
        })
        .collect()
}
