//! Wake-ups from other processes: SQLite has no notifications, but it says cheaply whether
//! anyone committed to the file. One dedicated connection per store asks
//! `PRAGMA data_version` every [`CHECK_EVERY`] and wakes idle workers when it moved
//! ([`taskrow_sql::wakeups`]), so a task another process enqueues (or resets) is claimed
//! within milliseconds instead of at the worker's next poll.
//!
//! - **Cheap.** `data_version` reads a counter in the WAL index's shared memory: no disk I/O,
//!   no transaction left open (a checkpoint never waits for it). Idle, a process asks
//!   1 / [`CHECK_EVERY`] times a second (100), one statement each, whatever its number of
//!   workers; a full claim at the poll interval stays the safety net.
//! - **Any commit.** The version moves for every commit by another connection, this
//!   process's own pool included (its finishes, heartbeats): an idle worker then claims once
//!   and finds nothing. A claim that takes nothing changes no page, so it wakes nobody.
//! - **Files only.** An in-memory database has no other process: no wake-ups.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sea_orm::sqlx::{self, ConnectOptions, Connection};
use taskrow_sql::wakeups::{Wakeups, Watch, poll_mark};

/// How often the dedicated connection asks whether the file changed.
pub const CHECK_EVERY: Duration = Duration::from_millis(10);

/// The question: the file's `data_version` on a connection of its own.
struct DataVersion(SqliteConnectOptions);

impl Watch for DataVersion {
    type Conn = SqliteConnection;
    type Mark = i64;
    type Error = sqlx::Error;
    async fn connect(&self) -> Result<SqliteConnection, sqlx::Error> {
        self.0.connect().await
    }
    async fn mark(&self, conn: &mut SqliteConnection) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(conn)
            .await
    }
    async fn close(&self, conn: SqliteConnection) {
        let _ = conn.close().await;
    }
}

/// Wake-ups for the database that `options` open, when it is a file that exists; none for
/// memory.
pub(crate) fn for_file(options: SqliteConnectOptions) -> Wakeups {
    if !options.get_filename().is_file() {
        return Wakeups::default();
    }
    // The statements are many and cheap: not worth a log line each.
    let options = options.disable_statement_logging();
    Wakeups::new(move |tx| {
        poll_mark(
            "the SQLite file",
            CHECK_EVERY,
            tx,
            DataVersion(options.clone()),
        )
    })
}
