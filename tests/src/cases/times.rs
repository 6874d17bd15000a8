//! Times keep microseconds: what a store reads back equals what it was given.

use std::sync::Arc;
use std::time::Duration;

use taskrow::chrono::{DateTime, Utc};
use taskrow::{ClaimRequest, Finish, FinishStatus, TaskStore};

use super::{all_logs, build, claim_req, finish_one, get, opts, plus, retry_at};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("an RFC 3339 time")
}

/// Creation, next run, lease expiry, claim, update and log start times all read back to the
/// microsecond, through insert, claim, lease extension, finish and a lost run's log row.
pub async fn micros_round_trip(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let created = at("2026-01-01T00:00:00.654321Z");
    let run_at = at("2026-01-01T00:00:01.123456Z");
    let rec = s
        .insert(build(opts("a").run_at(run_at), created))
        .await
        .expect("insert");
    assert_eq!(rec.created_at, created);
    assert_eq!(rec.next_run_at, Some(run_at));
    let got = get(s, "a").await;
    assert_eq!(got.created_at, created);
    assert_eq!(got.updated_at, created);
    assert_eq!(got.next_run_at, Some(run_at));

    let far = at("2199-12-31T23:59:59.999999Z");
    s.insert(build(opts("far").run_at(far), created))
        .await
        .expect("insert");
    assert_eq!(get(s, "far").await.next_run_at, Some(far));

    let claimed_at = at("2026-01-01T00:00:02.000001Z");
    let lease = Duration::from_micros(30_000_007);
    let claimed = claim_req(s, &ClaimRequest::new("w1", 1, lease, claimed_at))
        .await
        .remove(0);
    let expiry = plus(claimed_at, lease);
    assert_eq!(expiry, at("2026-01-01T00:00:32.000008Z"));
    assert_eq!(claimed.lease_expires_at, Some(expiry));
    assert_eq!(claimed.claimed_at, Some(claimed_at));
    let got = get(s, "a").await;
    assert_eq!(got.lease_expires_at, Some(expiry));
    assert_eq!(got.claimed_at, Some(claimed_at));
    assert_eq!(got.updated_at, claimed_at);

    let until = at("2026-01-01T00:01:00.999999Z");
    let extended_at = at("2026-01-01T00:00:20.000300Z");
    s.extend_lease(claimed.lease(), until, extended_at)
        .await
        .expect("extend_lease");
    let got = get(s, "a").await;
    assert_eq!(got.lease_expires_at, Some(until));
    assert_eq!(got.updated_at, extended_at);

    let next = at("2026-01-01T00:05:00.000001Z");
    let finished_at = at("2026-01-01T00:00:21.500001Z");
    let finish = Finish::new(
        &claimed,
        claimed.lease(),
        "w1",
        claimed_at,
        19_500,
        retry_at(next, "e"),
    );
    assert_eq!(
        finish_one(s, finish, finished_at).await,
        FinishStatus::Applied
    );
    let got = get(s, "a").await;
    assert_eq!(got.next_run_at, Some(next));
    assert_eq!(got.updated_at, finished_at);
    assert_eq!(got.created_at, created);
    assert_eq!(all_logs(s).await[0].started_at, claimed_at);

    // A run lost with its worker is logged from its claim time, to the microsecond.
    let claimed = claim_req(s, &ClaimRequest::new("w1", 1, lease, next))
        .await
        .remove(0);
    assert_eq!(claimed.claimed_at, Some(next));
    let expiry = plus(next, lease);
    claim_req(s, &ClaimRequest::new("w2", 1, lease, expiry)).await;
    let rows = all_logs(s).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1].started_at, next);
    assert_eq!(rows[1].duration_ms, 30_000);
}
