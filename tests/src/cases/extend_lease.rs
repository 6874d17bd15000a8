//! [`TaskStore::extend_lease`]: the heartbeat that keeps a long run's claim, under the claim's
//! token, which it never changes.

use std::sync::Arc;

use taskrow::{ClaimOne, Error, FinishResult, FinishStatus, Outcome, TaskRef, TaskStore};

use super::{
    LEASE, all_logs, assert_finish_row, assert_not_found, claim, finish_of, finish_one, get,
    make_running, opts, plus, retry_at, run_now, secs, t0,
};
use crate::wrappers::{Op, ReplyLost, is_reply_lost};

/// Extending moves the lease expiry and bumps the version, keeping the claim token; until
/// then, no one else can claim.
pub async fn moves_expiry_and_bumps_version(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let claimed = make_running(s, opts("a"), "w1", t0()).await;
    s.extend_lease(claimed.lease(), secs(90), secs(20))
        .await
        .expect("extend_lease");
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

/// A heartbeat keeps the claim token: a finish under the lease the task was claimed with,
/// after an extension, is applied.
pub async fn finish_after_extend_is_applied(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let claimed = make_running(s, opts("a"), "w1", t0()).await;
    s.extend_lease(claimed.lease(), secs(90), secs(20))
        .await
        .expect("extend_lease");
    let extended = get(s, "a").await;
    assert_eq!(extended.lease(), claimed.lease());

    let finish = finish_of(&claimed, t0(), FinishResult::Succeeded);
    assert_eq!(
        finish_one(s, finish.clone(), secs(25)).await,
        FinishStatus::Applied
    );
    assert_not_found(s.get(&TaskRef::from("a")).await, &TaskRef::from("a"));
    let rows = all_logs(s).await;
    let outcomes: Vec<Outcome> = rows.iter().map(|l| l.outcome).collect();
    assert_eq!(outcomes, [Outcome::Succeeded]);
    assert_finish_row(&rows[0], &finish, true);
}

/// The same lease can be extended again and again (each beat, or a beat repeated after a lost
/// reply): every call succeeds, moves the expiry, bumps the version and keeps the token.
pub async fn repeated_extend_keeps_token(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let claimed = make_running(s, opts("a"), "w1", t0()).await;
    let lease = claimed.lease();
    for (n, (until, now)) in [
        (secs(60), secs(20)),
        (secs(60), secs(21)),
        (secs(80), secs(40)),
    ]
    .into_iter()
    .enumerate()
    {
        s.extend_lease(lease, until, now)
            .await
            .unwrap_or_else(|e| panic!("extension {} with the same lease: {e}", n + 1));
        let got = get(s, "a").await;
        assert_eq!(got.lease_expires_at, Some(until));
        assert_eq!(got.claim_token, claimed.claim_token);
        assert_eq!(got.claimed_at, claimed.claimed_at);
        assert_eq!(got.version, claimed.version + 1 + n as i64);
        assert_eq!(got.updated_at, now);
    }
    let finish = finish_of(&claimed, t0(), retry_at(secs(100), "again"));
    assert_eq!(finish_one(s, finish, secs(50)).await, FinishStatus::Applied);
}

/// A lease that expired but whose task nobody has claimed since is still the task's claim: it
/// can be extended, and then no one else can claim the task.
pub async fn extends_expired_lease_until_reclaimed(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let claimed = make_running(s, opts("a"), "w1", t0()).await;
    s.extend_lease(claimed.lease(), secs(100), secs(40))
        .await
        .expect("no other claim took the task");
    assert_eq!(get(s, "a").await.lease_expires_at, Some(secs(100)));
    assert!(claim(s, "w2", 10, secs(99)).await.is_empty());
    assert!(all_logs(s).await.is_empty(), "no run was lost");
}

/// Extending a lease whose task was claimed again (a stale token) fails with `LeaseLost` and
/// changes nothing.
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

/// Extending the lease of a run that has finished (the task is no longer running under its
/// token) fails with `LeaseLost` and changes nothing.
pub async fn finished_run_is_refused(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let claimed = make_running(s, opts("a"), "w1", t0()).await;
    let finish = finish_of(&claimed, t0(), retry_at(secs(100), "flaky"));
    assert_eq!(finish_one(s, finish, secs(5)).await, FinishStatus::Applied);
    let after = get(s, "a").await;
    assert_err!(
        s.extend_lease(claimed.lease(), secs(60), secs(6)).await,
        Error::LeaseLost { id } if *id == claimed.id
    );
    assert_eq!(get(s, "a").await, after);
}

/// A heartbeat whose reply is lost after COMMIT ([`ReplyLost`]) still moved the lease; the
/// worker, not knowing, keeps its lease as it was: its next beat and then its finish hold, and
/// the run is logged once, as succeeded.
pub async fn lost_reply_then_next_beat_and_finish_hold(store: Arc<dyn TaskStore>) {
    let lossy = ReplyLost::new(Arc::clone(&store));
    let s = store.as_ref();
    let claimed = make_running(s, opts("a"), "w1", t0()).await;
    let lease = claimed.lease();

    lossy.arm(Op::ExtendLease, 1);
    assert_err!(
        lossy.extend_lease(lease, secs(60), secs(20)).await,
        e if is_reply_lost(e)
    );
    assert_eq!(
        get(s, "a").await.lease_expires_at,
        Some(secs(60)),
        "the lost extension was applied"
    );
    lossy
        .extend_lease(lease, secs(90), secs(50))
        .await
        .expect("the next beat holds");
    assert!(claim(s, "w2", 10, secs(89)).await.is_empty());

    let finish = finish_of(&claimed, t0(), FinishResult::Succeeded);
    assert_eq!(
        lossy
            .finish(vec![finish.clone()], secs(70))
            .await
            .expect("finish"),
        [FinishStatus::Applied]
    );
    let rows = all_logs(s).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_finish_row(&rows[0], &finish, true);
}
