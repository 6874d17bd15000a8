//! The one place that shapes times for the database.

use chrono::{DateTime, NaiveDate, Utc};
use taskrow::clock::truncate_micros;

/// The latest time `DATETIME(6)` holds on MySQL (`9999-12-31 23:59:59.999999`).
pub fn latest() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_micro_opt(23, 59, 59, 999_999))
        .map(|t| t.and_utc())
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A time as stored: whole microseconds (what `DATETIME(6)` keeps, so it reads back equal), and
/// no later than [`latest`] (so a saturated lease expiry fits MySQL's range).
///
/// Callers pass times from a [`taskrow::Clock`], already truncated; this only makes sure.
pub fn stored(t: DateTime<Utc>) -> DateTime<Utc> {
    truncate_micros(t).min(latest())
}
