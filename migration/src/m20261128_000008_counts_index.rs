//! The index that counts tasks: `(task_type, queue, priority, state)` replaces `(task_type)`.
//! The counts by type, queue, priority and state (the dashboard's overview, `taskrow stats`)
//! read it alone, in its order, instead of every row of the table: on SQLite with a million
//! tasks 0.23 s instead of 1.9 s. A filter by task type still reads its first column, so the
//! single-column index it replaces has nothing left to do.

use sea_orm_migration::prelude::*;

use crate::m20260101_000001_create_tables::index;

/// The taskrow migration that replaces the task type index with the counting index.
#[derive(Debug, Clone, Copy)]
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000008_taskrow_counts_index"
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum TaskrowTask {
    Table,
    TaskType,
    Queue,
    Priority,
    State,
}

const OLD: &str = "idx_taskrow_task_task_type";
const NEW: &str = "idx_taskrow_task_counts";

// async-trait cannot take `SchemaManager<'_>` here (early- vs late-bound lifetimes).
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use TaskrowTask::*;
        manager
            .create_index(index(NEW, Table, [TaskType, Queue, Priority, State]))
            .await?;
        manager
            .drop_index(Index::drop().name(OLD).table(Table).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use TaskrowTask::*;
        manager.create_index(index(OLD, Table, [TaskType])).await?;
        manager
            .drop_index(Index::drop().name(NEW).table(Table).to_owned())
            .await
    }
}
