//! [`TaskStore::release`]: hand back claimed tasks that never ran, under their claim tokens.

use std::sync::Arc;

use taskrow::{FinishStatus, TaskState, TaskStore};

use super::{LEASE, all_logs, claim, get, insert, make_running, opts, plus, run_now, secs, t0};

/// A released task is pending again, due at `now`, with its attempt given back, no lease
/// expiry and one more version; nothing is logged, and it can be claimed again.
pub async fn returns_task_to_pending(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a", t0()).await;
    let claimed = claim(s, "w1", 10, secs(5)).await.remove(0);
    assert_eq!(claimed.attempts, 1);
    let statuses = s
        .release(&[claimed.lease()], secs(10))
        .await
        .expect("release");
    assert_eq!(statuses, [FinishStatus::Applied]);
    let got = get(s, "a").await;
    let mut expected = claimed.clone();
    expected.state = TaskState::Pending;
    expected.attempts = 0;
    expected.next_run_at = Some(secs(10));
    expected.lease_expires_at = None;
    expected.version = claimed.version + 1;
    expected.updated_at = secs(10);
    // Whether the last owner stays shown after a release is left to the store.
    expected.lease_owner = got.lease_owner.clone();
    assert_eq!(got, expected);
    assert!(all_logs(s).await.is_empty(), "a release logs nothing");

    let again = claim(s, "w2", 10, secs(10)).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
}

/// A lease whose task was claimed again (a stale token) is answered `LeaseLost` and changes
/// nothing; each lease is answered in order, and a release logs nothing.
pub async fn stale_lease_is_lease_lost(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let a_old = make_running(s, opts("a"), "w1", t0()).await;
    let b = make_running(s, opts("b"), "w1", t0()).await;
    let a_now = run_now(s, "a", "w2", plus(t0(), LEASE)).await;
    // The reclaim logged a's lost run; the release adds nothing.
    let logged = all_logs(s).await;
    let statuses = s
        .release(&[a_old.lease(), b.lease()], secs(31))
        .await
        .expect("release");
    assert_eq!(statuses, [FinishStatus::LeaseLost, FinishStatus::Applied]);
    assert_eq!(get(s, "a").await, a_now);
    let b_now = get(s, "b").await;
    assert_eq!(b_now.state, TaskState::Pending);
    assert_eq!(b_now.attempts, 0);
    assert_eq!(all_logs(s).await, logged);
}

/// A release keeps the claim token on the row, and a second release of the same lease (the
/// task is pending now) is `LeaseLost` and changes nothing.
pub async fn released_lease_is_spent(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let claimed = make_running(s, opts("a"), "w1", t0()).await;
    let statuses = s
        .release(&[claimed.lease()], secs(1))
        .await
        .expect("release");
    assert_eq!(statuses, [FinishStatus::Applied]);
    let released = get(s, "a").await;
    assert_eq!(released.claim_token, claimed.claim_token);
    let statuses = s
        .release(&[claimed.lease()], secs(2))
        .await
        .expect("release");
    assert_eq!(statuses, [FinishStatus::LeaseLost]);
    assert_eq!(get(s, "a").await, released);
    assert!(all_logs(s).await.is_empty());
}
