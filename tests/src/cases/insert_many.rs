//! [`TaskStore::insert_many`]: all rows or none.

use std::sync::Arc;

use taskrow::{Error, TaskFilter, TaskState, TaskStore};

use super::{build, get, insert, list_all, list_codes, opts, secs, strings, t0};

/// Every row is inserted as `insert` would, and the count is returned.
pub async fn inserts_all(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let batch = vec![
        build(opts("a").run_at(secs(10)), t0()),
        build(opts("b").biz_type("mail"), t0()),
        build(opts("c").max_attempts(1), secs(1)),
    ];
    assert_eq!(s.insert_many(batch.clone()).await.expect("insert_many"), 3);
    for new in &batch {
        let rec = get(s, &new.code).await;
        assert_eq!(rec.state, TaskState::Pending);
        assert_eq!(rec.attempts, 0);
        assert_eq!(rec.version, 0);
        assert_eq!(rec.next_run_at, Some(new.run_at));
        assert_eq!(rec.biz_type, new.biz_type);
        assert_eq!(rec.max_attempts, new.max_attempts);
        assert_eq!(rec.created_at, new.created_at);
        assert_eq!(rec.updated_at, new.created_at);
    }
    assert_eq!(
        list_codes(s, &TaskFilter::all()).await,
        strings(["a", "b", "c"])
    );
}

/// An empty batch inserts nothing and answers 0.
pub async fn empty_batch_inserts_nothing(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    assert_eq!(s.insert_many(Vec::new()).await.expect("insert_many"), 0);
    assert_eq!(list_all(s, &TaskFilter::all()).await, vec![]);
}

/// A code twice in one batch fails with `DuplicateCode` naming it; nothing is inserted.
pub async fn duplicate_within_batch_inserts_nothing(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let batch = vec![
        build(opts("a"), t0()),
        build(opts("b"), t0()),
        build(opts("a").biz_type("again"), t0()),
    ];
    assert_err!(s.insert_many(batch).await, Error::DuplicateCode(c) if c == "a");
    assert_eq!(list_all(s, &TaskFilter::all()).await, vec![]);
}

/// A code already in the table fails the batch with `DuplicateCode` naming it; nothing of the
/// batch is inserted and the existing row is unchanged.
pub async fn duplicate_against_table_inserts_nothing(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let existing = insert(s, "b", t0()).await;
    let batch = vec![
        build(opts("a"), secs(1)),
        build(opts("b").biz_type("again"), secs(1)),
        build(opts("c"), secs(1)),
    ];
    assert_err!(s.insert_many(batch).await, Error::DuplicateCode(c) if c == "b");
    assert_eq!(list_all(s, &TaskFilter::all()).await, vec![existing]);
}
