//! [`MysqlDialect`]: `READ COMMITTED` transactions, MySQL's error numbers.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sqlx;
use sea_orm::sqlx::mysql::MySqlDatabaseError;
use sea_orm::{DatabaseConnection, DbBackend, DbErr, IsolationLevel, RuntimeErr, TransactionTrait};
use taskrow::{ClaimRequest, Error, Result};
use taskrow_sql::entity::task;
use taskrow_sql::{Dialect, ErrorKind, WriteTxn};

/// MySQL's and MariaDB's side of the store.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct MysqlDialect;

#[async_trait]
impl Dialect for MysqlDialect {
    const NAME: &'static str = "MySQL";

    async fn connect(url: &str) -> Result<DatabaseConnection> {
        crate::connect::open(url).await
    }

    fn for_connection(db: &DatabaseConnection) -> Result<Self> {
        match db.get_database_backend() {
            DbBackend::MySql => Ok(Self),
            other => Err(Error::Config(format!(
                "MysqlStore needs a MySQL connection, not {other:?}: use the store for that database"
            ))),
        }
    }

    /// `READ COMMITTED`: a guarded update sees the latest committed version, and takes no gap
    /// locks that would make writers wait for each other.
    async fn begin_write(&self, db: &DatabaseConnection) -> Result<WriteTxn, DbErr> {
        let txn = db
            .begin_with_config(Some(IsolationLevel::ReadCommitted), None)
            .await?;
        Ok(WriteTxn::new(txn, None))
    }

    async fn claim(
        &self,
        db: &DatabaseConnection,
        req: &ClaimRequest,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<task::Model>, DbErr> {
        crate::claim::claim(self, db, req, now, until).await
    }

    fn classify(&self, err: &DbErr) -> ErrorKind {
        if let Some(kind) = ErrorKind::common(err) {
            return kind;
        }
        let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err
        else {
            return ErrorKind::Other;
        };
        match &**e {
            sqlx::Error::Database(db) => match db.try_downcast_ref::<MySqlDatabaseError>() {
                Some(my) => kind_of(my.number()),
                None => ErrorKind::Other,
            },
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => ErrorKind::Connection,
            _ => ErrorKind::Other,
        }
    }
}

/// What a MySQL error number means for taskrow.
fn kind_of(number: u16) -> ErrorKind {
    match number {
        // Deadlock found; lock wait timeout exceeded.
        1213 | 1205 => ErrorKind::Contention,
        // Duplicate entry (and its older forms).
        1062 | 1022 | 1169 | 1586 => ErrorKind::UniqueViolation,
        // Table doesn't exist.
        1146 => ErrorKind::MissingTable,
        // Too many connections; server shutdown; connection killed; server gone away; lost
        // connection during query.
        1040 | 1053 | 1927 | 2006 | 2013 => ErrorKind::Connection,
        _ => ErrorKind::Other,
    }
}
