//! Periodic tasks: `taskrow_schedule`, one row per schedule name, holding the last tick that
//! was enqueued (moved by a conditional update, so that one instance enqueues each tick).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::m20260101_000001_create_tables::{datetime6, index, mysql_collation, table_options};

/// The schedules migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000004_taskrow_schedules"
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum TaskrowSchedule {
    Table,
    Id,
    Name,
    Spec,
    TimeZone,
    TaskType,
    Fingerprint,
    LastTick,
    NextTick,
    CreatedAt,
    RegisteredAt,
    UpdatedAt,
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
        let s = TaskrowSchedule::Table;
        let mut t = Table::create();
        t.table(s)
            .if_not_exists()
            .col(
                ColumnDef::new(TaskrowSchedule::Id)
                    .big_integer()
                    .not_null()
                    .auto_increment()
                    .primary_key(),
            )
            .col(
                ColumnDef::new(TaskrowSchedule::Name)
                    .string_len(255)
                    .not_null(),
            )
            .col(
                ColumnDef::new(TaskrowSchedule::Spec)
                    .string_len(255)
                    .not_null(),
            )
            .col(
                ColumnDef::new(TaskrowSchedule::TimeZone)
                    .string_len(64)
                    .not_null(),
            )
            .col(
                ColumnDef::new(TaskrowSchedule::TaskType)
                    .string_len(255)
                    .not_null(),
            )
            .col(
                ColumnDef::new(TaskrowSchedule::Fingerprint)
                    .string_len(64)
                    .not_null(),
            )
            .col(datetime6(TaskrowSchedule::LastTick, backend).not_null())
            .col(datetime6(TaskrowSchedule::NextTick, backend).null())
            .col(datetime6(TaskrowSchedule::CreatedAt, backend).not_null())
            .col(datetime6(TaskrowSchedule::RegisteredAt, backend).not_null())
            .col(datetime6(TaskrowSchedule::UpdatedAt, backend).not_null());
        table_options(&mut t, backend, &collation);
        manager.create_table(t).await?;
        manager
            .create_index(
                index("uq_taskrow_schedule_name", s, [TaskrowSchedule::Name])
                    .unique()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TaskrowSchedule::Table).to_owned())
            .await?;
        Ok(())
    }
}
