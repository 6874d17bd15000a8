//! `taskrow_worker`: the worker registry, one row per worker id, replaced whole by each beat.

use sea_orm::entity::prelude::*;
use taskrow::registry::{WorkerBeat, WorkerRecord, queues_from_text};

use crate::time::from_sql;

/// A `taskrow_worker` row. Times are UTC, kept without a zone.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "taskrow_worker")]
pub struct Model {
    /// The worker's id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub worker_id: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: i64,
    /// Its queues, space-separated; empty: every queue.
    #[sea_orm(column_type = "Text")]
    pub queues: String,
    /// Most runs at once.
    pub concurrency: i32,
    /// Runs going on at its last beat.
    pub running: i32,
    /// The taskrow version it runs.
    pub version: String,
    /// When it started.
    pub started_at: DateTime,
    /// Its last beat.
    pub last_beat: DateTime,
    /// When the row goes stale without another beat.
    pub stale_at: DateTime,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The record of this row, judged alive or gone at `now`.
    pub fn into_record(self, now: chrono::DateTime<chrono::Utc>) -> WorkerRecord {
        let mut beat = WorkerBeat::new(
            self.worker_id,
            from_sql(self.started_at),
            from_sql(self.last_beat),
            std::time::Duration::from_secs(1),
        );
        beat.host = self.host;
        beat.pid = u32::try_from(self.pid).unwrap_or(u32::MAX);
        beat.queues = queues_from_text(&self.queues);
        beat.concurrency = u32::try_from(self.concurrency).unwrap_or(0);
        beat.running = u32::try_from(self.running).unwrap_or(0);
        beat.version = self.version;
        beat.stale_at = from_sql(self.stale_at);
        WorkerRecord::from_beat(&beat, now)
    }
}
