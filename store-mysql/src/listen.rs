//! Wake-ups from other processes: MySQL and MariaDB have no notifications, so one dedicated
//! connection per store asks every [`CHECK_EVERY`] for two numbers that move when tasks arrive
//! or fall due by another process's hand — the newest task id and the earliest next run time
//! of a pending task — and turns each change into a change of a [`watch`] counter that idle
//! workers wait on ([`taskrow::TaskStore::wakeups`]). A task another process enqueues, resets
//! or hands back is claimed within milliseconds instead of at the worker's next poll.
//!
//! - **Cheap.** `MAX(id)` reads the primary key's last entry and `MIN(run_at) … WHERE state =
//!   pending` the first entry of the `(state, run_at)` index: one statement, two index probes,
//!   no lock, whatever the table's size. Idle, a process asks 1 / [`CHECK_EVERY`] times a second
//!   (100), whatever its number of workers.
//! - **What it misses** wakes no one: a resumed queue, a lease that expired, a task whose
//!   delay ran out (the earliest pending time is the same). Workers find those at their poll,
//!   which stays the safety net.
//! - **Coalesced.** A watch keeps only "changed": a burst between two checks is one wake-up.
//!   A change this process made (its own enqueue, its claims moving the earliest time) wakes
//!   its idle workers once more: one claim that finds nothing.
//! - **Lost connection.** The check's connection is opened again after an error (from
//!   [`FIRST_RETRY`], doubling up to [`LAST_RETRY`]), with one wake-up once it is back;
//!   workers poll meanwhile.
//! - **Lazy.** The connection opens when a worker first asks for wake-ups (on a tokio
//!   runtime), and closes once the store and every worker holding its wake-ups are gone.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use sea_orm::sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sea_orm::sqlx::{self, ConnectOptions, Connection};
use tokio::sync::watch;

/// How often the dedicated connection asks whether tasks arrived or fell due.
pub const CHECK_EVERY: Duration = Duration::from_millis(10);

/// The pause before the first try to open the check's connection again after an error.
pub const FIRST_RETRY: Duration = Duration::from_millis(200);

/// The longest pause between tries to open it again.
pub const LAST_RETRY: Duration = Duration::from_secs(10);

/// The check: the newest id, and the earliest next run of a pending task (state 0), as text
/// so that no type needs decoding (`NULL` on an empty table).
const CHECK: &str = "SELECT CAST((SELECT MAX(id) FROM taskrow_task) AS CHAR), \
                     CAST((SELECT MIN(run_at) FROM taskrow_task WHERE state = 0) AS CHAR)";

/// A store's wake-ups: where the check connects, and the counter once it runs.
#[derive(Debug, Default)]
pub(crate) struct Wakeups {
    /// How to connect; `None`: no wake-ups.
    options: Option<MySqlConnectOptions>,
    /// The counter the running check publishes into.
    counter: Mutex<Option<watch::Receiver<u64>>>,
}

impl Wakeups {
    /// Wake-ups for the database that `options` connect to.
    pub(crate) fn for_options(options: MySqlConnectOptions) -> Self {
        Self {
            options: Some(options),
            counter: Mutex::new(None),
        }
    }

    /// The counter, starting the check on the current tokio runtime on first use (or when the
    /// runtime it ran on has gone). `None` when off or outside a runtime.
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

type Mark = (Option<String>, Option<String>);

async fn mark(conn: &mut MySqlConnection) -> Result<Mark, sqlx::Error> {
    sqlx::query_as(CHECK).fetch_one(conn).await
}

/// Checks until every receiver of `tx` is gone, opening the connection again after errors.
async fn check(options: MySqlConnectOptions, tx: watch::Sender<u64>) {
    // The statements are many and cheap: not worth a log line each.
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
                    tracing::warn!(error = %e, retry_in = ?retry, "taskrow: cannot watch for other processes' enqueues; workers poll meanwhile");
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
            tracing::info!("taskrow: watching for other processes' enqueues again");
        }
        // Whatever came while nobody watched: look once.
        wake(&tx);
        let mut last: Option<Mark> = None;
        let why = loop {
            match mark(&mut conn).await {
                Ok(m) => {
                    if last.as_ref().is_some_and(|l| *l != m) {
                        wake(&tx);
                    }
                    last = Some(m);
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
        tracing::warn!(error = %e, "taskrow: watching for other processes' enqueues failed; connecting again, and workers poll meanwhile");
        lost = true;
        retry = FIRST_RETRY;
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(retry) => {}
        }
    }
}
