//! The taskrow tables as [sea-orm-migration] migrations: `taskrow_task` (one row per task) and
//! `taskrow_task_log` (one row per execution).
//!
//! A change of the tables is always a new migration (one that has landed is never edited), so a
//! database migrated by one version of taskrow is brought up to the next by running the new
//! ones. The stores' `check_schema` compares the history with [`migrations()`] and refuses a
//! database that is behind or ahead of the version it is built with.
//!
//! Run them with taskrow's own [`Migrator`], which keeps its history in its own table
//! (`taskrow_seaql_migrations`) so it lives beside your application's migrator:
//!
//! ```no_run
//! # async fn run(db: &sea_orm_migration::sea_orm::DatabaseConnection) -> Result<(), sea_orm_migration::DbErr> {
//! use sea_orm_migration::MigratorTrait;
//! taskrow_migration::Migrator::up(db, None).await?;
//! # Ok(()) }
//! ```
//!
//! Or add [`migrations()`] to your own migrator's list, so one history covers both:
//!
//! ```
//! use sea_orm_migration::prelude::*;
//!
//! struct AppMigrator;
//!
//! impl MigratorTrait for AppMigrator {
//!     fn migrations() -> Vec<Box<dyn MigrationTrait>> {
//!         let mut all = taskrow_migration::migrations();
//!         // all.push(Box::new(m20260102_000001_create_orders::Migration));
//!         all
//!     }
//! }
//! ```
//!
//! Times are `DATETIME(6)` (microseconds; plain `DATETIME` would drop the fraction on MySQL).
//! On MySQL the tables are `utf8mb4` with a binary, no-pad collation (`utf8mb4_0900_bin` on
//! MySQL 8, `utf8mb4_nopad_bin` on MariaDB), so codes, type names and biz types compare exactly,
//! as on SQLite and in memory.
//!
//! [sea-orm-migration]: https://docs.rs/sea-orm-migration

use sea_orm_migration::prelude::*;

mod m20260101_000001_create_tables;
mod m20261128_000001_claim_tokens;

/// Name of the table where [`Migrator`] records which taskrow migrations ran.
pub const MIGRATION_TABLE: &str = "taskrow_seaql_migrations";

/// Table names, for code that queries the tables directly.
pub mod tables {
    /// The task table.
    pub const TASK: &str = "taskrow_task";
    /// The execution log table.
    pub const TASK_LOG: &str = "taskrow_task_log";
}

/// Every taskrow migration, oldest first: add them to your own [`MigratorTrait`] to keep one
/// history, or run taskrow's [`Migrator`].
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(m20260101_000001_create_tables::Migration),
        Box::new(m20261128_000001_claim_tokens::Migration),
    ]
}

/// taskrow's migrator, with its own history table ([`MIGRATION_TABLE`]) so it never mixes with
/// your application's `seaql_migrations`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        migrations()
    }

    fn migration_table_name() -> DynIden {
        Alias::new(MIGRATION_TABLE).into_iden()
    }
}
