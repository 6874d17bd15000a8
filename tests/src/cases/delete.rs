//! [`TaskStore::delete`]: remove a task by hand; its log stays.

use std::sync::Arc;

use taskrow::{Error, LogFilter, TaskRef, TaskStore};

use super::{
    LEASE, assert_not_found, get, insert, logs, make_failed, make_running, opts, plus, retry_at,
    run_and_finish, secs, t0,
};

/// The task is removed and returned as it was; its log rows stay.
pub async fn removes_task_and_keeps_logs(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a", t0()).await;
    run_and_finish(s, "a", secs(1), retry_at(secs(60), "flaky")).await;
    let before = get(s, "a").await;
    let failed = make_failed(s, opts("b"), t0()).await;
    let removed = s.delete(&"a".into(), secs(10)).await.expect("delete");
    assert_eq!(removed, before);
    assert_not_found(s.get(&"a".into()).await, &"a".into());
    assert_eq!(logs(s, &LogFilter::code("a")).await.len(), 1);
    assert_eq!(logs(s, &LogFilter::task(before.id)).await.len(), 1);

    let removed = s
        .delete(&TaskRef::Id(failed.id), secs(10))
        .await
        .expect("delete");
    assert_eq!(removed, failed);
    assert_not_found(s.get(&"b".into()).await, &"b".into());
}

/// A running task whose lease expired can be deleted.
pub async fn expired_running_can_be_deleted(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let claimed = make_running(s, opts("a"), "w1", t0()).await;
    let removed = s
        .delete(&"a".into(), plus(t0(), LEASE))
        .await
        .expect("delete");
    assert_eq!(removed, claimed);
    assert_not_found(s.get(&"a".into()).await, &"a".into());
}

/// Deleting a running task whose lease expired logs its lost run as worker lost, under that
/// run's claim token; the row stays in the log after the task is gone.
pub async fn expired_running_logs_lost_run(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let claimed = make_running(s, opts("a"), "w1", t0()).await;
    s.delete(&"a".into(), plus(t0(), LEASE))
        .await
        .expect("delete");
    super::assert_lost_run_logged(s, &claimed).await;
}

/// A task running under a live lease is refused with `Running` and stays.
pub async fn refuses_live_running(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let running = make_running(s, opts("a"), "w1", t0()).await;
    assert_err!(
        s.delete(&"a".into(), secs(10)).await,
        Error::Running { code, owner, .. } if code == "a" && owner == "w1"
    );
    assert_eq!(get(s, "a").await, running);
}

/// An unknown task is `NotFound`.
pub async fn missing_is_not_found(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    assert_not_found(s.delete(&"nope".into(), t0()).await, &"nope".into());
    let a = insert(s, "a", t0()).await;
    let target = TaskRef::Id(a.id + 1_000);
    assert_not_found(s.delete(&target, t0()).await, &target);
}
