//! [`TaskStore::claim`]: due tasks only, oldest due first, filtered, each to one claimant.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use taskrow::{
    ClaimRequest, EnqueueOptions, FinishStatus, LogFilter, Outcome, TaskLog, TaskState, TaskStore,
};

use super::{
    LEASE, all_logs, assert_worker_lost, build, build_task, claim, claim_codes, claim_req,
    finish_of, finish_one, get, insert, insert_with, logs, make_cancelled, make_failed,
    make_succeeded, micro, millis, opts, plus, retry_at, run_now, secs, sorted_codes, strings, t0,
};
use crate::tasks::{SendEmail, SyncOrder};
use crate::wrappers::{Op, ReplyLost, is_reply_lost};

/// A task is claimed once its next run time has come (at that very instant), not before.
pub async fn takes_only_due_tasks(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "now", t0()).await;
    insert_with(s, opts("later").run_at(secs(20)), t0()).await;
    assert_eq!(claim_codes(s, t0()).await, strings(["now"]));
    // "now" is held until t0+30 s, so only "later" can be claimed from here on.
    assert_eq!(
        claim_codes(s, secs(20) - micro()).await,
        Vec::<String>::new()
    );
    assert_eq!(claim_codes(s, secs(20)).await, strings(["later"]));
}

/// Of the due tasks, the one due longest ago is claimed first, whatever the insert order.
pub async fn takes_oldest_due_first(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert_with(s, opts("c").run_at(secs(3)), t0()).await;
    insert_with(s, opts("a").run_at(secs(1)), t0()).await;
    insert_with(s, opts("not-due").run_at(secs(100)), t0()).await;
    insert_with(s, opts("b").run_at(millis(2_000)), t0()).await;
    let mut order = Vec::new();
    loop {
        let got = claim(s, "w1", 1, secs(10)).await;
        let Some(rec) = got.first() else { break };
        order.push(rec.code.clone());
    }
    assert_eq!(order, ["a", "b", "c"]);
}

/// No more than `limit` tasks are claimed at once; the rest stay for the next claim.
pub async fn respects_limit(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    for i in 0..5 {
        insert(s, &format!("t{i}"), t0()).await;
    }
    let first = claim(s, "w1", 2, t0()).await;
    assert_eq!(first.len(), 2);
    let rest = claim(s, "w1", 10, t0()).await;
    assert_eq!(rest.len(), 3);
    assert!(claim(s, "w1", 10, t0()).await.is_empty());
    let ids: HashSet<i64> = first.iter().chain(&rest).map(|r| r.id).collect();
    assert_eq!(ids.len(), 5);
}

/// With biz types given, only tasks of those biz types are claimed.
pub async fn filters_by_biz_type(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert_with(s, opts("b1").biz_type("billing"), t0()).await;
    insert_with(s, opts("b2").biz_type("billing"), t0()).await;
    insert_with(s, opts("m1").biz_type("mail"), t0()).await;
    insert_with(s, opts("n1"), t0()).await;
    let req = |b: &[&str]| ClaimRequest::new("w1", 10, LEASE, t0()).biz_types(b.to_vec());
    assert_eq!(
        sorted_codes(&claim_req(s, &req(&["billing"])).await),
        strings(["b1", "b2"])
    );
    assert_eq!(
        sorted_codes(&claim_req(s, &req(&["mail", "billing", "nothing"])).await),
        strings(["m1"])
    );
    assert_eq!(claim_codes(s, t0()).await, strings(["n1"]));
}

/// With type names given, only tasks of those types are claimed; with biz types too, only
/// tasks matching both.
pub async fn filters_by_task_type(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let email = SendEmail {
        to: "a@example.com".to_owned(),
    };
    for (code, biz) in [("e1", ""), ("e2", "mail")] {
        s.insert(build_task(opts(code).biz_type(biz), &email, t0()))
            .await
            .expect("insert");
    }
    s.insert(build_task(
        opts("o1").biz_type("mail"),
        &SyncOrder::sample(),
        t0(),
    ))
    .await
    .expect("insert");
    insert_with(s, opts("n1").biz_type("mail"), t0()).await;

    let req = ClaimRequest::new("w1", 10, LEASE, t0())
        .task_types([SendEmail::TYPE])
        .biz_types(["mail"]);
    assert_eq!(sorted_codes(&claim_req(s, &req).await), strings(["e2"]));
    let req = ClaimRequest::new("w1", 10, LEASE, t0()).task_types([SendEmail::TYPE]);
    assert_eq!(sorted_codes(&claim_req(s, &req).await), strings(["e1"]));
    let req = ClaimRequest::new("w1", 10, LEASE, t0())
        .task_types([SyncOrder::TYPE, "conformance.unknown"]);
    assert_eq!(sorted_codes(&claim_req(s, &req).await), strings(["o1"]));
    assert_eq!(claim_codes(s, t0()).await, strings(["n1"]));
}

/// A claimed task is running with one more attempt, one more version, the claimant as lease
/// owner, its lease expiring at `now + lease`, a claim token and `claimed_at = now`; nothing
/// else changes. The claim returns the row as stored.
pub async fn sets_running_and_lease(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let inserted = insert_with(s, opts("a").biz_type("crm").max_attempts(3), t0()).await;
    let now = millis(5_250);
    let lease = Duration::from_millis(45_500);
    let claimed = claim_req(s, &ClaimRequest::new("worker-7", 10, lease, now)).await;
    assert_eq!(claimed.len(), 1);
    let mut expected = inserted.clone();
    expected.state = TaskState::Running;
    expected.attempts = 1;
    expected.version = inserted.version + 1;
    expected.lease_owner = Some("worker-7".to_owned());
    expected.lease_expires_at = Some(plus(now, lease));
    expected.next_run_at = None;
    expected.updated_at = now;
    assert!(
        claimed[0].claim_token.is_some(),
        "a claim sets a claim token"
    );
    expected.claim_token = claimed[0].claim_token;
    expected.claimed_at = Some(now);
    expected.due_at = inserted.next_run_at;
    assert_eq!(claimed[0], expected);
    assert_eq!(get(s, "a").await, expected);
}

/// A task running under a live lease is not claimed again, up to the last microsecond of the
/// lease.
pub async fn skips_live_lease(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a", t0()).await;
    let claimed = claim(s, "w1", 10, t0()).await;
    assert_eq!(claimed.len(), 1);
    assert!(claim(s, "w2", 10, secs(1)).await.is_empty());
    assert!(
        claim(s, "w2", 10, plus(t0(), LEASE) - micro())
            .await
            .is_empty()
    );
    assert_eq!(get(s, "a").await, claimed[0]);
}

/// A running task whose lease expired (at its expiry instant) is claimed again: its worker is
/// presumed dead, and the new claim counts a second attempt under a new claim token.
pub async fn reclaims_expired_lease(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a", t0()).await;
    let first = claim(s, "w1", 10, t0()).await.remove(0);
    let expiry = plus(t0(), LEASE);
    let again = claim(s, "w2", 10, expiry).await;
    assert_eq!(again.len(), 1);
    let second = &again[0];
    assert_eq!(second.id, first.id);
    assert_eq!(second.attempts, 2);
    assert_eq!(second.version, first.version + 1);
    assert_eq!(second.lease_owner.as_deref(), Some("w2"));
    assert_eq!(second.lease_expires_at, Some(plus(expiry, LEASE)));
    assert_eq!(second.claimed_at, Some(expiry));
    assert_ne!(second.claim_token, first.claim_token);
    assert_eq!(get(s, "a").await, *second);
}

/// Every claim of a task sets a new claim token and its own `claimed_at`: a claim after a
/// retry, a reclaim after an expired lease, and a run-now each differ from every earlier one.
pub async fn sets_new_claim_token_each_time(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a", t0()).await;
    let first = claim(s, "w1", 10, t0()).await.remove(0);
    assert_eq!(first.claimed_at, Some(t0()));
    let finish = finish_of(&first, t0(), retry_at(secs(10), "flaky"));
    assert_eq!(finish_one(s, finish, secs(1)).await, FinishStatus::Applied);
    assert_eq!(
        get(s, "a").await.claim_token,
        first.claim_token,
        "the token stays on the row after the run ends"
    );
    let second = claim(s, "w1", 10, secs(10)).await.remove(0);
    assert_eq!(second.claimed_at, Some(secs(10)));
    let expiry = plus(secs(10), LEASE);
    let third = claim(s, "w2", 10, expiry).await.remove(0);
    assert_eq!(third.claimed_at, Some(expiry));
    let fourth = run_now(s, "a", "w3", plus(expiry, LEASE)).await;
    assert_eq!(fourth.claimed_at, Some(plus(expiry, LEASE)));
    let tokens: HashSet<i64> = [&first, &second, &third, &fourth]
        .iter()
        .map(|r| r.claim_token.expect("a claimed task has a claim token"))
        .collect();
    assert_eq!(tokens.len(), 4, "four claims, four tokens");
}

/// A reclaim logs the run it takes over as worker lost: under that run's claim token, with
/// its attempt, its worker, dated from its claim and lasting until its lease expired.
pub async fn logs_lost_run_as_worker_lost(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a", t0()).await;
    claim(s, "w1", 10, secs(2)).await;
    let lost = get(s, "a").await;
    let expiry = plus(secs(2), LEASE);
    assert!(all_logs(s).await.is_empty(), "nothing is logged at claim");
    let second = claim(s, "w2", 10, expiry).await.remove(0);
    let rows = all_logs(s).await;
    assert_eq!(rows.len(), 1, "the lost run is logged once: {rows:?}");
    assert_worker_lost(&rows[0], &lost, false);
    let row = &rows[0];
    assert_eq!(row.attempt, 1);
    assert_eq!(row.worker, "w1");
    assert_eq!(row.started_at, secs(2));
    assert_eq!(row.duration_ms, 30_000);
    assert_ne!(row.claim_token, second.claim_token);
    assert_eq!(get(s, "a").await, second);
}

/// A running task whose lease expired during its last attempt is not claimed again: the claim
/// fails it (its error says the worker was lost during the last attempt) and logs the lost run,
/// while it claims the other due tasks as usual. No run starts past `max_attempts`.
pub async fn fails_expired_task_at_last_attempt(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert_with(s, opts("a").max_attempts(2), t0()).await;
    claim(s, "w1", 10, t0()).await;
    let first_run = get(s, "a").await;
    let expiry = plus(t0(), LEASE);
    // Attempt 2 of 2: the reclaim runs it, logging attempt 1 as lost.
    let second = claim(s, "w2", 10, expiry).await;
    assert_eq!(sorted_codes(&second), strings(["a"]));
    assert_eq!(second[0].attempts, 2);
    let last_run = get(s, "a").await;

    insert_with(s, opts("b"), secs(40)).await;
    let end = plus(expiry, LEASE);
    let third = claim(s, "w3", 10, end).await;
    assert_eq!(
        sorted_codes(&third),
        strings(["b"]),
        "the task at its last attempt is not claimed, the other due task is"
    );

    let after = get(s, "a").await;
    let mut expected = last_run.clone();
    expected.state = TaskState::Failed;
    expected.lease_expires_at = None;
    expected.last_error = Some(TaskLog::worker_lost_failure(&last_run));
    expected.version = last_run.version + 1;
    expected.updated_at = end;
    // Whether the lost worker stays shown as the last owner is left to the store.
    expected.lease_owner = after.lease_owner.clone();
    assert_eq!(after, expected);
    assert_eq!(after.attempts, 2, "no attempt past max_attempts");
    assert!(
        after
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("lost during the last attempt")),
        "{after:?}"
    );

    let rows = logs(s, &LogFilter::code("a")).await;
    assert_eq!(rows.len(), 2, "both lost runs are logged: {rows:?}");
    assert_worker_lost(&rows[0], &first_run, false);
    assert_worker_lost(&rows[1], &last_run, true);
    // Later claims take `b` again (its lease expired too), never `a`.
    assert_eq!(claim_codes(s, secs(1_000_000)).await, strings(["b"]));
    assert_eq!(get(s, "a").await, after);
}

/// A task with unlimited attempts is reclaimed after every expired lease, each lost run
/// logged.
pub async fn reclaims_unlimited_task_every_time(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert_with(s, opts("a").unlimited_attempts(), t0()).await;
    let mut now = t0();
    for attempt in 1..=6 {
        let got = claim(s, "w1", 10, now).await;
        assert_eq!(sorted_codes(&got), strings(["a"]));
        assert_eq!(got[0].attempts, attempt);
        now = plus(now, LEASE);
    }
    let rows = logs(s, &LogFilter::code("a")).await;
    let attempts: Vec<u32> = rows.iter().map(|l| l.attempt).collect();
    assert_eq!(attempts, [1, 2, 3, 4, 5]);
    assert!(rows.iter().all(|l| l.outcome == Outcome::WorkerLost));
    assert_eq!(get(s, "a").await.state, TaskState::Running);
}

/// Excluded ids are never claimed, even when due (a worker's own slow runs whose leases
/// expired), nor their runs logged as lost; the others are.
pub async fn skips_excluded_ids(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let a = insert(s, "a", t0()).await;
    insert(s, "b", t0()).await;
    let first = claim(s, "w1", 10, t0()).await;
    assert_eq!(first.len(), 2);
    let expiry = plus(t0(), LEASE);
    let req = ClaimRequest::new("w1", 10, LEASE, expiry).exclude_ids([a.id]);
    assert_eq!(sorted_codes(&claim_req(s, &req).await), strings(["b"]));
    assert_eq!(
        get(s, "a").await,
        first.into_iter().find(|t| t.id == a.id).unwrap()
    );
    assert!(
        logs(s, &LogFilter::task(a.id)).await.is_empty(),
        "an excluded task's run is not settled as lost"
    );
}

/// Failed, cancelled and succeeded tasks are never claimed, however late.
pub async fn skips_finished_tasks(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    make_failed(s, opts("failed"), t0()).await;
    make_cancelled(s, opts("cancelled"), t0()).await;
    make_succeeded(s, opts("succeeded"), t0()).await;
    insert(s, "pending", t0()).await;
    let far = secs(10 * 365 * 24 * 3600);
    assert_eq!(claim_codes(s, far).await, strings(["pending"]));
    assert!(claim_codes(s, far).await.is_empty());
}

/// Eight concurrent claimers, each claiming ten at a time until nothing is left, take each of
/// 2,000 tasks exactly once.
pub async fn concurrent_claimers_take_each_task_once(store: Arc<dyn TaskStore>) {
    const TASKS: usize = 2_000;
    const CLAIMERS: usize = 8;
    let s = store.as_ref();
    let all: Vec<_> = (0..TASKS)
        .map(|i| build(EnqueueOptions::new().code(format!("t{i:04}")), t0()))
        .collect();
    for chunk in all.chunks(250) {
        s.insert_many(chunk.to_vec()).await.expect("insert_many");
    }
    let now = secs(1);
    let lease = Duration::from_secs(3600);
    let claimers: Vec<_> = (0..CLAIMERS)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let worker = format!("w{i}");
                let req = ClaimRequest::new(worker.as_str(), 10, lease, now);
                let mut ids = Vec::new();
                let mut transient = 0;
                loop {
                    match store.claim(&req).await {
                        Ok(got) if got.is_empty() => return ids,
                        Ok(got) => {
                            assert!(got.len() <= 10, "over the limit: {}", got.len());
                            for rec in got {
                                assert_eq!(rec.lease_owner.as_deref(), Some(worker.as_str()));
                                assert_eq!(rec.attempts, 1, "claimed twice: {rec:?}");
                                ids.push(rec.id);
                            }
                        }
                        Err(e) if e.is_transient() && transient < 1_000 => {
                            transient += 1;
                            tokio::task::yield_now().await;
                        }
                        Err(e) => panic!("claim failed: {e}"),
                    }
                }
            })
        })
        .collect();
    let mut ids = Vec::new();
    for claimer in claimers {
        ids.extend(claimer.await.expect("claimer panicked"));
    }
    let unique: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a task was claimed twice");
    assert_eq!(ids.len(), TASKS, "every task is claimed");
    assert!(claim(s, "late", 10, now).await.is_empty());
}

/// A claim whose reply is lost after COMMIT ([`ReplyLost`]) holds its tasks though no worker
/// knows it: no one claims them while that lease lasts; after it, the next claim takes them
/// again (one more attempt) and logs each unknown run as worker lost.
pub async fn lost_reply_tasks_are_reclaimed_after_lease(store: Arc<dyn TaskStore>) {
    let lossy = ReplyLost::new(Arc::clone(&store));
    let s = store.as_ref();
    insert(s, "a", t0()).await;
    insert(s, "b", t0()).await;
    lossy.arm(Op::Claim, 1);
    assert_err!(
        lossy.claim(&ClaimRequest::new("w1", 10, LEASE, t0())).await,
        e if is_reply_lost(e)
    );
    let held = [get(s, "a").await, get(s, "b").await];
    assert!(
        held.iter()
            .all(|r| r.state == TaskState::Running && r.attempts == 1)
    );
    assert!(
        claim(&lossy, "w1", 10, plus(t0(), LEASE) - micro())
            .await
            .is_empty()
    );

    let again = claim(&lossy, "w1", 10, plus(t0(), LEASE)).await;
    assert_eq!(sorted_codes(&again), strings(["a", "b"]));
    assert!(again.iter().all(|r| r.attempts == 2));
    let rows = all_logs(s).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    for before in &held {
        let row = rows
            .iter()
            .find(|l| l.task_id == before.id)
            .expect("a row for each unknown run");
        assert_worker_lost(row, before, false);
    }
}

/// A worker id longer than the lease owner column (or empty) is refused with `InvalidInput`
/// on every store, before any row is touched — not a database error on every claim.
pub async fn refuses_worker_id_that_does_not_fit(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a", t0()).await;
    let long = "w".repeat(taskrow::record::MAX_CODE_CHARS + 1);
    for worker in [long.as_str(), ""] {
        match s.claim(&ClaimRequest::new(worker, 10, LEASE, t0())).await {
            Err(taskrow::Error::InvalidInput(m)) => assert!(m.contains("worker id"), "{m}"),
            other => panic!(
                "expected InvalidInput for a worker id of {} chars, got {other:?}",
                worker.len()
            ),
        }
    }
    let fits = "w".repeat(taskrow::record::MAX_CODE_CHARS);
    let claimed = claim(s, &fits, 10, t0()).await;
    assert_eq!(claimed.len(), 1, "the longest id that fits claims");
    assert_eq!(claimed[0].lease_owner.as_deref(), Some(fits.as_str()));
}

/// A claim records when the run became due: a pending task's next run time, or the lease
/// expiry of a task whose worker was lost; `claimed_at − due_at` is the pickup lag.
pub async fn records_when_the_run_became_due(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert_with(s, opts("later").run_at(secs(5)), t0()).await;
    let first = claim(s, "w1", 10, secs(7)).await;
    assert_eq!(first.len(), 1);
    assert_eq!(
        (first[0].due_at, first[0].claimed_at),
        (Some(secs(5)), Some(secs(7)))
    );
    assert_eq!(get(s, "later").await.due_at, Some(secs(5)), "as stored");
    // The lease runs out at t0+7+LEASE; the next claim finds the run lost and takes it again.
    let expiry = plus(secs(7), LEASE);
    let again = claim(s, "w2", 10, plus(expiry, Duration::from_secs(2))).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].due_at, Some(expiry));
}
