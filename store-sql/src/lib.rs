//! The one SeaORM implementation of taskrow's [`TaskStore`](taskrow::TaskStore), shared by
//! `taskrow-sqlite`, `taskrow-mysql` and `taskrow-postgres`.
//!
//! [`SqlStore<D>`] holds every statement the databases share; a [`Dialect`] holds only what
//! differs: connecting, beginning a write transaction, the read and the write of the batch claim (whose
//! settling of lost runs is shared, in [`claim`]), and reading the
//! database's errors. The [`entity`] module has the SeaORM entities of the two tables, for
//! applications that want to query them directly.
//!
//! Applications use the store crates (`taskrow_sqlite::SqliteStore`,
//! `taskrow_mysql::MysqlStore`, `taskrow_postgres::PostgresStore`); this crate matters to them
//! for [`SqlStore::insert_on`] (enqueue inside the application's own transaction) and the
//! entities.

pub mod claim;
pub mod dialect;
pub mod entity;
pub mod schema;
mod store;
pub mod time;
pub mod transaction;
pub mod url;
pub mod wakeups;

pub use dialect::{Capabilities, Dialect, ErrorKind, WriteTxn};
pub use store::{INSERT_CHUNK_BYTES, INSERT_CHUNK_ROWS, SqlStore};
pub use transaction::{Committed, DEFAULT_DISPATCH_DELAY, Dispatched, TaskTransaction};

// For the store crates and applications: the SeaORM this crate is built with.
pub use sea_orm;
