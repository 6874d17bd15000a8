//! taskrow on PostgreSQL: [`PostgresStore`].
//!
//! - **The claim** is one statement in a short `READ COMMITTED` transaction: it selects the due
//!   rows `ORDER BY priority, run_at, id LIMIT n FOR UPDATE SKIP LOCKED` and claims the pending ones
//!   (`UPDATE … WHERE id IN (…)`), in one round trip (see `claim.rs`). Concurrent claimers
//!   skip each other's rows instead of waiting. Runs of lost workers met on the way (running
//!   under an expired lease) are logged, and failed at their last attempt, in the same
//!   transaction.
//! - **Writes** run in `READ COMMITTED` transactions: results, heartbeats and releases guarded
//!   by the claim's fencing token, other changes by the row version (the optimistic lock).
//!   `READ COMMITTED` is PostgreSQL's default, so the store's transactions are plain `BEGIN`s;
//!   only where the server, database or role sets another default does each of them set its
//!   own level (for that transaction only: the application's transactions on the same pool,
//!   `begin_with_tasks` ones included, keep the default). The single insert is one autocommit
//!   statement. Serialization failures (40001), deadlocks (40P01) and lock timeouts (55P03) are
//!   retried a few times inside the store; an error that surfaces says whether it is transient
//!   (a server shutting down, 57P01, and a lost connection are).
//! - **Wake-ups**: every insert notifies (a trigger, `pg_notify` at commit), so do a reset, a
//!   resumed queue and tasks handed back (`pg_notify` after their commit), and a worker's
//!   store listens on one connection of its own, so workers in other processes claim within
//!   milliseconds instead of at their next poll (see `listen.rs`); the poll stays the safety
//!   net. [`PostgresDialect::without_wakeups`] turns it off.
//! - **Time**: clients follow the database's clock (`clock_timestamp()`) by default.
//! - **Types**: times are `TIMESTAMP(6)` without time zone, in UTC, as on the other stores;
//!   ids are identity `bigint`s; payloads `TEXT`, stored and returned verbatim.
//!
//! Needs PostgreSQL 11+ (`EXECUTE FUNCTION` in the trigger); tested on 15.
//!
//! ```no_run
//! # async fn run() -> taskrow::Result<()> {
//! use taskrow_postgres::PostgresStore;
//!
//! let store =
//!     PostgresStore::connect_and_migrate("postgres://app:secret@127.0.0.1:5432/app").await?;
//! # let _ = store; Ok(()) }
//! ```

mod claim;
mod connect;
mod dialect;
mod listen;
pub mod testing;

pub use connect::{ACQUIRE_TIMEOUT, PING_AFTER_IDLE, POOL_SIZE};
pub use dialect::PostgresDialect;
pub use listen::{APPLICATION_NAME, FIRST_RETRY, LAST_RETRY};
pub use taskrow_sql::{
    Committed, DEFAULT_DISPATCH_DELAY, Dispatched, SqlStore, TaskTransaction, entity, sea_orm,
};

/// The taskrow store on PostgreSQL: [`SqlStore`] with the [`PostgresDialect`].
///
/// Open it with [`PostgresStore::connect`] (`postgres://user:password@host:5432/database`, or
/// `postgresql://…`), [`PostgresStore::connect_and_migrate`], or
/// [`PostgresStore::from_connection`] for a pool you opened yourself (your application's
/// SeaORM connection, say). Either way the pool's sessions keep their isolation level; the
/// store's own transactions are `READ COMMITTED` whatever it is.
pub type PostgresStore = SqlStore<PostgresDialect>;

/// Opens a store on `url` ([`SqlStore::connect`]).
pub async fn connect(url: &str) -> taskrow::Result<PostgresStore> {
    PostgresStore::connect(url).await
}

/// Opens a store on `url` and runs taskrow's migrations ([`SqlStore::connect_and_migrate`]).
pub async fn connect_and_migrate(url: &str) -> taskrow::Result<PostgresStore> {
    PostgresStore::connect_and_migrate(url).await
}

/// A store on a pool opened elsewhere ([`SqlStore::from_connection`]).
pub fn from_connection(db: sea_orm::DatabaseConnection) -> taskrow::Result<PostgresStore> {
    PostgresStore::from_connection(db)
}
