//! [`TaskStore::cancel`]: stop a task that is not running.

use std::sync::Arc;

use taskrow::bulk::{BulkAction, apply_matching};
use taskrow::chrono::{DateTime, Utc};
use taskrow::{
    ClaimOne, Error, FinishResult, FinishStatus, TaskFilter, TaskRecord, TaskRef, TaskState,
    TaskStore,
};

use super::{
    LEASE, assert_not_found, claim_codes, finish_of, finish_one, get, insert, make_cancelled,
    make_failed, make_running, make_succeeded, opts, plus, secs, t0,
};

/// What `before` looks like cancelled at `now`.
fn cancelled(before: &TaskRecord, now: DateTime<Utc>) -> TaskRecord {
    let mut expected = before.clone();
    expected.state = TaskState::Cancelled;
    expected.next_run_at = None;
    expected.lease_expires_at = None;
    expected.version = before.version + 1;
    expected.updated_at = now;
    expected
}

/// A pending task becomes cancelled (returned as stored) and is no longer claimed, by a
/// claim or by run-now.
pub async fn pending_becomes_cancelled(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let before = insert(s, "a", t0()).await;
    let rec = s.cancel(&"a".into(), secs(5)).await.expect("cancel");
    assert_eq!(rec, cancelled(&before, secs(5)));
    assert_eq!(get(s, "a").await, rec);
    assert!(claim_codes(s, secs(1_000_000)).await.is_empty());
    assert_err!(
        s.claim_one(&"a".into(), &ClaimOne::new("w1", LEASE, secs(6))).await,
        Error::Cancelled(code) if code == "a"
    );
}

/// A failed task becomes cancelled.
pub async fn failed_becomes_cancelled(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let before = make_failed(s, opts("a"), t0()).await;
    let rec = s
        .cancel(&TaskRef::Id(before.id), secs(5))
        .await
        .expect("cancel");
    assert_eq!(rec, cancelled(&before, secs(5)));
    assert_eq!(get(s, "a").await, rec);
}

/// A running task whose lease expired becomes cancelled, and its old holder's finish is then
/// refused.
pub async fn expired_running_becomes_cancelled(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let claimed = make_running(s, opts("a"), "w1", t0()).await;
    let expiry = plus(t0(), LEASE);
    let rec = s.cancel(&"a".into(), expiry).await.expect("cancel");
    assert_eq!(rec, cancelled(&claimed, expiry));
    let late = finish_of(&claimed, t0(), FinishResult::Succeeded);
    assert_eq!(finish_one(s, late, secs(40)).await, FinishStatus::LeaseLost);
    assert_eq!(get(s, "a").await, rec);
}

/// Cancelling a running task whose lease expired logs its lost run as worker lost, under that
/// run's claim token.
pub async fn expired_running_logs_lost_run(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let claimed = make_running(s, opts("a"), "w1", t0()).await;
    s.cancel(&"a".into(), plus(t0(), LEASE))
        .await
        .expect("cancel");
    super::assert_lost_run_logged(s, &claimed).await;
}

/// Cancelling a cancelled task succeeds and it stays cancelled.
pub async fn cancelled_again_is_ok(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    make_cancelled(s, opts("a"), t0()).await;
    let rec = s.cancel(&"a".into(), secs(5)).await.expect("cancel again");
    assert_eq!(rec.state, TaskState::Cancelled);
    assert_eq!(get(s, "a").await, rec);
}

/// A task running under a live lease is refused with `Running` and keeps running.
pub async fn refuses_live_running(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let running = make_running(s, opts("a"), "w1", t0()).await;
    assert_err!(
        s.cancel(&"a".into(), secs(10)).await,
        Error::Running { code, owner, until } if code == "a" && owner == "w1" && *until == plus(t0(), LEASE)
    );
    assert_eq!(get(s, "a").await, running);
}

/// A succeeded task is refused with `Succeeded`.
pub async fn refuses_succeeded(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let done = make_succeeded(s, opts("a"), t0()).await;
    assert_err!(
        s.cancel(&"a".into(), secs(10)).await,
        Error::Succeeded(code) if code == "a"
    );
    assert_eq!(get(s, "a").await, done);
}

/// An unknown task is `NotFound`.
pub async fn missing_is_not_found(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    assert_not_found(s.cancel(&"nope".into(), t0()).await, &"nope".into());
}

/// `bulk::apply_matching(Cancel)`: pending and failed matching tasks become cancelled; a
/// task under a live lease, a succeeded one and an already cancelled one are skipped with
/// their reasons; a dry run reports the same and changes nothing.
pub async fn matching_skips_refused(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a-1", t0()).await;
    make_failed(s, opts("a-2"), t0()).await;
    make_running(s, opts("a-3"), "w1", t0()).await;
    make_succeeded(s, opts("a-4").keep_on_success(), t0()).await;
    make_cancelled(s, opts("a-5"), t0()).await;
    insert(s, "b-1", t0()).await;
    let filter = TaskFilter::all().code_prefix("a-");
    for dry_run in [true, false] {
        let report = apply_matching(s, BulkAction::Cancel, &filter, secs(10), dry_run)
            .await
            .expect("bulk cancel");
        let done: Vec<&str> = report.done.iter().map(|t| t.code.as_str()).collect();
        assert_eq!(done, ["a-1", "a-2"], "dry run {dry_run}");
        let skipped: Vec<&str> = report.skipped.iter().map(|k| k.code.as_str()).collect();
        assert_eq!(skipped, ["a-3", "a-4", "a-5"], "{report:?}");
        assert!(
            report.skipped[0].reason.contains("live lease"),
            "{report:?}"
        );
        assert!(report.skipped[1].reason.contains("succeeded"), "{report:?}");
        assert!(
            report.skipped[2].reason.contains("already cancelled"),
            "{report:?}"
        );
        let want = if dry_run {
            [TaskState::Pending, TaskState::Failed]
        } else {
            [TaskState::Cancelled, TaskState::Cancelled]
        };
        assert_eq!([get(s, "a-1").await.state, get(s, "a-2").await.state], want);
        assert_eq!(get(s, "b-1").await.state, TaskState::Pending);
    }
}
