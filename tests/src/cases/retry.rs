//! Retries end to end: `taskrow::failure_result` decides, the store applies it exactly.

use std::sync::Arc;
use std::time::Duration;

use taskrow::chrono::{DateTime, TimeDelta, Utc};
use taskrow::{
    FinishResult, FinishStatus, Jitter, Outcome, RetryPolicy, TaskErrorKind, TaskRecord, TaskState,
    TaskStore, failure_result,
};

use super::{
    all_logs, claim, claim_codes, finish_of, finish_one, get, insert_with, millis, opts, plus,
    secs, t0,
};

/// Claims `a` at `now` (it must be due), fails the run a second later with `kind`, and returns
/// the claimed record, the failure result and the finish time.
async fn fail_once(
    s: &dyn TaskStore,
    now: DateTime<Utc>,
    kind: TaskErrorKind,
    jitter: &Jitter,
) -> (TaskRecord, FinishResult, DateTime<Utc>) {
    let claimed = claim(s, "w1", 1, now).await;
    assert_eq!(claimed.len(), 1, "`a` is due at {now}");
    let claimed = claimed.into_iter().next().expect("one claimed");
    let failed_at = now + TimeDelta::seconds(1);
    let result = failure_result(&claimed, kind, "boom", failed_at, jitter);
    let status = finish_one(s, finish_of(&claimed, now, result.clone()), failed_at).await;
    assert_eq!(status, FinishStatus::Applied);
    (claimed, result, failed_at)
}

/// The delay between `failed_at` and the stored next run time of `a`.
async fn stored_delay(s: &dyn TaskStore, failed_at: DateTime<Utc>) -> (DateTime<Utc>, Duration) {
    let rec = get(s, "a").await;
    assert_eq!(rec.state, TaskState::Pending);
    assert_eq!(rec.last_error.as_deref(), Some("boom"));
    let next = rec.next_run_at.expect("a pending task has a next run time");
    let delay = (next - failed_at)
        .to_std()
        .expect("the next run is after the failure");
    (next, delay)
}

/// A fixed policy reschedules exactly one interval after each failure.
pub async fn fixed_policy_waits_interval(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let interval = Duration::from_millis(90_250);
    insert_with(s, opts("a").retry(RetryPolicy::fixed(interval)), t0()).await;
    let jitter = Jitter::seeded(1);
    let mut now = millis(500);
    for attempt in 1..=3 {
        let (claimed, result, failed_at) = fail_once(s, now, TaskErrorKind::Retry, &jitter).await;
        assert_eq!(claimed.attempts, attempt);
        let (next, delay) = stored_delay(s, failed_at).await;
        assert_eq!(delay, interval);
        assert_eq!(
            result,
            FinishResult::Retry {
                at: next,
                error: "boom".to_owned()
            }
        );
        assert!(
            claim_codes(s, next - TimeDelta::microseconds(1))
                .await
                .is_empty()
        );
        now = next;
    }
}

/// Exponential backoff doubles from its start up to its cap, and jitter takes at most its
/// fraction off: each delay lies in `[d × (1 − j), d]`; with no jitter drawn it is `d`.
pub async fn exponential_policy_stays_within_jitter_bounds(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let policy =
        RetryPolicy::exponential(Duration::from_secs(1), Duration::from_secs(10)).with_jitter(0.5);
    insert_with(s, opts("a").retry(policy).unlimited_attempts(), t0()).await;
    let seeded = Jitter::seeded(42);
    let none = Jitter::fixed(0.0);
    let most = Jitter::fixed(0.999_999);
    let mut now = t0();
    for attempt in 1..=8u32 {
        let full = Duration::from_secs(2u64.pow(attempt - 1).min(10));
        let jitter = match attempt % 3 {
            0 => &none,
            1 => &seeded,
            _ => &most,
        };
        let (_, _, failed_at) = fail_once(s, now, TaskErrorKind::Retry, jitter).await;
        let (next, delay) = stored_delay(s, failed_at).await;
        assert!(
            delay >= full / 2 && delay <= full,
            "attempt {attempt}: delay {delay:?} outside [{:?}, {full:?}]",
            full / 2
        );
        if attempt % 3 == 0 {
            assert_eq!(delay, full, "attempt {attempt} without jitter");
        }
        now = next;
    }
}

/// The failure of the last allowed attempt fails the task for good, whatever the handler
/// asked; it is logged as failed and never claimed again.
pub async fn exhausted_attempts_fail(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert_with(
        s,
        opts("a")
            .max_attempts(2)
            .retry(RetryPolicy::fixed(Duration::from_secs(10))),
        t0(),
    )
    .await;
    let jitter = Jitter::fixed(0.0);
    let (_, first, failed_at) = fail_once(s, t0(), TaskErrorKind::Retry, &jitter).await;
    assert!(matches!(first, FinishResult::Retry { .. }), "{first:?}");
    let (next, _) = stored_delay(s, failed_at).await;
    let (claimed, last, _) = fail_once(s, next, TaskErrorKind::RetryAt(secs(5_000)), &jitter).await;
    assert_eq!(claimed.attempts, 2);
    assert_eq!(
        last,
        FinishResult::Failed {
            error: "boom".to_owned()
        }
    );
    let rec = get(s, "a").await;
    assert_eq!(rec.state, TaskState::Failed);
    assert_eq!(rec.attempts, 2);
    assert_eq!(rec.last_error.as_deref(), Some("boom"));
    let outcomes: Vec<Outcome> = all_logs(s).await.into_iter().map(|l| l.outcome).collect();
    assert_eq!(outcomes, [Outcome::Retrying, Outcome::Failed]);
    assert!(claim_codes(s, secs(1_000_000)).await.is_empty());
}

/// A permanent error fails the task on its first attempt, attempts left or not.
pub async fn permanent_error_fails_at_once(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert_with(s, opts("a").max_attempts(4), t0()).await;
    let (_, result, _) = fail_once(s, t0(), TaskErrorKind::Permanent, &Jitter::fixed(0.0)).await;
    assert!(matches!(result, FinishResult::Failed { .. }), "{result:?}");
    let rec = get(s, "a").await;
    assert_eq!(rec.state, TaskState::Failed);
    assert_eq!(rec.attempts, 1);
    assert!(claim_codes(s, secs(1_000_000)).await.is_empty());
}

/// A handler's `RetryAt` time is the next run time, to the microsecond, whatever the policy.
pub async fn retry_at_is_honoured(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert_with(s, opts("a"), t0()).await;
    let wanted = secs(86_400) + TimeDelta::microseconds(42);
    let (_, _, failed_at) =
        fail_once(s, t0(), TaskErrorKind::RetryAt(wanted), &Jitter::fixed(0.0)).await;
    let (next, _) = stored_delay(s, failed_at).await;
    assert_eq!(next, wanted);
}

/// A handler's `RetryAfter` delay counts from the failure, whatever the policy.
pub async fn retry_after_is_honoured(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert_with(s, opts("a"), t0()).await;
    let wanted = Duration::from_millis(7_500);
    let (_, _, failed_at) = fail_once(
        s,
        t0(),
        TaskErrorKind::RetryAfter(wanted),
        &Jitter::fixed(0.0),
    )
    .await;
    let (next, delay) = stored_delay(s, failed_at).await;
    assert_eq!(delay, wanted);
    assert_eq!(next, plus(failed_at, wanted));
}

/// A task with unlimited attempts keeps being rescheduled.
pub async fn unlimited_attempts_keep_retrying(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert_with(
        s,
        opts("a")
            .unlimited_attempts()
            .retry(RetryPolicy::fixed(Duration::from_secs(1))),
        t0(),
    )
    .await;
    let jitter = Jitter::fixed(0.0);
    let mut now = t0();
    for attempt in 1..=6 {
        let (claimed, result, failed_at) = fail_once(s, now, TaskErrorKind::Retry, &jitter).await;
        assert_eq!(claimed.attempts, attempt);
        assert!(matches!(result, FinishResult::Retry { .. }), "{result:?}");
        let (next, _) = stored_delay(s, failed_at).await;
        assert_eq!(get(s, "a").await.attempts, attempt);
        now = next;
    }
    assert_eq!(all_logs(s).await.len(), 6);
}
