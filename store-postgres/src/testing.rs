//! Stores for tests: a fresh database per test on the PostgreSQL server named by
//! `TASKROW_POSTGRES_URL` (for example `postgres://postgres@127.0.0.1:5432`). The conformance
//! suite and the benchmarks use these.
//!
//! Without the variable, tests skip: [`fresh_store`] prints
//! `skipped: TASKROW_POSTGRES_URL not set` and returns `None` — except under `CI=true`, where it
//! panics, so CI cannot pass by skipping.

use sea_orm::{ConnectionTrait, Database};

use crate::PostgresStore;

/// The environment variable naming the test server: `postgres://user:password@host:port`,
/// with or without a database (each test makes its own).
pub const URL_VAR: &str = "TASKROW_POSTGRES_URL";

/// The test server's URL, from [`URL_VAR`], if set and not empty.
pub fn server_url() -> Option<String> {
    std::env::var(URL_VAR).ok().filter(|u| !u.trim().is_empty())
}

/// `None` after saying why the test skips; a panic instead under `CI=true`.
fn skip<T>() -> Option<T> {
    let reason = format!("{URL_VAR} not set");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{reason}: CI must run the PostgreSQL tests (e.g. \
             {URL_VAR}=postgres://postgres@127.0.0.1:5432)"
        );
    }
    println!("skipped: {reason}");
    None
}

/// `server` (a URL with or without a database) naming database `name` instead.
pub fn url_with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| i + authority_start);
    let mut url = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// A database made for one test, on the server of `server_url`. Drop it with
/// [`FreshDatabase::drop_database`] when the test passed; a failed test leaves it for
/// inspection.
#[derive(Debug, Clone)]
pub struct FreshDatabase {
    /// Its name: `taskrow_test_<uuid>`.
    pub name: String,
    /// A URL naming it, for [`PostgresStore::connect`].
    pub url: String,
    server: String,
}

impl FreshDatabase {
    /// Creates an empty database (no tables) on `server`.
    ///
    /// # Panics
    ///
    /// If the server cannot be reached or refuses.
    pub async fn create(server: &str) -> Self {
        let name = format!("taskrow_test_{}", uuid::Uuid::now_v7().simple());
        let admin = Database::connect(server)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test server {server}: {e}"));
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let _ = admin.close().await;
        Self {
            url: url_with_database(server, &name),
            name,
            server: server.to_owned(),
        }
    }

    /// Drops the database, closing the connections still open on it (a store's pool or
    /// listener that outlived the test).
    ///
    /// # Panics
    ///
    /// If the server cannot be reached or refuses.
    pub async fn drop_database(self) {
        let admin = Database::connect(&self.server)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test server {}: {e}", self.server));
        admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await
            .unwrap_or_else(|e| panic!("cannot drop test database {}: {e}", self.name));
        let _ = admin.close().await;
    }
}

/// A fresh, empty database on the test server, or `None` (after printing why) when
/// [`URL_VAR`] is not set. Panics instead of skipping under `CI=true`.
pub async fn fresh_database() -> Option<FreshDatabase> {
    match server_url() {
        Some(server) => Some(FreshDatabase::create(&server).await),
        None => skip(),
    }
}

/// A migrated store on a fresh database, and the database (drop it when the test passed), or
/// `None` (after printing why) when [`URL_VAR`] is not set. Panics instead of skipping under
/// `CI=true`.
///
/// # Panics
///
/// If the server cannot be reached, or the migrations fail.
pub async fn fresh_store() -> Option<(PostgresStore, FreshDatabase)> {
    let db = fresh_database().await?;
    let store = PostgresStore::connect_and_migrate(&db.url)
        .await
        .unwrap_or_else(|e| panic!("cannot open a test PostgreSQL store on {}: {e}", db.name));
    Some((store, db))
}

#[cfg(test)]
mod tests {
    use super::url_with_database;

    #[test]
    fn names_the_database() {
        assert_eq!(
            url_with_database("postgres://postgres@127.0.0.1:5432", "t"),
            "postgres://postgres@127.0.0.1:5432/t"
        );
        assert_eq!(
            url_with_database("postgresql://u:p@h/other?sslmode=disable", "t"),
            "postgresql://u:p@h/t?sslmode=disable"
        );
    }
}
