//! Creates `taskrow_task` and `taskrow_task_log` with their indexes.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DbBackend, Statement};

/// The first taskrow migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        // Prefixed with `taskrow` so it cannot clash with an application migration when added to
        // the application's own migrator.
        "m20260101_000001_taskrow_create_tables"
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum TaskrowTask {
    Table,
    Id,
    Code,
    TaskType,
    Payload,
    Name,
    Description,
    BizType,
    State,
    Attempts,
    MaxAttempts,
    RetryPolicy,
    TimeoutMs,
    OnSuccess,
    Dispatch,
    RunAt,
    LeaseOwner,
    LastError,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum TaskrowTaskLog {
    Table,
    Id,
    TaskId,
    Code,
    TaskType,
    Attempt,
    StartedAt,
    DurationMs,
    Outcome,
    Error,
    Worker,
}

/// A time column: `DATETIME(6)`, microseconds on MySQL (`.date_time()` would drop them), fine on
/// SQLite; `TIMESTAMP(6)` (without time zone) on PostgreSQL, which has no `DATETIME`. Every
/// store keeps UTC microseconds without a zone (see `taskrow_sql::time`).
pub(crate) fn datetime6(col: impl IntoIden, backend: DbBackend) -> ColumnDef {
    let ty = match backend {
        DbBackend::Postgres => "TIMESTAMP(6)",
        _ => "DATETIME(6)",
    };
    ColumnDef::new(col).custom(Alias::new(ty)).to_owned()
}

/// The collation of taskrow's text on MySQL: binary (case- and accent-sensitive) and without
/// padding, so `'a'` and `'a '` are two codes, as on SQLite and in memory. MySQL 8 calls it
/// `utf8mb4_0900_bin`, MariaDB `utf8mb4_nopad_bin`; older servers only have `utf8mb4_bin`
/// (which ignores trailing spaces).
pub(crate) async fn mysql_collation(manager: &SchemaManager<'_>) -> Result<String, DbErr> {
    let found = manager
        .get_connection()
        .query_one_raw(Statement::from_string(
            DbBackend::MySql,
            "SELECT CAST(collation_name AS CHAR) AS name FROM information_schema.collations \
             WHERE collation_name IN ('utf8mb4_0900_bin', 'utf8mb4_nopad_bin') \
             ORDER BY collation_name LIMIT 1",
        ))
        .await?;
    Ok(match found {
        Some(row) => row.try_get::<String>("", "name")?,
        None => "utf8mb4_bin".to_owned(),
    })
}

/// The table options: InnoDB, utf8mb4 with `collation` on MySQL; none elsewhere.
pub(crate) fn table_options(t: &mut TableCreateStatement, backend: DbBackend, collation: &str) {
    if backend == DbBackend::MySql {
        t.engine("InnoDB")
            .character_set("utf8mb4")
            .collate(collation);
    }
}

pub(crate) fn index(
    name: &str,
    table: impl IntoIden,
    cols: impl IntoIterator<Item = impl IntoIndexColumn>,
) -> IndexCreateStatement {
    let mut i = Index::create();
    i.name(name).table(table);
    for c in cols {
        i.col(c);
    }
    i.to_owned()
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
        // Several MB of JSON must fit: TEXT holds 64 KiB on MySQL, LONGTEXT 4 GiB. PostgreSQL's
        // TEXT holds 1 GB; the payload stays TEXT there rather than JSONB, because it is stored
        // and returned verbatim (JSONB would reorder keys, drop duplicates and whitespace, and
        // parse every payload on insert) and taskrow never queries inside it.
        let payload = if backend == DbBackend::MySql {
            ColumnDef::new(TaskrowTask::Payload)
                .custom(Alias::new("LONGTEXT"))
                .not_null()
                .to_owned()
        } else {
            ColumnDef::new(TaskrowTask::Payload)
                .text()
                .not_null()
                .to_owned()
        };

        let mut task = Table::create();
        task.table(TaskrowTask::Table)
            .if_not_exists()
            .col(
                ColumnDef::new(TaskrowTask::Id)
                    .big_integer()
                    .not_null()
                    .auto_increment()
                    .primary_key(),
            )
            .col(ColumnDef::new(TaskrowTask::Code).string_len(255).not_null())
            .col(
                ColumnDef::new(TaskrowTask::TaskType)
                    .string_len(255)
                    .not_null(),
            )
            .col(payload)
            .col(ColumnDef::new(TaskrowTask::Name).string_len(255).not_null())
            .col(ColumnDef::new(TaskrowTask::Description).text().null())
            .col(
                ColumnDef::new(TaskrowTask::BizType)
                    .string_len(64)
                    .not_null(),
            )
            .col(
                ColumnDef::new(TaskrowTask::State)
                    .small_integer()
                    .not_null(),
            )
            .col(ColumnDef::new(TaskrowTask::Attempts).integer().not_null())
            .col(ColumnDef::new(TaskrowTask::MaxAttempts).integer().null())
            .col(
                ColumnDef::new(TaskrowTask::RetryPolicy)
                    .string_len(255)
                    .not_null(),
            )
            .col(ColumnDef::new(TaskrowTask::TimeoutMs).big_integer().null())
            .col(
                ColumnDef::new(TaskrowTask::OnSuccess)
                    .small_integer()
                    .not_null(),
            )
            .col(
                ColumnDef::new(TaskrowTask::Dispatch)
                    .small_integer()
                    .not_null(),
            )
            // Pending: next run time; running: lease expiry; finished: NULL. One index range
            // (`run_at <= now`) finds every claimable row, whatever the table size.
            .col(datetime6(TaskrowTask::RunAt, backend).null())
            .col(
                ColumnDef::new(TaskrowTask::LeaseOwner)
                    .string_len(255)
                    .null(),
            )
            .col(ColumnDef::new(TaskrowTask::LastError).text().null())
            .col(
                ColumnDef::new(TaskrowTask::Version)
                    .big_integer()
                    .not_null(),
            )
            .col(datetime6(TaskrowTask::CreatedAt, backend).not_null())
            .col(datetime6(TaskrowTask::UpdatedAt, backend).not_null());
        table_options(&mut task, backend, &collation);
        manager.create_table(task).await?;

        let t = TaskrowTask::Table;
        manager
            .create_index(
                index("uq_taskrow_task_code", t, [TaskrowTask::Code])
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The claim reads `ORDER BY run_at, id`. InnoDB's secondary indexes and SQLite's end in
        // the row id already, so `(run_at)` is `(run_at, id)` there; PostgreSQL's do not, and
        // without `id` in the index every claim sorts all due rows instead of reading the first
        // few in order (2.2 ms against 0.06 ms for 40 of 5,000 due rows).
        let run_at_cols: Vec<TaskrowTask> = if backend == DbBackend::Postgres {
            vec![TaskrowTask::RunAt, TaskrowTask::Id]
        } else {
            vec![TaskrowTask::RunAt]
        };
        manager
            .create_index(index("idx_taskrow_task_run_at", t, run_at_cols))
            .await?;
        manager
            .create_index(index(
                "idx_taskrow_task_state_run_at",
                t,
                [TaskrowTask::State, TaskrowTask::RunAt],
            ))
            .await?;
        manager
            .create_index(index(
                "idx_taskrow_task_task_type",
                t,
                [TaskrowTask::TaskType],
            ))
            .await?;
        manager
            .create_index(index(
                "idx_taskrow_task_biz_type",
                t,
                [TaskrowTask::BizType],
            ))
            .await?;

        let mut log = Table::create();
        log.table(TaskrowTaskLog::Table)
            .if_not_exists()
            .col(
                ColumnDef::new(TaskrowTaskLog::Id)
                    .big_integer()
                    .not_null()
                    .auto_increment()
                    .primary_key(),
            )
            .col(
                ColumnDef::new(TaskrowTaskLog::TaskId)
                    .big_integer()
                    .not_null(),
            )
            .col(
                ColumnDef::new(TaskrowTaskLog::Code)
                    .string_len(255)
                    .not_null(),
            )
            .col(
                ColumnDef::new(TaskrowTaskLog::TaskType)
                    .string_len(255)
                    .not_null(),
            )
            .col(ColumnDef::new(TaskrowTaskLog::Attempt).integer().not_null())
            .col(datetime6(TaskrowTaskLog::StartedAt, backend).not_null())
            .col(
                ColumnDef::new(TaskrowTaskLog::DurationMs)
                    .big_integer()
                    .not_null(),
            )
            .col(
                ColumnDef::new(TaskrowTaskLog::Outcome)
                    .small_integer()
                    .not_null(),
            )
            .col(ColumnDef::new(TaskrowTaskLog::Error).text().null())
            .col(
                ColumnDef::new(TaskrowTaskLog::Worker)
                    .string_len(255)
                    .not_null(),
            );
        table_options(&mut log, backend, &collation);
        manager.create_table(log).await?;

        let l = TaskrowTaskLog::Table;
        manager
            .create_index(index(
                "idx_taskrow_task_log_task_id",
                l,
                [TaskrowTaskLog::TaskId],
            ))
            .await?;
        manager
            .create_index(index(
                "idx_taskrow_task_log_code",
                l,
                [TaskrowTaskLog::Code],
            ))
            .await?;
        manager
            .create_index(index(
                "idx_taskrow_task_log_started_at",
                l,
                [TaskrowTaskLog::StartedAt],
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Dropping a table drops its indexes.
        manager
            .drop_table(Table::drop().table(TaskrowTaskLog::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(TaskrowTask::Table).to_owned())
            .await?;
        Ok(())
    }
}
