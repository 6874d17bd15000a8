//! `taskrow_queue`: one row per queue that was ever paused or resumed.

use sea_orm::entity::prelude::*;

/// A `taskrow_queue` row. A queue without a row is not paused.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "taskrow_queue")]
pub struct Model {
    /// The queue's name.
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    /// Whether claims leave its tasks alone.
    pub paused: bool,
    /// When it was last paused or resumed (UTC, without a zone).
    pub changed_at: DateTime,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
