//! The batch claim on MySQL: one short `READ COMMITTED` transaction that selects the due rows
//! `ORDER BY run_at, id LIMIT n FOR UPDATE SKIP LOCKED` and marks them claimed with
//! `UPDATE … WHERE id IN (…)`. MySQL has no `UPDATE … RETURNING`; the rows are locked from the
//! read to the commit, so the claimed rows are the ones read with the `UPDATE`'s changes made
//! in memory (`as_claimed`), without reading them again.
//!
//! `SKIP LOCKED` makes concurrent claimers pass over each other's rows instead of waiting;
//! `READ COMMITTED` keeps InnoDB from taking gap locks that would make a second claimer see no
//! rows although due rows exist.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{DatabaseConnection, DbErr, QuerySelect};
use taskrow::ClaimRequest;
use taskrow_sql::Dialect;
use taskrow_sql::claim::{as_claimed, due_rows, mark_claimed};
use taskrow_sql::entity::task;

use crate::MysqlDialect;

pub(crate) async fn claim(
    dialect: &MysqlDialect,
    db: &DatabaseConnection,
    req: &ClaimRequest,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<task::Model>, DbErr> {
    let txn = dialect.begin_write(db).await?;
    let claimed = async {
        let rows = due_rows(req, now)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .all(&*txn)
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let marked = mark_claimed(&ids, &req.worker, now, until)
            .exec(&*txn)
            .await?
            .rows_affected;
        if marked != ids.len() as u64 {
            // The rows are locked since the read: this cannot happen. Should it, the rows read
            // are not what the update changed; claim nothing rather than run stale rows.
            return Err(DbErr::Custom(format!(
                "the claim locked {} rows but updated {marked}",
                ids.len()
            )));
        }
        Ok(rows
            .into_iter()
            .map(|r| as_claimed(r, &req.worker, now, until))
            .collect())
    }
    .await;
    txn.end(claimed).await
}
