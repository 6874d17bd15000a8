//! [`TaskStore::claim_one`]: run-now claims, due or not, and their refusals.

use std::sync::Arc;

use taskrow::{ClaimOne, Error, LogFilter, TaskLog, TaskRef, TaskState, TaskStore};
use tokio::sync::Barrier;

use super::{
    LEASE, all_logs, assert_worker_lost, get, insert, insert_with, logs, make_cancelled,
    make_failed, make_running, make_succeeded, opts, plus, run_now, secs, t0,
};

/// A pending task that is not due yet is claimed at once: running, one attempt, one more
/// version, the claimant's lease from `now`, a claim token and `claimed_at = now`.
pub async fn claims_pending_not_yet_due(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let inserted = insert_with(s, opts("a").run_at(secs(3600)), t0()).await;
    let now = secs(5);
    let claimed = s
        .claim_one(&TaskRef::from("a"), &ClaimOne::new("w1", LEASE, now))
        .await
        .expect("claim_one");
    let mut expected = inserted.clone();
    expected.state = TaskState::Running;
    expected.attempts = 1;
    expected.version = inserted.version + 1;
    expected.lease_owner = Some("w1".to_owned());
    expected.lease_expires_at = Some(plus(now, LEASE));
    expected.next_run_at = None;
    expected.updated_at = now;
    assert!(claimed.claim_token.is_some(), "a claim sets a claim token");
    expected.claim_token = claimed.claim_token;
    expected.claimed_at = Some(now);
    // Run now: it was due at its run time, still ahead.
    expected.due_at = Some(secs(3600));
    assert_eq!(claimed, expected);
    assert_eq!(get(s, "a").await, expected);
}

/// A task can be named by id as well as by code.
pub async fn claims_by_id(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a", t0()).await;
    let b = insert(s, "b", t0()).await;
    let claimed = s
        .claim_one(&TaskRef::Id(b.id), &ClaimOne::new("w1", LEASE, t0()))
        .await
        .expect("claim_one");
    assert_eq!(claimed.code, "b");
    assert_eq!(claimed.state, TaskState::Running);
    assert_eq!(get(s, "a").await.state, TaskState::Pending);
}

/// A failed task is claimed (the seeds' manual re-run), counting another attempt, under a new
/// claim token.
pub async fn claims_failed_task(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let failed = make_failed(s, opts("a").max_attempts(1), t0()).await;
    let claimed = run_now(s, "a", "w2", secs(60)).await;
    assert_eq!(claimed.state, TaskState::Running);
    assert_eq!(claimed.attempts, failed.attempts + 1);
    assert_eq!(claimed.version, failed.version + 1);
    assert_eq!(claimed.lease_owner.as_deref(), Some("w2"));
    assert_eq!(claimed.lease_expires_at, Some(plus(secs(60), LEASE)));
    assert_eq!(claimed.claimed_at, Some(secs(60)));
    assert_ne!(claimed.claim_token, failed.claim_token);
}

/// A running task whose lease expired is claimed by another worker, under a new claim token.
pub async fn claims_expired_lease(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let first = make_running(s, opts("a"), "w1", t0()).await;
    let expiry = plus(t0(), LEASE);
    let second = run_now(s, "a", "w2", expiry).await;
    assert_eq!(second.attempts, 2);
    assert_eq!(second.version, first.version + 1);
    assert_eq!(second.lease_owner.as_deref(), Some("w2"));
    assert_eq!(second.lease_expires_at, Some(plus(expiry, LEASE)));
    assert_eq!(second.claimed_at, Some(expiry));
    assert_ne!(second.claim_token, first.claim_token);
}

/// Claiming a task whose lease expired logs the run it takes over as worker lost, under that
/// run's claim token.
pub async fn logs_lost_run_of_expired_lease(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let first = make_running(s, opts("a"), "w1", secs(3)).await;
    assert!(all_logs(s).await.is_empty());
    let expiry = plus(secs(3), LEASE);
    let second = run_now(s, "a", "w2", secs(40)).await;
    let rows = all_logs(s).await;
    assert_eq!(rows.len(), 1, "the lost run is logged once: {rows:?}");
    assert_worker_lost(&rows[0], &first, false);
    assert_eq!(rows[0].attempt, 1);
    assert_eq!(rows[0].worker, "w1");
    assert_eq!(rows[0].claim_token, first.claim_token);
    assert_eq!(rows[0].started_at, secs(3));
    assert_eq!(
        rows[0].duration_ms,
        (expiry - secs(3)).num_milliseconds(),
        "a lost run lasted until its lease expired"
    );
    assert_eq!(get(s, "a").await, second);
}

/// Run-now is an operator's decision: a task whose lease expired during its last attempt is
/// run once more (its lost run logged), not failed.
pub async fn runs_expired_task_past_last_attempt(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let first = make_running(s, opts("a").max_attempts(1), "w1", t0()).await;
    let second = run_now(s, "a", "w2", plus(t0(), LEASE)).await;
    assert_eq!(second.state, TaskState::Running);
    assert_eq!(second.attempts, 2);
    assert_eq!(second.lease_owner.as_deref(), Some("w2"));
    let rows = all_logs(s).await;
    assert_eq!(rows.len(), 1, "the lost run is logged once: {rows:?}");
    assert_worker_lost(&rows[0], &first, false);
}

/// `only_pending` (immediate dispatch) fails a task whose lease expired during its last
/// attempt, as a claim would, logs the lost run, and answers `WrongState`.
pub async fn only_pending_fails_exhausted_expired_task(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let first = make_running(s, opts("a").max_attempts(1), "w1", t0()).await;
    let expiry = plus(t0(), LEASE);
    assert_err!(
        s.claim_one(
            &TaskRef::from("a"),
            &ClaimOne::new("w2", LEASE, expiry).only_pending(),
        )
        .await,
        Error::WrongState { code, state: TaskState::Failed, .. } if code == "a"
    );
    let after = get(s, "a").await;
    assert_eq!(after.state, TaskState::Failed);
    assert_eq!(after.attempts, 1, "no attempt past max_attempts");
    assert_eq!(after.last_error, Some(TaskLog::worker_lost_failure(&first)));
    assert_eq!(after.version, first.version + 1);
    assert_eq!(after.updated_at, expiry);
    let rows = logs(s, &LogFilter::code("a")).await;
    assert_eq!(rows.len(), 1, "the lost run is logged once: {rows:?}");
    assert_worker_lost(&rows[0], &first, true);
}

/// `only_pending` (immediate dispatch) claims a pending task, due or not.
pub async fn only_pending_claims_pending(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert_with(s, opts("a").run_at(secs(60)), t0()).await;
    let claimed = s
        .claim_one(
            &TaskRef::from("a"),
            &ClaimOne::new("w1", LEASE, t0()).only_pending(),
        )
        .await
        .expect("claim_one");
    assert_eq!(claimed.state, TaskState::Running);
    assert_eq!(claimed.attempts, 1);
}

/// `only_pending` claims a task whose lease expired with attempts left, logging its lost run.
pub async fn only_pending_claims_expired_lease(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let first = make_running(s, opts("a").max_attempts(2), "w1", t0()).await;
    let expiry = plus(t0(), LEASE);
    let second = s
        .claim_one(
            &TaskRef::from("a"),
            &ClaimOne::new("w2", LEASE, expiry).only_pending(),
        )
        .await
        .expect("claim_one");
    assert_eq!(second.state, TaskState::Running);
    assert_eq!(second.attempts, 2);
    assert_ne!(second.claim_token, first.claim_token);
    let rows = all_logs(s).await;
    assert_eq!(rows.len(), 1, "the lost run is logged once: {rows:?}");
    assert_worker_lost(&rows[0], &first, false);
}

/// `only_pending` refuses a failed task with `WrongState`, and changes nothing.
pub async fn only_pending_refuses_failed(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let failed = make_failed(s, opts("a"), t0()).await;
    assert_err!(
        s.claim_one(
            &TaskRef::from("a"),
            &ClaimOne::new("w1", LEASE, secs(60)).only_pending(),
        )
        .await,
        Error::WrongState { code, state: TaskState::Failed, .. } if code == "a"
    );
    assert_eq!(get(s, "a").await, failed);
}

/// A task running under a live lease is refused with `Running`, naming the holder and the
/// expiry, and changes nothing.
pub async fn refuses_live_running(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let running = make_running(s, opts("a"), "w1", t0()).await;
    let until = plus(t0(), LEASE);
    assert_err!(
        s.claim_one(&TaskRef::from("a"), &ClaimOne::new("w2", LEASE, secs(29)))
            .await,
        Error::Running { code, owner, until: u } if code == "a" && owner == "w1" && *u == until
    );
    assert_eq!(get(s, "a").await, running);
}

/// A cancelled task is refused with `Cancelled`.
pub async fn refuses_cancelled(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let cancelled = make_cancelled(s, opts("a"), t0()).await;
    assert_err!(
        s.claim_one(&TaskRef::from("a"), &ClaimOne::new("w1", LEASE, secs(1)))
            .await,
        Error::Cancelled(code) if code == "a"
    );
    assert_eq!(get(s, "a").await, cancelled);
}

/// A succeeded (kept) task is refused with `Succeeded`.
pub async fn refuses_succeeded(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let succeeded = make_succeeded(s, opts("a"), t0()).await;
    assert_err!(
        s.claim_one(&TaskRef::from("a"), &ClaimOne::new("w1", LEASE, secs(60)))
            .await,
        Error::Succeeded(code) if code == "a"
    );
    assert_eq!(get(s, "a").await, succeeded);
}

/// An unknown id or code is `NotFound`, naming it.
pub async fn refuses_unknown(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let a = insert(s, "a", t0()).await;
    for target in [TaskRef::from("nope"), TaskRef::Id(a.id + 1_000)] {
        assert_err!(
            s.claim_one(&target, &ClaimOne::new("w1", LEASE, t0())).await,
            Error::NotFound(r) if *r == target
        );
    }
}

/// Of eight concurrent run-now claims on one task, exactly one wins; the others are refused
/// with `Running` naming the winner, and one attempt is counted.
pub async fn concurrent_claims_have_one_winner(store: Arc<dyn TaskStore>) {
    const CLAIMANTS: usize = 8;
    insert(store.as_ref(), "a", t0()).await;
    let barrier = Arc::new(Barrier::new(CLAIMANTS));
    let tasks: Vec<_> = (0..CLAIMANTS)
        .map(|i| {
            let store = Arc::clone(&store);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                let req = ClaimOne::new(format!("w{i}"), LEASE, secs(1));
                barrier.wait().await;
                let mut transient = 0;
                loop {
                    match store.claim_one(&TaskRef::from("a"), &req).await {
                        Err(e) if e.is_transient() && transient < 1_000 => {
                            transient += 1;
                            tokio::task::yield_now().await;
                        }
                        other => return other,
                    }
                }
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut refusals = Vec::new();
    for task in tasks {
        match task.await.expect("claimant panicked") {
            Ok(rec) => winners.push(rec),
            Err(e) => refusals.push(e),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner: {winners:?}");
    let winner = winners.remove(0);
    let owner = winner.lease_owner.clone().expect("owner");
    for e in &refusals {
        assert!(
            matches!(e, Error::Running { owner: o, .. } if *o == owner),
            "a losing claim is refused as running under {owner}'s lease, got {e:?}"
        );
    }
    let now = get(store.as_ref(), "a").await;
    assert_eq!(now, winner);
    assert_eq!(now.attempts, 1);
    assert_eq!(now.version, 1);
}

/// A worker id longer than the lease owner column is refused with `InvalidInput`, and the
/// task is left as it was.
pub async fn refuses_worker_id_that_does_not_fit(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let a = insert(s, "a", t0()).await;
    let long = "w".repeat(taskrow::record::MAX_CODE_CHARS + 1);
    match s
        .claim_one(&"a".into(), &ClaimOne::new(long, LEASE, t0()))
        .await
    {
        Err(Error::InvalidInput(m)) => assert!(m.contains("worker id"), "{m}"),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert_eq!(get(s, "a").await, a, "the task is unchanged");
}
