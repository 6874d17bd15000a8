//! taskrow on MySQL and MariaDB: [`MysqlStore`].
//!
//! - **The claim** is a short `READ COMMITTED` transaction: select the due rows
//!   `ORDER BY priority, run_at, id LIMIT n FOR UPDATE SKIP LOCKED`, mark them claimed (MySQL has no
//!   `UPDATE … RETURNING`: the locked rows are updated in memory the same way). Concurrent
//!   claimers skip each other's rows instead of waiting (see `claim.rs`).
//!   Runs of lost workers met on the way (running under an expired lease) are logged, and
//!   failed at their last attempt, in the same transaction.
//! - **Writes** run in `READ COMMITTED` transactions: results, heartbeats and releases guarded
//!   by the claim's fencing token, other changes by the row version (the optimistic lock). Each
//!   of the store's transactions sets its level (`SET TRANSACTION ISOLATION LEVEL READ
//!   COMMITTED`, for that transaction only) before its `BEGIN`: the sessions keep the server's
//!   level, so the application's transactions on the same pool, `begin_with_tasks` ones
//!   included, stay at the application's level (`REPEATABLE READ` by default). The single
//!   insert is one autocommit statement, with no transaction to set. Deadlocks (1213) and
//!   lock-wait timeouts (1205) are retried a few times inside the store; an error that surfaces
//!   says whether it is transient.
//! - **Times** are `DATETIME(6)` in UTC (the driver sets the session time zone to UTC).
//! - **Text** is `utf8mb4` with the binary collation, so codes compare exactly.
//! - **Wake-ups** from other processes: one connection of the store asks every 10 ms for the
//!   newest task id and the earliest pending run time (two index probes), so idle workers claim
//!   a task another process enqueued, reset or handed back within milliseconds instead of at
//!   their next poll (see `listen.rs`); the poll stays the safety net.
//!   [`MysqlDialect::without_wakeups`] turns it off.
//!
//! Needs MySQL 8.0+ or MariaDB 10.6+ (`SKIP LOCKED`).
//!
//! ```no_run
//! # async fn run() -> taskrow::Result<()> {
//! use taskrow_mysql::MysqlStore;
//!
//! let store = MysqlStore::connect_and_migrate("mysql://app:secret@127.0.0.1:3306/app").await?;
//! # let _ = store; Ok(()) }
//! ```

mod claim;
mod connect;
mod dialect;
mod listen;
pub mod testing;

pub use connect::{ACQUIRE_TIMEOUT, PING_AFTER_IDLE, POOL_SIZE};
pub use dialect::MysqlDialect;
pub use listen::CHECK_EVERY;
pub use taskrow_sql::{
    Committed, DEFAULT_DISPATCH_DELAY, Dispatched, SqlStore, TaskTransaction, entity, sea_orm,
};

/// The taskrow store on MySQL or MariaDB: [`SqlStore`] with the [`MysqlDialect`].
///
/// Open it with [`MysqlStore::connect`] (`mysql://user:password@host:3306/database`),
/// [`MysqlStore::connect_and_migrate`], or [`MysqlStore::from_connection`] for a pool you
/// opened yourself (your application's SeaORM connection, say). Either way the pool's sessions
/// keep their isolation level; the store's own transactions are `READ COMMITTED` whatever it is.
pub type MysqlStore = SqlStore<MysqlDialect>;

/// Opens a store on `url` ([`SqlStore::connect`]).
pub async fn connect(url: &str) -> taskrow::Result<MysqlStore> {
    MysqlStore::connect(url).await
}

/// Opens a store on `url` and runs taskrow's migrations ([`SqlStore::connect_and_migrate`]).
pub async fn connect_and_migrate(url: &str) -> taskrow::Result<MysqlStore> {
    MysqlStore::connect_and_migrate(url).await
}

/// A store on a pool opened elsewhere ([`SqlStore::from_connection`]).
pub fn from_connection(db: sea_orm::DatabaseConnection) -> taskrow::Result<MysqlStore> {
    MysqlStore::from_connection(db)
}
