//! [`TaskStore::logs`]: one row per run, kept after the task is gone, filtered, oldest first.

use std::sync::Arc;

use std::collections::HashSet;

use taskrow::{FinishResult, FinishStatus, LogFilter, Outcome, TaskLog, TaskRef, TaskStore};

use super::{
    LEASE, all_logs, assert_finish_row, assert_id_order, assert_worker_lost, claim, failed,
    finish_of, finish_one, get, insert, logs, make_running, plus, retry_at, run_and_finish,
    run_now, secs, t0,
};

/// Ids of the tasks [`history`] ran.
struct History {
    a: i64,
    b: i64,
    c: i64,
}

/// Five runs, one log row each, in this order:
///
/// 1. `a` attempt 1, started t0+1 s, retrying;
/// 2. `a` attempt 2, started t0+2 s, failed;
/// 3. `b` attempt 1, started t0+3 s, succeeded (the task is deleted);
/// 4. `c` attempt 1 by w1, started t0+4 s, lease lost (w2 had claimed it again; the row the
///    reclaim wrote for the lost run became this one);
/// 5. `c` attempt 2 by w2, started t0+34 s, succeeded (the task is deleted).
async fn history(s: &dyn TaskStore) -> History {
    let a = insert(s, "a", t0()).await.id;
    run_and_finish(s, "a", secs(1), retry_at(secs(100), "flaky")).await;
    run_and_finish(s, "a", secs(2), failed("broken")).await;
    let b = insert(s, "b", t0()).await.id;
    run_and_finish(s, "b", secs(3), FinishResult::Succeeded).await;
    let old = make_running(s, super::opts("c"), "w1", secs(4)).await;
    let current = run_now(s, "c", "w2", secs(34)).await;
    let late = finish_of(&old, secs(4), FinishResult::Succeeded);
    assert_eq!(finish_one(s, late, secs(35)).await, FinishStatus::LeaseLost);
    let done = finish_of(&current, secs(34), FinishResult::Succeeded);
    assert_eq!(finish_one(s, done, secs(36)).await, FinishStatus::Applied);
    History { a, b, c: old.id }
}

fn summary(rows: &[TaskLog]) -> Vec<(&str, u32, Outcome)> {
    rows.iter()
        .map(|l| (l.code.as_str(), l.attempt, l.outcome))
        .collect()
}

/// The rows of one task id, oldest first, with their details.
pub async fn by_task_id(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let h = history(s).await;
    let rows = logs(s, &LogFilter::task(h.a)).await;
    assert_eq!(
        summary(&rows),
        [("a", 1, Outcome::Retrying), ("a", 2, Outcome::Failed)]
    );
    assert_id_order(&rows, |l| l.id);
    assert!(rows.iter().all(|l| l.task_id == h.a));
    assert_eq!(rows[0].error.as_deref(), Some("flaky"));
    assert_eq!(rows[0].started_at, secs(1));
    assert_eq!(rows[1].error.as_deref(), Some("broken"));
    assert_eq!(rows[1].started_at, secs(2));
    assert_eq!(
        summary(&logs(s, &LogFilter::task(h.c)).await),
        [("c", 1, Outcome::LeaseLost), ("c", 2, Outcome::Succeeded)]
    );
    assert!(
        logs(s, &LogFilter::task(h.a + h.b + h.c + 1_000))
            .await
            .is_empty()
    );
}

/// The rows of a code outlive its task: after success deleted it, and after `delete`.
pub async fn by_code_after_task_is_deleted(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let h = history(s).await;
    let b_rows = logs(s, &LogFilter::code("b")).await;
    assert_eq!(summary(&b_rows), [("b", 1, Outcome::Succeeded)]);
    assert_eq!(b_rows[0].task_id, h.b);

    s.delete(&TaskRef::from("a"), secs(50))
        .await
        .expect("delete");
    assert_eq!(
        summary(&logs(s, &LogFilter::code("a")).await),
        [("a", 1, Outcome::Retrying), ("a", 2, Outcome::Failed)]
    );
    assert!(logs(s, &LogFilter::code("nope")).await.is_empty());
    assert_eq!(all_logs(s).await.len(), 5);
}

/// Only rows with the given outcomes.
pub async fn filters_by_outcome(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    history(s).await;
    let filter = LogFilter::default().outcomes([Outcome::Failed, Outcome::LeaseLost]);
    assert_eq!(
        summary(&logs(s, &filter).await),
        [("a", 2, Outcome::Failed), ("c", 1, Outcome::LeaseLost)]
    );
    let filter = LogFilter::code("c").outcomes([Outcome::Succeeded]);
    assert_eq!(
        summary(&logs(s, &filter).await),
        [("c", 2, Outcome::Succeeded)]
    );
}

/// Only runs started at or after `since`.
pub async fn filters_by_since(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    history(s).await;
    assert_eq!(
        summary(&logs(s, &LogFilter::default().since(secs(3))).await),
        [
            ("b", 1, Outcome::Succeeded),
            ("c", 1, Outcome::LeaseLost),
            ("c", 2, Outcome::Succeeded)
        ]
    );
    assert!(
        logs(s, &LogFilter::default().since(secs(35)))
            .await
            .is_empty()
    );
}

/// A limit keeps the oldest rows; without one, every row comes, oldest first.
pub async fn limit_keeps_oldest(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    history(s).await;
    let all = all_logs(s).await;
    assert_eq!(
        summary(&all),
        [
            ("a", 1, Outcome::Retrying),
            ("a", 2, Outcome::Failed),
            ("b", 1, Outcome::Succeeded),
            ("c", 1, Outcome::LeaseLost),
            ("c", 2, Outcome::Succeeded)
        ]
    );
    assert_id_order(&all, |l| l.id);
    assert_eq!(logs(s, &LogFilter::default().limit(2)).await, all[..2]);
    assert_eq!(
        summary(&logs(s, &LogFilter::code("c").limit(1)).await),
        [("c", 1, Outcome::LeaseLost)]
    );
    assert_eq!(logs(s, &LogFilter::default().limit(50)).await, all);
}

/// With `newest`, a limit keeps the newest rows, still returned oldest first.
pub async fn limit_newest_keeps_latest(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    history(s).await;
    let all = all_logs(s).await;
    assert_eq!(
        logs(s, &LogFilter::default().limit(2).newest()).await,
        all[3..]
    );
    assert_eq!(
        summary(&logs(s, &LogFilter::code("a").limit(1).newest()).await),
        [("a", 2, Outcome::Failed)]
    );
    assert_eq!(logs(s, &LogFilter::default().limit(50).newest()).await, all);
    assert_eq!(logs(s, &LogFilter::default().newest()).await, all);
}

/// A task has one log row per run, each under its run's claim token, whatever happened to the
/// run: applied (and its finish retried), lost with its worker, refused after a reclaim (the
/// worker-lost row becomes its lease-lost row), or interrupted.
pub async fn one_row_per_claim_token(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a", t0()).await;
    // Run 1: a retry, its finish retried after a lost reply.
    let run1 = run_now(s, "a", "w1", t0()).await;
    let retry = finish_of(&run1, t0(), retry_at(secs(1), "flaky"));
    for now in [secs(1), secs(2)] {
        assert_eq!(
            finish_one(s, retry.clone(), now).await,
            FinishStatus::Applied
        );
    }
    // Run 2: its worker goes silent; run 3 reclaims it and is interrupted.
    let run2 = claim(s, "w2", 10, secs(2)).await.remove(0);
    let run3 = claim(s, "w3", 10, plus(secs(2), LEASE)).await.remove(0);
    let interruption = finish_of(&run3, secs(32), super::interrupted(secs(40), "shutdown"));
    assert_eq!(
        finish_one(s, interruption.clone(), secs(33)).await,
        FinishStatus::Applied
    );
    // Run 2's worker comes back late.
    let late = finish_of(&run2, secs(2), FinishResult::Succeeded);
    assert_eq!(
        finish_one(s, late.clone(), secs(34)).await,
        FinishStatus::LeaseLost
    );
    // Run 4 succeeds (the task is deleted), its finish retried.
    let run4 = claim(s, "w4", 10, secs(40)).await.remove(0);
    assert_eq!(run4.attempts, 3, "run 3's attempt was given back");
    let done = finish_of(&run4, secs(40), FinishResult::Succeeded);
    for now in [secs(41), secs(42)] {
        assert_eq!(
            finish_one(s, done.clone(), now).await,
            FinishStatus::Applied
        );
    }

    let rows = logs(s, &LogFilter::code("a")).await;
    assert_eq!(rows.len(), 4, "four runs, four rows: {rows:?}");
    let tokens: HashSet<Option<i64>> = rows.iter().map(|l| l.claim_token).collect();
    let claimed: HashSet<Option<i64>> = [&run1, &run2, &run3, &run4]
        .iter()
        .map(|r| r.claim_token)
        .collect();
    assert_eq!(tokens, claimed, "one row under each claim's token");
    let row_of = |token: Option<i64>| {
        rows.iter()
            .find(|l| l.claim_token == token)
            .expect("a row for this run")
    };
    assert_finish_row(row_of(run1.claim_token), &retry, true);
    assert_finish_row(row_of(run2.claim_token), &late, false);
    assert_finish_row(row_of(run3.claim_token), &interruption, true);
    assert_finish_row(row_of(run4.claim_token), &done, true);
}

/// The row a reclaim writes for a lost run is found by outcome, like any other.
pub async fn filters_by_outcome_worker_lost(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    history(s).await;
    let lost = make_running(s, super::opts("d"), "w1", secs(50)).await;
    let lost = get(s, &lost.code).await;
    run_now(s, "d", "w2", plus(secs(50), LEASE)).await;
    let rows = logs(s, &LogFilter::default().outcomes([Outcome::WorkerLost])).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_worker_lost(&rows[0], &lost, false);
    assert_eq!(
        summary(&logs(s, &LogFilter::code("d")).await),
        [("d", 1, Outcome::WorkerLost)]
    );
}
