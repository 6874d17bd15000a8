//! What the command line's values mean: task targets, durations and times.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use taskrow::TaskRef;

/// A task named on the command line: `42` or `id:42` is the task with id 42; anything else is a
/// code (`code:42` for a code made of digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target(pub TaskRef);

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(code) = s.strip_prefix("code:") {
            if code.is_empty() {
                return Err("`code:` needs a code after it".to_owned());
            }
            return Ok(Target(TaskRef::Code(code.to_owned())));
        }
        if let Some(id) = s.strip_prefix("id:") {
            return id
                .parse()
                .map(|id| Target(TaskRef::Id(id)))
                .map_err(|_| format!("`{id}` is not a task id (a whole number)"));
        }
        if s.is_empty() {
            return Err("name a task by its code or id".to_owned());
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse()
                .map(|id| Target(TaskRef::Id(id)))
                .map_err(|_| format!("`{s}` is too large for a task id"));
        }
        Ok(Target(TaskRef::Code(s.to_owned())))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            TaskRef::Id(id) => write!(f, "id:{id}"),
            TaskRef::Code(c) => write!(f, "code:{c}"),
        }
    }
}

/// A duration such as `90s`, `10m`, `1h30m`, `7d`, `2w` or `250ms`.
pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "`{s}` is not a duration: write a number and a unit, such as 30s, 10m, 1h30m, 7d \
             (units: ms, s, m, h, d, w)"
        )
    };
    let s = s.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" | "sec" | "secs" => 1_000,
            "m" | "min" | "mins" => 60_000,
            "h" | "hour" | "hours" => 3_600_000,
            "d" | "day" | "days" => 86_400_000,
            "w" | "week" | "weeks" => 604_800_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        let part = n.checked_mul(unit_ms).ok_or_else(bad)?;
        total = total
            .checked_add(Duration::from_millis(part))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// A point in time: an RFC 3339 time, `now`, or a duration from now (`10m`, `+10m`) or before
/// it (`-10m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeSpec {
    /// An absolute time.
    At(DateTime<Utc>),
    /// Now plus this (negative: before now).
    FromNow(TimeDelta),
}

impl TimeSpec {
    /// The time this names, `now` being `now`.
    pub fn resolve(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            TimeSpec::At(t) => t,
            TimeSpec::FromNow(d) => now
                .checked_add_signed(d)
                .unwrap_or(if d < TimeDelta::zero() {
                    DateTime::<Utc>::MIN_UTC
                } else {
                    DateTime::<Utc>::MAX_UTC
                }),
        }
    }
}

impl FromStr for TimeSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("now") {
            return Ok(TimeSpec::FromNow(TimeDelta::zero()));
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(TimeSpec::At(t.with_timezone(&Utc)));
        }
        let (sign, rest) = match s.strip_prefix('-') {
            Some(r) => (-1, r),
            None => (1, s.strip_prefix('+').unwrap_or(s)),
        };
        let d = duration(rest).map_err(|_| {
            format!(
                "`{s}` is not a time: write an RFC 3339 time (2026-01-31T12:00:00Z), `now`, a \
                 duration from now (10m, +2h) or before now (-1h)"
            )
        })?;
        let d = TimeDelta::from_std(d).map_err(|_| format!("`{s}` is too far away"))?;
        Ok(TimeSpec::FromNow(if sign < 0 { -d } else { d }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!("42".parse::<Target>().unwrap().0, TaskRef::Id(42));
        assert_eq!("id:7".parse::<Target>().unwrap().0, TaskRef::Id(7));
        assert_eq!(
            "code:42".parse::<Target>().unwrap().0,
            TaskRef::Code("42".into())
        );
        assert_eq!(
            "order-1".parse::<Target>().unwrap().0,
            TaskRef::Code("order-1".into())
        );
        assert!("id:x".parse::<Target>().is_err());
        assert!("".parse::<Target>().is_err());
        assert!("99999999999999999999".parse::<Target>().is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(duration("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(duration("2w").unwrap(), Duration::from_secs(14 * 86_400));
        assert_eq!(duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(duration("7").is_err());
        assert!(duration("d").is_err());
        assert!(duration("7y").is_err());
        assert!(duration("").is_err());
    }

    #[test]
    fn times() {
        let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let at = |s: &str| s.parse::<TimeSpec>().unwrap().resolve(now);
        assert_eq!(at("now"), now);
        assert_eq!(at("10m").to_rfc3339(), "2026-01-01T00:10:00+00:00");
        assert_eq!(at("+1h").to_rfc3339(), "2026-01-01T01:00:00+00:00");
        assert_eq!(at("-1d").to_rfc3339(), "2025-12-31T00:00:00+00:00");
        assert_eq!(
            at("2026-02-01T12:00:00+02:00").to_rfc3339(),
            "2026-02-01T10:00:00+00:00"
        );
        assert!("tomorrow".parse::<TimeSpec>().is_err());
    }
}
