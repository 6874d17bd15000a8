//! Wake-ups from other processes with LISTEN/NOTIFY: one dedicated connection per store
//! listens on [`taskrow_migration::NOTIFY_CHANNEL`], which the task table's insert trigger
//! notifies (migration `m20261128_000002_taskrow_notify`), and turns each notification into a
//! change of a [`watch`] counter that idle workers wait on ([`taskrow::TaskStore::wakeups`]).
//!
//! - **Coalesced.** A watch keeps only "changed": however many notifications arrive while a
//!   worker claims, it wakes once more, claims once, and claims on while it finds work. PostgreSQL
//!   itself folds a transaction's notifications into one, so a batch insert is one wake-up.
//! - **At commit.** PostgreSQL delivers a notification when the transaction that sent it
//!   commits: an enqueue inside the application's transaction wakes the workers once the task
//!   is visible to their claim, and a rolled-back one never.
//! - **Lost connections.** The listener reconnects after a loss, waiting longer after each
//!   failed try and each connection lost soon after it was made ([`FIRST_RETRY`] doubling up to
//!   [`LAST_RETRY`]); meanwhile workers fall back to their poll, which stays the safety net.
//!   Notifications sent while nobody listened are gone, so every (re)connection ends with one
//!   wake-up: workers look once for what came meanwhile.
//! - **Lazy.** The connection opens when a worker first asks for wake-ups (on a tokio runtime),
//!   so a process that only enqueues holds none. It closes once the store and every worker
//!   holding its wake-ups are gone.

use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
pub use taskrow_sql::wakeups::{FIRST_RETRY, LAST_RETRY};
use taskrow_sql::wakeups::{Wakeups, wake};
use tokio::sync::watch;

use crate::connect::ACQUIRE_TIMEOUT;

/// The `application_name` of the listening connection, as `pg_stat_activity` shows it.
pub const APPLICATION_NAME: &str = "taskrow-listener";

/// Wake-ups for the store on `pool`: a listener with the pool's connect options.
pub(crate) fn for_pool(pool: &PgPool) -> Wakeups {
    let options = (*pool.connect_options()).clone();
    Wakeups::new(move |tx| listen(options.clone(), tx))
}

/// Listens until every receiver of `tx` is gone, reconnecting after losses.
async fn listen(options: PgConnectOptions, tx: watch::Sender<u64>) {
    // A pool of one, outside the store's: the listener takes its connection from it and takes
    // a new one after a loss (a broken one fails its check and is replaced).
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with(options.application_name(APPLICATION_NAME));
    let mut retry = FIRST_RETRY;
    let mut lost = false;
    loop {
        let subscribed = tokio::select! {
            _ = tx.closed() => break,
            r = subscribe(&pool) => r,
        };
        let mut listener = match subscribed {
            Ok(listener) => listener,
            Err(e) => {
                if lost {
                    tracing::debug!(error = %e, retry_in = ?retry, "taskrow: cannot LISTEN yet");
                } else {
                    tracing::warn!(error = %e, retry_in = ?retry, "taskrow: cannot LISTEN for enqueues from other processes; workers poll meanwhile");
                    lost = true;
                }
                tokio::select! {
                    _ = tx.closed() => break,
                    _ = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(LAST_RETRY);
                continue;
            }
        };
        if lost {
            tracing::info!("taskrow: listening for enqueues from other processes again");
        }
        let since = std::time::Instant::now();
        // Whatever was enqueued while nobody listened: look once.
        wake(&tx);
        let why = loop {
            tokio::select! {
                _ = tx.closed() => break None,
                r = listener.try_recv() => match r {
                    Ok(Some(_)) => wake(&tx),
                    Ok(None) => break Some("the connection was lost".to_owned()),
                    Err(e) => break Some(e.to_string()),
                },
            }
        };
        drop(listener);
        let Some(why) = why else { break };
        tracing::warn!(reason = %why, "taskrow: the LISTEN connection ended; reconnecting, and workers poll meanwhile");
        lost = true;
        // A connection that lasted starts the pauses afresh; one lost at once lengthens them.
        retry = if since.elapsed() >= LAST_RETRY {
            FIRST_RETRY
        } else {
            (retry * 2).min(LAST_RETRY)
        };
        tokio::select! {
            _ = tx.closed() => break,
            _ = tokio::time::sleep(retry) => {}
        }
    }
    // The listener's connection goes back (after its `UNLISTEN`) and is closed; a connection
    // that hangs is not waited for long.
    let _ = tokio::time::timeout(Duration::from_secs(1), pool.close()).await;
}

/// A listener on the notify channel, its connection taken from `pool`.
async fn subscribe(pool: &PgPool) -> Result<PgListener, sea_orm::sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // Losses are handled above, with a pause between tries.
    listener.eager_reconnect(false);
    listener.ignore_pool_close_event(true);
    listener.listen(taskrow_migration::NOTIFY_CHANNEL).await?;
    Ok(listener)
}
