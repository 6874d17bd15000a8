//! Opening a SQLite pool tuned for taskrow.

use std::str::FromStr;
use std::time::Duration;

use sea_orm::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sea_orm::{DatabaseConnection, SqlxSqliteConnector};
use taskrow::{Error, Result};
use taskrow_sql::url::redact;

/// Connections in the pool of a database file: one writer at a time, readers beside it.
pub const POOL_SIZE: u32 = 8;

/// How long a statement waits for another process's write lock before SQLite reports busy.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

fn bad_url(url: &str, reason: impl Into<String>) -> Error {
    Error::BadUrl {
        url: redact(url),
        reason: reason.into(),
    }
}

/// Whether `url` names an in-memory database.
fn in_memory(url: &str) -> bool {
    url.starts_with("sqlite::memory:") || url.contains("mode=memory")
}

/// Opens the pool for `url`: WAL, `synchronous = NORMAL` and [`BUSY_TIMEOUT`] on every
/// connection of a file, [`POOL_SIZE`] connections; one lasting connection for memory.
pub(crate) async fn open(url: &str) -> Result<DatabaseConnection> {
    if !url.starts_with("sqlite:") {
        return Err(bad_url(
            url,
            "taskrow-sqlite opens `sqlite:` URLs, such as `sqlite://tasks.db?mode=rwc` (created \
             if missing) or `sqlite::memory:`",
        ));
    }
    let options = SqliteConnectOptions::from_str(url).map_err(|e| bad_url(url, e.to_string()))?;
    let options = options
        .busy_timeout(BUSY_TIMEOUT)
        .synchronous(SqliteSynchronous::Normal);
    let pool = if in_memory(url) {
        // An in-memory database lives as long as a connection to it: one connection, never
        // closed while the pool lives. Writes and reads take turns on it; the store never
        // waits for the pool while it holds the connection.
        SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        SqlitePoolOptions::new().max_connections(POOL_SIZE)
    };
    // No `SELECT`-less ping before every use of a pooled connection (sqlx's default): a SQLite
    // connection is a file handle on a thread of this process, with no other end to hang up,
    // and the ping is one more round trip to that thread on every store call.
    let pool = pool.test_before_acquire(false);
    let options = if in_memory(url) {
        options
    } else {
        options.journal_mode(SqliteJournalMode::Wal)
    };
    let file = options.get_filename().to_path_buf();
    let missing = !in_memory(url)
        && !file.exists()
        && !url.contains("mode=rwc")
        && !url.contains("create_if_missing");
    let no_dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(|d| d.display().to_string());
    let pool = pool.connect_with(options).await.map_err(|e| {
        if missing {
            // sqlx opens an existing file only, unless the URL says `mode=rwc`.
            let hint = match &no_dir {
                Some(dir) => format!(
                    "the file does not exist, nor its directory `{dir}`: create the directory, \
                     then add `?mode=rwc` to the URL (or run `taskrow migrate up`) to create the file"
                ),
                None => "the file does not exist: add `?mode=rwc` to the URL to create it \
                         (`sqlite://tasks.db?mode=rwc`), or run `taskrow migrate up`, which \
                         creates it"
                    .to_owned(),
            };
            Error::NoSuchDatabase {
                url: redact(url),
                hint,
                source: Box::new(e),
            }
        } else {
            Error::Unreachable {
                url: redact(url),
                source: Box::new(e),
            }
        }
    })?;
    Ok(SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
}
