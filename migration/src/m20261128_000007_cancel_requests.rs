//! When an operator asked to cancel a task while it ran (`cancel_requested_at`, `NULL` when
//! never): the running task's worker sees the mark at its next heartbeat and stops the run.

use sea_orm_migration::prelude::*;

use crate::m20260101_000001_create_tables::datetime6;

/// The taskrow migration that adds `cancel_requested_at`.
#[derive(Debug, Clone, Copy)]
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000007_taskrow_cancel_requests"
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum TaskrowTask {
    Table,
    CancelRequestedAt,
}

// async-trait cannot take `SchemaManager<'_>` here (early- vs late-bound lifetimes).
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // `DATETIME(6)` (`TIMESTAMP(6)` on PostgreSQL), as every taskrow time.
        let column = datetime6(
            TaskrowTask::CancelRequestedAt,
            manager.get_database_backend(),
        )
        .null()
        .to_owned();
        manager
            .alter_table(
                Table::alter()
                    .table(TaskrowTask::Table)
                    .add_column(column)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(TaskrowTask::Table)
                    .drop_column(TaskrowTask::CancelRequestedAt)
                    .to_owned(),
            )
            .await
    }
}
