//! `taskrow_schedule`: one row per periodic task (schedule name unique).

use sea_orm::entity::prelude::*;
use taskrow::ScheduleRecord;

use crate::time::from_sql;

/// A `taskrow_schedule` row as stored. Times are UTC, kept without a zone.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "taskrow_schedule")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Unique schedule name.
    pub name: String,
    /// The cron expression, or `every <n>s`.
    pub spec: String,
    /// The IANA time zone of a cron expression.
    pub time_zone: String,
    /// The type name of the task enqueued at each tick.
    pub task_type: String,
    /// The fingerprint of the definition that ticks this row.
    pub fingerprint: String,
    /// The last tick handled; moved only by a conditional update from the value read.
    pub last_tick: DateTime,
    /// The tick after it, as last computed.
    pub next_tick: Option<DateTime>,
    /// Creation time.
    pub created_at: DateTime,
    /// When an instance last registered the schedule.
    pub registered_at: DateTime,
    /// Last change.
    pub updated_at: DateTime,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The record of this row.
    pub fn into_record(self) -> ScheduleRecord {
        ScheduleRecord {
            id: self.id,
            name: self.name,
            spec: self.spec,
            time_zone: self.time_zone,
            task_type: self.task_type,
            fingerprint: self.fingerprint,
            last_tick: from_sql(self.last_tick),
            next_tick: self.next_tick.map(from_sql),
            created_at: from_sql(self.created_at),
            registered_at: from_sql(self.registered_at),
            updated_at: from_sql(self.updated_at),
        }
    }
}
