//! [`TaskStore::claim`]: due tasks only, oldest due first, filtered, each to one claimant.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use taskrow::{ClaimRequest, EnqueueOptions, TaskState, TaskStore};

use super::{
    LEASE, build, build_task, claim, claim_codes, claim_req, get, insert, insert_with,
    make_cancelled, make_failed, make_succeeded, micro, millis, opts, plus, secs, strings, t0,
};
use crate::tasks::{SendEmail, SyncOrder};

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
        super::sorted_codes(&claim_req(s, &req(&["billing"])).await),
        strings(["b1", "b2"])
    );
    assert_eq!(
        super::sorted_codes(&claim_req(s, &req(&["mail", "billing", "nothing"])).await),
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
    assert_eq!(
        super::sorted_codes(&claim_req(s, &req).await),
        strings(["e2"])
    );
    let req = ClaimRequest::new("w1", 10, LEASE, t0()).task_types([SendEmail::TYPE]);
    assert_eq!(
        super::sorted_codes(&claim_req(s, &req).await),
        strings(["e1"])
    );
    let req = ClaimRequest::new("w1", 10, LEASE, t0())
        .task_types([SyncOrder::TYPE, "conformance.unknown"]);
    assert_eq!(
        super::sorted_codes(&claim_req(s, &req).await),
        strings(["o1"])
    );
    assert_eq!(claim_codes(s, t0()).await, strings(["n1"]));
}

/// A claimed task is running with one more attempt, one more version, the claimant as lease
/// owner and its lease expiring at `now + lease`; nothing else changes. The claim returns the
/// row as stored.
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
/// presumed dead, and the new claim counts a second attempt.
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
    assert_eq!(get(s, "a").await, *second);
}

/// Excluded ids are never claimed, even when due (a worker's own slow runs whose leases
/// expired); the others are.
pub async fn skips_excluded_ids(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let a = insert(s, "a", t0()).await;
    insert(s, "b", t0()).await;
    let first = claim(s, "w1", 10, t0()).await;
    assert_eq!(first.len(), 2);
    let expiry = plus(t0(), LEASE);
    let req = ClaimRequest::new("w1", 10, LEASE, expiry).exclude_ids([a.id]);
    assert_eq!(
        super::sorted_codes(&claim_req(s, &req).await),
        strings(["b"])
    );
    assert_eq!(
        get(s, "a").await,
        first.into_iter().find(|t| t.id == a.id).unwrap()
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
