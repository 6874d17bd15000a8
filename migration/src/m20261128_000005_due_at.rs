//! When a task's current (or last) run became due, set by each claim from the row's run time
//! before the claim: the pickup lag of a run (due → start) is read from it.

use sea_orm_migration::prelude::*;

use crate::m20260101_000001_create_tables::datetime6;

/// The taskrow migration that adds `due_at`.
#[derive(Debug, Clone, Copy)]
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000005_taskrow_due_at"
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum TaskrowTask {
    Table,
    DueAt,
}

// async-trait cannot take `SchemaManager<'_>` here (early- vs late-bound lifetimes).
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // `DATETIME(6)` (`TIMESTAMP(6)` on PostgreSQL), as every taskrow time.
        let column = datetime6(TaskrowTask::DueAt, manager.get_database_backend())
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
                    .drop_column(TaskrowTask::DueAt)
                    .to_owned(),
            )
            .await
    }
}
