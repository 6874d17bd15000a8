//! Wake-ups from other processes: SQLite has no notifications, but it says cheaply whether
//! anyone committed to the file. One dedicated connection per store asks
//! `PRAGMA data_version` every [`CHECK_EVERY`] and turns each change into a change of a
//! [`watch`] counter that idle workers wait on ([`taskrow::TaskStore::wakeups`]), so a task
//! another process enqueues (or resets) is claimed within milliseconds instead of at the
//! worker's next poll.
//!
//! - **Cheap.** `data_version` reads a counter in the WAL index's shared memory: no disk I/O,
//!   no transaction left open (a checkpoint never waits for it). Idle, a process asks
//!   1 / [`CHECK_EVERY`] times a second (100), one statement each, whatever its number of
//!   workers; a full claim at the poll interval stays the safety net.
//! - **Coalesced.** A watch keeps only "changed": a burst of commits between two checks is one
//!   wake-up, and a woken worker claims on while it finds work.
//! - **Any commit.** The version moves for every commit by another connection, this
//!   process's own pool included (its finishes, heartbeats): an idle worker then claims once
//!   and finds nothing. A claim that takes nothing changes no page, so it wakes nobody.
//! - **Lost connection.** The check's connection is opened again after an error (from
//!   [`FIRST_RETRY`], doubling up to [`LAST_RETRY`]), with one wake-up once it is back;
//!   workers poll meanwhile.
//! - **Lazy, files only.** The connection opens when a worker first asks for wake-ups, on a
//!   tokio runtime, and closes once the store and every worker holding its wake-ups are gone.
//!   An in-memory database has no other process: no wake-ups.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sea_orm::sqlx::{self, ConnectOptions, Connection};
use tokio::sync::watch;

/// How often the dedicated connection asks whether the file changed.
pub const CHECK_EVERY: Duration = Duration::from_millis(10);

/// The pause before the first try to open the check's connection again after an error.
pub const FIRST_RETRY: Duration = Duration::from_millis(200);

/// The longest pause between tries to open it again.
pub const LAST_RETRY: Duration = Duration::from_secs(10);

/// A store's wake-ups: the file to watch, and the counter once the check runs.
#[derive(Debug, Default)]
pub(crate) struct Wakeups {
    /// How to open the file; `None`: no wake-ups (off, or an in-memory database).
    options: Option<SqliteConnectOptions>,
    /// The counter the running check publishes into.
    counter: Mutex<Option<watch::Receiver<u64>>>,
}

impl Wakeups {
    /// Wake-ups for the database that `options` open, when it is a file that exists.
    pub(crate) fn for_file(options: SqliteConnectOptions) -> Self {
        let file = options.get_filename();
        Self {
            options: file.is_file().then_some(options),
            counter: Mutex::new(None),
        }
    }

    /// The counter, starting the check on the current tokio runtime on first use (or when the
    /// runtime it ran on has gone). `None` without a file or outside a runtime.
    pub(crate) fn receiver(&self) -> Option<watch::Receiver<u64>> {
        let options = self.options.as_ref()?;
        let mut counter = self.counter.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(rx) = counter.as_ref()
            && rx.has_changed().is_ok()
        {
            return Some(rx.clone());
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (tx, rx) = watch::channel(0);
        runtime.spawn(check(options.clone(), tx));
        *counter = Some(rx.clone());
        Some(rx)
    }
}

/// One more wake-up.
fn wake(tx: &watch::Sender<u64>) {
    tx.send_modify(|n| *n = n.wrapping_add(1));
}

async fn data_version(conn: &mut SqliteConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("PRAGMA data_version")
        .fetch_one(conn)
        .await
}

/// Checks until every receiver of `tx` is gone, opening the connection again after errors.
async fn check(options: SqliteConnectOptions, tx: watch::Sender<u64>) {
    // The statements are few and cheap: not worth a log line each.
    let options = options.disable_statement_logging();
    let mut retry = FIRST_RETRY;
    let mut lost = false;
    loop {
        let opened = tokio::select! {
            _ = tx.closed() => return,
            r = options.connect() => r,
        };
        let mut conn = match opened {
            Ok(conn) => conn,
            Err(e) => {
                if !lost {
                    tracing::warn!(error = %e, retry_in = ?retry, "taskrow: cannot watch the SQLite file for other processes' enqueues; workers poll meanwhile");
                    lost = true;
                }
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(LAST_RETRY);
                continue;
            }
        };
        if lost {
            tracing::info!("taskrow: watching the SQLite file for other processes' enqueues again");
        }
        // Whatever was committed while nobody watched: look once.
        wake(&tx);
        let mut last = None;
        let why = loop {
            match data_version(&mut conn).await {
                Ok(v) => {
                    if last.is_some_and(|l| l != v) {
                        wake(&tx);
                    }
                    last = Some(v);
                }
                Err(e) => break Some(e),
            }
            tokio::select! {
                _ = tx.closed() => break None,
                _ = tokio::time::sleep(CHECK_EVERY) => {}
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), conn.close()).await;
        let Some(e) = why else { return };
        tracing::warn!(error = %e, "taskrow: watching the SQLite file failed; opening it again, and workers poll meanwhile");
        lost = true;
        retry = FIRST_RETRY;
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(retry) => {}
        }
    }
}
