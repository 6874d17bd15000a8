//! [`TaskStore::counts`]: tasks per type, queue, priority and state.

use std::sync::Arc;

use taskrow::{DEFAULT_QUEUE, Priority, StateCount, TaskState, TaskStore};

use super::{
    build_task, insert, make_cancelled, make_failed, make_running, make_succeeded, opts, t0,
};
use crate::tasks::{Noop, SendEmail};

/// An empty store has no counts.
pub async fn empty_store_has_none(store: Arc<dyn TaskStore>) {
    assert_eq!(store.counts().await.expect("counts"), vec![]);
}

/// One count per type and state that has tasks; none for empty combinations.
pub async fn by_type_and_state(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "n-p1", t0()).await;
    insert(s, "n-p2", t0()).await;
    make_running(s, opts("n-r1"), "w1", t0()).await;
    make_failed(s, opts("n-f1"), t0()).await;
    make_succeeded(s, opts("n-s1"), t0()).await;
    let email = SendEmail {
        to: "a@example.com".to_owned(),
    };
    for code in ["e-p1", "e-c1"] {
        s.insert(build_task(opts(code), &email, t0()))
            .await
            .expect("insert");
    }
    make_cancelled(s, opts("n-c1"), t0()).await;
    s.cancel(&"e-c1".into(), t0()).await.expect("cancel");
    // A deleted task is no longer counted.
    insert(s, "n-gone", t0()).await;
    s.delete(&"n-gone".into(), t0()).await.expect("delete");

    let mut counts = s.counts().await.expect("counts");
    counts.sort_by(|a, b| (&a.task_type, a.state).cmp(&(&b.task_type, b.state)));
    let count = |task_type: &str, state, count| StateCount {
        task_type: task_type.to_owned(),
        queue: DEFAULT_QUEUE.to_owned(),
        priority: Priority::Normal,
        state,
        count,
    };
    assert_eq!(
        counts,
        [
            count(Noop::TYPE, TaskState::Pending, 2),
            count(Noop::TYPE, TaskState::Running, 1),
            count(Noop::TYPE, TaskState::Succeeded, 1),
            count(Noop::TYPE, TaskState::Failed, 1),
            count(Noop::TYPE, TaskState::Cancelled, 1),
            count(SendEmail::TYPE, TaskState::Pending, 1),
            count(SendEmail::TYPE, TaskState::Cancelled, 1),
        ]
    );
}
