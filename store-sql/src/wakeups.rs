//! Wake-ups from other processes, as the SQL stores feed them: a counter that idle workers
//! wait on ([`taskrow::TaskStore::wakeups`]), moved by a task of the store's own that watches
//! the database — PostgreSQL's `LISTEN`, or a cheap question asked every few milliseconds on
//! SQLite and MySQL ([`poll_mark`]).
//!
//! - **Coalesced.** A watch keeps only "changed": however many changes come while a worker
//!   claims, it wakes once more and claims on while it finds work.
//! - **Lazy.** The watching task starts when a worker first asks for wake-ups (on a tokio
//!   runtime), so a process that only enqueues holds no connection for it; from then on it runs
//!   as long as the store (which keeps the counter for the next worker) or a worker holding the
//!   counter lives.
//! - **Lost connections.** A feed opens its connection again after a loss, waiting longer after
//!   each failed try ([`FIRST_RETRY`] doubling up to [`LAST_RETRY`]); workers fall back to
//!   their poll meanwhile, which stays the safety net. Every (re)connection ends with one
//!   wake-up: workers look once for what came while nobody watched.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

/// The pause before the first try to connect again after the watching connection was lost.
pub const FIRST_RETRY: Duration = Duration::from_millis(200);

/// The longest pause between tries to connect again.
pub const LAST_RETRY: Duration = Duration::from_secs(10);

type Feed =
    Box<dyn Fn(watch::Sender<u64>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A store's wake-ups: how to start the task that feeds them, and the counter once it runs.
#[derive(Default)]
pub struct Wakeups {
    /// Starts the feed; `None`: no wake-ups.
    feed: Option<Feed>,
    /// The counter the running feed publishes into.
    counter: Mutex<Option<watch::Receiver<u64>>>,
}

impl fmt::Debug for Wakeups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wakeups")
            .field("on", &self.feed.is_some())
            .finish()
    }
}

impl Wakeups {
    /// Wake-ups fed by `feed`, which runs until the sender it is given is closed (every
    /// receiver gone), calling [`wake`] on it for each change it sees.
    pub fn new<F, Fut>(feed: F) -> Self
    where
        F: Fn(watch::Sender<u64>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self {
            feed: Some(Box::new(move |tx| Box::pin(feed(tx)))),
            counter: Mutex::new(None),
        }
    }

    /// The counter, starting the feed on the current tokio runtime on first use (or when the
    /// runtime it ran on has gone). `None` without a feed or outside a runtime.
    pub fn receiver(&self) -> Option<watch::Receiver<u64>> {
        let feed = self.feed.as_ref()?;
        let mut counter = self.counter.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(rx) = counter.as_ref()
            && rx.has_changed().is_ok()
        {
            return Some(rx.clone());
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (tx, rx) = watch::channel(0);
        runtime.spawn(feed(tx));
        *counter = Some(rx.clone());
        Some(rx)
    }
}

/// One more wake-up.
pub fn wake(tx: &watch::Sender<u64>) {
    tx.send_modify(|n| *n = n.wrapping_add(1));
}

/// What [`poll_mark`] watches: how to open its connection, the question it asks on it (its
/// answer, the mark, changes when there may be new work), and how to close it.
pub trait Watch: Send + Sync + 'static {
    /// The dedicated connection.
    type Conn: Send;
    /// The answer, compared with the one before.
    type Mark: PartialEq + Send;
    /// What connecting or asking may fail with.
    type Error: fmt::Display + Send;
    /// Opens the connection.
    fn connect(&self) -> impl Future<Output = Result<Self::Conn, Self::Error>> + Send;
    /// Asks the question.
    fn mark(
        &self,
        conn: &mut Self::Conn,
    ) -> impl Future<Output = Result<Self::Mark, Self::Error>> + Send;
    /// Closes the connection (after an error, or at the end).
    fn close(&self, conn: Self::Conn) -> impl Future<Output = ()> + Send;
}

/// Feeds `tx` by asking `watch`'s question on its connection every `every`, waking whenever
/// the answer differs from the one before; after an error it closes the connection, waits,
/// and connects again. `what` names what is watched, in the log lines. Ends once every
/// receiver of `tx` is gone.
pub async fn poll_mark<W: Watch>(what: &str, every: Duration, tx: watch::Sender<u64>, watch: W) {
    let mut retry = FIRST_RETRY;
    let mut lost = false;
    loop {
        let opened = tokio::select! {
            _ = tx.closed() => return,
            r = watch.connect() => r,
        };
        let mut conn = match opened {
            Ok(conn) => conn,
            Err(e) => {
                if !lost {
                    tracing::warn!(error = %e, retry_in = ?retry, "taskrow: cannot watch {what} for other processes' work; workers poll meanwhile");
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
            tracing::info!("taskrow: watching {what} for other processes' work again");
        }
        retry = FIRST_RETRY;
        // Whatever came while nobody watched: look once.
        wake(&tx);
        let mut last: Option<W::Mark> = None;
        let failed = loop {
            match watch.mark(&mut conn).await {
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
                _ = tokio::time::sleep(every) => {}
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), watch.close(conn)).await;
        let Some(e) = failed else { return };
        tracing::warn!(error = %e, "taskrow: watching {what} failed; connecting again, and workers poll meanwhile");
        lost = true;
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(retry) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Marks from a list, then 3 for ever; counts its connections.
    struct Listed {
        marks: Arc<Mutex<Vec<Result<u32, &'static str>>>>,
        connects: Arc<AtomicU32>,
    }

    impl Watch for Listed {
        type Conn = ();
        type Mark = u32;
        type Error = &'static str;
        async fn connect(&self) -> Result<(), &'static str> {
            self.connects.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        async fn mark(&self, _: &mut ()) -> Result<u32, &'static str> {
            let mut m = self.marks.lock().unwrap();
            if m.is_empty() { Ok(3) } else { m.remove(0) }
        }
        async fn close(&self, _: ()) {}
    }

    /// A mark that changes wakes; one that does not, does not; an error reconnects (and the
    /// reconnection wakes once); the feed ends when the receivers are gone.
    #[tokio::test]
    async fn poll_mark_wakes_on_changes_and_reconnects() {
        let marks = Arc::new(Mutex::new(vec![
            Ok(1),
            Ok(1),
            Ok(2),
            Err("lost"),
            Ok(2),
            Ok(2),
            Ok(3),
        ]));
        let connects = Arc::new(AtomicU32::new(0));
        let (tx, mut rx) = watch::channel(0u64);
        let feed = tokio::spawn(poll_mark(
            "a test",
            Duration::from_millis(10),
            tx,
            Listed {
                marks,
                connects: connects.clone(),
            },
        ));
        // The reconnection waits FIRST_RETRY (200 ms); the rest takes milliseconds.
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Wakes: the first connection, 1 → 2, the second connection, 2 → 3.
        assert_eq!(*rx.borrow_and_update(), 4);
        assert_eq!(connects.load(Ordering::SeqCst), 2);
        drop(rx);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(feed.is_finished(), "the feed ends with its receivers");
    }
}
