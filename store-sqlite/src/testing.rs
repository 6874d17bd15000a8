//! Stores for tests: a fresh, migrated SQLite database per test. The conformance suite and the
//! benchmarks use these; so can applications testing against SQLite.

use tempfile::TempDir;

use crate::SqliteStore;

/// A URL for a database file (not yet created) in a new temporary directory, and the directory
/// (deleted when dropped).
pub fn temp_url() -> (String, TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("taskrow-sqlite-")
        .tempdir()
        .expect("cannot create a temporary directory for a SQLite test database");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("tasks.db").display()
    );
    (url, dir)
}

/// A migrated store on a fresh database file in WAL mode, in a temporary directory. Keep the
/// [`TempDir`] while the store is used: dropping it deletes the file.
///
/// # Panics
///
/// If the directory, the database or the migrations fail.
pub async fn temp_store() -> (SqliteStore, TempDir) {
    let (url, dir) = temp_url();
    let store = SqliteStore::connect_and_migrate(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot open a test SQLite store at {url}: {e}"));
    (store, dir)
}

/// A migrated store on a fresh in-memory database (one connection).
///
/// # Panics
///
/// If the database or the migrations fail.
pub async fn memory_store() -> SqliteStore {
    SqliteStore::connect_and_migrate("sqlite::memory:")
        .await
        .unwrap_or_else(|e| panic!("cannot open an in-memory SQLite store: {e}"))
}
