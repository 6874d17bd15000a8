//! Wake-ups from other processes: MySQL and MariaDB have no notifications, so one dedicated
//! connection per store asks every [`CHECK_EVERY`] for values that move when tasks arrive or
//! fall due by another process's hand — the newest task id, the earliest next run time of a
//! pending task, the last pause or resume of a queue — and wakes idle workers when one moved
//! ([`taskrow_sql::wakeups`]). A task another process enqueues, resets or hands back, or a
//! queue it resumes, is claimed within milliseconds instead of at the worker's next poll.
//!
//! - **Cheap.** `MAX(id)` reads the primary key's last entry and `MIN(run_at) … WHERE state =
//!   pending` the first entry of the `(state, run_at)` index; the queue table has a row per
//!   queue: one statement, no lock, whatever the task table's size. Idle, a process asks 1 / [`CHECK_EVERY`] times a second
//!   (100), whatever its number of workers.
//! - **What it misses** wakes no one: a lease that expired, a task whose delay ran out, and a
//!   reset or hand-back while an older pending task (a backlog no worker here takes) holds the
//!   earliest time in place. Workers find those at their poll, which stays the safety net. A
//!   pause or resume moves the queue table's last change, which the check reads too.
//! - **Its own changes** (this process's enqueues, its claims moving the earliest time) wake
//!   its idle workers once more: one claim that finds nothing.

use std::time::Duration;

use sea_orm::sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sea_orm::sqlx::{self, ConnectOptions, Connection};
use taskrow_sql::wakeups::{Wakeups, Watch, poll_mark};

/// How often the dedicated connection asks whether tasks arrived or fell due.
pub const CHECK_EVERY: Duration = Duration::from_millis(10);

/// The check: the newest id, the earliest next run of a pending task (state 0), and the last
/// pause or resume of a queue, as text so that no type needs decoding (`NULL` when empty).
const CHECK: &str = "SELECT CAST((SELECT MAX(id) FROM taskrow_task) AS CHAR), \
                     CAST((SELECT MIN(run_at) FROM taskrow_task WHERE state = 0) AS CHAR), \
                     CAST((SELECT MAX(changed_at) FROM taskrow_queue) AS CHAR)";

/// The question: [`CHECK`] on a connection of its own.
struct NewestAndEarliest(MySqlConnectOptions);

impl Watch for NewestAndEarliest {
    type Conn = MySqlConnection;
    type Mark = (Option<String>, Option<String>, Option<String>);
    type Error = sqlx::Error;
    async fn connect(&self) -> Result<MySqlConnection, sqlx::Error> {
        let mut conn = self.0.connect().await?;
        // Each check must see the latest commits: with autocommit off (a server's or an
        // `init_connect` default) the first one would open a snapshot that never ends, and
        // hold back InnoDB's purge besides.
        sqlx::query("SET SESSION autocommit = 1")
            .execute(&mut conn)
            .await?;
        Ok(conn)
    }
    async fn mark(&self, conn: &mut MySqlConnection) -> Result<Self::Mark, sqlx::Error> {
        sqlx::query_as(CHECK).fetch_one(conn).await
    }
    async fn close(&self, conn: MySqlConnection) {
        let _ = conn.close().await;
    }
}

/// Wake-ups for the database that `options` connect to.
pub(crate) fn for_server(options: MySqlConnectOptions) -> Wakeups {
    // The statements are many and cheap: not worth a log line each.
    let options = options.disable_statement_logging();
    Wakeups::new(move |tx| {
        poll_mark(
            "the task table",
            CHECK_EVERY,
            tx,
            NewestAndEarliest(options.clone()),
        )
    })
}
