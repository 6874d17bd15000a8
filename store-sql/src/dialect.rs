//! [`Dialect`]: what differs between the SQL databases taskrow runs on.

use std::fmt::Debug;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use taskrow::{ClaimRequest, Result};
use tokio::sync::OwnedMutexGuard;

use crate::claim::{Claim, Due};
use crate::entity::task;

/// What a database error means for taskrow, whatever the database said it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A unique index refused the row: a duplicate code.
    UniqueViolation,
    /// A taskrow table is missing: the migrations have not run.
    MissingTable,
    /// Lock contention that rolled the statement or transaction back (SQLite busy or locked,
    /// MySQL deadlock 1213 or lock-wait timeout 1205). Trying again is safe, and the store does,
    /// a few times, before it reports a transient error.
    Contention,
    /// The connection failed or the pool had none to give. Trying later may work, but the
    /// store does not retry by itself: a lost commit may or may not have happened.
    Connection,
    /// Anything else: a permanent error.
    Other,
}

impl ErrorKind {
    /// Whether trying the same call again later may work.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Contention | Self::Connection)
    }

    /// The kinds every driver reports the same way through SeaORM (a pool without a free
    /// connection, a failed connection, a unique violation), or `None`.
    pub fn common(err: &DbErr) -> Option<Self> {
        match err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Some(Self::Connection),
            _ => match err.sql_err() {
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => Some(Self::UniqueViolation),
                _ => None,
            },
        }
    }
}

/// What a database can do beyond the SQL every dialect shares. [`crate::SqlStore`] takes the
/// shorter way where the database offers one, and a statement per row where it does not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Capabilities {
    /// `DELETE … RETURNING id`: SQLite 3.35+, MariaDB 10.0+; not MySQL. A result write then
    /// deletes all of a batch's successes with one statement and learns which were deleted.
    pub delete_returning: bool,
    /// `UPDATE … RETURNING id`: SQLite 3.35+; not MySQL or MariaDB. A result write then applies
    /// all of a batch's failures (and retries, and kept successes) with one statement each.
    pub update_returning: bool,
}

impl Capabilities {
    /// Neither: every guarded write of a batch is its own statement.
    pub const NONE: Self = Self {
        delete_returning: false,
        update_returning: false,
    };

    /// With `DELETE … RETURNING` or without.
    pub const fn delete_returning(mut self, yes: bool) -> Self {
        self.delete_returning = yes;
        self
    }

    /// With `UPDATE … RETURNING` or without.
    pub const fn update_returning(mut self, yes: bool) -> Self {
        self.update_returning = yes;
        self
    }
}

/// A transaction for read-then-write work, begun by [`Dialect::begin_write`]. It holds what
/// the dialect needs held until it ends (SQLite: the store's one-writer lock). Dereferences
/// to the [`DatabaseTransaction`], which implements [`sea_orm::ConnectionTrait`].
///
/// Dropped without [`WriteTxn::commit`], it rolls back.
#[derive(Debug)]
pub struct WriteTxn {
    // Declared first so that it ends (rolls back, when dropped) before the writer lock goes.
    txn: DatabaseTransaction,
    _writer: Option<OwnedMutexGuard<()>>,
}

impl WriteTxn {
    /// A transaction, holding `writer` (if any) until it ends.
    pub fn new(txn: DatabaseTransaction, writer: Option<OwnedMutexGuard<()>>) -> Self {
        Self {
            txn,
            _writer: writer,
        }
    }

    /// Begins a plain transaction on `db`, holding `writer` (if any) until it ends.
    pub async fn begin(
        db: &DatabaseConnection,
        writer: Option<OwnedMutexGuard<()>>,
    ) -> Result<Self, DbErr> {
        Ok(Self::new(db.begin().await?, writer))
    }

    /// Commits, then lets the writer lock go.
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }

    /// Rolls back, then lets the writer lock go.
    pub async fn rollback(self) -> Result<(), DbErr> {
        self.txn.rollback().await
    }

    /// Ends the transaction by the outcome of its work: commits after `Ok`, rolls back after
    /// `Err` (and returns that error).
    pub async fn end<T>(self, work: Result<T, DbErr>) -> Result<T, DbErr> {
        match work {
            Ok(v) => {
                self.commit().await?;
                Ok(v)
            }
            Err(e) => {
                if let Err(rollback) = self.rollback().await {
                    tracing::debug!(error = %rollback, "taskrow: rollback failed");
                }
                Err(e)
            }
        }
    }
}

impl std::ops::Deref for WriteTxn {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

/// What differs between the SQL databases taskrow runs on. Everything else — every other
/// statement, the fencing and optimistic locking, the conversions — is shared in
/// [`crate::SqlStore`] and [`crate::claim`].
///
/// A dialect value belongs to one [`DatabaseConnection`] pool (SQLite keeps its one-writer lock
/// in it).
#[async_trait]
pub trait Dialect: Sized + Send + Sync + Debug + 'static {
    /// The database's name in messages (`SQLite`, `MySQL`).
    const NAME: &'static str;

    /// Opens a connection pool for `url`, tuned for taskrow. A malformed URL is
    /// [`taskrow::Error::BadUrl`]; a database that cannot be opened is
    /// [`taskrow::Error::Unreachable`]. Both name the URL without its password.
    async fn connect(url: &str) -> Result<DatabaseConnection>;

    /// The dialect for a pool opened elsewhere; [`taskrow::Error::Config`] when the pool is
    /// for another database.
    fn for_connection(db: &DatabaseConnection) -> Result<Self>;

    /// The dialect for a pool that [`Dialect::connect`] opened: it may count on how `connect`
    /// set the sessions up (MySQL: `READ COMMITTED` for the session). By default,
    /// [`Dialect::for_connection`].
    fn for_own_connection(db: &DatabaseConnection) -> Result<Self> {
        Self::for_connection(db)
    }

    /// Begins a transaction for work that reads, then writes.
    async fn begin_write(&self, db: &DatabaseConnection) -> Result<WriteTxn, DbErr>;

    /// What the store's writes outside a transaction hold while they run (single statements in
    /// autocommit: the single insert): SQLite's one-writer lock, so that they
    /// never meet "database is locked" from the store's own writers. `None` by default.
    async fn write_lock(&self) -> Option<OwnedMutexGuard<()>> {
        None
    }

    /// What the database behind `db` can do ([`Capabilities`]). It may ask the server once
    /// (MySQL or MariaDB) and keep the answer. None by default.
    async fn capabilities(&self, db: &DatabaseConnection) -> Result<Capabilities, DbErr> {
        let _ = db;
        Ok(Capabilities::NONE)
    }

    /// The read of the batch claim ([`crate::claim::claim`]), on its write transaction: up to
    /// `limit` rows of [`crate::claim::due_condition`], oldest due first (`run_at`, then id),
    /// kept from other claimers until `txn` ends. A dialect reads them whole when it needs the
    /// rows for [`Dialect::take_due`], or by id and state ([`crate::claim::due_ids`]) when not.
    async fn read_due(
        &self,
        txn: &WriteTxn,
        req: &ClaimRequest,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Due>, DbErr>;

    /// The write of the batch claim: marks `due` (rows [`Dialect::read_due`] read, still kept
    /// from other claimers) claimed as `claim` says ([`crate::claim::mark_claimed`]) and
    /// returns their rows after the claim, in the order of `due`.
    async fn take_due(
        &self,
        txn: &WriteTxn,
        due: Vec<Due>,
        claim: &Claim,
    ) -> Result<Vec<task::Model>, DbErr>;

    /// What `err` means.
    fn classify(&self, err: &DbErr) -> ErrorKind;

    /// How many times an operation that failed with [`ErrorKind::Contention`] runs again
    /// before the error is reported.
    fn contention_retries(&self) -> u32 {
        5
    }
}

/// The pause before retry `n` (0-based) after contention: 10 ms doubling, up to 160 ms, with
/// up to half of it taken off at random so that colliding claimants part ways.
pub fn contention_backoff(n: u32) -> Duration {
    let base = 10u64 << n.min(4);
    let random = RandomState::new().hash_one(n);
    Duration::from_millis(base - random % (base / 2 + 1))
}
