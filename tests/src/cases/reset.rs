//! [`TaskStore::reset`]: run tasks again from scratch.

use std::sync::Arc;

use taskrow::{
    Error, FinishResult, FinishStatus, ResetTarget, TaskFilter, TaskRecord, TaskRef, TaskState,
    TaskStore,
};

use super::{
    LEASE, all_logs, assert_finish_row, claim_codes, finish_of, finish_one, get, insert,
    insert_with, interrupted, make_cancelled, make_failed, make_running, make_succeeded, opts,
    plus, retry_at, run_and_finish, run_now, secs, strings, t0,
};

/// What `before` looks like after a reset at `now`: pending, no attempts, no interruptions,
/// due `now`, no error, no lease expiry, one more version, the last claim token kept. The last
/// lease owner may stay shown or not.
fn reset_of(
    before: &TaskRecord,
    after: &TaskRecord,
    now: taskrow::chrono::DateTime<taskrow::chrono::Utc>,
) -> TaskRecord {
    let mut expected = before.clone();
    expected.state = TaskState::Pending;
    expected.attempts = 0;
    expected.interruptions = 0;
    expected.next_run_at = Some(now);
    expected.last_error = None;
    expected.lease_expires_at = None;
    expected.version = before.version + 1;
    expected.updated_at = now;
    expected.lease_owner = after.lease_owner.clone();
    expected
}

async fn reset_one(
    s: &dyn TaskStore,
    target: TaskRef,
    now: taskrow::chrono::DateTime<taskrow::chrono::Utc>,
) -> u64 {
    s.reset(&ResetTarget::One(target), now)
        .await
        .expect("reset")
}

/// A failed task becomes pending with no attempts, due now, its error cleared; it is claimed
/// again.
pub async fn one_failed_task_runs_again(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let before = make_failed(s, opts("a").max_attempts(1), t0()).await;
    assert_eq!(before.attempts, 1);
    assert!(before.last_error.is_some());
    assert_eq!(reset_one(s, "a".into(), secs(100)).await, 1);
    let after = get(s, "a").await;
    assert_eq!(after, reset_of(&before, &after, secs(100)));
    assert_eq!(claim_codes(s, secs(100)).await, strings(["a"]));
}

/// A cancelled task (named by id) runs again.
pub async fn one_cancelled_task_runs_again(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let before = make_cancelled(s, opts("a"), t0()).await;
    assert_eq!(reset_one(s, TaskRef::Id(before.id), secs(100)).await, 1);
    let after = get(s, "a").await;
    assert_eq!(after, reset_of(&before, &after, secs(100)));
}

/// A pending task waiting for a retry starts over: attempts 0, due now, error cleared.
pub async fn one_retrying_task_starts_over(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a", t0()).await;
    run_and_finish(s, "a", secs(1), retry_at(secs(1_000), "flaky")).await;
    let before = get(s, "a").await;
    assert_eq!(before.attempts, 1);
    assert_eq!(reset_one(s, "a".into(), secs(50)).await, 1);
    let after = get(s, "a").await;
    assert_eq!(after, reset_of(&before, &after, secs(50)));
}

/// A running task whose lease expired is reset, and the old holder's lease is lost: its late
/// finish is refused, and becomes the run's one log row.
pub async fn one_expired_running_task_runs_again(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let claimed = make_running(s, opts("a"), "w1", t0()).await;
    let expiry = plus(t0(), LEASE);
    assert_eq!(reset_one(s, "a".into(), expiry).await, 1);
    let after = get(s, "a").await;
    assert_eq!(after, reset_of(&claimed, &after, expiry));
    let late = finish_of(&claimed, t0(), FinishResult::Succeeded);
    assert_eq!(
        finish_one(s, late.clone(), secs(40)).await,
        FinishStatus::LeaseLost
    );
    assert_eq!(get(s, "a").await, after);
    let rows = all_logs(s).await;
    assert_eq!(rows.len(), 1, "one row for the run: {rows:?}");
    assert_finish_row(&rows[0], &late, false);
}

/// Resetting a running task whose lease expired logs its lost run as worker lost, under that
/// run's claim token.
pub async fn one_expired_running_task_logs_lost_run(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let claimed = make_running(s, opts("a"), "w1", t0()).await;
    assert_eq!(reset_one(s, "a".into(), plus(t0(), LEASE)).await, 1);
    super::assert_lost_run_logged(s, &claimed).await;
}

/// A reset clears the interruptions along with the attempts.
pub async fn one_clears_interruptions(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a", t0()).await;
    let claimed = run_now(s, "a", "w1", secs(1)).await;
    let finish = finish_of(&claimed, secs(1), interrupted(secs(500), "shutdown"));
    assert_eq!(finish_one(s, finish, secs(2)).await, FinishStatus::Applied);
    run_and_finish(s, "a", secs(3), retry_at(secs(600), "flaky")).await;
    let before = get(s, "a").await;
    assert_eq!((before.attempts, before.interruptions), (1, 1));
    assert_eq!(reset_one(s, "a".into(), secs(10)).await, 1);
    let after = get(s, "a").await;
    assert_eq!(after, reset_of(&before, &after, secs(10)));
    assert_eq!(after.interruptions, 0);
}

/// A task running under a live lease is refused with `Running` and left alone.
pub async fn one_refuses_live_running(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let running = make_running(s, opts("a"), "w1", t0()).await;
    assert_err!(
        s.reset(&ResetTarget::One("a".into()), secs(10)).await,
        Error::Running { code, owner, .. } if code == "a" && owner == "w1"
    );
    assert_eq!(get(s, "a").await, running);
}

/// A succeeded task is refused with `Succeeded` and left alone.
pub async fn one_refuses_succeeded(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let done = make_succeeded(s, opts("a"), t0()).await;
    assert_err!(
        s.reset(&ResetTarget::One("a".into()), secs(10)).await,
        Error::Succeeded(code) if code == "a"
    );
    assert_eq!(get(s, "a").await, done);
}

/// An unknown task is `NotFound`.
pub async fn one_missing_is_not_found(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    assert_err!(
        s.reset(&ResetTarget::One("nope".into()), t0()).await,
        Error::NotFound(r) if *r == TaskRef::from("nope")
    );
}

/// A filter resets the failed and cancelled tasks it matches, and only those; it returns
/// how many.
pub async fn matching_resets_only_failed_and_cancelled(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let f1 = make_failed(s, opts("f1").biz_type("x"), t0()).await;
    let c1 = make_cancelled(s, opts("c1").biz_type("x"), t0()).await;
    let f2 = make_failed(s, opts("f2").biz_type("y"), t0()).await;
    let p1 = insert_with(s, opts("p1").biz_type("x"), t0()).await;
    let r1 = make_running(s, opts("r1").biz_type("x"), "w1", t0()).await;
    let s1 = make_succeeded(s, opts("s1").biz_type("x"), t0()).await;
    let now = secs(500);
    let n = s
        .reset(
            &ResetTarget::Matching(TaskFilter::all().biz_types(["x"])),
            now,
        )
        .await
        .expect("reset");
    assert_eq!(n, 2);
    for before in [f1, c1] {
        let after = get(s, &before.code).await;
        assert_eq!(after, reset_of(&before, &after, now));
    }
    for unchanged in [f2, p1, r1, s1] {
        assert_eq!(get(s, &unchanged.code).await, unchanged);
    }
}

/// A filter's states narrow the failed-or-cancelled set further; naming other states resets
/// nothing.
pub async fn matching_states_narrow_further(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let f1 = make_failed(s, opts("f1"), t0()).await;
    let c1 = make_cancelled(s, opts("c1"), t0()).await;
    let p1 = insert(s, "p1", t0()).await;
    let reset = |states: Vec<TaskState>| ResetTarget::Matching(TaskFilter::all().states(states));

    assert_eq!(
        s.reset(&reset(vec![TaskState::Cancelled]), secs(10))
            .await
            .expect("reset"),
        1
    );
    assert_eq!(get(s, "c1").await.state, TaskState::Pending);
    assert_eq!(get(s, "f1").await, f1);

    assert_eq!(
        s.reset(&reset(vec![TaskState::Pending]), secs(20))
            .await
            .expect("reset"),
        0
    );
    assert_eq!(get(s, "p1").await, p1);
    let c1_now = get(s, "c1").await;
    assert_eq!(c1_now.version, c1.version + 1);

    assert_eq!(
        s.reset(&ResetTarget::Matching(TaskFilter::all()), secs(30))
            .await
            .expect("reset"),
        1
    );
    let f1_now = get(s, "f1").await;
    assert_eq!(f1_now, reset_of(&f1, &f1_now, secs(30)));
    assert_eq!(get(s, "p1").await, p1);
    assert_eq!(get(s, "c1").await, c1_now);
}
