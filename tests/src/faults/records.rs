//! The handlers' own record of their executions: one append-only file per process.
//!
//! A run writes `S` when it starts and `E` when it ends, each line with one `write` call on a
//! file opened for appending, so a process killed with SIGKILL leaves whole lines behind (at
//! worst its last line cut short, which the reader skips). A run with an `S` and no `E` was cut
//! short: its process died, or its handler was dropped (timeout, hard stop) without recording
//! through a [`RunGuard`], which writes the `E` line when the handler's future is dropped.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use taskrow::TaskContext;

/// Microseconds since the Unix epoch, from the wall clock (the same on every process of this
/// machine).
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Writes this process's run records. Register it as worker data:
/// `Client::builder(store).data(Recorder::open(dir)?)`.
#[derive(Debug)]
pub struct Recorder {
    file: Mutex<File>,
    pid: u32,
}

/// A run in progress, from [`Recorder::start`].
#[derive(Debug, Clone, Copy)]
#[must_use = "end the run with Recorder::end"]
pub struct Mark {
    start_us: i64,
}

impl Recorder {
    /// Appends to `dir/runs-<pid>.log` (created if missing).
    ///
    /// # Errors
    ///
    /// If the directory or file cannot be opened.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let pid = std::process::id();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("runs-{pid}.log")))?;
        Ok(Self {
            file: Mutex::new(file),
            pid,
        })
    }

    fn line(&self, line: &str) {
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // One write of one line: a SIGKILL leaves whole lines.
        f.write_all(line.as_bytes())
            .expect("cannot write the handler record");
    }

    /// Records the start of a run.
    pub fn start(&self, ctx: &TaskContext) -> Mark {
        let start_us = now_us();
        self.line(&format!(
            "S\t{}\t{}\t{}\t{}\t{}\n",
            ctx.code(),
            ctx.worker(),
            self.pid,
            ctx.attempt(),
            start_us
        ));
        Mark { start_us }
    }

    /// Records the end of a run (whatever its result).
    pub fn end(&self, ctx: &TaskContext, mark: Mark) {
        self.line(&format!(
            "E\t{}\t{}\t{}\t{}\t{}\t{}\n",
            ctx.code(),
            ctx.worker(),
            self.pid,
            ctx.attempt(),
            mark.start_us,
            now_us()
        ));
    }

    /// Records the start of a run now and its end when the guard is dropped: when the handler
    /// returns, and also when the runner stops it from outside (a lease it could not keep, a
    /// hard stop at shutdown, a timeout), since aborting a handler drops its future. Only a
    /// dead process leaves such a run without an end.
    pub fn guard<'a>(&'a self, ctx: &'a TaskContext) -> RunGuard<'a> {
        RunGuard {
            rec: self,
            ctx,
            mark: self.start(ctx),
        }
    }
}

/// A run in progress that records its end when dropped ([`Recorder::guard`]).
#[derive(Debug)]
#[must_use = "the run ends when the guard is dropped"]
pub struct RunGuard<'a> {
    rec: &'a Recorder,
    ctx: &'a TaskContext,
    mark: Mark,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        self.rec.end(self.ctx, self.mark);
    }
}

/// One execution, as its handler recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The task's code.
    pub code: String,
    /// The worker id that ran it.
    pub worker: String,
    /// The process that ran it.
    pub pid: u32,
    /// The attempt number taskrow gave the run.
    pub attempt: u32,
    /// When the handler started (µs since the epoch).
    pub start_us: i64,
    /// When the handler ended, or `None` if it never did (its process died, or it was dropped).
    pub end_us: Option<i64>,
}

/// Every run recorded in `dir` (all processes), in start order.
///
/// # Panics
///
/// If the directory cannot be read.
pub fn read_runs(dir: &Path) -> Vec<Run> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("runs-") && n.ends_with(".log"))
            })
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("cannot read the handler records in {}: {e}", dir.display()),
    };
    files.sort();
    let mut runs: Vec<Run> = Vec::new();
    // (pid, code, attempt, start) → index in `runs`
    let mut open: HashMap<(u32, String, u32, i64), usize> = HashMap::new();
    for path in files {
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        for line in text.split_inclusive('\n') {
            // A line cut short by a SIGKILL (no newline) is skipped.
            let Some(run) = line.strip_suffix('\n').and_then(parse_line) else {
                continue;
            };
            let key = (run.pid, run.code.clone(), run.attempt, run.start_us);
            match (run.end_us, open.get(&key)) {
                (Some(end), Some(&i)) => runs[i].end_us = Some(end),
                _ => {
                    open.insert(key, runs.len());
                    runs.push(run);
                }
            }
        }
    }
    runs.sort_by_key(|r| (r.start_us, r.pid));
    runs
}

/// One record line as a run (an `E` line carries the run's start and end).
fn parse_line(line: &str) -> Option<Run> {
    let f: Vec<&str> = line.split('\t').collect();
    let (kind, rest) = f.split_first()?;
    let end_us = match (*kind, rest.len()) {
        ("S", 5) => None,
        ("E", 6) => Some(rest[5].parse().ok()?),
        _ => return None,
    };
    Some(Run {
        code: rest[0].to_owned(),
        worker: rest[1].to_owned(),
        pid: rest[2].parse().ok()?,
        attempt: rest[3].parse().ok()?,
        start_us: rest[4].parse().ok()?,
        end_us,
    })
}

/// Runs grouped by code, each group in start order.
pub fn by_code(runs: &[Run]) -> HashMap<&str, Vec<&Run>> {
    let mut m: HashMap<&str, Vec<&Run>> = HashMap::new();
    for r in runs {
        m.entry(r.code.as_str()).or_default().push(r);
    }
    for v in m.values_mut() {
        v.sort_by_key(|r| r.start_us);
    }
    m
}

/// Codes with two runs that overlapped in time. A run without an end ends at
/// `end_of_unfinished(run)` (the moment its process was killed, say); `None` there means the
/// run never ended, so it overlaps every later run of its code.
pub fn overlapping_codes(
    runs: &[Run],
    end_of_unfinished: impl Fn(&Run) -> Option<i64>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (code, rs) in by_code(runs) {
        let mut latest_end = i64::MIN;
        for r in rs {
            if r.start_us < latest_end {
                out.push(code.to_owned());
                break;
            }
            let end = r
                .end_us
                .or_else(|| end_of_unfinished(r))
                .unwrap_or(i64::MAX);
            latest_end = latest_end.max(end);
        }
    }
    out.sort();
    out
}

/// Codes whose runs in taskrow's log overlapped in time (`started_at` + `duration_ms`).
pub fn overlapping_in_log(logs: &[taskrow::TaskLog]) -> Vec<String> {
    let mut by: HashMap<&str, Vec<(i64, i64)>> = HashMap::new();
    for l in logs {
        let start = l.started_at.timestamp_micros();
        by.entry(l.code.as_str())
            .or_default()
            .push((start, start + l.duration_ms * 1000));
    }
    let mut out: Vec<String> = by
        .into_iter()
        .filter_map(|(code, mut v)| {
            v.sort_unstable();
            let mut latest_end = i64::MIN;
            for (s, e) in v {
                if s < latest_end {
                    return Some(code.to_owned());
                }
                latest_end = latest_end.max(e);
            }
            None
        })
        .collect();
    out.sort();
    out
}
