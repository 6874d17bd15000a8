//! The worker registry operations of [`SqlStore`]: a beat (insert or replace the worker's row),
//! listing, removal at shutdown, and the bounded prune of rows long gone.

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use taskrow::Result;
use taskrow::registry::{WorkerBeat, WorkerRecord};

use super::{Fail, SqlStore};
use crate::dialect::Dialect;
use crate::entity::worker;
use crate::time::sql;

impl<D: Dialect> SqlStore<D> {
    pub(super) async fn beat_worker_sql(&self, beat: &WorkerBeat) -> Result<()> {
        beat.validate()?;
        let row = worker::ActiveModel {
            worker_id: Set(beat.id.clone()),
            host: Set(beat.host.clone()),
            pid: Set(i64::from(beat.pid)),
            queues: Set(beat.queues_text()),
            concurrency: Set(i32::try_from(beat.concurrency).unwrap_or(i32::MAX)),
            running: Set(i32::try_from(beat.running).unwrap_or(i32::MAX)),
            version: Set(beat.version.clone()),
            started_at: Set(sql(beat.started_at)),
            last_beat: Set(sql(beat.now)),
            stale_at: Set(sql(beat.stale_at)),
        };
        let row = &row;
        // One statement (insert, or replace on the id): concurrent beats of one id leave one
        // row, on every database, without a transaction.
        self.retrying(|| async move {
            worker::Entity::insert(row.clone())
                .on_conflict(
                    OnConflict::column(worker::Column::WorkerId)
                        .update_columns([
                            worker::Column::Host,
                            worker::Column::Pid,
                            worker::Column::Queues,
                            worker::Column::Concurrency,
                            worker::Column::Running,
                            worker::Column::Version,
                            worker::Column::StartedAt,
                            worker::Column::LastBeat,
                            worker::Column::StaleAt,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(&self.db)
                .await?;
            Ok(())
        })
        .await
    }

    pub(super) async fn workers_sql(&self, now: DateTime<Utc>) -> Result<Vec<WorkerRecord>> {
        let rows = worker::Entity::find()
            .order_by_asc(worker::Column::WorkerId)
            .all(&self.db)
            .await
            .map_err(|e| self.error(Fail::Db(e)))?;
        Ok(rows.into_iter().map(|r| r.into_record(now)).collect())
    }

    pub(super) async fn remove_worker_sql(&self, id: &str) -> Result<bool> {
        self.retrying(|| async move {
            let n = worker::Entity::delete_many()
                .filter(worker::Column::WorkerId.eq(id))
                .exec(&self.db)
                .await?
                .rows_affected;
            Ok(n > 0)
        })
        .await
    }

    pub(super) async fn prune_workers_sql(
        &self,
        gone_before: DateTime<Utc>,
        limit: u64,
    ) -> Result<u64> {
        if limit == 0 {
            return Ok(0);
        }
        let before = sql(gone_before);
        self.retrying(|| async move {
            // Bounded without `DELETE … LIMIT` (PostgreSQL has none): read the ids, then
            // delete those still gone. A row beaten since the read no longer matches and stays.
            let ids: Vec<String> = worker::Entity::find()
                .select_only()
                .column(worker::Column::WorkerId)
                .filter(worker::Column::StaleAt.lt(before))
                .order_by_asc(worker::Column::StaleAt)
                .order_by_asc(worker::Column::WorkerId)
                .limit(limit)
                .into_tuple()
                .all(&self.db)
                .await?;
            if ids.is_empty() {
                return Ok(0);
            }
            let n = worker::Entity::delete_many()
                .filter(worker::Column::WorkerId.is_in(ids))
                .filter(worker::Column::StaleAt.lt(before))
                .exec(&self.db)
                .await?
                .rows_affected;
            Ok(n)
        })
        .await
    }
}
