//! Text output: tables, times, durations, and records as JSON.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use taskrow::serde::Serialize;
use taskrow::{
    Dispatch, ListedRow, OnSuccess, Priority, RetryPolicy, TaskLog, TaskRecord, TaskState,
    UnreadableRow,
};

/// A table with a header row, printed with aligned columns.
#[derive(Debug)]
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    right: Vec<bool>,
}

impl Table {
    /// A table with these column titles; titles starting with `>` are right-aligned (numbers).
    pub fn new(header: &[&str]) -> Self {
        Self {
            right: header.iter().map(|h| h.starts_with('>')).collect(),
            header: header
                .iter()
                .map(|h| h.trim_start_matches('>').to_owned())
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as lines, columns two spaces apart, without trailing spaces.
    pub fn render(&self, indent: &str) -> String {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.header.iter().map(|h| width(h)).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                widths[i] = widths[i].max(width(c));
            }
        }
        let mut out = String::new();
        for r in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::from(indent);
            for (i, c) in r.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = " ".repeat(widths[i] - width(c));
                if self.right[i] {
                    line.push_str(&pad);
                    line.push_str(c);
                } else {
                    line.push_str(c);
                    line.push_str(&pad);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A time as RFC 3339 in UTC, to the second (`2026-01-31T12:00:00Z`).
pub(crate) fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A time, or `-`.
pub(crate) fn opt_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".to_owned(), time)
}

/// Milliseconds, short: `250ms`, `1.5s`, `1m30s`, `2h`, `3d4h`.
pub(crate) fn millis(ms: u64) -> String {
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        return if ms.is_multiple_of(1_000) {
            format!("{}s", ms / 1_000)
        } else {
            format!("{:.1}s", ms as f64 / 1_000.0)
        };
    }
    let secs = ms / 1_000;
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut out = String::new();
    let mut rest = secs;
    let mut parts = 0;
    for (size, unit) in units {
        if rest >= size && parts < 2 {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
            parts += 1;
        } else if parts > 0 {
            // Two units at most, and no gap between them (1d, not 1d0h5m).
            parts = 2;
        }
    }
    out
}

/// How long ago `t` was at `now`: `3m12s ago`, or `in 5m` for a future time.
pub(crate) fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let d = now.signed_duration_since(t).num_milliseconds();
    if d >= 0 {
        format!("{} ago", millis(d as u64))
    } else {
        format!("in {}", millis(d.unsigned_abs()))
    }
}

/// The first line of `s`, cut to `max` characters with `…`.
pub(crate) fn cut(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    let more = line.len() < s.trim_end().len();
    if line.chars().count() > max {
        let mut c: String = line.chars().take(max.saturating_sub(1)).collect();
        c.push('…');
        c
    } else if more {
        format!("{line} …")
    } else {
        line.to_owned()
    }
}

/// `3/4`, or `3/∞` for a task without an attempt limit.
pub(crate) fn attempts(r: &TaskRecord) -> String {
    match r.max_attempts {
        Some(m) => format!("{}/{m}", r.attempts),
        None => format!("{}/∞", r.attempts),
    }
}

/// What the task waits for: its due time, its lease, or when it finished.
pub(crate) fn when(r: &TaskRecord) -> String {
    match r.state {
        TaskState::Pending => format!("due {}", opt_time(r.next_run_at)),
        TaskState::Running => format!("lease until {}", opt_time(r.lease_expires_at)),
        _ => format!("since {}", time(r.updated_at)),
    }
}

/// `-` for an empty text.
pub(crate) fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

/// A retry policy in words.
pub(crate) fn retry(p: &RetryPolicy) -> String {
    match p {
        RetryPolicy::Fixed { interval_ms } => format!("every {}", millis(*interval_ms)),
        RetryPolicy::Exponential {
            initial_ms,
            factor,
            max_ms,
            jitter,
        } => format!(
            "exponential from {} ×{factor} up to {}, jitter {:.0}%",
            millis(*initial_ms),
            millis(*max_ms),
            jitter * 100.0
        ),
        other => format!("{other:?}"),
    }
}

/// The list table of tasks.
pub(crate) fn task_table(rows: &[TaskRecord]) -> String {
    let mut t = list_header();
    for r in rows {
        t.row(task_cells(r));
    }
    t.render("")
}

/// The list table of rows as [`taskrow::TaskStore::list_rows`] gives them: a row that cannot
/// be read shows in its place as `corrupt`, with the reason where the last error goes.
pub(crate) fn listed_table(rows: &[ListedRow]) -> String {
    let mut t = list_header();
    for row in rows {
        match row {
            ListedRow::Task(r) => t.row(task_cells(r)),
            ListedRow::Unreadable(u) => {
                let mut cells = vec![u.id.to_string(), u.code.clone(), u.task_type.clone()];
                cells.extend(["-", "-", "-", "corrupt", "-", "-"].map(str::to_owned));
                cells.push(cut(&u.reason, 100));
                t.row(cells);
            }
        }
    }
    t.render("")
}

fn list_header() -> Table {
    Table::new(&[
        ">ID",
        "CODE",
        "TYPE",
        "BIZ TYPE",
        "QUEUE",
        "PRIORITY",
        "STATE",
        ">ATTEMPTS",
        "WHEN",
        "LAST ERROR",
    ])
}

fn task_cells(r: &TaskRecord) -> Vec<String> {
    vec![
        r.id.to_string(),
        r.code.clone(),
        r.task_type.clone(),
        or_dash(&r.biz_type),
        r.queue.clone(),
        r.priority.to_string(),
        r.state.to_string(),
        attempts(r),
        when(r),
        r.last_error
            .as_deref()
            .map_or_else(|| "-".into(), |e| cut(e, 60)),
    ]
}

/// A row that cannot be read, as JSON: what could be read of it, and why the rest cannot
/// (`corrupt`).
#[derive(Debug, Serialize)]
#[serde(crate = "taskrow::serde")]
pub(crate) struct UnreadableJson<'a> {
    id: i64,
    code: &'a str,
    task_type: &'a str,
    corrupt: &'a str,
}

/// `u` as JSON.
pub(crate) fn unreadable_json(u: &UnreadableRow) -> UnreadableJson<'_> {
    UnreadableJson {
        id: u.id,
        code: &u.code,
        task_type: &u.task_type,
        corrupt: &u.reason,
    }
}

/// A row of `list_rows` as JSON: a task's fields in record order, or an unreadable row's.
#[derive(Debug, Serialize)]
#[serde(crate = "taskrow::serde", untagged)]
pub(crate) enum ListedJson<'a> {
    Task(Box<TaskJson<'a>>),
    Unreadable(UnreadableJson<'a>),
}

/// `row` as JSON.
pub(crate) fn listed_json(row: &ListedRow) -> ListedJson<'_> {
    match row {
        ListedRow::Task(t) => ListedJson::Task(Box::new(task_json(t))),
        ListedRow::Unreadable(u) => ListedJson::Unreadable(unreadable_json(u)),
    }
}

/// The log table of many tasks (`taskrow logs`): one row per run.
pub(crate) fn logs_table(logs: &[TaskLog]) -> String {
    let mut t = Table::new(&[
        ">ID",
        "CODE",
        "TYPE",
        ">ATTEMPT",
        "STARTED",
        ">DURATION",
        "OUTCOME",
        "WORKER",
        "ERROR",
    ]);
    for l in logs {
        t.row(vec![
            l.id.to_string(),
            l.code.clone(),
            l.task_type.clone(),
            l.attempt.to_string(),
            time(l.started_at),
            millis(l.duration_ms.max(0) as u64),
            l.outcome.to_string(),
            l.worker.clone(),
            l.error
                .as_deref()
                .map_or_else(|| "-".into(), |e| cut(e, 80)),
        ]);
    }
    t.render("")
}

/// The log table of one task.
pub(crate) fn log_table(logs: &[TaskLog], indent: &str) -> String {
    let mut t = Table::new(&[
        ">ATTEMPT",
        "STARTED",
        ">DURATION",
        "OUTCOME",
        "WORKER",
        "ERROR",
    ]);
    for l in logs {
        t.row(vec![
            l.attempt.to_string(),
            time(l.started_at),
            millis(l.duration_ms.max(0) as u64),
            l.outcome.to_string(),
            l.worker.clone(),
            l.error
                .as_deref()
                .map_or_else(|| "-".into(), |e| cut(e, 80)),
        ]);
    }
    t.render(indent)
}

/// The payload as JSON: parsed when it is JSON, else the stored text.
pub(crate) fn payload_value(payload: &str) -> Value {
    serde_json::from_str(payload).unwrap_or_else(|_| Value::String(payload.to_owned()))
}

/// A task as JSON: the record's fields in their order, its payload parsed, its timeout in
/// milliseconds.
#[derive(Debug, Serialize)]
#[serde(crate = "taskrow::serde")]
pub(crate) struct TaskJson<'a> {
    id: i64,
    code: &'a str,
    task_type: &'a str,
    name: &'a str,
    description: Option<&'a str>,
    biz_type: &'a str,
    queue: &'a str,
    priority: Priority,
    state: TaskState,
    attempts: u32,
    max_attempts: Option<u32>,
    next_run_at: Option<DateTime<Utc>>,
    lease_expires_at: Option<DateTime<Utc>>,
    lease_owner: Option<&'a str>,
    last_error: Option<&'a str>,
    retry: &'a RetryPolicy,
    timeout_ms: Option<u64>,
    on_success: OnSuccess,
    dispatch: Dispatch,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    payload: Value,
}

/// `r` as JSON.
pub(crate) fn task_json(r: &TaskRecord) -> TaskJson<'_> {
    TaskJson {
        id: r.id,
        code: &r.code,
        task_type: &r.task_type,
        name: &r.name,
        description: r.description.as_deref(),
        biz_type: &r.biz_type,
        queue: &r.queue,
        priority: r.priority,
        state: r.state,
        attempts: r.attempts,
        max_attempts: r.max_attempts,
        next_run_at: r.next_run_at,
        lease_expires_at: r.lease_expires_at,
        lease_owner: r.lease_owner.as_deref(),
        last_error: r.last_error.as_deref(),
        retry: &r.retry,
        timeout_ms: r.timeout.map(|t| t.as_millis() as u64),
        on_success: r.on_success,
        dispatch: r.dispatch,
        version: r.version,
        created_at: r.created_at,
        updated_at: r.updated_at,
        payload: payload_value(&r.payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(millis(250), "250ms");
        assert_eq!(millis(1_500), "1.5s");
        assert_eq!(millis(60_000), "1m");
        assert_eq!(millis(90_000), "1m30s");
        assert_eq!(millis(86_400_000), "1d");
        assert_eq!(millis(86_400_000 + 3_600_000), "1d1h");
        assert_eq!(millis(86_400_000 + 60_000), "1d");
        assert_eq!(millis(7 * 86_400_000), "7d");
    }

    #[test]
    fn tables_align() {
        let mut t = Table::new(&[">ID", "NAME"]);
        t.row(vec!["1".into(), "a".into()]);
        t.row(vec!["10".into(), "bbb".into()]);
        assert_eq!(t.render(""), "ID  NAME\n 1  a\n10  bbb\n");
    }

    #[test]
    fn cuts_long_and_multiline_text() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("ab\ncd", 10), "ab …");
        assert_eq!(cut("ab", 10), "ab");
    }
}
