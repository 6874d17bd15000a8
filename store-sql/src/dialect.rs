//! [`Dialect`]: what differs between the SQL databases taskrow runs on.

use std::collections::HashSet;
use std::fmt::{self, Debug};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use taskrow::{ClaimRequest, Lease, Result};
use tokio::sync::{Mutex, OwnedMutexGuard};

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

/// The one-writer lock of a store whose database takes one writer at a time (SQLite): the
/// store's writes and the application's task transactions ([`crate::SqlStore::begin_with_tasks`])
/// take turns on it, so that the store's own writers never meet "database is locked".
///
/// The store's own writes hold it for one short transaction and always let it go. A task
/// transaction holds it until the application commits or rolls back, so a write never waits for
/// one without a bound ([`WriterBusy`]):
///
/// - a write from the task (the tokio task, or the `block_on` future) that opened the task
///   transaction fails at once: it waits for a transaction that cannot end while its own code
///   waits here (SQLite's write lock is the database's: no other connection can write
///   meanwhile either);
/// - a write from elsewhere (a worker, another request) waits up to [`WriterLock::wait`] for the
///   task transaction to end, then fails (transient: its caller tries again later).
///
/// Clones share the lock.
#[derive(Debug, Clone)]
pub struct WriterLock {
    turn: Arc<Mutex<()>>,
    /// The open task transaction holding `turn`, if one does.
    task_transaction: Arc<std::sync::Mutex<Option<Holder>>>,
    wait: Duration,
}

/// Who holds a [`WriterLock`] for a task transaction, and since when.
#[derive(Debug, Clone, Copy)]
struct Holder {
    since: Instant,
    caller: Option<Caller>,
}

/// Whose code is running: a tokio task, or the future a thread blocks on (`#[tokio::main]`,
/// `#[tokio::test]`, `Runtime::block_on`), which has no task id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Task(tokio::task::Id),
    BlockOn(std::thread::ThreadId),
}

impl Caller {
    fn current() -> Option<Self> {
        match tokio::task::try_id() {
            Some(id) => Some(Self::Task(id)),
            None if tokio::runtime::Handle::try_current().is_ok() => {
                Some(Self::BlockOn(std::thread::current().id()))
            }
            None => None,
        }
    }
}

impl WriterLock {
    /// A lock whose writers wait up to `wait` for an open task transaction.
    pub fn new(wait: Duration) -> Self {
        Self {
            turn: Arc::new(Mutex::new(())),
            task_transaction: Arc::new(std::sync::Mutex::new(None)),
            wait,
        }
    }

    /// How long a write waits for an open task transaction before it fails.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// This lock with writers waiting up to `wait` for an open task transaction (the lock
    /// itself is shared with the clones it came from).
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    fn holder(&self) -> Option<Holder> {
        *self
            .task_transaction
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the lock for one of the store's own writes: at once when it is free, after the
    /// writes before it, or [`WriterBusy`] (see [`WriterLock`]).
    pub async fn acquire(&self) -> Result<WriterGuard, WriterBusy> {
        let turn = match self.turn.clone().try_lock_owned() {
            Ok(turn) => turn,
            Err(_) => self.wait_for_turn().await?,
        };
        Ok(WriterGuard {
            _turn: turn,
            task_transaction: None,
        })
    }

    /// Takes the lock for a task transaction of the application, which holds it until it
    /// ends; writes meanwhile wait for it within the bounds of [`WriterLock`].
    pub async fn acquire_for_task_transaction(&self) -> Result<WriterGuard, WriterBusy> {
        let turn = match self.turn.clone().try_lock_owned() {
            Ok(turn) => turn,
            Err(_) => self.wait_for_turn().await?,
        };
        *self
            .task_transaction
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Holder {
            since: Instant::now(),
            caller: Caller::current(),
        });
        Ok(WriterGuard {
            _turn: turn,
            task_transaction: Some(self.task_transaction.clone()),
        })
    }

    /// Waits for the lock, in turn after the writers before; fails rather than wait for a task
    /// transaction of the caller's own task, or for one longer than `wait`.
    async fn wait_for_turn(&self) -> Result<OwnedMutexGuard<()>, WriterBusy> {
        let me = Caller::current();
        let started = Instant::now();
        let turn = self.turn.clone().lock_owned();
        tokio::pin!(turn);
        loop {
            let deadline = match self.holder() {
                Some(h) if me.is_some() && h.caller == me => {
                    return Err(WriterBusy {
                        held_for: h.since.elapsed(),
                        waited: None,
                    });
                }
                // Waited `wait` for this task transaction (or since it began, if later).
                Some(h) => started.max(h.since) + self.wait,
                // The store's own writes always end: wait on, looking again after `wait`.
                None => Instant::now() + self.wait,
            };
            if let Ok(turn) = tokio::time::timeout_at(deadline.into(), &mut turn).await {
                return Ok(turn);
            }
            if let Some(h) = self.holder()
                && Instant::now() >= started.max(h.since) + self.wait
            {
                return Err(WriterBusy {
                    held_for: h.since.elapsed(),
                    waited: Some(started.elapsed()),
                });
            }
        }
    }
}

/// A turn on a [`WriterLock`], until dropped.
#[derive(Debug)]
pub struct WriterGuard {
    _turn: OwnedMutexGuard<()>,
    /// Set for a task transaction's turn: cleared when it ends.
    task_transaction: Option<Arc<std::sync::Mutex<Option<Holder>>>>,
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        // Before the turn goes (the fields drop after this): the next holder is not this one.
        if let Some(holder) = &self.task_transaction {
            *holder.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }
}

/// A write did not get the store's [`WriterLock`] because an open task transaction holds it:
/// one of the caller's own (the write could never proceed), or one open longer than the lock
/// lets writers wait. Transient: once the task transaction ends, writes go through.
#[derive(Debug, Clone)]
pub struct WriterBusy {
    /// How long the task transaction has been open.
    pub held_for: Duration,
    /// How long this write waited for it; `None` when it failed at once, the transaction being
    /// the caller's own.
    pub waited: Option<Duration>,
}

impl fmt::Display for WriterBusy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let held = self.held_for.as_secs_f64();
        match self.waited {
            None => write!(
                f,
                "this store write was called while a task transaction (begin_with_tasks) opened by \
                 the same task {held:.1} s ago is still open; SQLite has one writer, and that \
                 transaction holds it, so the write would wait for a transaction that cannot end \
                 while its own code waits: enqueue through the transaction (`tx.enqueue`), or \
                 commit or roll it back before calling the store"
            ),
            Some(waited) => write!(
                f,
                "an open task transaction (begin_with_tasks) in this process has held the SQLite \
                 store's write lock for {held:.1} s; this store write waited {:.1} s for it to \
                 commit or roll back, and gave up. If the transaction's own code awaits this \
                 write (`client.run_now`, or a task it spawned), it can never end: enqueue \
                 through the transaction (`tx.enqueue`), or commit it before calling the store; \
                 otherwise keep task transactions short, and try again",
                waited.as_secs_f64()
            ),
        }
    }
}

impl std::error::Error for WriterBusy {}

/// Why [`Dialect::begin_write`] (or [`Dialect::begin_task_transaction`]) began nothing.
#[derive(Debug)]
pub enum BeginError {
    /// The database refused or failed.
    Db(DbErr),
    /// The store's one-writer lock is held by an open task transaction ([`WriterBusy`]).
    Writer(WriterBusy),
}

impl From<DbErr> for BeginError {
    fn from(e: DbErr) -> Self {
        Self::Db(e)
    }
}

impl From<WriterBusy> for BeginError {
    fn from(e: WriterBusy) -> Self {
        Self::Writer(e)
    }
}

impl fmt::Display for BeginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Db(e) => fmt::Display::fmt(e, f),
            Self::Writer(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for BeginError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Db(e) => Some(e),
            Self::Writer(e) => Some(e),
        }
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
    _writer: Option<WriterGuard>,
}

impl WriteTxn {
    /// A transaction, holding `writer` (if any) until it ends.
    pub fn new(txn: DatabaseTransaction, writer: Option<WriterGuard>) -> Self {
        Self {
            txn,
            _writer: writer,
        }
    }

    /// Begins a plain transaction on `db`, holding `writer` (if any) until it ends.
    pub async fn begin(
        db: &DatabaseConnection,
        writer: Option<WriterGuard>,
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
    /// set the sessions up. By default, [`Dialect::for_connection`].
    fn for_own_connection(db: &DatabaseConnection) -> Result<Self> {
        Self::for_connection(db)
    }

    /// Begins one of the store's own transactions, for work that reads, then writes.
    async fn begin_write(&self, db: &DatabaseConnection) -> Result<WriteTxn, BeginError>;

    /// Begins the application's transaction of [`crate::SqlStore::begin_with_tasks`]: at the
    /// isolation level the application's sessions have (not the store's own), and so that the
    /// store's writes meanwhile do not wait for it without a bound (SQLite: see
    /// [`WriterLock`]). By default, [`Dialect::begin_write`].
    async fn begin_task_transaction(
        &self,
        db: &DatabaseConnection,
    ) -> Result<WriteTxn, BeginError> {
        self.begin_write(db).await
    }

    /// What the store's writes outside a transaction hold while they run (single statements in
    /// autocommit: the single insert): SQLite's one-writer lock, so that they
    /// never meet "database is locked" from the store's own writers. `None` by default.
    async fn write_lock(&self) -> Result<Option<WriterGuard>, WriterBusy> {
        Ok(None)
    }

    /// A query answering the database's current UTC time, as a `DATETIME`/`TIMESTAMP` without
    /// zone in one column `t` — the time when it runs, not its transaction's start (MySQL
    /// `UTC_TIMESTAMP(6)`) — or `None` for a database that is one host's by nature (SQLite),
    /// whose clients keep the system clock. See [`taskrow::TaskStore::database_time`].
    const DATABASE_TIME: Option<&'static str>;

    /// Whether a claim's read leaves out the paused queues by itself, with a subquery of
    /// `taskrow_queue` in its `WHERE`, instead of a read of them first: where the read's view
    /// of that table is the transaction's from its start (SQLite's one writer) or the
    /// statement's own (PostgreSQL, whose claim is the transaction's first statement). Not
    /// MySQL, whose locking read would lock the queue rows it reads. `false` by default.
    const PAUSED_IN_READ: bool = false;

    /// Wake-ups from other processes ([`taskrow::TaskStore::wakeups`]): PostgreSQL's
    /// LISTEN/NOTIFY. `None` by default.
    fn wakeups(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// Tells the workers of other processes that tasks became due by a change other than an
    /// insert (a reset, a resumed queue, tasks handed back), where the database can
    /// (PostgreSQL: a notification on the channel its insert trigger uses). Nothing by
    /// default: those workers find the tasks at their next poll.
    async fn notify_due(&self, db: &DatabaseConnection) -> Result<(), DbErr> {
        let _ = db;
        Ok(())
    }

    /// What the database behind `db` can do ([`Capabilities`]). It may ask the server once
    /// (MySQL or MariaDB) and keep the answer. None by default.
    async fn capabilities(&self, db: &DatabaseConnection) -> Result<Capabilities, DbErr> {
        let _ = db;
        Ok(Capabilities::NONE)
    }

    /// The read of the batch claim ([`crate::claim::claim`]), on its write transaction: up to
    /// `limit` rows of [`crate::claim::due_condition`] at `claim.now`, highest priority first, then oldest due
    /// (`run_at`, then id), kept from other claimers until `txn` ends. A dialect reads them
    /// whole when it needs the rows for [`Dialect::take_due`], or by id and state
    /// ([`crate::claim::due_ids`]) when not. It may also claim the pending ones as `claim` says
    /// in the same statement ([`Due::claimed`]: PostgreSQL); the running ones (lost runs, to be
    /// settled first) it leaves as they are.
    async fn read_due(
        &self,
        txn: &WriteTxn,
        req: &ClaimRequest,
        claim: &Claim,
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

    /// The delete of a batch of successes (the common finish of a drain), on the finish's
    /// transaction: the rows of `leases` still running under them whose tasks go on success
    /// (`on_success = delete`), deleted; their ids. `None` (the default): the shared statement
    /// does it, `… WHERE state = running AND on_success = delete AND ((id = ? AND claim_token =
    /// ?) OR …)`.
    async fn delete_succeeded(
        &self,
        txn: &WriteTxn,
        leases: &[Lease],
    ) -> Option<Result<HashSet<i64>, DbErr>> {
        let _ = (txn, leases);
        None
    }

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
