//! [`TaskStore::insert_if_absent`]: insert, or hand back the existing row untouched.

use std::sync::Arc;

use taskrow::{TaskFilter, TaskRef, TaskState, TaskStore};

use super::{build, build_task, get, insert, list_all, opts, run_now, secs, t0};
use crate::tasks::SendEmail;

/// An absent code is inserted: the new row and `true`.
pub async fn inserts_when_absent(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let new = build(opts("a").run_at(secs(30)), t0());
    let (rec, inserted) = s
        .insert_if_absent(new.clone())
        .await
        .expect("insert_if_absent");
    assert!(inserted);
    assert_eq!(rec.code, "a");
    assert_eq!(rec.state, TaskState::Pending);
    assert_eq!(rec.attempts, 0);
    assert_eq!(rec.version, 0);
    assert_eq!(rec.next_run_at, Some(secs(30)));
    assert_eq!(s.get(&TaskRef::Id(rec.id)).await.expect("get"), rec);
}

/// A taken code gives the existing row, unchanged whatever its state (here running), and
/// `false`; nothing is written.
pub async fn returns_existing_unchanged(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert(s, "a", t0()).await;
    let running = run_now(s, "a", "w1", secs(1)).await;
    let other = build_task(
        opts("a").biz_type("other").run_at(secs(99)),
        &SendEmail {
            to: "x@example.com".to_owned(),
        },
        secs(2),
    );
    let (rec, inserted) = s.insert_if_absent(other).await.expect("insert_if_absent");
    assert!(!inserted);
    assert_eq!(rec, running);
    assert_eq!(get(s, "a").await, running);
    assert_eq!(list_all(s, &TaskFilter::all()).await, vec![running]);
}
