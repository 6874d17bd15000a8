//! The batch claim on MySQL: one short `READ COMMITTED` transaction that selects the due ids
//! `ORDER BY run_at, id LIMIT n FOR UPDATE SKIP LOCKED`, marks them claimed with
//! `UPDATE … WHERE id IN (…)`, and reads them back (MySQL has no `UPDATE … RETURNING`).
//!
//! `SKIP LOCKED` makes concurrent claimers pass over each other's rows instead of waiting;
//! `READ COMMITTED` keeps InnoDB from taking gap locks that would make a second claimer see no
//! rows although due rows exist.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect};
use taskrow::ClaimRequest;
use taskrow_sql::Dialect;
use taskrow_sql::claim::{due_ids, in_order, mark_claimed};
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
        let ids: Vec<i64> = due_ids(req, now)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .into_tuple()
            .all(&*txn)
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        mark_claimed(&ids, &req.worker, now, until)
            .exec(&*txn)
            .await?;
        let rows = task::Entity::find()
            .filter(task::Column::Id.is_in(ids.iter().copied()))
            .all(&*txn)
            .await?;
        Ok(in_order(&ids, rows))
    }
    .await;
    txn.end(claimed).await
}
