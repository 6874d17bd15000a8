//! Fencing tokens: every claim's token and time on the task row, the interruptions a task had,
//! and the claim token on each log row, unique per task (one log row per run).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::m20260101_000001_create_tables::datetime6;

/// The second taskrow migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000001_taskrow_claim_tokens"
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum TaskrowTask {
    Table,
    ClaimToken,
    ClaimedAt,
    Interruptions,
}

#[derive(DeriveIden, Clone, Copy)]
enum TaskrowTaskLog {
    Table,
    TaskId,
    ClaimToken,
}

/// The unique index on a log row's run: `(task_id, claim_token)`. Rows written before this
/// migration have a `NULL` token, and `NULL`s never collide in a unique index.
const RUN_INDEX: &str = "uq_taskrow_task_log_run";

/// The columns added to `taskrow_task`, each by its own `ALTER TABLE` (SQLite adds one column
/// per statement).
fn task_columns(backend: DbBackend) -> [(TaskrowTask, ColumnDef); 3] {
    [
        (
            TaskrowTask::ClaimToken,
            ColumnDef::new(TaskrowTask::ClaimToken)
                .big_integer()
                .null()
                .to_owned(),
        ),
        (
            // `DATETIME(6)` (`TIMESTAMP(6)` on PostgreSQL), as every taskrow time (see the
            // first migration).
            TaskrowTask::ClaimedAt,
            datetime6(TaskrowTask::ClaimedAt, backend).null().to_owned(),
        ),
        (
            TaskrowTask::Interruptions,
            ColumnDef::new(TaskrowTask::Interruptions)
                .integer()
                .not_null()
                .default(0)
                .to_owned(),
        ),
    ]
}

// async-trait cannot take `SchemaManager<'_>` here (early- vs late-bound lifetimes).
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (_, column) in task_columns(manager.get_database_backend()) {
            manager
                .alter_table(
                    Table::alter()
                        .table(TaskrowTask::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(TaskrowTaskLog::Table)
                    .add_column(
                        ColumnDef::new(TaskrowTaskLog::ClaimToken)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(RUN_INDEX)
                    .table(TaskrowTaskLog::Table)
                    .col(TaskrowTaskLog::TaskId)
                    .col(TaskrowTaskLog::ClaimToken)
                    .unique()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The index first: SQLite cannot drop an indexed column.
        manager
            .drop_index(
                Index::drop()
                    .name(RUN_INDEX)
                    .table(TaskrowTaskLog::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(TaskrowTaskLog::Table)
                    .drop_column(TaskrowTaskLog::ClaimToken)
                    .to_owned(),
            )
            .await?;
        for (name, _) in task_columns(manager.get_database_backend())
            .into_iter()
            .rev()
        {
            manager
                .alter_table(
                    Table::alter()
                        .table(TaskrowTask::Table)
                        .drop_column(name)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
