//! The worker registry: `taskrow_worker`, one row per worker, which each worker keeps fresh
//! with its beats (id, host, pid, queues, concurrency, running count, start and last beat) and
//! removes at a clean shutdown. Claims never read it; operators and health checks do.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::m20260101_000001_create_tables::{datetime6, mysql_collation, table_options};

/// The worker registry migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000006_taskrow_workers"
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum TaskrowWorker {
    Table,
    WorkerId,
    Host,
    Pid,
    Queues,
    Concurrency,
    Running,
    Version,
    StartedAt,
    LastBeat,
    StaleAt,
}

// async-trait cannot take `SchemaManager<'_>` here (early- vs late-bound lifetimes).
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let collation = if backend == DbBackend::MySql {
            mysql_collation(manager).await?
        } else {
            String::new()
        };
        let mut t = Table::create();
        t.table(TaskrowWorker::Table)
            .if_not_exists()
            // As long as the lease owner column that holds the same id. Named `worker_id`, not
            // `id`: every `id` of the other tables is a generated number.
            .col(
                ColumnDef::new(TaskrowWorker::WorkerId)
                    .string_len(255)
                    .not_null()
                    .primary_key(),
            )
            .col(
                ColumnDef::new(TaskrowWorker::Host)
                    .string_len(255)
                    .not_null(),
            )
            .col(ColumnDef::new(TaskrowWorker::Pid).big_integer().not_null())
            // Space-separated queue names (they hold no whitespace); empty: every queue.
            .col(ColumnDef::new(TaskrowWorker::Queues).text().not_null())
            .col(
                ColumnDef::new(TaskrowWorker::Concurrency)
                    .integer()
                    .not_null(),
            )
            .col(ColumnDef::new(TaskrowWorker::Running).integer().not_null())
            .col(
                ColumnDef::new(TaskrowWorker::Version)
                    .string_len(64)
                    .not_null(),
            )
            .col(datetime6(TaskrowWorker::StartedAt, backend).not_null())
            .col(datetime6(TaskrowWorker::LastBeat, backend).not_null())
            .col(datetime6(TaskrowWorker::StaleAt, backend).not_null());
        table_options(&mut t, backend, &collation);
        manager.create_table(t).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TaskrowWorker::Table).to_owned())
            .await?;
        Ok(())
    }
}
