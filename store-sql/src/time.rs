//! The one place that shapes times for the database.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
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

/// A time as bound to a statement and kept in a row: [`stored`], as a UTC `NaiveDateTime`.
///
/// Rows keep times without a zone, in UTC. Binding them zoneless matters: the MySQL driver sends
/// a `DateTime<Utc>` as a `TIMESTAMP` parameter, which MariaDB turns into `NULL` past 2038,
/// while a `NaiveDateTime` goes as a `DATETIME`; and SQLite compares times as text, so every
/// statement must write them in the one format a `NaiveDateTime` has.
pub fn sql(t: DateTime<Utc>) -> NaiveDateTime {
    stored(t).naive_utc()
}

/// A time read from a row (UTC).
pub fn from_sql(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}
