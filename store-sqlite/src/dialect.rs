//! [`SqliteDialect`]: one writer, immediate transactions, SQLite's error codes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sqlx;
use sea_orm::{
    DatabaseConnection, DbBackend, DbErr, RuntimeErr, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};
use taskrow::{ClaimRequest, Error, Result};
use taskrow_sql::claim::{Claim, Due};
use taskrow_sql::dialect::{BeginError, WriterBusy, WriterGuard, WriterLock};
use taskrow_sql::entity::task;
use taskrow_sql::{Capabilities, Dialect, ErrorKind, WriteTxn};

use crate::connect::BUSY_TIMEOUT;
use taskrow_sql::wakeups::Wakeups;

/// SQLite's side of the store: the one-writer lock of a pool, and how SQLite says things.
#[derive(Debug, Clone)]
pub struct SqliteDialect {
    /// Held by every write of the store, for the whole transaction, and by the application's
    /// task transactions until they end.
    writer: WriterLock,
    /// The file's wake-ups for idle workers (none on a dialect made without a pool).
    wakeups: Arc<Wakeups>,
}

impl Default for SqliteDialect {
    /// Writes wait up to [`BUSY_TIMEOUT`] for an application's open task transaction, as they
    /// wait for another process's write. No wake-ups: it knows no file.
    fn default() -> Self {
        Self {
            writer: WriterLock::new(BUSY_TIMEOUT),
            wakeups: Arc::default(),
        }
    }
}

impl SqliteDialect {
    /// This dialect without wake-ups from other processes' commits (see `listen.rs`): idle
    /// workers find other processes' tasks at their poll only, and the store holds no
    /// connection of its own for the check.
    pub fn without_wakeups(mut self) -> Self {
        self.wakeups = Arc::default();
        self
    }

    /// This dialect with the store's writes waiting up to `wait` (instead of [`BUSY_TIMEOUT`])
    /// for an open task transaction of the application (`begin_with_tasks`) before they fail
    /// with a transient error naming it. A write from the task that opened the transaction
    /// fails at once whatever `wait` is: it could never proceed.
    pub fn wait_for_task_transactions(mut self, wait: Duration) -> Self {
        self.writer = self.writer.with_wait(wait);
        self
    }

    /// Begins an immediate transaction holding `writer`.
    async fn begin_immediate(
        db: &DatabaseConnection,
        writer: WriterGuard,
    ) -> Result<WriteTxn, BeginError> {
        let txn = db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await?;
        Ok(WriteTxn::new(txn, Some(writer)))
    }
}

/// SQLite's primary result codes that mean "another connection holds a lock": `SQLITE_BUSY`
/// (5) and `SQLITE_LOCKED` (6), with their extended codes.
fn is_lock_code(code: i64) -> bool {
    matches!(code & 0xff, 5 | 6)
}

#[async_trait]
impl Dialect for SqliteDialect {
    // One host by nature: its clients keep the system clock.
    const DATABASE_TIME: Option<&'static str> = None;

    const NAME: &'static str = "SQLite";

    const PAUSED_IN_READ: bool = true;

    async fn connect(url: &str) -> Result<DatabaseConnection> {
        crate::connect::open(url).await
    }

    fn for_connection(db: &DatabaseConnection) -> Result<Self> {
        match db.get_database_backend() {
            DbBackend::Sqlite => Ok(Self {
                wakeups: Arc::new(crate::listen::for_file(
                    (*db.get_sqlite_connection_pool().connect_options()).clone(),
                )),
                ..Self::default()
            }),
            other => Err(Error::Config(format!(
                "SqliteStore needs a SQLite connection, not {other:?}: use the store for that database"
            ))),
        }
    }

    fn wakeups(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.wakeups.receiver()
    }

    /// `BEGIN IMMEDIATE` under the store's writer lock.
    async fn begin_write(&self, db: &DatabaseConnection) -> Result<WriteTxn, BeginError> {
        let writer = self.writer.acquire().await?;
        Self::begin_immediate(db, writer).await
    }

    /// As [`SqliteDialect::begin_write`], holding the writer lock as a task transaction: the
    /// store's writes meanwhile fail rather than wait for it forever (see [`WriterLock`]).
    async fn begin_task_transaction(
        &self,
        db: &DatabaseConnection,
    ) -> Result<WriteTxn, BeginError> {
        let writer = self.writer.acquire_for_task_transaction().await?;
        Self::begin_immediate(db, writer).await
    }

    async fn write_lock(&self) -> Result<Option<WriterGuard>, WriterBusy> {
        Ok(Some(self.writer.acquire().await?))
    }

    /// SQLite has had `RETURNING` since 3.35 (2021); the bundled one is newer.
    async fn capabilities(&self, _db: &DatabaseConnection) -> Result<Capabilities, DbErr> {
        Ok(Capabilities::NONE
            .delete_returning(true)
            .update_returning(true))
    }

    async fn read_due(
        &self,
        txn: &WriteTxn,
        req: &ClaimRequest,
        claim: &Claim,
        limit: usize,
    ) -> Result<Vec<Due>, DbErr> {
        crate::claim::read_due(txn, req, claim, limit).await
    }

    async fn take_due(
        &self,
        txn: &WriteTxn,
        due: Vec<Due>,
        claim: &Claim,
    ) -> Result<Vec<task::Model>, DbErr> {
        crate::claim::take_due(txn, due, claim).await
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
            sqlx::Error::Database(db) => {
                let code = db
                    .code()
                    .and_then(|c| c.parse::<i64>().ok())
                    .unwrap_or_default();
                if is_lock_code(code) {
                    ErrorKind::Contention
                } else if matches!(code, 1555 | 2067) {
                    ErrorKind::UniqueViolation
                } else if db.message().starts_with("no such table: taskrow_") {
                    ErrorKind::MissingTable
                } else {
                    ErrorKind::Other
                }
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => ErrorKind::Connection,
            _ => ErrorKind::Other,
        }
    }
}
