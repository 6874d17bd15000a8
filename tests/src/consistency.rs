//! Consistency tasks (seed 000): a business write and its task commit in one transaction of
//! the application's; the task runs right after commit, awaited or spawned; the worker is the
//! safety net. Cases for every SQL store, generic over its dialect.

use std::sync::Arc;
use std::time::Duration;

use taskrow::{
    Client, Dispatch, EnqueueOptions, Jitter, LogFilter, ManualClock, OnSuccess, Outcome,
    RetryPolicy, TaskState, TaskStore,
};
use taskrow_sql::sea_orm::{ConnectionTrait, Statement};
use taskrow_sql::{DEFAULT_DISPATCH_DELAY, Dialect, Dispatched, SqlStore};

use crate::cases::t0;
use crate::cases::worker::{Probe, Work, eventually};
pub use crate::complete_in::{
    completes_with_the_business_write, refuses_after_the_lease_is_lost,
    rolls_back_with_the_business_write,
};

pub(crate) async fn business_table<D: Dialect>(store: &SqlStore<D>) {
    let db = store.connection();
    let sql = "CREATE TABLE document (id BIGINT PRIMARY KEY, state VARCHAR(20) NOT NULL)";
    db.execute_unprepared(sql)
        .await
        .expect("create the business table");
}

pub(crate) async fn documents<D: Dialect>(store: &SqlStore<D>) -> Vec<(i64, String)> {
    let db = store.connection();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT id, state FROM document ORDER BY id",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.try_get("", "id").unwrap(),
                r.try_get("", "state").unwrap(),
            )
        })
        .collect()
}

pub(crate) async fn finish_document<C: ConnectionTrait>(conn: &C, id: i64) {
    let sql = format!("INSERT INTO document (id, state) VALUES ({id}, 'done')");
    conn.execute_unprepared(&sql).await.expect("business write");
}

fn client<D: Dialect>(
    store: &SqlStore<D>,
    probe: &Arc<Probe>,
    clock: Option<ManualClock>,
) -> Client {
    let b = Client::builder(store.clone())
        .data_arc(probe.clone())
        .jitter(Jitter::fixed(0.0));
    match clock {
        Some(c) => b.clock(c),
        None => b,
    }
    .build()
    .unwrap()
}

/// Rollback leaves neither the business row nor the task, and nothing runs.
pub async fn rollback_leaves_no_task<D: Dialect>(store: SqlStore<D>) {
    business_table(&store).await;
    let probe = Arc::new(Probe::default());
    let c = client(&store, &probe, None);
    let mut tx = store.begin_with_tasks(&c).await.unwrap();
    finish_document(&*tx, 1).await;
    tx.enqueue(&Work::default(), EnqueueOptions::new().code("publish-1"))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(documents(&store).await.is_empty());
    assert!(store.counts().await.unwrap().is_empty());
    assert!(probe.counts().is_empty());
}

/// Commit, then the awaited dispatch: the outcome comes back to the caller, the row is gone
/// (or kept as succeeded when asked), one log row; the row shows how it was meant to run.
pub async fn commit_then_awaited_dispatch<D: Dialect>(store: SqlStore<D>) {
    business_table(&store).await;
    let probe = Arc::new(Probe::default());
    let c = client(&store, &probe, None);
    let mut tx = store.begin_with_tasks(&c).await.unwrap();
    finish_document(&*tx, 1).await;
    let rec = tx
        .enqueue(&Work::default(), EnqueueOptions::new().code("publish-1"))
        .await
        .unwrap();
    assert_eq!(rec.dispatch, Dispatch::ImmediateAwaited);
    let kept = tx
        .enqueue(
            &Work::default(),
            EnqueueOptions::new().code("publish-2").keep_on_success(),
        )
        .await
        .unwrap();
    assert_eq!(kept.on_success, OnSuccess::Keep);
    let committed = tx.commit().await.unwrap();
    assert_eq!(documents(&store).await, [(1, "done".to_owned())]);
    assert!(probe.counts().is_empty(), "nothing runs before dispatch");

    let out = committed.dispatch().await;
    assert_eq!(out.len(), 2);
    for d in out {
        match d {
            Dispatched::Ran(r) => assert_eq!(r.outcome, Outcome::Succeeded),
            other => panic!("expected an awaited run, got {other:?}"),
        }
    }
    assert!(
        store.get(&"publish-1".into()).await.is_err(),
        "deleted on success"
    );
    let k = store.get(&"publish-2".into()).await.unwrap();
    assert_eq!(
        (k.state, k.dispatch),
        (TaskState::Succeeded, Dispatch::ImmediateAwaited)
    );
    assert_eq!(
        store
            .logs(&LogFilter::code("publish-1"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(probe.counts().get("publish-1"), Some(&1));
}

/// Commit, then the spawned dispatch: the task runs without the poller (whose interval is an
/// hour), on the runtime.
pub async fn commit_then_spawned_dispatch<D: Dialect>(store: SqlStore<D>) {
    let probe = Arc::new(Probe::default());
    let c = client(&store, &probe, None);
    let w = c
        .worker()
        .poll_interval(Duration::from_secs(3600))
        .start()
        .unwrap();
    let mut tx = store.begin_with_tasks(&c).await.unwrap();
    let rec = tx
        .enqueue(
            &Work::default(),
            EnqueueOptions::new()
                .code("spawned")
                .dispatch(Dispatch::ImmediateSpawned),
        )
        .await
        .unwrap();
    assert_eq!(rec.dispatch, Dispatch::ImmediateSpawned);
    let out = tx.commit().await.unwrap().dispatch().await;
    assert!(matches!(out[0], Dispatched::Spawned(_)));
    eventually("the spawned run", Duration::from_secs(10), || {
        let s = store.clone();
        async move {
            !s.logs(&LogFilter::code("spawned"))
                .await
                .unwrap()
                .is_empty()
        }
    })
    .await;
    w.shutdown().await;
    assert_eq!(probe.counts().get("spawned"), Some(&1));
}

/// The process "dies" between commit and dispatch (the handle is dropped): the worker runs the
/// task once the dispatch delay has passed, and not before.
pub async fn crash_before_dispatch_runs_after_delay<D: Dialect>(store: SqlStore<D>) {
    let probe = Arc::new(Probe::default());
    let clock = ManualClock::new(t0());
    let c = client(&store, &probe, Some(clock.clone()));
    let mut tx = store.begin_with_tasks(&c).await.unwrap();
    tx.enqueue(&Work::default(), EnqueueOptions::new().code("orphan"))
        .await
        .unwrap();
    drop(tx.commit().await.unwrap());

    let w = c.worker().build().unwrap();
    assert_eq!(w.run_until_idle().await.unwrap().executed, 0);
    clock.advance(DEFAULT_DISPATCH_DELAY - Duration::from_secs(1));
    assert_eq!(
        w.run_until_idle().await.unwrap().executed,
        0,
        "not before the delay"
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(w.run_until_idle().await.unwrap().succeeded, 1);
    assert_eq!(probe.counts().get("orphan"), Some(&1));
}

/// An immediate run that fails is retried by the worker at the policy's time.
pub async fn immediate_failure_is_retried_by_worker<D: Dialect>(store: SqlStore<D>) {
    let probe = Arc::new(Probe::default());
    let clock = ManualClock::new(t0());
    let c = client(&store, &probe, Some(clock.clone()));
    let mut tx = store.begin_with_tasks(&c).await.unwrap();
    let opts = EnqueueOptions::new()
        .code("flaky")
        .unlimited_attempts()
        .retry(RetryPolicy::fixed(Duration::from_secs(30)));
    tx.enqueue(
        &Work {
            fail_times: 1,
            ..Work::default()
        },
        opts,
    )
    .await
    .unwrap();
    let out = tx.commit().await.unwrap().dispatch().await;
    let Dispatched::Ran(r) = &out[0] else {
        panic!("expected an awaited run, got {out:?}")
    };
    assert_eq!(r.outcome, Outcome::Retrying);
    assert_eq!(
        r.next_run_at,
        Some(t0() + taskrow::chrono::TimeDelta::seconds(30))
    );

    let w = c.worker().build().unwrap();
    clock.advance(Duration::from_secs(29));
    assert_eq!(w.run_until_idle().await.unwrap().executed, 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(w.run_until_idle().await.unwrap().succeeded, 1);
    let outcomes: Vec<_> = store
        .logs(&LogFilter::code("flaky"))
        .await
        .unwrap()
        .iter()
        .map(|l| l.outcome)
        .collect();
    assert_eq!(outcomes, [Outcome::Retrying, Outcome::Succeeded]);
}

/// The immediate dispatch racing a busy worker, 40 times over: every task runs exactly once,
/// never twice.
pub async fn dispatch_racing_worker_runs_once<D: Dialect>(store: SqlStore<D>) {
    let probe = Arc::new(Probe::default());
    let c = client(&store, &probe, None);
    let w = c
        .worker()
        .concurrency(4)
        .poll_interval(Duration::from_millis(1))
        .start()
        .unwrap();
    let n = 40;
    for i in 0..n {
        let mut tx = store.begin_with_tasks(&c).await.unwrap();
        // Due at once, so the worker may take it as soon as it is committed.
        let opts = EnqueueOptions::new()
            .code(format!("race-{i}"))
            .delay(Duration::ZERO);
        tx.enqueue(
            &Work {
                millis: 1,
                ..Work::default()
            },
            opts,
        )
        .await
        .unwrap();
        let committed = tx.commit().await.unwrap();
        c.wake_workers();
        committed.dispatch().await;
    }
    eventually(
        "every raced task to finish",
        Duration::from_secs(60),
        || {
            let s = store.clone();
            async move { s.counts().await.unwrap().is_empty() }
        },
    )
    .await;
    w.shutdown().await;
    let counts = probe.counts();
    assert_eq!(counts.len(), n);
    assert!(
        counts.values().all(|&k| k == 1),
        "a task ran twice: {counts:?}"
    );
    let logs = store.logs(&LogFilter::default()).await.unwrap();
    assert_eq!(logs.len(), n, "one log row per task");
}

/// Runs every consistency case against one SQL store. `$factory` gives
/// `Option<(SqlStore<D>, TestStore)>`: the store, and the [`crate::factory::TestStore`] that
/// keeps its files alive and cleans up after a passed case (`None`: skipped, already reported).
#[macro_export]
macro_rules! consistency_cases {
    ($store:ident, $factory:expr, [$($case:ident),* $(,)?]) => {
        mod $store {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    if let Some((store, guard)) = ($factory)().await {
                        $crate::consistency::$case(store).await;
                        $crate::factory::TestStore::cleanup(guard).await;
                    }
                }
            )*
        }
    };
    ($store:ident, $factory:expr) => {
        $crate::consistency_cases!($store, $factory, [
            rollback_leaves_no_task,
            commit_then_awaited_dispatch,
            commit_then_spawned_dispatch,
            crash_before_dispatch_runs_after_delay,
            immediate_failure_is_retried_by_worker,
            dispatch_racing_worker_runs_once,
            completes_with_the_business_write,
            rolls_back_with_the_business_write,
            refuses_after_the_lease_is_lost,
        ]);
    };
}
