//! Clock skew: a worker process whose local clock runs two leases ahead, against a task another
//! worker holds under a live lease, once with taskrow's database clock and once with the plain
//! system clock.

use std::time::{Duration, Instant};

use taskrow::{EnqueueOptions, Outcome, TaskLog};
use taskrow_tests::faults::records::{overlapping_codes, overlapping_in_log};
use taskrow_tests::faults::tasks::{Drain, Scripted, Step, Then};
use taskrow_tests::faults::{ClockChoice, Run, WorkerProcess};

use super::common::{Backend, Db, Row, Scratch, tail, wait_all_exit, wait_for};

const LEASE: Duration = Duration::from_secs(2);
const BEAT: Duration = Duration::from_millis(500);
/// Worker A's run of the long task.
const LONG_MS: u64 = 6000;
/// How far worker B's local clock runs ahead: two leases.
const SKEW_MS: i64 = 2 * 2000;
const LONG: &str = "skew-long";
const PROBE: &str = "skew-probe";

/// What one run of the scenario saw.
struct Seen {
    clock: ClockChoice,
    /// From worker B's `clock report`: how far its local time source and its client's clock
    /// were ahead of the database's time.
    b_local_ahead_ms: i64,
    b_client_ahead_ms: i64,
    /// Lease owners of the long task seen while it ran, in order (no repeats).
    owners: Vec<String>,
    /// B's claim of the long task, if it made one: the database's time when the test saw it
    /// (the claim came earlier), and the end of A's lease as last seen before it (A's lease
    /// held at least that long). Both µs since the epoch.
    b_claim: Option<(i64, i64)>,
    /// The long task's handler runs, and its log rows.
    runs: Vec<Run>,
    logs: Vec<TaskLog>,
    /// Who ran the probe, and whether it started while A's lease held.
    probe: Option<(String, bool)>,
    /// Tasks with neither a succeeded log row nor a row left.
    lost: usize,
    b_log: String,
    a_log: String,
}

impl Seen {
    /// Overlap of A's and B's runs of the long task by the handlers' record, in ms (0: none).
    fn overlap_ms(&self) -> i64 {
        let mut most = 0;
        for (i, r) in self.runs.iter().enumerate() {
            for s in &self.runs[i + 1..] {
                let end = |x: &Run| x.end_us.unwrap_or(i64::MAX);
                let o = end(r).min(end(s)) - r.start_us.max(s.start_us);
                most = most.max(o / 1000);
            }
        }
        most
    }

    fn run_of(&self, worker: &str) -> Option<&Run> {
        self.runs.iter().find(|r| r.worker == worker)
    }

    fn log_of(&self, worker: &str) -> Vec<&TaskLog> {
        self.logs.iter().filter(|l| l.worker == worker).collect()
    }

    fn describe_logs(&self) -> String {
        let rows: Vec<String> = self
            .logs
            .iter()
            .map(|l| format!("{} attempt {} {}", l.worker, l.attempt, l.outcome))
            .collect();
        rows.join(", ")
    }
}

/// A signed `key=<number>` from the first line of `log` that contains `line`.
fn field(log: &str, line: &str, key: &str) -> Option<i64> {
    let l = log.lines().find(|l| l.contains(line))?;
    let at = l.find(&format!("{key}="))? + key.len() + 1;
    let num: String = l[at..]
        .chars()
        .enumerate()
        .take_while(|&(i, c)| c.is_ascii_digit() || (i == 0 && c == '-'))
        .map(|(_, c)| c)
        .collect();
    num.parse().ok()
}

/// The database's time now, µs since the epoch.
async fn db_now_us(db: &Db) -> i64 {
    db.store
        .database_time()
        .await
        .expect("reading the database's time")
        .expect("the server has a time of its own")
        .timestamp_micros()
}

/// One run: worker A (no skew) holds the long task under a live lease, worker B (local clock
/// `SKEW_MS` ahead) starts polling a moment later; both on `clock`.
async fn run_once(backend: Backend, clock: ClockChoice) -> Option<Seen> {
    let db = Db::open(backend).await?;
    let mut scratch = Scratch::new(&format!("skew-{}", clock.name()));
    let client = db.client(scratch.recorder());
    let long = Scripted {
        steps: vec![
            Step {
                millis: LONG_MS,
                then: Then::Ok,
            },
            Step {
                millis: 1000,
                then: Then::Ok,
            },
        ],
    };
    client
        .enqueue(&long, EnqueueOptions::new().code(LONG).max_attempts(3))
        .await
        .unwrap();
    let config = |id: &str, skew: i64, slots: usize| {
        let mut c = scratch.config(&db.url);
        c.id = Some(id.to_owned());
        c.concurrency = slots;
        c.lease = LEASE;
        c.heartbeat = Some(BEAT);
        c.clock = Some(clock);
        c.clock_skew_ms = skew;
        c.shutdown_timeout = Duration::from_secs(2);
        c
    };
    let (cfg_a, cfg_b) = (config("worker-a", 0, 1), config("worker-b", SKEW_MS, 2));
    let a = scratch.spawn(&cfg_a);
    wait_for(
        "worker-a to start the long task",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || async { scratch.runs().iter().any(|r| r.code == LONG) },
    )
    .await;
    let first = db.task(LONG).await.unwrap();
    assert_eq!(first.lease_owner.as_deref(), Some("worker-a"));
    let a_token = first.claim_token;
    let mut a_lease_end = first.lease_expires_at.unwrap().timestamp_micros();
    // A beat or two first, so that the lease B meets is one A has kept.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let b = scratch.spawn(&cfg_b);
    let mut procs = vec![a, b];

    let mut owners = vec!["worker-a".to_owned()];
    let mut b_claim = None;
    let mut probe_at = None;
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        if probe_at.is_none() && procs[1].log().contains("clock report") {
            // B's clock can be trusted, so it claims: give it something it may take.
            client
                .enqueue(&Drain { millis: 100 }, EnqueueOptions::new().code(PROBE))
                .await
                .unwrap();
            probe_at = Some(db_now_us(&db).await);
        }
        let row = db.task(LONG).await.ok();
        let seen_at = db_now_us(&db).await;
        if let Some(r) = &row {
            if r.claim_token == a_token
                && let Some(t) = r.lease_expires_at
            {
                a_lease_end = a_lease_end.max(t.timestamp_micros());
            }
            if let Some(o) = &r.lease_owner
                && owners.last() != Some(o)
            {
                owners.push(o.clone());
                if o == "worker-b" && b_claim.is_none() {
                    b_claim = Some((seen_at, a_lease_end));
                }
            }
        }
        let logs = db.logs_of(LONG).await;
        let a_done = logs
            .iter()
            .any(|l| l.worker == "worker-a" && l.outcome != Outcome::WorkerLost);
        let probe_done = probe_at.is_some() && db.task(PROBE).await.is_err();
        if row.is_none() && a_done && probe_done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} clock: the long task and the probe did not finish within 25 s (log rows {:?}); \
             worker-a's log ends:\n{}\nworker-b's log ends:\n{}",
            clock.name(),
            logs.iter()
                .map(|l| (l.worker.as_str(), l.attempt, l.outcome))
                .collect::<Vec<_>>(),
            tail(&procs[0].log(), 15),
            tail(&procs[1].log(), 15)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for p in &procs {
        p.terminate();
    }
    wait_all_exit(&mut procs, Duration::from_secs(20)).await;
    let (a_log, b_log) = (procs[0].log(), procs[1].log());
    let all = scratch.runs();
    let runs: Vec<Run> = all.iter().filter(|r| r.code == LONG).cloned().collect();
    let probe = all
        .iter()
        .find(|r| r.code == PROBE)
        .map(|r| (r.worker.clone(), r.start_us < a_lease_end));
    let logs = db.logs_of(LONG).await;
    let mut lost = 0;
    for code in [LONG, PROBE] {
        let ok = db
            .logs_of(code)
            .await
            .iter()
            .any(|l| l.outcome == Outcome::Succeeded);
        if !ok && db.task(code).await.is_err() {
            lost += 1;
        }
    }
    let report = |key| {
        field(&b_log, "clock report", key).unwrap_or_else(|| {
            panic!(
                "worker-b logged no clock report with {key}; its log ends:\n{}",
                tail(&b_log, 15)
            )
        })
    };
    let seen = Seen {
        clock,
        b_local_ahead_ms: report("local_ahead_ms"),
        b_client_ahead_ms: report("client_ahead_ms"),
        owners,
        b_claim,
        runs,
        logs,
        probe,
        lost,
        b_log,
        a_log,
    };
    println!(
        "{} clock: worker-b's local clock {:+} ms from the database's, its client's clock {:+} ms; \
         lease owners {:?}; long task's runs {:?}; log rows [{}]; probe {:?}",
        clock.name(),
        seen.b_local_ahead_ms,
        seen.b_client_ahead_ms,
        seen.owners,
        seen.runs
            .iter()
            .map(|r| (
                r.worker.as_str(),
                r.attempt,
                r.end_us.map(|e| (e - r.start_us) / 1000)
            ))
            .collect::<Vec<_>>(),
        seen.describe_logs(),
        seen.probe
    );
    db.done().await;
    Some(seen)
}

/// Issue 12, item 1. Worker A holds a 6 s task under a 2 s lease (heartbeat 500 ms); worker B,
/// whose local clock runs two leases (4 s) ahead, polls. With taskrow's database clock B takes
/// no live lease: A's run succeeds alone, B runs only a probe task enqueued meanwhile (so it
/// was claiming). With the plain system clock B takes A's live lease at once (by the
/// database's clock A's lease still held) and the fencing token limits the damage: A's
/// heartbeat finds the lease lost and stops its handler, A's result is refused.
pub async fn clock_skew(backend: Backend, _seed: u64) -> Option<Row> {
    let held = run_once(backend, ClockChoice::Database).await?;
    let taken = run_once(backend, ClockChoice::System).await?;

    // Both runs: B's local time source was SKEW_MS ahead of the database's.
    for s in [&held, &taken] {
        assert!(
            (s.b_local_ahead_ms - SKEW_MS).abs() < 500,
            "{} clock: worker-b's local clock was {} ms ahead of the database's, not ~{SKEW_MS}",
            s.clock.name(),
            s.b_local_ahead_ms
        );
    }

    // The database clock holds.
    let h = &held;
    assert!(
        h.b_client_ahead_ms.abs() < 200,
        "database clock: worker-b's client clock is {} ms from the database's time",
        h.b_client_ahead_ms
    );
    assert_eq!(
        h.owners,
        ["worker-a"],
        "database clock: worker-b took the long task's lease (owners seen {:?}); worker-b's log ends:\n{}",
        h.owners,
        tail(&h.b_log, 20)
    );
    assert_eq!(
        h.runs.len(),
        1,
        "database clock: one run of the long task: {:?}",
        h.runs
    );
    let a_run = h.run_of("worker-a").expect("worker-a ran the long task");
    assert!(
        a_run
            .end_us
            .is_some_and(|e| e - a_run.start_us >= LONG_MS as i64 * 1000),
        "database clock: worker-a's run was cut short: {a_run:?}"
    );
    let a_rows = h.log_of("worker-a");
    assert!(
        h.logs.len() == 1 && a_rows.len() == 1 && a_rows[0].outcome == Outcome::Succeeded,
        "database clock: one log row, worker-a's success: [{}]",
        h.describe_logs()
    );
    assert!(
        !h.a_log.contains("lease lost"),
        "database clock: worker-a logged a lost lease:\n{}",
        tail(&h.a_log, 20)
    );
    assert_eq!(
        h.probe,
        Some(("worker-b".to_owned(), true)),
        "database clock: worker-b ran the probe while worker-a's lease held (so it was claiming)"
    );
    let held_overlaps =
        overlapping_codes(&h.runs, |_| None).len() + overlapping_in_log(&h.logs).len();
    assert_eq!(held_overlaps, 0, "database clock: runs overlapped");
    assert_eq!(h.lost, 0, "database clock: a task was lost");

    // The system clock fails as expected: B takes the live lease.
    let t = &taken;
    assert!(
        (t.b_client_ahead_ms - SKEW_MS).abs() < 500,
        "system clock: worker-b's client clock was {} ms ahead, not ~{SKEW_MS}",
        t.b_client_ahead_ms
    );
    let Some((seen_at, a_end)) = t.b_claim else {
        panic!(
            "system clock: worker-b never took the long task (owners seen {:?}): the skew did \
             not show, so the scenario proves nothing; worker-b's log ends:\n{}",
            t.owners,
            tail(&t.b_log, 20)
        )
    };
    let live_left_ms = (a_end - seen_at) / 1000;
    assert!(
        live_left_ms > 0,
        "system clock: worker-b's claim was seen {} ms after worker-a's lease ended by the \
         database's clock: not a live lease",
        -live_left_ms
    );
    let a_run = t.run_of("worker-a").expect("worker-a's run");
    let b_run = t.run_of("worker-b").expect("worker-b's run");
    let a_ran_ms = a_run.end_us.map(|e| (e - a_run.start_us) / 1000);
    let a_stopped = a_ran_ms.is_some_and(|ms| ms < LONG_MS as i64);
    let a_rows = t.log_of("worker-a");
    let a_refused = a_rows.iter().any(|l| l.outcome == Outcome::LeaseLost);
    assert!(
        a_rows.iter().all(|l| l.outcome != Outcome::Succeeded),
        "system clock: worker-a's result was applied after worker-b took the task: [{}]",
        t.describe_logs()
    );
    assert!(
        a_stopped || a_refused,
        "system clock: worker-a's run was neither stopped nor refused: ran {a_ran_ms:?} ms, [{}]",
        t.describe_logs()
    );
    let b_rows = t.log_of("worker-b");
    assert!(
        b_rows
            .iter()
            .any(|l| l.outcome == Outcome::Succeeded && l.attempt == 2),
        "system clock: worker-b's run succeeded at attempt 2: [{}]",
        t.describe_logs()
    );
    assert_eq!(t.lost, 0, "system clock: a task was lost");
    let overlap = t.overlap_ms();
    let overlaps = overlapping_codes(&t.runs, |_| None).len();
    let b_after_a_ms = (b_run.start_us - a_run.start_us) / 1000;
    let a_stop_after_b_ms = a_run.end_us.map(|e| (e - b_run.start_us) / 1000);
    println!(
        "system clock: worker-b's claim seen {live_left_ms} ms before worker-a's lease ended by the \
         database's clock; worker-b's handler started {b_after_a_ms} ms into worker-a's run; \
         worker-a's handler stopped after {a_ran_ms:?} ms ({a_stop_after_b_ms:?} ms after worker-b's \
         started); overlap {overlap} ms; log rows [{}]",
        t.describe_logs()
    );
    // B's log row is stamped by B's clock: its start is off by the skew.
    let b_stamp_ms = b_rows
        .iter()
        .find(|l| l.outcome == Outcome::Succeeded)
        .map(|l| (l.started_at.timestamp_micros() - b_run.start_us) / 1000);
    println!(
        "system clock: worker-b's log row says its run started {b_stamp_ms:?} ms after its handler's own record (worker-b's clock)"
    );
    let a_outcomes: Vec<String> = a_rows.iter().map(|l| format!("`{}`", l.outcome)).collect();

    Some(Row {
        tasks: 4,
        faults: format!(
            "worker-b's local clock {SKEW_MS} ms (2 × lease) ahead, polling while worker-a (no skew) holds a {} s task (lease {} s, heartbeat {} ms); run once with the database clock, once with the system clock",
            LONG_MS / 1000,
            LEASE.as_secs(),
            BEAT.as_millis()
        ),
        lost: held.lost + taken.lost,
        twice_at_once: format!(
            "database clock: 0; system clock: {overlaps} (expected: worker-a's and worker-b's runs overlapped {overlap} ms)"
        ),
        final_states: format!(
            "database clock (worker-b's client {:+} ms from the database): worker-b took no live lease (it ran a probe meanwhile), worker-a's run succeeded alone, no lease_lost; system clock (worker-b {:+} ms): worker-b took worker-a's lease {live_left_ms} ms before it ended by the database's clock and succeeded at attempt 2; worker-a's handler {} and its result was logged {}",
            held.b_client_ahead_ms,
            taken.b_client_ahead_ms,
            match a_ran_ms {
                Some(ms) if a_stopped => format!("stopped after {ms} ms of {LONG_MS}"),
                Some(ms) => format!("ran its {ms} ms"),
                None => "never ended".to_owned(),
            },
            if a_outcomes.is_empty() {
                "nowhere".to_owned()
            } else {
                a_outcomes.join(", ")
            }
        ),
    })
}

/// libfaketime, which moves a process's wall clock (and only it, with
/// `FAKETIME_DONT_FAKE_MONOTONIC=1`): a host whose clock is wrong, for a whole process.
fn libfaketime() -> Option<std::path::PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.is_file())
}

/// Issue 12, item 1, for a one-shot process: `taskrow-test-worker run-now` (a fresh client
/// with taskrow's default clock, calling `Client::run_now` at once, as the CLI's `taskrow run`
/// does) on a host whose wall clock runs two leases ahead — the whole process's, moved by
/// libfaketime (the monotonic clock left alone) — against a task worker A holds under a live
/// lease. The database clock must keep it from taking that lease: refused (or failed on the
/// clock), and A's run succeeds alone.
pub async fn run_now_skewed_host(backend: Backend, _seed: u64) -> Option<Row> {
    let Some(faketime) = libfaketime() else {
        let why = "libfaketime not found: apt-get install faketime";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{why} (CI must run this scenario)");
        }
        println!("skipped: {why}");
        return None;
    };
    let db = Db::open(backend).await?;
    let mut scratch = Scratch::new("skew-runnow");
    let client = db.client(scratch.recorder());
    let long = Scripted {
        steps: vec![
            Step {
                millis: LONG_MS,
                then: Then::Ok,
            },
            Step {
                millis: 1000,
                then: Then::Ok,
            },
        ],
    };
    client
        .enqueue(&long, EnqueueOptions::new().code(LONG).max_attempts(3))
        .await
        .unwrap();
    let mut cfg_a = scratch.config(&db.url);
    cfg_a.id = Some("worker-a".to_owned());
    cfg_a.concurrency = 1;
    cfg_a.lease = LEASE;
    cfg_a.heartbeat = Some(BEAT);
    cfg_a.clock = Some(ClockChoice::Database);
    let a = scratch.spawn(&cfg_a);
    let mut procs = vec![a];
    wait_for(
        "worker-a to start the long task",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || async { scratch.runs().iter().any(|r| r.code == LONG) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let moved: Vec<(String, String)> = vec![
        ("LD_PRELOAD".to_owned(), faketime.display().to_string()),
        ("FAKETIME".to_owned(), format!("+{}s", SKEW_MS / 1000)),
        ("FAKETIME_DONT_FAKE_MONOTONIC".to_owned(), "1".to_owned()),
    ];
    // First a worker process on that host, with the default (database) clock: it claims
    // (its clock can be trusted) and must leave worker-a's lease alone.
    let mut cfg_w = cfg_a.clone();
    cfg_w.id = Some("worker-b".to_owned());
    cfg_w.clock = None;
    let log_w = scratch.next_log();
    let w = WorkerProcess::spawn_env(super::common::worker_bin(), &cfg_w.args(), &moved, &log_w);
    wait_for(
        "worker-b (wall clock moved) to trust its clock",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async { w.log().contains("clock report") },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let w_log = w.log();
    let w_wall = field(&w_log, "clock report", "local_ahead_ms").unwrap_or(0);
    let w_client = field(&w_log, "clock report", "client_ahead_ms").unwrap_or(i64::MAX);
    w.terminate();
    let mut ws = vec![w];
    wait_all_exit(&mut ws, Duration::from_secs(20)).await;
    let owner = db.task(LONG).await.unwrap().lease_owner;
    println!(
        "worker-b (wall clock {w_wall:+} ms from the database's, client clock {w_client:+} ms) polled and left the lease to {owner:?}"
    );
    assert!(
        (w_wall - SKEW_MS).abs() < 500,
        "libfaketime did not move worker-b's wall clock: {w_wall} ms"
    );
    assert_eq!(
        owner.as_deref(),
        Some("worker-a"),
        "worker-b, database clock, wall clock {SKEW_MS} ms ahead, took worker-a's live lease"
    );
    let a_end = db
        .task(LONG)
        .await
        .unwrap()
        .lease_expires_at
        .unwrap()
        .timestamp_micros();
    let mut cfg_b = cfg_a.clone();
    cfg_b.id = Some("run-now-b".to_owned());
    cfg_b.clock = None;
    let mut args = vec!["run-now".to_owned(), "--code".to_owned(), LONG.to_owned()];
    args.extend(cfg_b.args());
    let called_at = db_now_us(&db).await;
    let mut cmd = std::process::Command::new(super::common::worker_bin());
    cmd.args(&args).envs(moved.iter().map(|(k, v)| (k, v)));
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("running run-now")
        .expect("cannot run taskrow-test-worker run-now");
    let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    println!(
        "run-now (wall clock +{SKEW_MS} ms) called {} ms before worker-a's lease ended by the database's clock: {}, {said}",
        (a_end - called_at) / 1000,
        out.status
    );
    // Until worker-a's run has its log row.
    wait_for(
        "worker-a's run to be logged",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || async {
            db.logs_of(LONG)
                .await
                .iter()
                .any(|l| l.worker == "worker-a" && l.outcome != Outcome::WorkerLost)
        },
    )
    .await;
    procs[0].terminate();
    wait_all_exit(&mut procs, Duration::from_secs(20)).await;
    let logs = db.logs_of(LONG).await;
    let rows: Vec<String> = logs
        .iter()
        .map(|l| format!("{} attempt {} {}", l.worker, l.attempt, l.outcome))
        .collect();
    // The run-now process's records are by its own (moved) wall clock: move them back.
    let runs: Vec<Run> = scratch
        .runs()
        .into_iter()
        .filter(|r| r.code == LONG)
        .map(|mut r| {
            if r.worker == "run-now-b" {
                r.start_us -= SKEW_MS * 1000;
                r.end_us = r.end_us.map(|e| e - SKEW_MS * 1000);
            }
            r
        })
        .collect();
    let overlaps = overlapping_codes(&runs, |_| None).len();
    let seen = Seen {
        clock: ClockChoice::Database,
        b_local_ahead_ms: SKEW_MS,
        b_client_ahead_ms: 0,
        owners: Vec::new(),
        b_claim: None,
        runs: runs.clone(),
        logs: logs.clone(),
        probe: None,
        lost: 0,
        b_log: stderr.clone(),
        a_log: procs[0].log(),
    };
    let overlap = seen.overlap_ms();
    println!("log rows {rows:?}; handler runs {runs:?}; overlap {overlap} ms");
    let a_ok = logs
        .iter()
        .any(|l| l.worker == "worker-a" && l.outcome == Outcome::Succeeded);
    assert!(
        a_ok && overlaps == 0 && !runs.iter().any(|r| r.worker == "run-now-b"),
        "a fresh client's run_now on a host whose wall clock runs {SKEW_MS} ms ahead took \
         worker-a's live lease ({} ms before it ended by the database's clock): it said \
         `{said}`; log rows {rows:?}; the two runs overlapped {overlap} ms",
        (a_end - called_at) / 1000
    );
    db.done().await;
    Some(Row {
        tasks: 1,
        faults: format!(
            "processes whose wall clock runs {SKEW_MS} ms ahead (libfaketime) while worker-a holds a {} s task (lease {} s): a worker (database clock, {w_client:+} ms) polls, then a fresh client's `run-now`, {} ms before worker-a's lease ended",
            LONG_MS / 1000,
            LEASE.as_secs(),
            (a_end - called_at) / 1000
        ),
        lost: 0,
        twice_at_once: overlaps.to_string(),
        final_states: format!(
            "the worker left the lease alone; run-now said `{said}`; log rows {rows:?}"
        ),
    })
}
