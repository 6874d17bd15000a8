//! Scenarios about leases and fencing, with worker processes: one worker's heartbeats cut
//! while its handler runs, commit replies lost on the wire, and long tasks claimed ahead.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use taskrow::{EnqueueOptions, Outcome, Task, TaskFilter, TaskState};
use taskrow_tests::faults::records::overlapping_codes;
use taskrow_tests::faults::tasks::{Drain, Scripted, Step, Then};
use taskrow_tests::faults::{WorkerProcess, now_us};

use super::common::{
    Backend, Db, Drained, Row, Scratch, drain_options, enqueue_drains, sum_field, tail,
    wait_all_exit, wait_for,
};
use super::proxy::{Proxy, in_clear, through, upstream_of};
use super::wire::{CommitProxy, Wire};

const LEASE: Duration = Duration::from_secs(2);
const BEAT: Duration = Duration::from_millis(500);

/// SIGTERM to every process, then waits for each to exit cleanly.
async fn stop_all(procs: &mut [WorkerProcess]) {
    for p in procs.iter() {
        p.terminate();
    }
    wait_all_exit(procs, Duration::from_secs(20)).await;
}

/// Worker A reaches the server (MariaDB, PostgreSQL) through a proxy of its own; while its handler
/// runs a task several leases long, A's proxy is cut (every connection closed, its LISTEN
/// connection too, new ones refused), so its heartbeats fail. Worker B, connected directly, polls.
/// A's runner must stop the handler before the lease it last confirmed ends; B claims the task once
/// that lease expired and runs it to success; when A can reach the database again, its result for
/// the stopped run is refused (lease lost) or applied as interrupted, never applied as a success.
/// No two runs at once by the handlers' own record.
pub async fn heartbeats_cut(backend: Backend, _seed: u64) -> Option<Row> {
    const CODE: &str = "cut-off";
    const LONG_MS: u64 = 8000;
    let db = Db::open(backend).await?;
    let mut scratch = Scratch::new("beatcut");
    let client = db.client(scratch.recorder());
    let task = Scripted {
        steps: vec![
            Step {
                millis: LONG_MS,
                then: Then::Ok,
            },
            Step {
                millis: 300,
                then: Then::Ok,
            },
        ],
    };
    client
        .enqueue(&task, EnqueueOptions::new().code(CODE).max_attempts(3))
        .await
        .unwrap();

    let proxy = Proxy::start(upstream_of(&db.url)).await;
    let config = |url: &str, id: &str| {
        let mut c = scratch.config(url);
        c.id = Some(id.to_owned());
        c.concurrency = 1;
        c.lease = LEASE;
        c.heartbeat = Some(BEAT);
        c.shutdown_timeout = Duration::from_secs(2);
        c
    };
    let cfg_a = config(&through(&db.url, proxy.port), "worker-a");
    let cfg_b = config(&db.url, "worker-b");
    let a = scratch.spawn(&cfg_a);
    wait_for(
        "worker-a to start the task",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || async { scratch.runs().iter().any(|r| r.code == CODE) },
    )
    .await;
    let claim = db.task(CODE).await.unwrap();
    assert_eq!(claim.lease_owner.as_deref(), Some("worker-a"));
    let token = claim.claim_token;
    // A few heartbeats go through first.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let b = scratch.spawn(&cfg_b);
    let mut procs = vec![a, b];
    let mut lease_end = db.task(CODE).await.unwrap().lease_expires_at.unwrap();
    let beats_before = db.task(CODE).await.unwrap().version - claim.version;
    proxy.cut();
    let cut_us = now_us();
    let cut = Instant::now();
    println!("worker-a's proxy cut {beats_before} heartbeats into its run");

    // Until B's run succeeds: the lease end of A's claim as the database has it (a beat in
    // flight at the cut may still have committed).
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        if db
            .logs_of(CODE)
            .await
            .iter()
            .any(|l| l.outcome == Outcome::Succeeded)
        {
            break;
        }
        if let Ok(r) = db.task(CODE).await
            && r.claim_token == token
            && let Some(t) = r.lease_expires_at
        {
            lease_end = lease_end.max(t);
        }
        assert!(
            Instant::now() < deadline,
            "worker-b did not run the task to success within 25 s of the cut; worker-b's log ends:\n{}",
            tail(&procs[1].log(), 20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let outage = cut.elapsed();
    proxy.restore();
    // A can reach the database again: its result for the stopped run gets written.
    let a_logged = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let l = db.logs_of(CODE).await;
            if l.iter()
                .any(|l| l.claim_token == token && l.outcome != Outcome::WorkerLost)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .is_ok();
    let a_log = procs[0].log();
    stop_all(&mut procs).await;

    let logs = db.logs_of(CODE).await;
    let seen: Vec<(u32, &str, Outcome)> = logs
        .iter()
        .map(|l| (l.attempt, l.worker.as_str(), l.outcome))
        .collect();
    println!("log rows: {seen:?}");
    assert!(
        a_logged,
        "worker-a's result for its stopped run was never written after its proxy came back \
         (log rows {seen:?}); worker-a's log ends:\n{}",
        tail(&a_log, 30)
    );
    let runs = scratch.runs();
    let mine: Vec<_> = runs.iter().filter(|r| r.code == CODE).cloned().collect();
    assert_eq!(mine.len(), 2, "two runs in all: {mine:?}");
    let (ra, rb) = (&mine[0], &mine[1]);
    assert_eq!(
        (
            ra.worker.as_str(),
            ra.attempt,
            rb.worker.as_str(),
            rb.attempt
        ),
        ("worker-a", 1, "worker-b", 2),
        "worker-a ran attempt 1, worker-b attempt 2"
    );
    let a_end = ra
        .end_us
        .expect("worker-a's handler was stopped (its guard records the stop)");
    let lease_end_us = lease_end.timestamp_micros();
    assert!(
        a_end < lease_end_us,
        "worker-a's handler ran {} ms past the end of its lease",
        (a_end - lease_end_us) / 1000
    );
    assert!(
        rb.start_us > a_end,
        "worker-b's run began before worker-a's handler stopped"
    );
    assert!(overlapping_codes(&mine, |_| None).is_empty());
    assert!(
        taskrow_tests::faults::records::overlapping_in_log(&logs).is_empty(),
        "runs overlapping in the log: {seen:?}"
    );
    assert_eq!(logs.len(), 2, "one log row per run: {seen:?}");
    let b_row = logs
        .iter()
        .find(|l| l.worker == "worker-b")
        .expect("worker-b's row");
    assert_eq!((b_row.attempt, b_row.outcome), (2, Outcome::Succeeded));
    assert!(
        b_row.started_at.timestamp_micros() >= lease_end_us,
        "worker-b's run began while worker-a's lease held"
    );
    let a_row = logs
        .iter()
        .find(|l| l.worker == "worker-a")
        .expect("worker-a's row");
    assert_eq!(a_row.attempt, 1);
    assert!(
        matches!(a_row.outcome, Outcome::Interrupted | Outcome::LeaseLost),
        "worker-a's run logged {}: {:?}",
        a_row.outcome,
        a_row.error
    );
    println!("worker-a's row: {}: {:?}", a_row.outcome, a_row.error);
    assert!(
        a_log.contains("heartbeat"),
        "worker-a logged no failed heartbeat:\n{}",
        tail(&a_log, 20)
    );
    assert!(
        db.task(CODE).await.is_err(),
        "the task's row is gone (deleted on success)"
    );
    let stopped_after = (a_end - cut_us) / 1000;
    let before_end = (lease_end_us - a_end) / 1000;
    println!(
        "worker-a's handler stopped {stopped_after} ms after the cut, {before_end} ms before its lease ended; worker-b started {} ms after that",
        (rb.start_us - a_end) / 1000
    );
    db.done().await;
    Some(Row {
        tasks: 1,
        faults: format!(
            "worker-a's own proxy cut {:.1} s into an {:.0} s run (lease {} s, heartbeat {} ms) for {:.1} s; worker-b direct, polling",
            (cut_us - ra.start_us) as f64 / 1e6,
            LONG_MS as f64 / 1000.0,
            LEASE.as_secs(),
            BEAT.as_millis(),
            outage.as_secs_f64()
        ),
        lost: 0,
        twice_at_once: "0".to_owned(),
        final_states: format!(
            "succeeded on worker-b (attempt 2); worker-a's handler stopped {stopped_after} ms after the cut, {before_end} ms before its lease ended; its run logged `{}`",
            a_row.outcome
        ),
    })
}

/// Workers drain a few hundred tasks (half deleted on success, half kept) through a proxy
/// that loses the reply to every 5th result commit: it forwards the `COMMIT`, reads the
/// server's answer and closes the client's connection. The retried result write must
/// recognise its own earlier commit: every task succeeded exactly once, the kept rows are
/// succeeded, and no `lease_lost` row is written for an applied result.
pub async fn commit_reply_lost(backend: Backend, _seed: u64) -> Option<Row> {
    const N: usize = 400;
    const EVERY: u64 = 5;
    const LIMIT: u64 = 40;
    let db = Db::open(backend).await?;
    let mut scratch = Scratch::new("replylost");
    let client = db.client(scratch.recorder());
    // Runs of 25 ms on 2 slots per process: results come a few at a time, so there are many
    // result commits rather than a few large batches.
    let task = Drain { millis: 25 };
    let codes: Vec<String> = (0..N).map(|i| format!("reply-{i:05}")).collect();
    let kept: HashSet<&str> = codes
        .iter()
        .skip(1)
        .step_by(2)
        .map(String::as_str)
        .collect();
    let batch: Vec<(&dyn Task, EnqueueOptions)> = codes
        .iter()
        .map(|c| {
            let o = drain_options(c);
            let o = if kept.contains(c.as_str()) {
                o.keep_on_success()
            } else {
                o
            };
            (&task as &dyn Task, o)
        })
        .collect();
    client.enqueue_batch(batch).await.unwrap();

    let wire = match backend {
        Backend::Postgres => Wire::Postgres,
        _ => Wire::Mysql,
    };
    let proxy = CommitProxy::start(upstream_of(&db.url), wire).await;
    let check = if backend == Backend::Postgres {
        pg_wire_check(&db, &proxy).await
    } else {
        String::new()
    };
    proxy.arm(EVERY, LIMIT);
    let mut cfg = scratch.config(&through(&in_clear(&db.url), proxy.port));
    cfg.exit_when_idle = true;
    cfg.concurrency = 2;
    let started = Instant::now();
    let mut procs: Vec<WorkerProcess> = (0..2).map(|_| scratch.spawn(&cfg)).collect();
    wait_all_exit(&mut procs, Duration::from_secs(90)).await;
    let secs = started.elapsed().as_secs_f64();
    let (dropped, committed) = (proxy.dropped(), proxy.dropped_committed());
    let (commits, result_commits) = (proxy.commits(), proxy.result_commits());
    if backend == Backend::Postgres {
        println!(
            "{} of the {commits} COMMITs came through the extended protocol, the others as simple queries",
            proxy.extended_commits()
        );
    }
    println!(
        "drained in {secs:.1} s; {commits} commits through the proxy, {result_commits} of them result commits; {dropped} replies lost ({committed} of them after a successful commit); {} connections",
        proxy.accepted()
    );
    let text: String = procs.iter().map(WorkerProcess::log).collect();
    let retried = text
        .lines()
        .filter(|l| {
            l.contains("writing task results failed") || l.contains("writing a task result failed")
        })
        .count();
    let given_up = text.lines().filter(|l| l.contains("giving it up")).count();
    println!("the workers logged {retried} failed result writes, {given_up} results given up");
    drop(proxy);

    let d = Drained::check(&db, &scratch, &codes, &HashMap::new()).await;
    d.assert_all_ran("commit reply lost");
    assert_eq!(d.runs, N, "handler runs: each task exactly once");
    assert_eq!(d.rerun, 0, "no task ran twice");
    let logs = db.logs().await;
    let outcomes: BTreeMap<String, usize> = d.outcomes.clone().into_iter().collect();
    assert_eq!(
        outcomes,
        BTreeMap::from([("succeeded".to_owned(), N)]),
        "one succeeded row per task and nothing else (a lease_lost row would be a false refusal of an applied result)"
    );
    assert!(logs.iter().all(|l| l.attempt == 1), "every run attempt 1");
    let left = db.rows(&TaskFilter::all()).await;
    let left_codes: HashSet<&str> = left.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(left_codes, kept, "the kept rows, and only them, are left");
    assert!(
        left.iter()
            .all(|r| r.state == TaskState::Succeeded && r.attempts == 1),
        "every kept row succeeded at attempt 1: {:?}",
        left.iter()
            .find(|r| r.state != TaskState::Succeeded || r.attempts != 1)
    );
    assert!(
        committed > 0,
        "no reply was lost after a successful commit ({commits} commits, {result_commits} result commits, {dropped} replies lost)"
    );
    db.done().await;
    Some(Row {
        tasks: N,
        faults: format!(
            "the reply of every {EVERY}th result commit lost on the wire (proxy forwards COMMIT, reads the answer, closes the client): {committed} replies lost after the commit; {retried} failed result writes logged by the workers{check}"
        ),
        lost: d.lost.len(),
        twice_at_once: d.twice_at_once(),
        final_states: format!(
            "{N} succeeded exactly once (handler records and log, attempt 1); {} kept rows succeeded, {} deleted; 0 lease_lost rows",
            kept.len(),
            N - kept.len()
        ),
    })
}

/// Before the drain, the PostgreSQL proxy's own check, on a table of its own whose name
/// makes its inserts look like result writes (`taskrow_task_log_probe`): a transaction
/// committed with a simple `COMMIT` query, and one committed through the extended protocol
/// (`Parse`/`Bind`/`Execute`/`Sync`, as `sqlx::query("COMMIT")` sends it), each of whose
/// answers the proxy must lose after the commit took effect. Returns the table's words on it.
async fn pg_wire_check(db: &Db, proxy: &CommitProxy) -> String {
    use sea_orm::sqlx::postgres::PgConnection;
    use sea_orm::sqlx::{Connection, Executor};

    db.exec(
        "CREATE TABLE taskrow_task_log_probe (n INTEGER NOT NULL)",
        vec![],
    )
    .await;
    proxy.arm(1, 2);
    let url = through(&in_clear(&db.url), proxy.port);
    for (n, extended) in [(1_i32, false), (2, true)] {
        let mut c = PgConnection::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("the wire check cannot connect through the proxy: {e}"));
        c.execute("BEGIN").await.expect("BEGIN through the proxy");
        sea_orm::sqlx::query("INSERT INTO taskrow_task_log_probe (n) VALUES ($1)")
            .bind(n)
            .execute(&mut c)
            .await
            .expect("an insert through the proxy");
        let commit = if extended {
            sea_orm::sqlx::query("COMMIT")
                .execute(&mut c)
                .await
                .map(|_| ())
        } else {
            c.execute("COMMIT").await.map(|_| ())
        };
        assert!(
            commit.is_err(),
            "the proxy passed on the answer to a COMMIT (extended protocol: {extended})"
        );
    }
    let rows = db
        .scalar("SELECT COUNT(*) FROM taskrow_task_log_probe", vec![])
        .await;
    let (lost, committed, extended) = (
        proxy.dropped(),
        proxy.dropped_committed(),
        proxy.extended_commits(),
    );
    assert_eq!(
        (lost, committed, extended, rows),
        (2, 2, 1, 2),
        "the wire check: answers lost, of them after a commit, COMMITs seen in the extended \
         protocol, rows committed"
    );
    db.exec("DROP TABLE taskrow_task_log_probe", vec![]).await;
    println!(
        "wire check: a simple-query COMMIT and an extended-protocol COMMIT, both committed, both answers lost"
    );
    "; the proxy's own check first: a COMMIT sent as a simple query and one through the extended protocol, both committed and their answers lost".to_owned()
}

/// Two worker processes with one slot each and the default claim-ahead, six tasks of 1.5 s
/// under a 2 s lease (heartbeat 500 ms): a worker claims far more than it can start; what waits
/// is handed back after half its lease (its attempt given back), so every task runs once, at
/// attempt 1, and never two at once.
pub async fn claim_ahead_long_tasks(backend: Backend, _seed: u64) -> Option<Row> {
    const N: usize = 6;
    const MILLIS: u64 = 1500;
    let db = Db::open(backend).await?;
    let mut scratch = Scratch::new("ahead");
    let client = db.client(scratch.recorder());
    let codes = enqueue_drains(&client, "ahead", N, MILLIS).await;
    let mut cfg = scratch.config(&db.url);
    cfg.exit_when_idle = true;
    cfg.concurrency = 1;
    cfg.lease = LEASE;
    cfg.heartbeat = Some(BEAT);
    let started = Instant::now();
    let mut procs: Vec<WorkerProcess> = (0..2).map(|_| scratch.spawn(&cfg)).collect();
    wait_all_exit(&mut procs, Duration::from_secs(60)).await;
    let secs = started.elapsed().as_secs_f64();

    let d = Drained::check(&db, &scratch, &codes, &HashMap::new()).await;
    d.assert_complete("claim-ahead with long tasks");
    let runs = scratch.runs();
    let logs = db.logs().await;
    let attempts: Vec<(String, u32)> = runs.iter().map(|r| (r.code.clone(), r.attempt)).collect();
    assert_eq!(d.runs, N, "handler runs: each task once: {attempts:?}");
    assert_eq!(d.rerun, 0, "no task ran twice");
    assert!(
        runs.iter().all(|r| r.attempt == 1),
        "every handler run at attempt 1: {attempts:?}"
    );
    let rows: Vec<(&str, u32, Outcome)> = logs
        .iter()
        .map(|l| (l.code.as_str(), l.attempt, l.outcome))
        .collect();
    assert_eq!(logs.len(), N, "one log row per task: {rows:?}");
    assert!(
        logs.iter()
            .all(|l| l.attempt == 1 && l.outcome == Outcome::Succeeded),
        "every log row: succeeded at attempt 1: {rows:?}"
    );
    let text: String = procs.iter().map(WorkerProcess::log).collect();
    let released = sum_field(&text, "taskrow-test-worker stopped", "released");
    let hand_backs = text
        .lines()
        .filter(|l| l.contains("handing them back"))
        .count();
    let per: Vec<usize> = d.per_pid.values().copied().collect();
    println!(
        "{N} tasks in {secs:.1} s; runs per process {per:?}; {hand_backs} hand-backs of waiting tasks, {released} tasks released in all"
    );
    db.done().await;
    Some(Row {
        tasks: N,
        faults: format!(
            "2 processes × 1 slot, default claim-ahead, tasks of {:.1} s under a {} s lease (heartbeat {} ms)",
            MILLIS as f64 / 1000.0,
            LEASE.as_secs(),
            BEAT.as_millis()
        ),
        lost: d.lost.len(),
        twice_at_once: d.twice_at_once(),
        final_states: format!(
            "{N} succeeded, each run once at attempt 1 (log and handler records); waiting tasks handed back {hand_backs} times ({released} released); runs per process {per:?}"
        ),
    })
}
