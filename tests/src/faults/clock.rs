//! A local time source that is wrong on purpose: the system clock moved by a fixed amount, for
//! the clock-skew scenario (`taskrow-test-worker --clock system --clock-skew-ms N`).

use taskrow::chrono::{DateTime, TimeDelta, Utc};
use taskrow::{Clock, SystemClock};

/// Which clock a worker process's client uses (`--clock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockChoice {
    /// The client's default on a store that reads the database's time: a
    /// [`taskrow::DatabaseClock`]. It never reads the wall clock (it follows the database's
    /// time on the monotonic clock), so a skew has nothing to apply to.
    Database,
    /// This host's wall clock, moved by the skew: a [`SkewedClock`].
    System,
}

impl ClockChoice {
    /// Its command-line spelling.
    pub fn name(self) -> &'static str {
        match self {
            ClockChoice::Database => "database",
            ClockChoice::System => "system",
        }
    }

    /// From its command-line spelling.
    ///
    /// # Errors
    ///
    /// A message naming the accepted values.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "database" => Ok(ClockChoice::Database),
            "system" => Ok(ClockChoice::System),
            other => Err(format!(
                "--clock: `{other}` is neither `database` nor `system`"
            )),
        }
    }
}

/// The system clock, `skew` ahead (behind when negative): a host whose clock is wrong.
#[derive(Debug, Clone, Copy)]
pub struct SkewedClock {
    skew: TimeDelta,
}

impl SkewedClock {
    /// The system clock, `millis` ms ahead.
    pub fn new(millis: i64) -> Self {
        Self {
            skew: TimeDelta::milliseconds(millis),
        }
    }
}

impl Clock for SkewedClock {
    fn now(&self) -> DateTime<Utc> {
        SystemClock.now() + self.skew
    }
}
