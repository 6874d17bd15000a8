//! [`TaskStore::finish`]: apply a run's result under its claim token, log every run once,
//! recognise a retried finish as applied, refuse (and still log) a result whose lease was lost.

use std::sync::Arc;

use taskrow::chrono::{DateTime, TimeDelta, Utc};
use taskrow::{
    Finish, FinishResult, FinishStatus, LogFilter, Outcome, TaskFilter, TaskRecord, TaskRef,
    TaskState, TaskStore,
};

use super::{
    LEASE, all_logs, assert_finish_row, assert_not_found, assert_worker_lost, claim, claim_codes,
    failed, finish_of, finish_one, get, insert, insert_with, interrupted, list_all, logs,
    make_running, micro, millis, opts, plus, retry_at, run_logs, run_now, secs, t0,
};
use crate::tasks::Noop;
use crate::wrappers::{Op, ReplyLost, is_reply_lost};

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
    assert_eq!(log.claim_token, claimed.claim_token);
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
    assert_eq!(log.claim_token, old.claim_token);

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

/// An interrupted run (stopped from outside: a shutdown, a lease that could not be kept) gives
/// its attempt back: the task is pending, due at the given time, with the reason as last error,
/// `attempts − 1` and `interruptions + 1`; the run is logged as interrupted under its claim
/// token. The next claim counts that attempt again.
pub async fn interrupted_gives_attempt_back(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert_with(s, opts("a").max_attempts(2), t0()).await;
    let claimed = run_now(s, "a", "w1", secs(1)).await;
    assert_eq!(claimed.attempts, 1);
    let finish = finish_of(&claimed, secs(1), interrupted(secs(7), "worker shut down"));
    assert_eq!(
        finish_one(s, finish.clone(), secs(5)).await,
        FinishStatus::Applied
    );
    let mut expected = claimed.clone();
    expected.state = TaskState::Pending;
    expected.attempts = 0;
    expected.interruptions = 1;
    expected.next_run_at = Some(secs(7));
    expected.lease_expires_at = None;
    expected.last_error = Some("worker shut down".to_owned());
    expected.version = claimed.version + 1;
    expected.updated_at = secs(5);
    let after = get(s, "a").await;
    // Whether the last owner stays shown after an interruption is left to the store.
    expected.lease_owner = after.lease_owner.clone();
    assert_eq!(after, expected);

    let rows = all_logs(s).await;
    assert_eq!(rows.len(), 1, "one log row per run: {rows:?}");
    assert_eq!(rows[0].outcome, Outcome::Interrupted);
    assert_finish_row(&rows[0], &finish, true);

    assert!(claim_codes(s, secs(7) - micro()).await.is_empty());
    let again = claim(s, "w2", 10, secs(7)).await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].attempts, 1,
        "the interrupted attempt was given back"
    );
    assert_eq!(again[0].interruptions, 1);
}

/// A finish under a claim whose lease expired is still applied as long as no one else has
/// claimed (or reset, cancelled, deleted) the task: the token, not the clock, decides.
pub async fn applies_after_lease_expiry_until_reclaimed(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a", t0()).await;
    let claimed = run_now(s, "a", "w1", t0()).await;
    let finish = finish_of(&claimed, t0(), retry_at(secs(100), "slow"));
    let late = plus(t0(), LEASE) + TimeDelta::seconds(5);
    assert_eq!(
        finish_one(s, finish.clone(), late).await,
        FinishStatus::Applied
    );
    let after = get(s, "a").await;
    assert_eq!(after.state, TaskState::Pending);
    assert_eq!(after.next_run_at, Some(secs(100)));
    let rows = all_logs(s).await;
    assert_eq!(rows.len(), 1);
    assert_finish_row(&rows[0], &finish, true);
}

/// Applies `finish` at `now` twice, as a worker does when the reply to the first try was lost
/// after COMMIT: both tries answer `Applied`, the second changes nothing on the task (its row
/// as the first left it, or still gone), and the run has exactly one log row, with its own
/// outcome. Returns the task as the first try left it (`None` when it was deleted).
async fn finish_twice(
    s: &dyn TaskStore,
    code: &str,
    finish: Finish,
    now: DateTime<Utc>,
) -> Option<TaskRecord> {
    let lease = finish.lease;
    assert_eq!(
        finish_one(s, finish.clone(), now).await,
        FinishStatus::Applied
    );
    let after_first = s.get(&TaskRef::from(code)).await.ok();
    assert_eq!(
        finish_one(s, finish.clone(), now + TimeDelta::milliseconds(500)).await,
        FinishStatus::Applied,
        "a finish retried after it was applied answers Applied"
    );
    assert_eq!(
        s.get(&TaskRef::from(code)).await.ok(),
        after_first,
        "the retried finish changes nothing"
    );
    let rows = run_logs(s, lease).await;
    assert_eq!(rows.len(), 1, "one log row for the run: {rows:?}");
    assert_finish_row(&rows[0], &finish, true);
    let lost = logs(s, &LogFilter::code(code).outcomes([Outcome::LeaseLost])).await;
    assert!(lost.is_empty(), "no lease-lost row: {lost:?}");
    after_first
}

/// A success retried after it deleted the task answers `Applied`, does not bring the row back,
/// and leaves one log row.
pub async fn retried_success_is_applied_once(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a", t0()).await;
    let claimed = run_now(s, "a", "w1", secs(1)).await;
    let finish = finish_of(&claimed, secs(1), FinishResult::Succeeded);
    assert_eq!(finish_twice(s, "a", finish, secs(2)).await, None);
    assert_not_found(s.get(&TaskRef::from("a")).await, &TaskRef::from("a"));
    assert_eq!(all_logs(s).await.len(), 1);
}

/// A kept success retried answers `Applied` and leaves the task succeeded as the first try
/// left it.
pub async fn retried_kept_success_is_applied_once(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert_with(s, opts("a").keep_on_success(), t0()).await;
    let claimed = run_now(s, "a", "w1", secs(1)).await;
    let finish = finish_of(&claimed, secs(1), FinishResult::Succeeded);
    let after = finish_twice(s, "a", finish, secs(2)).await.expect("kept");
    assert_eq!(after.state, TaskState::Succeeded);
    assert_eq!(after.version, claimed.version + 1);
}

/// A retry result retried answers `Applied` and leaves the task pending, due as the first try
/// set it.
pub async fn retried_retry_is_applied_once(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a", t0()).await;
    let claimed = run_now(s, "a", "w1", secs(1)).await;
    let finish = finish_of(&claimed, secs(1), retry_at(secs(60), "flaky"));
    let after = finish_twice(s, "a", finish, secs(2)).await.expect("kept");
    assert_eq!(after.state, TaskState::Pending);
    assert_eq!(after.next_run_at, Some(secs(60)));
    assert_eq!(after.attempts, 1);
    assert_eq!(after.version, claimed.version + 1);
}

/// A final failure retried answers `Applied` and leaves the task failed once.
pub async fn retried_failure_is_applied_once(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a", t0()).await;
    let claimed = run_now(s, "a", "w1", secs(1)).await;
    let finish = finish_of(&claimed, secs(1), failed("bad input"));
    let after = finish_twice(s, "a", finish, secs(2)).await.expect("kept");
    assert_eq!(after.state, TaskState::Failed);
    assert_eq!(after.last_error.as_deref(), Some("bad input"));
    assert_eq!(after.version, claimed.version + 1);
}

/// An interruption retried answers `Applied` and gives the attempt back only once.
pub async fn retried_interruption_is_applied_once(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a", t0()).await;
    let claimed = run_now(s, "a", "w1", secs(1)).await;
    let finish = finish_of(&claimed, secs(1), interrupted(secs(2), "shutdown"));
    let after = finish_twice(s, "a", finish, secs(2)).await.expect("kept");
    assert_eq!(after.state, TaskState::Pending);
    assert_eq!(after.attempts, 0);
    assert_eq!(after.interruptions, 1);
    assert_eq!(after.version, claimed.version + 1);
}

/// A retry result retried after another worker has claimed the task since (the first try was
/// applied, the task came due and was claimed again) still answers `Applied`: it changes
/// nothing on the new claim, logs nothing more, and the new holder's finish applies.
pub async fn retried_retry_is_applied_after_reclaim(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a", t0()).await;
    let claimed = run_now(s, "a", "w1", secs(1)).await;
    let finish = finish_of(&claimed, secs(1), retry_at(secs(10), "flaky"));
    assert_eq!(
        finish_one(s, finish.clone(), secs(2)).await,
        FinishStatus::Applied
    );
    let current = claim(s, "w2", 10, secs(10)).await.remove(0);
    assert_eq!(current.attempts, 2);

    assert_eq!(
        finish_one(s, finish.clone(), secs(11)).await,
        FinishStatus::Applied,
        "the earlier try was applied: the retry is recognised, not refused as lease lost"
    );
    assert_eq!(get(s, "a").await, current, "the new claim is left alone");
    let rows = all_logs(s).await;
    assert_eq!(rows.len(), 1, "one log row so far: {rows:?}");
    assert_finish_row(&rows[0], &finish, true);

    let done = finish_of(&current, secs(10), FinishResult::Succeeded);
    assert_eq!(
        finish_one(s, done.clone(), secs(12)).await,
        FinishStatus::Applied
    );
    let rows = all_logs(s).await;
    assert_eq!(rows.len(), 2);
    assert_finish_row(&rows[1], &done, true);
}

/// A late finish of a run that was reclaimed turns that run's worker-lost row into its
/// lease-lost row: one row per run, under the run's claim token, with the finish's details.
pub async fn late_finish_replaces_worker_lost_row(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let old = make_running(s, opts("a"), "w1", t0()).await;
    let current = run_now(s, "a", "w2", plus(t0(), LEASE)).await;
    let rows = run_logs(s, old.lease()).await;
    assert_eq!(rows.len(), 1, "the reclaim logs the lost run: {rows:?}");
    assert_worker_lost(&rows[0], &old, false);

    let late = finish_of(&old, t0(), retry_at(secs(90), "slow bank"));
    assert_eq!(
        finish_one(s, late.clone(), secs(45)).await,
        FinishStatus::LeaseLost
    );
    assert_eq!(get(s, "a").await, current);
    let rows = all_logs(s).await;
    assert_eq!(rows.len(), 1, "still one row for the run: {rows:?}");
    assert_finish_row(&rows[0], &late, false);
    assert_eq!(rows[0].outcome, Outcome::LeaseLost);
    assert_eq!(rows[0].claim_token, old.claim_token);

    assert_eq!(
        finish_one(s, late.clone(), secs(46)).await,
        FinishStatus::LeaseLost,
        "a late finish retried is still refused"
    );
    let again = all_logs(s).await;
    assert_eq!(again.len(), 1, "and still logged once: {again:?}");
    assert_eq!(again[0].outcome, Outcome::LeaseLost);
}

/// A finish batch whose reply is lost after COMMIT ([`ReplyLost`]), retried whole, answers as
/// the first try did: `Applied` for every run it applied (success that deleted or kept the
/// task, retry, failure, interruption), `LeaseLost` for a stale run. Each run keeps exactly
/// one log row, with its own outcome, and no applied run gets a lease-lost row.
pub async fn retry_after_lost_reply_is_applied(store: Arc<dyn TaskStore>) {
    let lossy = ReplyLost::new(Arc::clone(&store));
    let s = store.as_ref();
    insert(s, "deleted", t0()).await;
    insert_with(s, opts("kept").keep_on_success(), t0()).await;
    insert(s, "retry", t0()).await;
    insert(s, "failed", t0()).await;
    insert(s, "interrupted", t0()).await;
    let stale = make_running(s, opts("stale"), "w0", t0()).await;
    let now = plus(t0(), LEASE);
    let current = run_now(s, "stale", "w2", now).await;
    let mut batch = Vec::new();
    for (code, result) in [
        ("deleted", FinishResult::Succeeded),
        ("kept", FinishResult::Succeeded),
        ("retry", retry_at(secs(100), "flaky")),
        ("failed", failed("broken")),
        ("interrupted", interrupted(secs(100), "shutdown")),
    ] {
        let claimed = run_now(&lossy, code, "w1", now).await;
        batch.push(finish_of(&claimed, now, result));
    }
    batch.push(finish_of(&stale, t0(), FinishResult::Succeeded));
    let answers = [
        FinishStatus::Applied,
        FinishStatus::Applied,
        FinishStatus::Applied,
        FinishStatus::Applied,
        FinishStatus::Applied,
        FinishStatus::LeaseLost,
    ];

    lossy.arm(Op::Finish, 1);
    assert_err!(
        lossy.finish(batch.clone(), secs(31)).await,
        e if is_reply_lost(e)
    );
    assert_eq!(lossy.lost(Op::Finish), 1);
    let committed = list_all(s, &TaskFilter::all()).await;
    let statuses = lossy.finish(batch.clone(), secs(32)).await.expect("finish");
    assert_eq!(
        statuses, answers,
        "the retried batch answers as the first try"
    );
    assert_eq!(
        list_all(s, &TaskFilter::all()).await,
        committed,
        "the retry changes nothing"
    );

    assert_not_found(s.get(&"deleted".into()).await, &"deleted".into());
    assert_eq!(get(s, "kept").await.state, TaskState::Succeeded);
    assert_eq!(get(s, "retry").await.next_run_at, Some(secs(100)));
    assert_eq!(get(s, "failed").await.state, TaskState::Failed);
    assert_eq!(get(s, "interrupted").await.attempts, 0);
    assert_eq!(get(s, "stale").await, current);
    for (finish, answer) in batch.iter().zip(answers) {
        let rows = run_logs(s, finish.lease).await;
        assert_eq!(rows.len(), 1, "one row for `{}`: {rows:?}", finish.code);
        assert_finish_row(&rows[0], finish, answer == FinishStatus::Applied);
    }
    let lost = logs(s, &LogFilter::default().outcomes([Outcome::LeaseLost])).await;
    let lost: Vec<&str> = lost.iter().map(|l| l.code.as_str()).collect();
    assert_eq!(lost, ["stale"], "only the stale run is lease lost");
}
