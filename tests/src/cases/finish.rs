//! [`TaskStore::finish`]: apply a run's result under its lease, log every run, refuse (and
//! still log) a result whose lease was lost.

use std::sync::Arc;

use taskrow::{
    Finish, FinishResult, FinishStatus, LogFilter, Outcome, TaskRef, TaskState, TaskStore,
};

use super::{
    LEASE, all_logs, assert_not_found, claim, claim_codes, failed, finish_of, finish_one, get,
    insert, insert_with, logs, make_running, micro, millis, opts, plus, retry_at, run_now, secs,
    t0,
};
use crate::tasks::Noop;

/// Success deletes the row (the default) and writes one log row with the run's details.
pub async fn success_deletes_and_logs(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a", t0()).await;
    let claimed = run_now(s, "a", "w1", secs(1)).await;
    let finish = Finish::new(
        &claimed,
        claimed.lease(),
        "w1",
        millis(1_500),
        1_234,
        FinishResult::Succeeded,
    );
    assert_eq!(finish_one(s, finish, secs(3)).await, FinishStatus::Applied);
    assert_not_found(s.get(&TaskRef::from("a")).await, &TaskRef::from("a"));
    assert_not_found(
        s.get(&TaskRef::Id(claimed.id)).await,
        &TaskRef::Id(claimed.id),
    );

    let rows = logs(s, &LogFilter::code("a")).await;
    assert_eq!(rows.len(), 1, "one log row per run: {rows:?}");
    let log = &rows[0];
    assert_eq!(log.task_id, claimed.id);
    assert_eq!(log.code, "a");
    assert_eq!(log.task_type, Noop::TYPE);
    assert_eq!(log.attempt, 1);
    assert_eq!(log.started_at, millis(1_500));
    assert_eq!(log.duration_ms, 1_234);
    assert_eq!(log.outcome, Outcome::Succeeded);
    assert_eq!(log.error, None);
    assert_eq!(log.worker, "w1");
    assert_eq!(logs(s, &LogFilter::task(claimed.id)).await, rows);
}

/// Success of a task enqueued with keep-on-success leaves it succeeded: no lease expiry, one
/// more version, the last worker still shown.
pub async fn success_keeps_when_asked(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert_with(s, opts("a").keep_on_success(), t0()).await;
    let claimed = run_now(s, "a", "w1", secs(1)).await;
    let status = finish_one(
        s,
        finish_of(&claimed, secs(1), FinishResult::Succeeded),
        secs(2),
    )
    .await;
    assert_eq!(status, FinishStatus::Applied);
    let mut expected = claimed.clone();
    expected.state = TaskState::Succeeded;
    expected.lease_expires_at = None;
    expected.version = claimed.version + 1;
    expected.updated_at = secs(2);
    assert_eq!(get(s, "a").await, expected);
    assert_eq!(all_logs(s).await[0].outcome, Outcome::Succeeded);
}

/// A retry makes the task pending again, due exactly at the given time, with its error kept and
/// its attempts unchanged; it is logged as retrying with the error.
pub async fn retry_makes_pending_due_at(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a", t0()).await;
    let claimed = run_now(s, "a", "w1", secs(1)).await;
    let at = secs(120) + taskrow::chrono::TimeDelta::microseconds(123_456);
    let status = finish_one(
        s,
        finish_of(&claimed, secs(1), retry_at(at, "boom")),
        secs(3),
    )
    .await;
    assert_eq!(status, FinishStatus::Applied);
    let mut expected = claimed.clone();
    expected.state = TaskState::Pending;
    expected.next_run_at = Some(at);
    expected.lease_expires_at = None;
    expected.last_error = Some("boom".to_owned());
    expected.version = claimed.version + 1;
    expected.updated_at = secs(3);
    assert_eq!(get(s, "a").await, expected);

    let rows = all_logs(s).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].outcome, Outcome::Retrying);
    assert_eq!(rows[0].error.as_deref(), Some("boom"));

    assert!(claim_codes(s, at - micro()).await.is_empty());
    let again = claim(s, "w2", 10, at).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);
}

/// A final failure makes the task failed with its error kept; it is logged as failed and never
/// claimed again.
pub async fn failed_makes_failed(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a", t0()).await;
    let claimed = run_now(s, "a", "w1", secs(1)).await;
    let status = finish_one(
        s,
        finish_of(&claimed, secs(1), failed("bad input")),
        secs(2),
    )
    .await;
    assert_eq!(status, FinishStatus::Applied);
    let mut expected = claimed.clone();
    expected.state = TaskState::Failed;
    expected.lease_expires_at = None;
    expected.last_error = Some("bad input".to_owned());
    expected.version = claimed.version + 1;
    expected.updated_at = secs(2);
    assert_eq!(get(s, "a").await, expected);

    let rows = all_logs(s).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].outcome, Outcome::Failed);
    assert_eq!(rows[0].error.as_deref(), Some("bad input"));
    assert!(claim_codes(s, secs(1_000_000)).await.is_empty());
}

/// An error of the longest kept length (in characters, not bytes) is stored whole, on the row
/// and in the log.
pub async fn keeps_error_of_max_length(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let error = "错".repeat(taskrow::record::MAX_ERROR_CHARS);
    assert_eq!(taskrow::record::bound_error(&error), error);
    insert(s, "a", t0()).await;
    let claimed = run_now(s, "a", "w1", secs(1)).await;
    let status = finish_one(
        s,
        finish_of(&claimed, secs(1), retry_at(secs(60), &error)),
        secs(2),
    )
    .await;
    assert_eq!(status, FinishStatus::Applied);
    assert_eq!(
        get(s, "a").await.last_error.as_deref(),
        Some(error.as_str())
    );
    assert_eq!(all_logs(s).await[0].error.as_deref(), Some(error.as_str()));
}

/// A batch of mixed results is applied item by item and answered per item, in order; a stale
/// item inside it does not stop the others.
pub async fn batch_answers_per_item_in_order(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let stale = make_running(s, opts("d"), "w1", t0()).await;
    let expiry = plus(t0(), LEASE);
    let d = run_now(s, "d", "w2", expiry).await;
    for code in ["a", "b", "c"] {
        insert(s, code, t0()).await;
    }
    let a = run_now(s, "a", "w2", expiry).await;
    let b = run_now(s, "b", "w2", expiry).await;
    let c = run_now(s, "c", "w2", expiry).await;
    let batch = vec![
        finish_of(&a, expiry, FinishResult::Succeeded),
        finish_of(&b, expiry, retry_at(secs(100), "again")),
        finish_of(&stale, t0(), FinishResult::Succeeded),
        finish_of(&c, expiry, failed("broken")),
    ];
    let now = secs(31);
    let statuses = s.finish(batch, now).await.expect("finish");
    assert_eq!(
        statuses,
        [
            FinishStatus::Applied,
            FinishStatus::Applied,
            FinishStatus::LeaseLost,
            FinishStatus::Applied,
        ]
    );
    assert_not_found(s.get(&TaskRef::from("a")).await, &TaskRef::from("a"));
    let b_now = get(s, "b").await;
    assert_eq!(b_now.state, TaskState::Pending);
    assert_eq!(b_now.next_run_at, Some(secs(100)));
    assert_eq!(get(s, "c").await.state, TaskState::Failed);
    assert_eq!(get(s, "d").await, d);

    let mut logged: Vec<(String, Outcome)> = all_logs(s)
        .await
        .into_iter()
        .map(|l| (l.code, l.outcome))
        .collect();
    logged.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        logged,
        [
            ("a".to_owned(), Outcome::Succeeded),
            ("b".to_owned(), Outcome::Retrying),
            ("c".to_owned(), Outcome::Failed),
            ("d".to_owned(), Outcome::LeaseLost),
        ]
    );
}

/// A run that ends after its lease expired and another worker claimed the task is refused as
/// `LeaseLost`: the task is left exactly as the new holder has it, and the run is logged as
/// lease lost. The new holder's finish then applies.
pub async fn late_finish_from_old_holder_is_lease_lost(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let old = make_running(s, opts("a"), "w1", t0()).await;
    let current = run_now(s, "a", "w2", secs(31)).await;
    assert_eq!(current.attempts, 2);
    let before = get(s, "a").await;

    let late = Finish::new(
        &old,
        old.lease(),
        "w1",
        t0(),
        40_000,
        FinishResult::Succeeded,
    );
    let lost_error = late.lease_lost_error();
    assert_eq!(finish_one(s, late, secs(40)).await, FinishStatus::LeaseLost);
    assert_eq!(get(s, "a").await, before);

    let rows = logs(s, &LogFilter::code("a")).await;
    assert_eq!(rows.len(), 1, "the refused run is logged: {rows:?}");
    let log = &rows[0];
    assert_eq!(log.outcome, Outcome::LeaseLost);
    assert_eq!(log.task_id, old.id);
    assert_eq!(log.attempt, 1);
    assert_eq!(log.worker, "w1");
    assert_eq!(log.started_at, t0());
    assert_eq!(log.duration_ms, 40_000);
    assert_eq!(log.error, Some(lost_error));

    let status = finish_one(
        s,
        finish_of(&current, secs(31), FinishResult::Succeeded),
        secs(41),
    )
    .await;
    assert_eq!(status, FinishStatus::Applied);
    assert_not_found(s.get(&TaskRef::from("a")).await, &TaskRef::from("a"));
    let rows = logs(s, &LogFilter::code("a")).await;
    let seen: Vec<_> = rows
        .iter()
        .map(|l| (l.outcome, l.attempt, l.worker.as_str()))
        .collect();
    assert_eq!(
        seen,
        [(Outcome::LeaseLost, 1, "w1"), (Outcome::Succeeded, 2, "w2")]
    );
}

/// A late failure from the old holder changes nothing either (no error, no reschedule); the
/// lease-lost log row keeps its error.
pub async fn late_failure_from_old_holder_is_lease_lost(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let old = make_running(s, opts("a"), "w1", t0()).await;
    let current = run_now(s, "a", "w2", secs(31)).await;

    let late = finish_of(&old, t0(), retry_at(secs(500), "timeout talking to bank"));
    let lost_error = late.lease_lost_error();
    assert!(lost_error.contains("timeout talking to bank"));
    assert_eq!(finish_one(s, late, secs(40)).await, FinishStatus::LeaseLost);
    assert_eq!(get(s, "a").await, current);
    let rows = all_logs(s).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].outcome, Outcome::LeaseLost);
    assert_eq!(rows[0].error, Some(lost_error));

    let status = finish_one(
        s,
        finish_of(&current, secs(31), failed("declined")),
        secs(41),
    )
    .await;
    assert_eq!(status, FinishStatus::Applied);
    let now = get(s, "a").await;
    assert_eq!(now.state, TaskState::Failed);
    assert_eq!(now.last_error.as_deref(), Some("declined"));
}

/// A finish for a task deleted meanwhile (after its lease expired) is `LeaseLost`, logged, and
/// does not bring the row back.
pub async fn finish_of_deleted_task_is_lease_lost(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let claimed = make_running(s, opts("a"), "w1", t0()).await;
    s.delete(&TaskRef::from("a"), secs(31))
        .await
        .expect("a task under an expired lease can be deleted");
    let status = finish_one(
        s,
        finish_of(&claimed, t0(), FinishResult::Succeeded),
        secs(32),
    )
    .await;
    assert_eq!(status, FinishStatus::LeaseLost);
    assert_not_found(s.get(&TaskRef::from("a")).await, &TaskRef::from("a"));
    let rows = logs(s, &LogFilter::code("a")).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].outcome, Outcome::LeaseLost);
}
