//! The batch claim on SQLite: under the store's one writer, in an immediate transaction,
//! select the due ids (oldest due first), then mark them claimed with one
//! `UPDATE … WHERE id IN (…) RETURNING *`.
//!
//! The ids are read first so the rows come back in due order (`RETURNING` gives no order, and
//! cannot see the `run_at` the claim overwrites). Nothing else writes between the two: the
//! store's writer lock keeps this process's writers out, and `BEGIN IMMEDIATE` other processes.

use chrono::{DateTime, Utc};
use sea_orm::DbErr;
use taskrow::ClaimRequest;
use taskrow_sql::Dialect;
use taskrow_sql::claim::{due_ids, in_order, mark_claimed};
use taskrow_sql::entity::task;

use crate::SqliteDialect;

pub(crate) async fn claim(
    dialect: &SqliteDialect,
    db: &sea_orm::DatabaseConnection,
    req: &ClaimRequest,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<task::Model>, DbErr> {
    let txn = dialect.begin_write(db).await?;
    let claimed = async {
        let ids: Vec<i64> = due_ids(req, now).into_tuple().all(&*txn).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = mark_claimed(&ids, &req.worker, now, until)
            .exec_with_returning(&*txn)
            .await?;
        Ok(in_order(&ids, rows))
    }
    .await;
    txn.end(claimed).await
}
