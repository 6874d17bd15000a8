//! [`DatabaseClock`]: the database's time, followed on this host's monotonic clock, so that
//! hosts sharing a database judge due times and leases by the one clock they all see.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{Clock, SystemClock, add, truncate_micros};
use crate::error::{Error, Result};
use crate::store::TaskStore;

/// How far a monotonic clock may drift from the database's, as a fraction (200 ppm: far more
/// than a working quartz clock).
const DRIFT: f64 = 2e-4;

/// How far the wall clock may run ahead of the monotonic clock between two readings before the
/// host is taken to have been suspended.
const SUSPEND_LIMIT: Duration = Duration::from_secs(1);

/// How many milliseconds more the wall clock moved than the monotonic clock since `at`/`wall`.
fn slept_ms(at: Instant, wall: std::time::SystemTime) -> i128 {
    let wall_ms = wall.elapsed().map_or(0, |d| d.as_millis() as i128);
    wall_ms - at.elapsed().as_millis() as i128
}

/// Whether the host slept (or its wall clock stepped forward) since that reading.
fn slept(at: Instant, wall: std::time::SystemTime) -> bool {
    slept_ms(at, wall) > SUSPEND_LIMIT.as_millis() as i128
}

/// The longest [`Clock::ready`] waits for a reading.
const READ_LIMIT: Duration = Duration::from_secs(2);

/// How a [`DatabaseClock`] keeps up with the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DatabaseClockConfig {
    /// How often the database's time is read again (default 10 s).
    pub refresh: Duration,
    /// How old the last good reading may be before the clock is no longer trusted
    /// ([`Clock::check`] fails and workers stop claiming; default 60 s).
    pub max_age: Duration,
    /// Readings whose round trip took more than twice this are not used: the database's time
    /// is known only to within half the round trip (default 500 ms).
    pub max_uncertainty: Duration,
}

impl Default for DatabaseClockConfig {
    fn default() -> Self {
        Self {
            refresh: Duration::from_secs(10),
            max_age: Duration::from_secs(60),
            max_uncertainty: Duration::from_millis(500),
        }
    }
}

impl DatabaseClockConfig {
    /// How often the database's time is read again.
    pub fn refresh(mut self, d: Duration) -> Self {
        self.refresh = d;
        self
    }
    /// How old the last good reading may be.
    pub fn max_age(mut self, d: Duration) -> Self {
        self.max_age = d;
        self
    }
    /// The largest uncertainty (half the round trip) of a reading that is used.
    pub fn max_uncertainty(mut self, d: Duration) -> Self {
        self.max_uncertainty = d;
        self
    }
}

/// A clock that follows the database's time ([`TaskStore::database_time`]).
///
/// It reads the database's time now and then, notes when on this host's monotonic clock the
/// reading was taken (the middle of the round trip), and answers [`Clock::now`] as that reading
/// plus the monotonic time since. The host's wall clock is never read, so a host whose clock is
/// wrong, stepped back or resumed from a pause still judges leases by the database's time; the
/// error is at most half a round trip plus the monotonic clock's drift since the last reading.
///
/// Readings run on a tokio task that the clock starts on first use and that ends with the last
/// clone. While no good reading is younger than [`DatabaseClockConfig::max_age`],
/// [`Clock::check`] fails (workers then stop claiming and say why) and `now` goes on from the
/// last reading (or the system clock before the first). A store without a time of its own
/// (memory, SQLite) makes it the system clock.
///
/// It is the default clock of a [`crate::Client`] whose store offers the database's time
/// (MySQL, MariaDB, PostgreSQL).
#[derive(Clone)]
pub struct DatabaseClock {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn TaskStore>,
    config: DatabaseClockConfig,
    state: Mutex<State>,
    started: AtomicBool,
}

#[derive(Debug, Clone, Default)]
struct State {
    /// The reading the clock counts from: the monotonic instant, the database's time then, and
    /// the uncertainty (half the round trip).
    anchor: Option<(Instant, DateTime<Utc>, Duration)>,
    /// When the last good reading came back, on the monotonic clock and on the host's wall
    /// clock (the wall clock only to notice a suspended host: the monotonic clock does not
    /// count the time a host slept).
    last_good: Option<(Instant, std::time::SystemTime)>,
    /// The store has no time of its own: the system clock stands in.
    no_database_time: bool,
    /// Why the last reading failed, when it did.
    last_error: Option<String>,
}

impl DatabaseClock {
    /// A clock following `store`'s database time, with the default settings.
    pub fn new(store: Arc<dyn TaskStore>) -> Self {
        Self::with_config(store, DatabaseClockConfig::default())
    }

    /// A clock following `store`'s database time.
    pub fn with_config(store: Arc<dyn TaskStore>, config: DatabaseClockConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                config,
                state: Mutex::new(State::default()),
                started: AtomicBool::new(false),
            }),
        }
    }

    /// Reads the database's time now (instead of waiting for the next refresh) and answers
    /// whether the clock can be trusted afterwards.
    pub async fn sync(&self) -> Result<()> {
        self.inner.read().await;
        self.check()
    }

    /// How far this host's wall clock is from the database's, as last measured (positive: the
    /// host is ahead). `None` before the first good reading.
    pub fn host_offset(&self) -> Option<chrono::TimeDelta> {
        let now = self.now();
        self.inner.state().anchor.map(|_| Utc::now() - now)
    }

    fn start(&self) {
        if self.inner.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            // No runtime here yet: try again on the next use.
            self.inner.started.store(false, Ordering::SeqCst);
            return;
        };
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        rt.spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let ok = inner.read().await;
                let (refresh, done) = {
                    let st = inner.state();
                    (inner.config.refresh, st.no_database_time)
                };
                drop(inner);
                if done {
                    return;
                }
                let pause = if ok {
                    refresh
                } else {
                    refresh.min(Duration::from_secs(1))
                };
                tokio::time::sleep(pause).await;
            }
        });
    }
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One reading (two the first time: the first may wait for a new connection); whether it
    /// was good.
    async fn read(&self) -> bool {
        let first = self.state().last_good.is_none();
        let ok = self.read_once().await;
        if first && ok {
            return self.read_once().await;
        }
        ok
    }

    async fn read_once(&self) -> bool {
        let sent = Instant::now();
        let answer = self.store.database_time().await;
        let received = Instant::now();
        let half = (received - sent) / 2;
        let mut st = self.state();
        match answer {
            Ok(Some(db)) if half <= self.config.max_uncertainty => {
                // Keep the tighter of the new reading and the last one (its uncertainty grown by
                // the monotonic clock's possible drift since): a round trip slowed by a new
                // connection or a busy pool must not move the clock by its delay.
                // … unless the two disagree beyond their uncertainties: the host slept, or the
                // database's clock was stepped; then the new reading is the truth.
                let mid = sent + half;
                let keep_old = st.anchor.is_some_and(|(at, old_db, u)| {
                    let slack = u + at.elapsed().mul_f64(DRIFT);
                    let predicted = add(old_db, mid.saturating_duration_since(at));
                    let off = (db - predicted).abs().to_std().unwrap_or(Duration::MAX);
                    slack < half && off <= slack + half + Duration::from_millis(1)
                });
                if !keep_old {
                    st.anchor = Some((sent + half, db, half));
                }
                st.last_good = Some((received, std::time::SystemTime::now()));
                st.last_error = None;
                true
            }
            Ok(Some(_)) => {
                st.last_error = Some(format!(
                    "reading the database's time took {} ms, too long to place it within {} ms",
                    (received - sent).as_millis(),
                    self.config.max_uncertainty.as_millis()
                ));
                false
            }
            Ok(None) => {
                st.no_database_time = true;
                st.last_error = None;
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "taskrow: reading the database's time failed");
                st.last_error = Some(e.to_string());
                false
            }
        }
    }
}

#[async_trait::async_trait]
impl Clock for DatabaseClock {
    fn now(&self) -> DateTime<Utc> {
        self.start();
        match self.inner.state().anchor {
            Some((at, db, _)) => truncate_micros(add(db, at.elapsed())),
            None => SystemClock.now(),
        }
    }

    /// Reads the database's time now when there is no fresh reading (the first use, or after
    /// the database was unreachable), bounded by a few seconds, then answers [`Clock::check`].
    async fn ready(&self) -> Result<()> {
        if self.check().is_err() {
            let _ = tokio::time::timeout(READ_LIMIT, self.inner.read()).await;
        }
        self.check()
    }

    fn check(&self) -> Result<()> {
        self.start();
        let st = self.inner.state();
        if st.no_database_time {
            return Ok(());
        }
        let why = st.last_error.as_deref().unwrap_or("no answer yet");
        match st.last_good {
            None => Err(Error::Clock(format!(
                "the database's time has not been read yet ({why}); claims wait until it is"
            ))),
            Some((at, wall)) if slept(at, wall) => Err(Error::Clock(format!(
                "the host's wall clock moved {} ms more than its monotonic clock since the \
                 database's time was last read: it was suspended (or its clock stepped); claims \
                 wait for a new reading",
                slept_ms(at, wall)
            ))),
            Some((at, _)) if at.elapsed() > self.inner.config.max_age => {
                Err(Error::Clock(format!(
                    "the database's time was last read {} ms ago, longer than the {} ms allowed \
                     (last error: {why}); claims wait until it can be read again",
                    at.elapsed().as_millis(),
                    self.inner.config.max_age.as_millis()
                )))
            }
            Some(_) => Ok(()),
        }
    }
}

impl fmt::Debug for DatabaseClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.state().clone();
        f.debug_struct("DatabaseClock")
            .field("store", &self.inner.store)
            .field("config", &self.inner.config)
            .field("uncertainty", &st.anchor.map(|(_, _, u)| u))
            .field("no_database_time", &st.no_database_time)
            .field("last_error", &st.last_error)
            .finish()
    }
}
