//! [`TaskStore::purge`]: remove old finished tasks and old log rows.

use std::sync::Arc;

use taskrow::{Error, Purge, PurgeReport, TaskFilter, TaskState, TaskStore};

use super::{
    all_logs, insert, list_codes, make_cancelled, make_failed, make_running, make_succeeded, opts,
    retry_at, run_and_finish, secs, strings, t0,
};

/// Tasks and logs on both sides of t0+100 s:
///
/// | code | state | last change | log rows started at |
/// |---|---|---|---|
/// | s-old | succeeded | t0+1 | t0 |
/// | c-old | cancelled | t0+10 | |
/// | f-old | failed | t0+1 | t0 |
/// | p-old | pending | t0 | |
/// | r-old | running | t0 | |
/// | s-edge | succeeded | t0+100 | t0+99 |
/// | l-edge | pending (retrying) | t0+101 | t0+100 |
/// | s-new | succeeded | t0+151 | t0+150 |
/// | c-new | cancelled | t0+200 | |
async fn ages(s: &dyn TaskStore) {
    make_succeeded(s, opts("s-old"), t0()).await;
    make_cancelled(s, opts("c-old"), secs(10)).await;
    make_failed(s, opts("f-old"), t0()).await;
    insert(s, "p-old", t0()).await;
    make_running(s, opts("r-old"), "w1", t0()).await;
    make_succeeded(s, opts("s-edge"), secs(99)).await;
    insert(s, "l-edge", t0()).await;
    run_and_finish(s, "l-edge", secs(100), retry_at(secs(1_000), "flaky")).await;
    make_succeeded(s, opts("s-new"), secs(150)).await;
    make_cancelled(s, opts("c-new"), secs(200)).await;
}

async fn log_codes(s: &dyn TaskStore) -> Vec<String> {
    all_logs(s).await.into_iter().map(|l| l.code).collect()
}

/// By default, succeeded and cancelled tasks last changed before the cut go, and log rows
/// started before it; failed, unfinished and newer ones (the cut itself included) stay.
pub async fn removes_old_finished_tasks_and_logs(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    ages(s).await;
    let report = s.purge(&Purge::before(secs(100))).await.expect("purge");
    assert_eq!(report, PurgeReport { tasks: 2, logs: 3 });
    assert_eq!(
        list_codes(s, &TaskFilter::all()).await,
        strings([
            "f-old", "p-old", "r-old", "s-edge", "l-edge", "s-new", "c-new"
        ])
    );
    assert_eq!(log_codes(s).await, ["l-edge", "s-new"]);
}

/// Failed tasks go when named in the states.
pub async fn failed_tasks_go_when_named(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    ages(s).await;
    let report = s
        .purge(&Purge::before(secs(100)).states([TaskState::Failed]))
        .await
        .expect("purge");
    assert_eq!(report, PurgeReport { tasks: 1, logs: 3 });
    assert_eq!(
        list_codes(s, &TaskFilter::all()).await,
        strings([
            "s-old", "c-old", "p-old", "r-old", "s-edge", "l-edge", "s-new", "c-new"
        ])
    );
}

/// With logs off, every log row stays.
pub async fn keeps_logs_when_told(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    ages(s).await;
    let logs_before = all_logs(s).await;
    let report = s
        .purge(&Purge::before(secs(100)).logs(false))
        .await
        .expect("purge");
    assert_eq!(report, PurgeReport { tasks: 2, logs: 0 });
    assert_eq!(all_logs(s).await, logs_before);
}

/// Pending or running in the states is `InvalidInput`, and nothing is removed.
pub async fn refuses_unfinished_states(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    ages(s).await;
    let tasks_before = list_codes(s, &TaskFilter::all()).await;
    let logs_before = all_logs(s).await;
    for states in [
        vec![TaskState::Pending],
        vec![TaskState::Succeeded, TaskState::Running],
    ] {
        assert_err!(
            s.purge(&Purge::before(secs(1_000)).states(states)).await,
            Error::InvalidInput(_)
        );
    }
    assert_eq!(list_codes(s, &TaskFilter::all()).await, tasks_before);
    assert_eq!(all_logs(s).await, logs_before);
}

/// A bounded purge removes at most `limit` task rows and `limit` log rows, the oldest ids
/// first; repeated, it removes exactly what one unbounded purge would, then nothing.
pub async fn limit_bounds_each_batch(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    ages(s).await;
    let cut = Purge::before(secs(100)).limit(1);
    assert_eq!(
        s.purge(&cut).await.unwrap(),
        PurgeReport { tasks: 1, logs: 1 }
    );
    assert!(
        !list_codes(s, &TaskFilter::all())
            .await
            .contains(&"s-old".to_owned()),
        "the oldest id goes first"
    );
    assert!(
        list_codes(s, &TaskFilter::all())
            .await
            .contains(&"c-old".to_owned())
    );
    assert_eq!(
        s.purge(&cut).await.unwrap(),
        PurgeReport { tasks: 1, logs: 1 }
    );
    assert_eq!(
        s.purge(&cut).await.unwrap(),
        PurgeReport { tasks: 0, logs: 1 }
    );
    assert_eq!(s.purge(&cut).await.unwrap(), PurgeReport::default());
    assert_eq!(
        list_codes(s, &TaskFilter::all()).await,
        strings([
            "f-old", "p-old", "r-old", "s-edge", "l-edge", "s-new", "c-new"
        ])
    );
    assert_eq!(log_codes(s).await, ["l-edge", "s-new"]);
}

/// A dry run removes nothing and answers what the same purge removes next, `limit` included.
pub async fn dry_run_counts_and_removes_nothing(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    ages(s).await;
    let tasks_before = list_codes(s, &TaskFilter::all()).await;
    let logs_before = all_logs(s).await;
    let cut = Purge::before(secs(100));
    for (purge, want) in [
        (cut.clone(), PurgeReport { tasks: 2, logs: 3 }),
        (
            cut.clone().states([TaskState::Failed]).logs(false),
            PurgeReport { tasks: 1, logs: 0 },
        ),
        (cut.clone().limit(1), PurgeReport { tasks: 1, logs: 1 }),
    ] {
        assert_eq!(s.purge(&purge.dry_run()).await.expect("dry run"), want);
        assert_eq!(list_codes(s, &TaskFilter::all()).await, tasks_before);
        assert_eq!(all_logs(s).await, logs_before);
    }
    assert_err!(
        s.purge(&cut.clone().states([TaskState::Pending]).dry_run())
            .await,
        Error::InvalidInput(_)
    );
    // The count is what the purge then removes.
    assert_eq!(
        s.purge(&cut).await.unwrap(),
        PurgeReport { tasks: 2, logs: 3 }
    );
}
