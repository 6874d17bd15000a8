//! PostgreSQL: every insert into `taskrow_task` notifies [`NOTIFY_CHANNEL`], so that workers in
//! other processes (listening on it) claim at once instead of at their next poll. Nothing on
//! MySQL and SQLite, which have no LISTEN/NOTIFY (the migration is recorded there all the same,
//! so every database has the same history).
//!
//! The trigger runs once per `INSERT` statement (`FOR EACH STATEMENT`), whatever the number of
//! rows, and PostgreSQL delivers a notification only when its transaction commits, folding
//! identical ones of one transaction into one. So an enqueue inside the application's own
//! transaction (a consistency task) wakes the workers at its commit and never before, a
//! rolled-back one never, and a batch insert wakes them once; the insert itself makes no extra
//! round trip.
//!
//! There is no trigger on `UPDATE`: no update makes work due for another process that the
//! poll would be too slow for. Claims, heartbeats and results update rows all the time and would
//! wake every worker for nothing; a retry is due later, not now; run-now runs the task in the
//! process that asked; a reset is an operator's action, picked up at the next poll (1 s by
//! default).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// The third taskrow migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000002_taskrow_notify"
    }
}

/// The channel the trigger notifies, with an empty payload: workers only need to know that
/// something was enqueued.
pub const NOTIFY_CHANNEL: &str = "taskrow";

// async-trait cannot take `SchemaManager<'_>` here (early- vs late-bound lifetimes).
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(&format!(
            "CREATE OR REPLACE FUNCTION taskrow_notify() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN PERFORM pg_notify('{NOTIFY_CHANNEL}', ''); RETURN NULL; END $$"
        ))
        .await?;
        db.execute_unprepared(
            "CREATE TRIGGER taskrow_task_notify AFTER INSERT ON taskrow_task \
             FOR EACH STATEMENT EXECUTE FUNCTION taskrow_notify()",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared("DROP TRIGGER IF EXISTS taskrow_task_notify ON taskrow_task")
            .await?;
        db.execute_unprepared("DROP FUNCTION IF EXISTS taskrow_notify()")
            .await?;
        Ok(())
    }
}
