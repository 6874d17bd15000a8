//! [`TaskStore::delete`]: remove a task by hand; its log stays.

use std::sync::Arc;

use taskrow::bulk::{BulkAction, apply_matching};
use taskrow::{Error, LogFilter, TaskFilter, TaskRef, TaskStore};

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

/// `delete_unreadable` refuses a row the store can read (`InvalidInput`, the task stays) and
/// a missing one (`NotFound`).
pub async fn unreadable_refuses_readable_row(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let a = insert(s, "a", t0()).await;
    assert_err!(
        s.delete_unreadable(&"a".into()).await,
        Error::InvalidInput(m) if m.contains("`a`") && m.contains("can be read")
    );
    assert_eq!(get(s, "a").await, a);
    assert_err!(
        s.delete_unreadable(&"nope".into()).await,
        Error::NotFound(TaskRef::Code(c)) if c == "nope"
    );
}

/// `bulk::apply_matching(Delete)`: every matching task goes but those running under a live
/// lease, which are skipped and reported; a dry run reports the same and changes nothing.
pub async fn matching_skips_live_running(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a-1", t0()).await;
    make_failed(s, opts("a-2"), t0()).await;
    make_running(s, opts("a-3"), "w1", t0()).await;
    insert(s, "b-1", t0()).await;
    let filter = TaskFilter::all().code_prefix("a-");
    for dry_run in [true, false] {
        let report = apply_matching(s, BulkAction::Delete, &filter, secs(10), dry_run)
            .await
            .expect("bulk delete");
        let done: Vec<&str> = report.done.iter().map(|t| t.code.as_str()).collect();
        assert_eq!(done, ["a-1", "a-2"], "dry run {dry_run}");
        assert_eq!(report.skipped.len(), 1, "{report:?}");
        assert_eq!(report.skipped[0].code, "a-3");
        assert!(
            report.skipped[0]
                .reason
                .contains("running under a live lease"),
            "{report:?}"
        );
        let left = super::list_codes(s, &TaskFilter::all()).await;
        if dry_run {
            assert_eq!(left, ["a-1", "a-2", "a-3", "b-1"]);
        } else {
            assert_eq!(left, ["a-3", "b-1"]);
        }
    }
}
