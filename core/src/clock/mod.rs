//! Time, from a source that tests can move by hand.
//!
//! Every time taskrow writes (created, updated, next run, lease expiry, log start) comes from a
//! [`Clock`]. Times are kept at microsecond precision, the finest that MySQL's `DATETIME(6)`
//! stores, so what a store reads back compares equal to what was written.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

mod database;

pub use database::{DatabaseClock, DatabaseClockConfig};

/// A source of the current time.
#[async_trait::async_trait]
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time, truncated to whole microseconds.
    fn now(&self) -> DateTime<Utc>;

    /// Whether [`Clock::now`] can be trusted to judge due times and leases right now:
    /// [`crate::Error::Clock`] saying why not otherwise (a clock that follows the database
    /// and has lost it). Workers claim nothing while it fails. Always `Ok` by default.
    fn check(&self) -> crate::Result<()> {
        Ok(())
    }

    /// Like [`Clock::check`], but first gives the clock a (short, bounded) chance to become
    /// trustworthy — a [`DatabaseClock`] reads the database's time now if it has no fresh
    /// reading. Clients call it before they judge leases (run-now, dispatch) or due times
    /// (enqueue). By default, [`Clock::check`].
    async fn ready(&self) -> crate::Result<()> {
        self.check()
    }
}

/// A shared clock is a clock.
#[async_trait::async_trait]
impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
    fn check(&self) -> crate::Result<()> {
        (**self).check()
    }
    async fn ready(&self) -> crate::Result<()> {
        (**self).ready().await
    }
}

/// Truncates a time to whole microseconds, the precision every store keeps.
pub fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

/// Adds a `std` duration to a time, saturating at the far future instead of panicking.
pub fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Subtracts a `std` duration from a time, saturating at the far past instead of panicking.
pub fn sub(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The wall clock of this host. Hosts that share a database through it must keep their clocks
/// in sync (NTP): a host whose clock runs ahead takes leases that are still live. On MySQL and
/// PostgreSQL the default is [`DatabaseClock`], which needs no agreement between hosts.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        truncate_micros(Utc::now())
    }
}

/// A clock that only moves when told to. Clones share one time.
///
/// ```
/// use std::time::Duration;
/// use taskrow::{Clock, ManualClock};
///
/// let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now().to_rfc3339(), "2026-01-01T00:01:00+00:00");
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A manual clock that reads `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(truncate_micros(start))),
        }
    }

    /// A manual clock that starts at the current wall time.
    pub fn starting_now() -> Self {
        Self::new(Utc::now())
    }

    /// Sets the time.
    pub fn set(&self, t: DateTime<Utc>) {
        *self.now.lock().expect("clock mutex poisoned") = truncate_micros(t);
    }

    /// Moves the time forward by `d`.
    pub fn advance(&self, d: Duration) {
        let mut now = self.now.lock().expect("clock mutex poisoned");
        *now = truncate_micros(add(*now, d));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("clock mutex poisoned")
    }
}
