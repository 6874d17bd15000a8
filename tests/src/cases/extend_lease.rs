//! [`TaskStore::extend_lease`]: the heartbeat that keeps a long run's claim.

use std::sync::Arc;

use taskrow::{ClaimOne, Error, FinishResult, FinishStatus, Lease, Outcome, TaskRef, TaskStore};

use super::{
    LEASE, all_logs, assert_not_found, claim, finish_of, finish_one, get, make_running, opts, plus,
    run_now, secs, t0,
};

/// Extending moves the lease expiry and bumps the version; until then, no one else can claim.
pub async fn moves_expiry_and_bumps_version(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let claimed = make_running(s, opts("a"), "w1", t0()).await;
    let lease = s
        .extend_lease(claimed.lease(), secs(90), secs(20))
        .await
        .expect("extend_lease");
    assert_eq!(
        lease,
        Lease {
            id: claimed.id,
            version: claimed.version + 1
        }
    );
    let mut expected = claimed.clone();
    expected.lease_expires_at = Some(secs(90));
    expected.version = claimed.version + 1;
    expected.updated_at = secs(20);
    assert_eq!(get(s, "a").await, expected);

    // Past the original expiry the task is still held.
    assert!(claim(s, "w2", 10, secs(60)).await.is_empty());
    assert_err!(
        s.claim_one(&TaskRef::from("a"), &ClaimOne::new("w2", LEASE, secs(60)))
            .await,
        Error::Running { owner, until, .. } if owner == "w1" && *until == secs(90)
    );
    assert_eq!(claim(s, "w2", 10, secs(90)).await.len(), 1);
}

/// After an extension the old lease is lost: a finish under it is refused, one under the new
/// lease applies.
pub async fn old_lease_is_lost_after_extend(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let claimed = make_running(s, opts("a"), "w1", t0()).await;
    let lease = s
        .extend_lease(claimed.lease(), secs(90), secs(20))
        .await
        .expect("extend_lease");
    let extended = get(s, "a").await;

    let stale = finish_of(&claimed, t0(), FinishResult::Succeeded);
    assert_eq!(
        finish_one(s, stale, secs(25)).await,
        FinishStatus::LeaseLost
    );
    assert_eq!(get(s, "a").await, extended);

    let mut current = finish_of(&claimed, t0(), FinishResult::Succeeded);
    current.lease = lease;
    assert_eq!(
        finish_one(s, current, secs(26)).await,
        FinishStatus::Applied
    );
    assert_not_found(s.get(&TaskRef::from("a")).await, &TaskRef::from("a"));
    let outcomes: Vec<Outcome> = all_logs(s).await.into_iter().map(|l| l.outcome).collect();
    assert_eq!(outcomes, [Outcome::LeaseLost, Outcome::Succeeded]);
}

/// Extending a lease that was replaced (the task was claimed again) fails with `LeaseLost`
/// and changes nothing.
pub async fn stale_lease_is_refused(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let old = make_running(s, opts("a"), "w1", t0()).await;
    let current = run_now(s, "a", "w2", plus(t0(), LEASE)).await;
    assert_err!(
        s.extend_lease(old.lease(), secs(100), secs(31)).await,
        Error::LeaseLost { id } if *id == old.id
    );
    assert_eq!(get(s, "a").await, current);
}
