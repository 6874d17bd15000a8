//! taskrow on SQLite: [`SqliteStore`].
//!
//! - **One writer.** Every write of the store runs under one in-process async lock, in a
//!   `BEGIN IMMEDIATE` transaction, so the store's own writers never meet SQLite's
//!   "database is locked". Readers (`get`, `list`, `logs`, `counts`) do not wait for it.
//!   An application's task transaction (`begin_with_tasks`) holds it until it ends: a store
//!   write from the task that opened it fails at once (it would wait for itself), and one from
//!   elsewhere in the process (a worker, another request) waits up to [`BUSY_TIMEOUT`]
//!   ([`SqliteDialect::wait_for_task_transactions`]), then fails; both with a transient error
//!   naming the open task transaction.
//! - **WAL** on files, with `synchronous = NORMAL` and a 10 s busy timeout (for other
//!   processes on the same file, whose busy errors are also retried a few times).
//! - **A pool** of [`POOL_SIZE`] connections on a file; `sqlite::memory:` gets one connection,
//!   kept open for the pool's life (the database lives as long as its connection).
//! - **The claim** selects the due ids and marks them with one `UPDATE … RETURNING *`, in
//!   one immediate transaction that also logs (and, at their last attempt, fails) the runs of
//!   lost workers it meets (see `claim.rs`).
//! - **Wake-ups** from other processes: one connection of the store asks SQLite every 10 ms
//!   whether anyone committed to the file (`PRAGMA data_version`, a read of shared memory), so
//!   idle workers claim another process's task within milliseconds instead of at their next
//!   poll (see `listen.rs`); the poll stays the safety net.
//!   [`SqliteDialect::without_wakeups`] turns it off.
//!
//! ```no_run
//! # async fn run() -> taskrow::Result<()> {
//! use taskrow_sqlite::SqliteStore;
//!
//! let store = SqliteStore::connect_and_migrate("sqlite://tasks.db?mode=rwc").await?;
//! # let _ = store; Ok(()) }
//! ```

mod claim;
mod connect;
mod dialect;
mod listen;
pub mod testing;

pub use connect::{BUSY_TIMEOUT, POOL_SIZE};
pub use dialect::SqliteDialect;
pub use listen::CHECK_EVERY;
pub use taskrow_sql::{
    Committed, DEFAULT_DISPATCH_DELAY, Dispatched, SqlStore, TaskTransaction, entity, sea_orm,
};

/// The taskrow store on SQLite: [`SqlStore`] with the [`SqliteDialect`].
///
/// Open it with [`SqliteStore::connect`] (`sqlite://path?mode=rwc`, or `sqlite::memory:`),
/// [`SqliteStore::connect_and_migrate`], or [`SqliteStore::from_connection`] for a pool you
/// opened yourself (then set WAL and a busy timeout on it, and give it more than one
/// connection).
pub type SqliteStore = SqlStore<SqliteDialect>;

/// Opens a store on `url` ([`SqlStore::connect`]).
pub async fn connect(url: &str) -> taskrow::Result<SqliteStore> {
    SqliteStore::connect(url).await
}

/// Opens a store on `url` and runs taskrow's migrations ([`SqlStore::connect_and_migrate`]).
pub async fn connect_and_migrate(url: &str) -> taskrow::Result<SqliteStore> {
    SqliteStore::connect_and_migrate(url).await
}

/// A store on a pool opened elsewhere ([`SqlStore::from_connection`]).
pub fn from_connection(db: sea_orm::DatabaseConnection) -> taskrow::Result<SqliteStore> {
    SqliteStore::from_connection(db)
}
