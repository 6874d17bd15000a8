//! Scenarios with workers in the test process: bad rows, bad handlers, a lease that expires
//! under a slow handler, and heartbeats that keep a long task's lease.

use std::time::{Duration, Instant};

use taskrow::{
    EnqueueOptions, Error, LogFilter, Outcome, RetryPolicy, TaskFilter, TaskLog, TaskRecord,
    TaskRef, TaskState, WorkerHandle,
};
use taskrow_tests::faults::tasks::{Blob, Drain, Hangs, HugeError, Panics, Scripted, Step, Then};

use super::common::{Backend, Db, Row, Scratch, enqueue_drains, wait_for};

const MAX_ERROR_CHARS: usize = taskrow::record::MAX_ERROR_CHARS;

async fn logs_of(db: &Db, code: &str) -> Vec<TaskLog> {
    db.store.logs(&LogFilter::code(code)).await.unwrap()
}

async fn get(db: &Db, code: &str) -> taskrow::Result<TaskRecord> {
    db.store.get(&TaskRef::from(code)).await
}

/// Whether every code has a succeeded log row.
async fn all_succeeded(db: &Db, codes: &[String]) -> bool {
    let logs = db
        .store
        .logs(&LogFilter::default().outcomes([Outcome::Succeeded]))
        .await
        .unwrap();
    let done: std::collections::HashSet<&str> = logs.iter().map(|l| l.code.as_str()).collect();
    codes.iter().all(|c| done.contains(c.as_str()))
}

/// Asserts every code succeeded exactly once: one handler run, one succeeded log row.
async fn assert_once(db: &Db, scratch: &Scratch, codes: &[String]) {
    let runs = scratch.runs();
    for c in codes {
        let n = runs.iter().filter(|r| &r.code == c).count();
        assert_eq!(n, 1, "{c}: handler runs");
        let l = logs_of(db, c).await;
        assert_eq!(l.len(), 1, "{c}: log rows {l:?}");
        assert_eq!(l[0].outcome, Outcome::Succeeded, "{c}");
    }
}

fn worker(db: &Db, scratch: &Scratch) -> WorkerHandle {
    db.client(scratch.recorder())
        .worker()
        .concurrency(4)
        .lease(Duration::from_secs(2))
        .heartbeat(Some(Duration::from_millis(600)))
        .poll_interval(Duration::from_millis(50))
        .start()
        .unwrap()
}

/// A template row (never due) that hand-made rows copy their other columns from: 2 attempts,
/// a 200 ms retry interval.
async fn template(db: &Db, scratch: &Scratch) {
    db.client(scratch.recorder())
        .enqueue(
            &Drain { millis: 0 },
            EnqueueOptions::new()
                .code("template")
                .delay(Duration::from_secs(3600))
                .max_attempts(2)
                .retry(RetryPolicy::fixed(Duration::from_millis(200))),
        )
        .await
        .unwrap();
}

/// Inserts a row by hand: the template's columns, due since the template was made, with this
/// code, type name, payload and state. Returns its id.
async fn insert_by_hand(db: &Db, code: &str, task_type: &str, payload: String, state: i16) -> i64 {
    let n = db
        .exec(
            "INSERT INTO taskrow_task (code, task_type, payload, name, description, biz_type, \
             state, attempts, max_attempts, retry_policy, timeout_ms, on_success, dispatch, \
             run_at, lease_owner, last_error, version, created_at, updated_at) \
             SELECT ?, ?, ?, name, description, biz_type, ?, 0, max_attempts, retry_policy, \
             timeout_ms, on_success, dispatch, created_at, NULL, NULL, 0, created_at, updated_at \
             FROM taskrow_task WHERE code = 'template'",
            vec![code.into(), task_type.into(), payload.into(), state.into()],
        )
        .await;
    assert_eq!(n, 1, "inserted {code}");
    db.scalar(
        "SELECT id FROM taskrow_task WHERE code = ?",
        vec![code.into()],
    )
    .await
}

/// Rows written by hand with SQL: an unknown type name, payloads that are not JSON or do not
/// fit the type, one of 4 MiB that is corrupt and one that is fine, and a state out of range.
/// Each bad row becomes failed attempts with the reason on the row and in its log rows (the
/// state: a read error naming the row, and no claim); the other tasks go on.
pub async fn bad_rows(backend: Backend, _seed: u64) -> Option<Row> {
    const BIG: usize = 4 << 20;
    let db = Db::open(backend).await?;
    let scratch = Scratch::new("badrows");
    template(&db, &scratch).await;
    let big_data = "x".repeat(BIG);
    let failing: [(&str, &str, String, &[&str]); 4] = [
        (
            "bad-type",
            "faults.no_such_type",
            "{}".to_owned(),
            &["faults.no_such_type", "not registered"],
        ),
        (
            "not-json",
            Drain::TYPE,
            "{millis: oops".to_owned(),
            &["faults.drain", "not JSON"],
        ),
        (
            "wrong-field",
            Drain::TYPE,
            r#"{"millis":"soon"}"#.to_owned(),
            &["faults.drain", "does not deserialize"],
        ),
        (
            "big-corrupt",
            Blob::TYPE,
            // 4 MiB with the closing quote and brace missing.
            format!(r#"{{"bytes":{BIG},"data":"{big_data}"#),
            &["faults.blob", "does not deserialize"],
        ),
    ];
    let mut ids = Vec::new();
    for (code, ty, payload, _) in &failing {
        ids.push(insert_by_hand(&db, code, ty, payload.clone(), 0).await);
    }
    insert_by_hand(
        &db,
        "big-valid",
        Blob::TYPE,
        format!(r#"{{"bytes":{BIG},"data":"{big_data}"}}"#),
        0,
    )
    .await;
    let state_id = insert_by_hand(&db, "bad-state", Drain::TYPE, r#"{"millis":0}"#.into(), 9).await;
    db.store
        .delete(&TaskRef::from("template"), taskrow::chrono::Utc::now())
        .await
        .unwrap();
    let client = db.client(scratch.recorder());
    let good = enqueue_drains(&client, "good", 20, 5).await;

    let w = worker(&db, &scratch);
    let mut expect_ok = good.clone();
    expect_ok.push("big-valid".to_owned());
    wait_for(
        "the good tasks to succeed and the bad rows to fail",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            if !all_succeeded(&db, &expect_ok).await {
                return false;
            }
            for (code, ..) in &failing {
                match get(&db, code).await {
                    Ok(r) if r.state == TaskState::Failed => {}
                    _ => return false,
                }
            }
            true
        },
    )
    .await;
    assert!(!w.is_finished(), "the worker keeps running");
    w.shutdown().await;

    let runs = scratch.runs();
    for ((code, _, _, needles), id) in failing.iter().zip(&ids) {
        let r = get(&db, code).await.unwrap();
        assert_eq!((r.state, r.attempts), (TaskState::Failed, 2), "{code}");
        let e = r.last_error.clone().unwrap_or_default();
        for n in *needles {
            assert!(e.contains(n), "{code}: `{n}` not in the error: {e}");
        }
        assert!(
            e.chars().count() <= MAX_ERROR_CHARS,
            "{code}: error bounded"
        );
        let l = logs_of(&db, code).await;
        let outcomes: Vec<Outcome> = l.iter().map(|l| l.outcome).collect();
        assert_eq!(outcomes, [Outcome::Retrying, Outcome::Failed], "{code}");
        for row in &l {
            assert_eq!(row.task_id, *id, "{code}: the log row names the row");
            assert_eq!(row.error.as_deref(), Some(e.as_str()), "{code}");
        }
        assert!(
            runs.iter().all(|r| r.code != *code),
            "{code}: no handler ran"
        );
        println!("{code} (row {id}): {}", &e[..e.len().min(200)]);
    }
    assert_once(&db, &scratch, &expect_ok).await;

    // The state out of range (9): never claimed, and reading it says which row and what is wrong.
    assert!(
        logs_of(&db, "bad-state").await.is_empty(),
        "bad-state never ran"
    );
    let state = db
        .scalar(
            "SELECT state FROM taskrow_task WHERE code = 'bad-state'",
            vec![],
        )
        .await;
    assert_eq!(state, 9, "the row is left as it was");
    let e = get(&db, "bad-state").await.unwrap_err();
    match &e {
        Error::CorruptRow { id, reason } => {
            assert_eq!(*id, state_id, "the error names the row");
            assert!(reason.contains("state 9"), "{reason}");
        }
        other => panic!("reading bad-state: {other:?}"),
    }
    println!("get(bad-state): {e}");
    let listing = db
        .store
        .list(&TaskFilter::all(), &taskrow::Page::first(100))
        .await;
    let counts = db.store.counts().await;
    println!(
        "list(all) with the bad row: {}; counts(): {}",
        listing
            .as_ref()
            .map_or_else(|e| format!("error: {e}"), |v| format!("{} rows", v.len())),
        counts
            .as_ref()
            .map_or_else(|e| format!("error: {e}"), |v| format!("{} groups", v.len())),
    );
    if let Err(e) = &listing {
        assert!(
            matches!(e, Error::CorruptRow { id, .. } if *id == state_id),
            "{e:?}"
        );
    }

    db.done().await;
    Some(Row {
        tasks: 6 + good.len(),
        faults: "6 rows by hand: unknown type, not JSON, wrong field type, 4 MiB corrupt payload, 4 MiB valid payload, state 9".to_owned(),
        lost: 0,
        twice_at_once: "0".to_owned(),
        final_states: format!(
            "{} succeeded (4 MiB one included); 4 failed after 2 attempts, reason on the row and its log rows; state 9: never claimed, read error `CorruptRow` naming row {state_id}",
            good.len() + 1
        ),
    })
}

/// A claimable (pending, due) row with a column the store cannot read (`on_success` = 9):
/// like the other bad rows, it must not hold up the other tasks.
pub async fn unreadable_claimable_row(backend: Backend, _seed: u64) -> Option<Row> {
    let db = Db::open(backend).await?;
    let scratch = Scratch::new("unreadable");
    template(&db, &scratch).await;
    let id = insert_by_hand(
        &db,
        "bad-on-success",
        Drain::TYPE,
        r#"{"millis":0}"#.into(),
        0,
    )
    .await;
    db.exec(
        "UPDATE taskrow_task SET on_success = 9 WHERE code = 'bad-on-success'",
        vec![],
    )
    .await;
    db.store
        .delete(&TaskRef::from("template"), taskrow::chrono::Utc::now())
        .await
        .unwrap();
    let client = db.client(scratch.recorder());
    let good = enqueue_drains(&client, "good", 20, 5).await;

    let w = worker(&db, &scratch);
    let started = Instant::now();
    // Alone, the 20 tasks take well under a second; 10 s is five leases.
    let ok = tokio::time::timeout(Duration::from_secs(10), async {
        while !all_succeeded(&db, &good).await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .is_ok();
    w.shutdown().await;
    let done = db
        .store
        .logs(&LogFilter::default().outcomes([Outcome::Succeeded]))
        .await
        .unwrap()
        .len();
    let read = get(&db, "bad-on-success").await;
    let attempts = db
        .scalar(
            "SELECT attempts FROM taskrow_task WHERE code = 'bad-on-success'",
            vec![],
        )
        .await;
    println!(
        "after {:.1} s: {done} of {} good tasks succeeded; the bad row (id {id}) was claimed {attempts} times; get: {}",
        started.elapsed().as_secs_f64(),
        good.len(),
        read.as_ref()
            .map_or_else(ToString::to_string, |r| format!("{:?}", r.state))
    );
    assert!(
        matches!(&read, Err(Error::CorruptRow { id: i, .. }) if *i == id),
        "reading the row names it: {read:?}"
    );
    assert!(
        ok,
        "BUG: a claimable row whose on_success the store cannot read held up the other tasks: \
         {done} of {} succeeded in 10 s; the bad row was claimed {attempts} times. The claim \
         commits, then fails converting the row (CorruptRow), so every task claimed with it stays \
         leased until its lease expires, and the worker backs off",
        good.len()
    );
    assert_once(&db, &scratch, &good).await;
    db.done().await;
    Some(Row {
        tasks: 1 + good.len(),
        faults: "1 pending row by hand with on_success = 9".to_owned(),
        lost: 0,
        twice_at_once: "0".to_owned(),
        final_states: format!(
            "{} succeeded; the bad row: read error `CorruptRow` naming row {id}",
            good.len()
        ),
    })
}

/// Handlers that panic, hang past their timeout, or fail with a 1 MiB message: each a failed
/// attempt with a clear, bounded reason; the worker and the other tasks go on.
pub async fn bad_handlers(backend: Backend, _seed: u64) -> Option<Row> {
    let db = Db::open(backend).await?;
    let scratch = Scratch::new("badhandlers");
    let client = db.client(scratch.recorder());
    let retry = RetryPolicy::fixed(Duration::from_millis(100));
    client
        .enqueue(
            &Panics {},
            EnqueueOptions::new()
                .code("panics")
                .max_attempts(2)
                .retry(retry),
        )
        .await
        .unwrap();
    client
        .enqueue(
            &Hangs {},
            EnqueueOptions::new()
                .code("hangs")
                .max_attempts(2)
                .retry(retry)
                .timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap();
    client
        .enqueue(
            &HugeError { bytes: 1 << 20 },
            EnqueueOptions::new().code("huge-error"),
        )
        .await
        .unwrap();
    let good = enqueue_drains(&client, "good", 20, 5).await;

    let w = worker(&db, &scratch);
    let bad = ["panics", "hangs", "huge-error"];
    wait_for(
        "the good tasks to succeed and the bad handlers' tasks to fail",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            if !all_succeeded(&db, &good).await {
                return false;
            }
            for code in bad {
                match get(&db, code).await {
                    Ok(r) if r.state == TaskState::Failed => {}
                    _ => return false,
                }
            }
            true
        },
    )
    .await;
    assert!(!w.is_finished(), "the worker keeps running");
    w.shutdown().await;
    let runs = scratch.runs();

    let p = get(&db, "panics").await.unwrap();
    assert_eq!(p.attempts, 2);
    let e = p.last_error.unwrap();
    assert!(e.contains("panicked") && e.contains(Panics::MESSAGE), "{e}");
    let outcomes: Vec<Outcome> = logs_of(&db, "panics")
        .await
        .iter()
        .map(|l| l.outcome)
        .collect();
    assert_eq!(outcomes, [Outcome::Retrying, Outcome::Failed]);
    assert_eq!(runs.iter().filter(|r| r.code == "panics").count(), 2);

    let h = get(&db, "hangs").await.unwrap();
    assert_eq!(h.attempts, 2);
    let e = h.last_error.unwrap();
    assert!(e.contains("timed out after 300 ms"), "{e}");
    let l = logs_of(&db, "hangs").await;
    assert_eq!(l.len(), 2);
    assert!(
        l.iter().all(|l| (300..5000).contains(&l.duration_ms)),
        "stopped at the timeout: {:?}",
        l.iter().map(|l| l.duration_ms).collect::<Vec<_>>()
    );
    let hang_runs: Vec<_> = runs.iter().filter(|r| r.code == "hangs").collect();
    assert_eq!(hang_runs.len(), 2);
    assert!(
        hang_runs.iter().all(|r| r.end_us.is_none()),
        "the hanging runs were dropped"
    );

    let x = get(&db, "huge-error").await.unwrap();
    assert_eq!(x.attempts, 1);
    let e = x.last_error.unwrap();
    let n = e.chars().count();
    assert!(n <= MAX_ERROR_CHARS, "error kept bounded: {n} chars");
    assert!(
        e.starts_with(HugeError::PREFIX) && e.ends_with("[truncated]"),
        "{}",
        &e[..100]
    );
    let l = logs_of(&db, "huge-error").await;
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].error.as_deref(), Some(e.as_str()));
    println!("huge-error kept as {n} chars; panics: {:?}", p.code);

    assert_once(&db, &scratch, &good).await;
    db.done().await;
    Some(Row {
        tasks: bad.len() + good.len(),
        faults: "handler panics (×2), hangs past a 300 ms timeout (×2), fails with a 1 MiB message"
            .to_owned(),
        lost: 0,
        twice_at_once: "0".to_owned(),
        final_states: format!(
            "{} succeeded; 3 failed with their reason: the panic message, `timed out after 300 ms`, the error cut to {n} chars",
            good.len()
        ),
    })
}

/// No heartbeat, a 2 s lease, a handler that takes 3.5 s and ignores the stop signal, on its
/// only attempt, a second worker polling. With heartbeats off the lease is a hard limit on a
/// run: each run is stopped before its lease ends and logged interrupted (its attempt given
/// back), so no other worker ever runs the task beside it; after
/// [`taskrow::record::MAX_INTERRUPTIONS`] interruptions the next one counts as a failed
/// attempt, and the task ends failed instead of looping.
pub async fn lease_expiry(backend: Backend, _seed: u64) -> Option<Row> {
    let lease = Duration::from_secs(2);
    let bound = taskrow::record::MAX_INTERRUPTIONS;
    let db = Db::open(backend).await?;
    let scratch = Scratch::new("lease");
    let client = db.client(scratch.recorder());
    client
        .enqueue(
            &Scripted {
                steps: vec![Step {
                    millis: 3500,
                    then: Then::Ok,
                }],
            },
            EnqueueOptions::new().code("slow").max_attempts(1),
        )
        .await
        .unwrap();
    let start = |id: &str| {
        client
            .worker()
            .id(id)
            .concurrency(1)
            .lease(lease)
            .heartbeat(None)
            .poll_interval(Duration::from_millis(50))
            .start()
            .unwrap()
    };
    let a = start("worker-a");
    wait_for(
        "worker-a to claim the task",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async {
            get(&db, "slow")
                .await
                .is_ok_and(|r| r.state == TaskState::Running)
        },
    )
    .await;
    let b = start("worker-b");
    // The lease end of every claim, as the database has it.
    let mut lease_ends: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = get(&db, "slow").await.unwrap();
        if let (TaskState::Running, Some(token), Some(end)) =
            (r.state, r.claim_token, r.lease_expires_at)
        {
            lease_ends.insert(token, end.timestamp_micros());
        }
        if r.state == TaskState::Failed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the task did not end within 30 s: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.shutdown().await;
    b.shutdown().await;

    let l = logs_of(&db, "slow").await;
    let seen: Vec<(u32, &str, Outcome)> = l
        .iter()
        .map(|l| (l.attempt, l.worker.as_str(), l.outcome))
        .collect();
    println!("log rows: {seen:?}");
    let outcomes: Vec<Outcome> = l.iter().map(|l| l.outcome).collect();
    let mut want = vec![Outcome::Interrupted; bound as usize];
    want.push(Outcome::Failed);
    assert_eq!(outcomes, want, "{seen:?}");
    assert!(
        l.iter().all(|l| l.attempt == 1),
        "attempts given back: {seen:?}"
    );
    let e = l[0].error.clone().unwrap_or_default();
    assert!(e.contains("heartbeats off"), "{e}");
    let r = get(&db, "slow").await.unwrap();
    let last = r.last_error.clone().unwrap_or_default();
    assert_eq!(
        (r.state, r.attempts, r.interruptions),
        (TaskState::Failed, 1, bound)
    );
    assert!(
        last.contains(&format!("interrupted {bound} times before")),
        "{last}"
    );
    let runs = scratch.runs();
    assert_eq!(runs.len(), l.len(), "one handler run per log row");
    let mut longest = 0;
    for (run, row) in runs.iter().zip(&l) {
        let end = run.end_us.expect("a stopped run records its end");
        let lease_end = row
            .claim_token
            .and_then(|t| lease_ends.get(&t).copied())
            .expect("every claim's lease was seen");
        assert!(
            end < lease_end,
            "a run went on {} ms past its lease",
            (end - lease_end) / 1000
        );
        longest = longest.max((end - run.start_us) / 1000);
    }
    let overlaps = taskrow_tests::faults::records::overlapping_codes(&runs, |_| None);
    assert!(overlaps.is_empty(), "runs overlapped: {runs:?}");
    println!(
        "{} runs, the longest {longest} ms; final error: {last}",
        runs.len()
    );
    db.done().await;
    Some(Row {
        tasks: 1,
        faults: "lease 2 s, no heartbeat, handler 3.5 s ignoring the stop signal, max_attempts 1, a second worker polling".to_owned(),
        lost: 0,
        twice_at_once: "0".to_owned(),
        final_states: format!(
            "{} runs, each stopped before its lease ended (longest {longest} ms): {bound} logged `interrupted` (attempt given back), then one failed attempt (interruption bound {bound}); failed",
            runs.len()
        ),
    })
}

/// A 6 s handler under a 2 s lease with a heartbeat every 500 ms: no other worker gets the
/// task, it runs once and succeeds.
pub async fn heartbeat_keeps_lease(backend: Backend, _seed: u64) -> Option<Row> {
    let db = Db::open(backend).await?;
    let scratch = Scratch::new("heartbeat");
    let client = db.client(scratch.recorder());
    client
        .enqueue(
            &Scripted {
                steps: vec![Step {
                    millis: 6000,
                    then: Then::Ok,
                }],
            },
            EnqueueOptions::new().code("long"),
        )
        .await
        .unwrap();
    let start = |id: &str| {
        client
            .worker()
            .id(id)
            .concurrency(2)
            .lease(Duration::from_secs(2))
            .heartbeat(Some(Duration::from_millis(500)))
            .poll_interval(Duration::from_millis(50))
            .start()
            .unwrap()
    };
    let a = start("worker-a");
    wait_for(
        "worker-a to claim the task",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async {
            get(&db, "long")
                .await
                .is_ok_and(|r| r.state == TaskState::Running)
        },
    )
    .await;
    let first_version = get(&db, "long").await.unwrap().version;
    let b = start("worker-b");
    let mut last_version = first_version;
    let deadline = Instant::now() + Duration::from_secs(15);
    while logs_of(&db, "long").await.is_empty() {
        assert!(Instant::now() < deadline, "the long task did not finish");
        if let Ok(r) = get(&db, "long").await {
            assert_eq!(
                r.lease_owner.as_deref(),
                Some("worker-a"),
                "only worker-a holds it"
            );
            last_version = last_version.max(r.version);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    a.shutdown().await;
    b.shutdown().await;
    let beats = last_version - first_version;
    let l = logs_of(&db, "long").await;
    assert_eq!(l.len(), 1, "one run: {l:?}");
    assert_eq!(
        (l[0].outcome, l[0].worker.as_str()),
        (Outcome::Succeeded, "worker-a")
    );
    assert!(l[0].duration_ms >= 6000);
    let runs = scratch.runs();
    assert_eq!(runs.len(), 1);
    assert!(beats >= 6, "the lease was extended {beats} times");
    assert!(matches!(get(&db, "long").await, Err(Error::NotFound(_))));
    db.done().await;
    Some(Row {
        tasks: 1,
        faults: "handler 6 s under a 2 s lease, heartbeat 500 ms, a second worker polling"
            .to_owned(),
        lost: 0,
        twice_at_once: "0".to_owned(),
        final_states: format!("succeeded once on worker-a; lease extended {beats}+ times"),
    })
}
