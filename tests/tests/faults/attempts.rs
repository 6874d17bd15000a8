//! Scenarios about attempts, with worker processes: a task that aborts its process on every
//! run, and a shutdown that interrupts a task's last attempt.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use taskrow::{EnqueueOptions, LogFilter, Outcome, RetryPolicy, TaskState};
use taskrow_tests::faults::records::overlapping_codes;
use taskrow_tests::faults::tasks::{Aborts, Scripted, Step, Then};
use taskrow_tests::faults::{WorkerProcess, now_us};

use super::common::{
    Backend, Db, Drained, Row, Scratch, enqueue_drains, tail, wait_all_exit, wait_for,
};

/// A task whose handler aborts its process (`std::process::abort()`) on every run, with
/// `max_attempts` 3 and a 1 s lease; worker processes are started again each time one dies.
/// Attempts are counted at claim: the task runs exactly 3 times and ends failed because its
/// worker was lost during the last attempt, each lost run logged `worker_lost`. 20 other tasks
/// run once each.
pub async fn aborting_task(backend: Backend, _seed: u64) -> Option<Row> {
    const CODE: &str = "aborts";
    const MAX: u32 = 3;
    let db = Db::open(backend).await?;
    let mut scratch = Scratch::new("aborts");
    let client = db.client(scratch.recorder());
    let others = enqueue_drains(&client, "other", 20, 20).await;
    let mut cfg = scratch.config(&db.url);
    cfg.exit_when_idle = true;
    cfg.concurrency = 4;
    cfg.lease = Duration::from_secs(1);
    cfg.heartbeat = Some(Duration::from_millis(300));
    let started = Instant::now();
    let mut live = scratch.spawn(&cfg);
    // The other tasks first, so that none is claimed beside the aborting one and cut short.
    wait_for(
        "the other tasks to succeed",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            db.store
                .logs(&LogFilter::default().outcomes([Outcome::Succeeded]))
                .await
                .unwrap()
                .len()
                == others.len()
        },
    )
    .await;
    client
        .enqueue(
            &Aborts {},
            EnqueueOptions::new()
                .code(CODE)
                .max_attempts(MAX)
                .retry(RetryPolicy::fixed(Duration::from_millis(100))),
        )
        .await
        .unwrap();

    // Keep a worker process alive until the task has failed.
    let mut dead: Vec<WorkerProcess> = Vec::new();
    let mut died_at: HashMap<u32, i64> = HashMap::new();
    let mut aborted = 0;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if db
            .task(CODE)
            .await
            .is_ok_and(|r| r.state == TaskState::Failed)
        {
            break;
        }
        if let Some(status) = live.try_exit() {
            died_at.insert(live.pid(), now_us());
            if status.signal() == Some(Signal::SIGABRT as i32) {
                aborted += 1;
            } else {
                assert!(
                    status.success(),
                    "worker {} exited with {status}:\n{}",
                    live.pid(),
                    tail(&live.log(), 20)
                );
            }
            let next = scratch.spawn(&cfg);
            dead.push(std::mem::replace(&mut live, next));
        }
        assert!(
            Instant::now() < deadline,
            "the aborting task did not fail within 40 s: {:?}; {} processes aborted",
            db.task(CODE).await,
            aborted
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_all_exit(std::slice::from_mut(&mut live), Duration::from_secs(20)).await;
    let secs = started.elapsed().as_secs_f64();

    let r = db.task(CODE).await.unwrap();
    let error = r.last_error.clone().unwrap_or_default();
    println!(
        "failed after {secs:.1} s and {aborted} aborted processes: attempts {}, `{error}`",
        r.attempts
    );
    assert_eq!((r.state, r.attempts), (TaskState::Failed, MAX));
    assert!(
        error.contains("the worker was lost during the last attempt"),
        "the reason says the worker was lost during the last attempt: {error}"
    );
    let runs = scratch.runs();
    let mine: Vec<_> = runs.iter().filter(|r| r.code == CODE).cloned().collect();
    let attempts: Vec<u32> = mine.iter().map(|r| r.attempt).collect();
    assert_eq!(attempts, [1, 2, 3], "exactly {MAX} starts, one per attempt");
    assert!(
        mine.iter().all(|r| r.end_us.is_none()),
        "every run died with its process"
    );
    assert_eq!(aborted, MAX as usize, "one aborted process per run");
    let logs = db.logs_of(CODE).await;
    let rows: Vec<(u32, Outcome)> = logs.iter().map(|l| (l.attempt, l.outcome)).collect();
    assert_eq!(
        rows,
        [
            (1, Outcome::WorkerLost),
            (2, Outcome::WorkerLost),
            (3, Outcome::WorkerLost)
        ],
        "each lost run logged once"
    );
    assert!(
        overlapping_codes(&runs, |r| died_at.get(&r.pid).copied()).is_empty(),
        "runs overlapping in time"
    );
    let d = Drained::check(&db, &scratch, &others, &died_at).await;
    d.assert_all_ran("the other tasks");
    assert_eq!(d.rerun, 0, "no other task ran twice");
    db.done().await;
    Some(Row {
        tasks: 1 + others.len(),
        faults: format!(
            "a handler that aborts its process on every run (max_attempts {MAX}, lease 1 s); processes restarted as they die"
        ),
        lost: d.lost.len(),
        twice_at_once: d.twice_at_once(),
        final_states: format!(
            "failed after exactly {MAX} starts, `the worker was lost during the last attempt`; {MAX} worker_lost log rows; {} other tasks succeeded once each",
            others.len()
        ),
    })
}

/// A task on its last (only) attempt whose handler ignores the shutdown signal; its worker
/// gets SIGTERM with a 300 ms shutdown timeout. The run is interrupted, not failed: after
/// shutdown the task is pending with its attempt given back and its run logged `interrupted`;
/// a new worker process runs it to success.
pub async fn shutdown_last_attempt(backend: Backend, _seed: u64) -> Option<Row> {
    const CODE: &str = "last-attempt";
    const MILLIS: u64 = 2500;
    let db = Db::open(backend).await?;
    let mut scratch = Scratch::new("lastattempt");
    let client = db.client(scratch.recorder());
    client
        .enqueue(
            &Scripted {
                steps: vec![Step {
                    millis: MILLIS,
                    then: Then::Ok,
                }],
            },
            EnqueueOptions::new().code(CODE).max_attempts(1),
        )
        .await
        .unwrap();
    let mut cfg = scratch.config(&db.url);
    cfg.concurrency = 1;
    cfg.lease = Duration::from_secs(2);
    cfg.heartbeat = Some(Duration::from_millis(500));
    cfg.shutdown_timeout = Duration::from_millis(300);
    let mut first = scratch.spawn(&cfg);
    wait_for(
        "the handler to start",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || async { scratch.runs().iter().any(|r| r.code == CODE) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.terminate();
    let term_us = now_us();
    wait_all_exit(std::slice::from_mut(&mut first), Duration::from_secs(15)).await;

    let r = db.task(CODE).await.unwrap();
    println!(
        "after shutdown: {} with {} attempts, {} interruptions, last error {:?}",
        r.state, r.attempts, r.interruptions, r.last_error
    );
    assert_eq!(
        (r.state, r.attempts),
        (TaskState::Pending, 0),
        "the interrupted last attempt is given back, not failed: {:?}",
        r.last_error
    );
    assert_eq!(r.interruptions, 1);
    assert!(r.lease_expires_at.is_none());
    let logs = db.logs_of(CODE).await;
    let rows: Vec<(u32, Outcome)> = logs.iter().map(|l| (l.attempt, l.outcome)).collect();
    assert_eq!(
        rows,
        [(1, Outcome::Interrupted)],
        "its run logged interrupted"
    );
    let runs = scratch.runs();
    let stopped = runs[0]
        .end_us
        .expect("the handler was stopped at the shutdown deadline");
    println!(
        "the handler was stopped {} ms after SIGTERM",
        (stopped - term_us) / 1000
    );

    cfg.exit_when_idle = true;
    let mut second = scratch.spawn(&cfg);
    wait_all_exit(std::slice::from_mut(&mut second), Duration::from_secs(30)).await;
    let logs = db.logs_of(CODE).await;
    let rows: Vec<(u32, Outcome)> = logs.iter().map(|l| (l.attempt, l.outcome)).collect();
    assert_eq!(
        rows,
        [(1, Outcome::Interrupted), (1, Outcome::Succeeded)],
        "the new worker ran it to success"
    );
    let runs = scratch.runs();
    assert_eq!(runs.len(), 2);
    assert!(overlapping_codes(&runs, |_| None).is_empty());
    assert!(
        matches!(db.task(CODE).await, Err(taskrow::Error::NotFound(_))),
        "deleted on success"
    );
    db.done().await;
    Some(Row {
        tasks: 1,
        faults: "SIGTERM during the last attempt (max_attempts 1) of a handler that ignores it; shutdown timeout 300 ms".to_owned(),
        lost: 0,
        twice_at_once: "0".to_owned(),
        final_states: format!(
            "after shutdown pending, attempts 0, run logged `interrupted` (handler stopped {} ms after SIGTERM); a new worker ran it to success",
            (stopped - term_us) / 1000
        ),
    })
}
