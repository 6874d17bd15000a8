//! Priorities and named queues: each task's `queue` and `priority`, the two indexes the claim
//! reads in its order, and `taskrow_queue`, where a queue's paused state lives.
//!
//! The claim reads `WHERE priority IN (0, 1, 2) AND run_at <= now ORDER BY priority, run_at,
//! id`, all ascending: on `(priority, run_at, id)` that is one short index range per level, read
//! in index order, so it stops after the rows it takes whatever the table's size. A claim for
//! some queues reads `(queue, priority, run_at, id)` the same way, so a flood in one queue costs
//! a claim of another queue nothing. Ascending everywhere works on MariaDB, MySQL, SQLite and
//! PostgreSQL with ordinary indexes (no descending or expression index), which is why the level
//! is stored so that 0 is claimed first.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DbBackend, Statement};

use crate::m20260101_000001_create_tables::datetime6;

/// The fourth taskrow migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000003_taskrow_queues"
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum TaskrowTask {
    Table,
    Id,
    RunAt,
    Queue,
    Priority,
}

#[derive(DeriveIden, Clone, Copy)]
enum TaskrowQueue {
    Table,
    Name,
    Paused,
    ChangedAt,
}

/// The index of a claim over every queue.
const CLAIM_INDEX: &str = "idx_taskrow_task_claim";
/// The index of a claim for some queues.
const QUEUE_CLAIM_INDEX: &str = "idx_taskrow_task_queue_claim";

/// The collation of the other taskrow tables on MySQL (binary, no pad), read from the task
/// table so the queue names compare the same way in both.
async fn mysql_collation(manager: &SchemaManager<'_>) -> Result<String, DbErr> {
    let found = manager
        .get_connection()
        .query_one_raw(Statement::from_string(
            DbBackend::MySql,
            "SELECT CAST(table_collation AS CHAR) AS name FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = 'taskrow_task'",
        ))
        .await?;
    Ok(match found {
        Some(row) => row.try_get::<String>("", "name")?,
        None => "utf8mb4_bin".to_owned(),
    })
}

// async-trait cannot take `SchemaManager<'_>` here (early- vs late-bound lifetimes).
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        // One column per `ALTER TABLE` (SQLite adds one per statement). Existing rows get the
        // default queue and normal priority (1).
        for column in [
            ColumnDef::new(TaskrowTask::Queue)
                .string_len(64)
                .not_null()
                .default("default")
                .to_owned(),
            ColumnDef::new(TaskrowTask::Priority)
                .small_integer()
                .not_null()
                .default(1)
                .to_owned(),
        ] {
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
            .create_index(
                Index::create()
                    .name(CLAIM_INDEX)
                    .table(TaskrowTask::Table)
                    .col(TaskrowTask::Priority)
                    .col(TaskrowTask::RunAt)
                    .col(TaskrowTask::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(QUEUE_CLAIM_INDEX)
                    .table(TaskrowTask::Table)
                    .col(TaskrowTask::Queue)
                    .col(TaskrowTask::Priority)
                    .col(TaskrowTask::RunAt)
                    .col(TaskrowTask::Id)
                    .to_owned(),
            )
            .await?;

        let mut queue = Table::create();
        queue
            .table(TaskrowQueue::Table)
            .if_not_exists()
            .col(
                ColumnDef::new(TaskrowQueue::Name)
                    .string_len(64)
                    .not_null()
                    .primary_key(),
            )
            .col(ColumnDef::new(TaskrowQueue::Paused).boolean().not_null())
            .col(datetime6(TaskrowQueue::ChangedAt, backend).not_null());
        if backend == DbBackend::MySql {
            let collation = mysql_collation(manager).await?;
            queue
                .engine("InnoDB")
                .character_set("utf8mb4")
                .collate(&collation);
        }
        manager.create_table(queue).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TaskrowQueue::Table).to_owned())
            .await?;
        // The indexes first: SQLite cannot drop an indexed column.
        for name in [QUEUE_CLAIM_INDEX, CLAIM_INDEX] {
            manager
                .drop_index(
                    Index::drop()
                        .name(name)
                        .table(TaskrowTask::Table)
                        .to_owned(),
                )
                .await?;
        }
        for column in [TaskrowTask::Priority, TaskrowTask::Queue] {
            manager
                .alter_table(
                    Table::alter()
                        .table(TaskrowTask::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
