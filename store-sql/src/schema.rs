//! Whether a database's taskrow schema is the one this version knows
//! ([`taskrow::TaskStore::check_schema`]), read from the migration history.

use std::collections::BTreeSet;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};
use sea_orm_migration::SchemaManager;
use taskrow::Error;
use taskrow_migration::{MIGRATION_TABLE, tables};

/// The history table of an application's own migrator (sea-orm-migration's default name),
/// where taskrow's migrations are recorded when the application lists
/// `taskrow_migration::migrations()` among its own.
pub const APP_MIGRATION_TABLE: &str = "seaql_migrations";

/// What the name of every taskrow migration holds (`m20260101_000001_taskrow_create_tables`),
/// telling them apart from an application's in a shared history.
pub const NAME_MARK: &str = "_taskrow_";

/// How to bring a database up to this version, for the messages.
const HOW_TO_MIGRATE: &str = "run taskrow's migrations (`taskrow_migration::Migrator::up`, \
    `SqlStore::migrate` or `taskrow migrate`; or your own migrator, if it lists \
    `taskrow_migration::migrations()`) before starting workers of this version";

/// Compares the taskrow migrations recorded on `conn` (in [`MIGRATION_TABLE`] and
/// [`APP_MIGRATION_TABLE`], names holding [`NAME_MARK`]) with `taskrow_migration::migrations()`:
///
/// - all recorded, none unknown: `Ok`;
/// - one of this version's not recorded: [`Error::Schema`] naming it and how to migrate;
/// - one recorded that this version does not know: [`Error::Schema`] saying a newer taskrow
///   migrated the database and this worker must be upgraded;
/// - none recorded and no taskrow tables: [`Error::NotMigrated`];
/// - none recorded, but the tables exist: `Ok`, with a warning. The history may be kept where
///   this cannot see it (an application migrator with its own table name), so the schema
///   cannot be told; a missing column then shows as a database error.
///
/// The outer error is the database's, when it could not be read.
pub async fn check(conn: &DatabaseConnection) -> Result<taskrow::Result<()>, DbErr> {
    let manager = SchemaManager::new(conn);
    let mut recorded = BTreeSet::new();
    for table in [MIGRATION_TABLE, APP_MIGRATION_TABLE] {
        if manager.has_table(table).await? {
            recorded.extend(
                history(conn, table)
                    .await?
                    .into_iter()
                    .filter(|name| name.contains(NAME_MARK)),
            );
        }
    }
    if recorded.is_empty() {
        if !manager.has_table(tables::TASK).await? {
            return Ok(Err(Error::NotMigrated));
        }
        tracing::warn!(
            "taskrow: the tables exist but no taskrow migration is recorded in `{MIGRATION_TABLE}` \
             or `{APP_MIGRATION_TABLE}`: the schema cannot be checked"
        );
        return Ok(Ok(()));
    }
    let known: BTreeSet<String> = taskrow_migration::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    if let Some(newer) = recorded.difference(&known).next() {
        return Ok(Err(Error::Schema(format!(
            "the database was migrated by a newer version of taskrow (migration `{newer}` is \
             unknown to this one): upgrade this worker. Deploy in this order: migrate, then \
             start the new workers; workers of older versions refuse to start"
        ))));
    }
    if let Some(missing) = known.difference(&recorded).next() {
        return Ok(Err(Error::Schema(format!(
            "migration `{missing}` has not run on this database, whose schema is older than \
             this version of taskrow: {HOW_TO_MIGRATE}"
        ))));
    }
    Ok(Ok(()))
}

/// The migration names recorded in history table `table`.
async fn history<C: ConnectionTrait>(conn: &C, table: &str) -> Result<Vec<String>, DbErr> {
    conn.query_all_raw(Statement::from_string(
        conn.get_database_backend(),
        format!("SELECT version FROM {table}"),
    ))
    .await?
    .iter()
    .map(|r| r.try_get::<String>("", "version"))
    .collect()
}
