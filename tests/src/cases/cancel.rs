//! [`TaskStore::cancel`]: stop a task; a running one is marked, and its worker stops it at its
//! next heartbeat ([`TaskStore::extend_lease`] reports the mark).

use std::sync::Arc;

use taskrow::bulk::{BulkAction, apply_matching};
use taskrow::chrono::{DateTime, Utc};
use taskrow::{
    ClaimOne, Error, ExtendStatus, FinishResult, FinishStatus, Outcome, ResetTarget, TaskFilter,
    TaskRecord, TaskRef, TaskState, TaskStore,
};

use super::{
    LEASE, all_logs, assert_not_found, claim, claim_codes, finish_of, finish_one, get, insert,
    make_cancelled, make_failed, make_running, make_succeeded, opts, plus, retry_at, secs, t0,
};
use crate::wrappers::{Op, ReplyLost, is_reply_lost};

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

/// A task running under a live lease is marked, not refused: it stays running under its
/// lease, with `cancel_requested_at` set (version + 1); a second cancel keeps the first mark.
/// Delete, reset and run-now of it stay refused while its lease lives.
pub async fn live_running_is_marked(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let running = make_running(s, opts("a"), "w1", t0()).await;
    let rec = s.cancel(&"a".into(), secs(10)).await.expect("cancel");
    let mut expected = running.clone();
    expected.cancel_requested_at = Some(secs(10));
    expected.version = running.version + 1;
    expected.updated_at = secs(10);
    assert_eq!(rec, expected);
    assert_eq!(get(s, "a").await, expected);
    let again = s.cancel(&"a".into(), secs(12)).await.expect("cancel again");
    assert_eq!(again, expected, "a second cancel changes nothing");
    assert_err!(s.delete(&"a".into(), secs(13)).await, Error::Running { code, .. } if code == "a");
    assert_err!(
        s.reset(&ResetTarget::One("a".into()), secs(13)).await,
        Error::Running { code, .. } if code == "a"
    );
    assert_err!(
        s.claim_one(&"a".into(), &ClaimOne::new("w2", LEASE, secs(13))).await,
        Error::Running { code, .. } if code == "a"
    );
    assert_eq!(get(s, "a").await, expected);
}

/// The heartbeat of a marked run reports the mark (and still extends the lease); before the
/// mark it reports a plain extension.
pub async fn heartbeat_reports_the_mark(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let running = make_running(s, opts("a"), "w1", t0()).await;
    assert_eq!(
        s.extend_lease(running.lease(), secs(40), secs(5))
            .await
            .expect("beat"),
        ExtendStatus::Extended
    );
    s.cancel(&"a".into(), secs(10)).await.expect("cancel");
    assert_eq!(
        s.extend_lease(running.lease(), secs(60), secs(20))
            .await
            .expect("beat"),
        ExtendStatus::CancelRequested
    );
    assert_eq!(get(s, "a").await.lease_expires_at, Some(secs(60)));
}

/// The mark set while a heartbeat's reply is lost (ReplyLost on ExtendLease) is reported by
/// the next heartbeat.
pub async fn mark_survives_a_lost_beat_reply(store: Arc<dyn TaskStore>) {
    let lossy = ReplyLost::new(Arc::clone(&store));
    let s = store.as_ref();
    let running = make_running(s, opts("a"), "w1", t0()).await;
    s.cancel(&"a".into(), secs(10)).await.expect("cancel");
    lossy.arm(Op::ExtendLease, 1);
    assert_err!(
        lossy.extend_lease(running.lease(), secs(60), secs(20)).await,
        e if is_reply_lost(e)
    );
    assert_eq!(
        lossy
            .extend_lease(running.lease(), secs(70), secs(30))
            .await
            .expect("the next beat"),
        ExtendStatus::CancelRequested
    );
}

/// A marked run that ends without success (a retry here) ends the task cancelled, logged
/// `cancelled` with the run's error; the same finish retried after a lost reply is applied
/// once.
pub async fn marked_failure_ends_cancelled(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let running = make_running(s, opts("a"), "w1", t0()).await;
    s.cancel(&"a".into(), secs(10)).await.expect("cancel");
    let finish = finish_of(&running, t0(), retry_at(secs(100), "boom"));
    assert_eq!(
        finish_one(s, finish.clone(), secs(20)).await,
        FinishStatus::Applied
    );
    let rec = get(s, "a").await;
    assert_eq!(rec.state, TaskState::Cancelled);
    assert_eq!(rec.next_run_at, None);
    assert!(
        rec.last_error
            .as_deref()
            .is_some_and(|e| e.contains("boom")),
        "{rec:?}"
    );
    assert_eq!(finish_one(s, finish, secs(21)).await, FinishStatus::Applied);
    let rows = all_logs(s).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].outcome, Outcome::Cancelled);
    assert!(claim_codes(s, secs(1_000)).await.is_empty());
}

/// A marked run that succeeded before its worker saw the mark stays succeeded.
pub async fn marked_success_stays_succeeded(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let running = make_running(s, opts("a").keep_on_success(), "w1", t0()).await;
    s.cancel(&"a".into(), secs(10)).await.expect("cancel");
    let finish = finish_of(&running, t0(), FinishResult::Succeeded);
    assert_eq!(finish_one(s, finish, secs(20)).await, FinishStatus::Applied);
    assert_eq!(get(s, "a").await.state, TaskState::Succeeded);
    let rows = all_logs(s).await;
    assert_eq!(
        rows.iter().map(|l| l.outcome).collect::<Vec<_>>(),
        [Outcome::Succeeded]
    );
}

/// A run stopped for the cancel finishes `Cancelled`: the task is cancelled with the error
/// kept, and the log says `cancelled`.
pub async fn cancelled_finish_ends_cancelled(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let running = make_running(s, opts("a"), "w1", t0()).await;
    s.cancel(&"a".into(), secs(10)).await.expect("cancel");
    let result = FinishResult::Cancelled {
        error: "cancelled on request: stopped".to_owned(),
    };
    let finish = finish_of(&running, t0(), result);
    assert_eq!(finish_one(s, finish, secs(20)).await, FinishStatus::Applied);
    let rec = get(s, "a").await;
    assert_eq!(rec.state, TaskState::Cancelled);
    assert_eq!(rec.lease_expires_at, None);
    assert_eq!(
        rec.last_error.as_deref(),
        Some("cancelled on request: stopped")
    );
    let rows = all_logs(s).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].outcome, Outcome::Cancelled);
    assert_eq!(
        rows[0].error.as_deref(),
        Some("cancelled on request: stopped")
    );
}

/// A claim never starts a marked task again: one whose worker was lost is settled as
/// cancelled (its lost run logged) instead of claimed.
pub async fn claim_skips_marked_task(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    make_running(s, opts("a"), "w1", t0()).await;
    insert(s, "b", t0()).await;
    s.cancel(&"a".into(), secs(1)).await.expect("cancel");
    let taken: Vec<String> = claim(s, "w2", 10, plus(t0(), LEASE))
        .await
        .into_iter()
        .map(|r| r.code)
        .collect();
    assert_eq!(taken, ["b"]);
    let rec = get(s, "a").await;
    assert_eq!(rec.state, TaskState::Cancelled);
    assert_eq!(rec.lease_expires_at, None);
    let rows = all_logs(s).await;
    assert_eq!(
        rows.iter().map(|l| l.outcome).collect::<Vec<_>>(),
        [Outcome::WorkerLost]
    );
}

/// A marked task handed back unstarted (release) is cancelled, not pending.
pub async fn release_of_marked_task_cancels_it(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let running = make_running(s, opts("a"), "w1", t0()).await;
    s.cancel(&"a".into(), secs(1)).await.expect("cancel");
    assert_eq!(
        s.release(&[running.lease()], secs(2))
            .await
            .expect("release"),
        [FinishStatus::Applied]
    );
    assert_eq!(get(s, "a").await.state, TaskState::Cancelled);
    assert!(claim_codes(s, secs(1_000)).await.is_empty());
}

/// Reset of a task cancelled while it ran clears the mark: it is claimed and runs again.
pub async fn reset_clears_the_mark(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let running = make_running(s, opts("a"), "w1", t0()).await;
    s.cancel(&"a".into(), secs(1)).await.expect("cancel");
    let result = FinishResult::Cancelled {
        error: "stopped".to_owned(),
    };
    finish_one(s, finish_of(&running, t0(), result), secs(2)).await;
    assert_eq!(
        s.reset(&ResetTarget::One("a".into()), secs(3))
            .await
            .expect("reset"),
        1
    );
    let rec = get(s, "a").await;
    assert_eq!(rec.state, TaskState::Pending);
    assert_eq!(rec.cancel_requested_at, None);
    assert_eq!(claim_codes(s, secs(3)).await, ["a"]);
    let again = get(s, "a").await;
    assert_eq!(
        s.extend_lease(again.lease(), secs(60), secs(4))
            .await
            .expect("beat"),
        ExtendStatus::Extended
    );
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

/// `bulk::apply_matching(Cancel)`: pending and failed matching tasks become cancelled, a task
/// under a live lease is marked (its worker stops it); a succeeded one and an already
/// cancelled one are skipped with their reasons; a dry run reports the same and changes
/// nothing. Run again, the marked task is skipped: its cancel is requested already.
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
        assert_eq!(done, ["a-1", "a-2", "a-3"], "dry run {dry_run}");
        let skipped: Vec<&str> = report.skipped.iter().map(|k| k.code.as_str()).collect();
        assert_eq!(skipped, ["a-4", "a-5"], "{report:?}");
        assert!(report.skipped[0].reason.contains("succeeded"), "{report:?}");
        assert!(
            report.skipped[1].reason.contains("already cancelled"),
            "{report:?}"
        );
        let want = if dry_run {
            [TaskState::Pending, TaskState::Failed]
        } else {
            [TaskState::Cancelled, TaskState::Cancelled]
        };
        assert_eq!([get(s, "a-1").await.state, get(s, "a-2").await.state], want);
        let running = get(s, "a-3").await;
        assert_eq!(running.state, TaskState::Running);
        assert_eq!(
            running.cancel_requested_at.is_some(),
            !dry_run,
            "marked by the real run only"
        );
        assert_eq!(get(s, "b-1").await.state, TaskState::Pending);
    }
    let again = apply_matching(s, BulkAction::Cancel, &filter, secs(11), false)
        .await
        .expect("bulk cancel again");
    assert!(again.done.is_empty(), "{again:?}");
    assert!(
        again
            .skipped
            .iter()
            .any(|k| k.code == "a-3" && k.reason.contains("requested already")),
        "{again:?}"
    );
}
