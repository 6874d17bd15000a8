//! `taskrow logs`: the log rows of every task, one per run, by code, id, outcome and time; the
//! newest `--limit` of them, oldest first, like `tail`.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use taskrow::{LogFilter, TaskStore};

use crate::args::LogsArgs;
use crate::commands::{Io, Result, plural, pretty};
use crate::parse::TimeSpec;
use crate::render;

/// The start of `--since`: a time as given, or a duration before `now` whichever its sign.
fn since(spec: TimeSpec, now: DateTime<Utc>) -> DateTime<Utc> {
    match spec {
        TimeSpec::At(t) => t,
        TimeSpec::FromNow(d) => TimeSpec::FromNow(-d.abs()).resolve(now),
    }
}

pub(crate) async fn logs(
    store: &dyn TaskStore,
    args: LogsArgs,
    now: DateTime<Utc>,
    io: &mut Io<'_>,
) -> Result<ExitCode> {
    let mut filter = LogFilter::default()
        .outcomes(args.outcomes)
        .limit(args.limit)
        .newest();
    filter.code = args.code;
    filter.task_id = args.task_id;
    if let Some(s) = args.since {
        filter = filter.since(since(s, now));
    }
    let rows = store.logs(&filter).await?;
    if args.json {
        writeln!(io.out, "{}", pretty(&rows))?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        writeln!(io.out, "no log rows match")?;
        return Ok(ExitCode::SUCCESS);
    }
    write!(io.out, "{}", render::logs_table(&rows))?;
    if rows.len() as u64 == args.limit {
        writeln!(
            io.out,
            "the newest {} log row{} shown; older ones may exist: raise --limit, or narrow with \
             --since, --code or --outcome",
            rows.len(),
            plural(rows.len() as u64),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_always_in_the_past() {
        let now: DateTime<Utc> = "2026-01-01T12:00:00Z".parse().unwrap();
        let at = |s: &str| since(s.parse().unwrap(), now).to_rfc3339();
        assert_eq!(at("1h"), "2026-01-01T11:00:00+00:00");
        assert_eq!(at("-1h"), "2026-01-01T11:00:00+00:00");
        assert_eq!(at("2025-12-31T00:00:00Z"), "2025-12-31T00:00:00+00:00");
    }
}
