//! [`TaskStore::get`]: one task by id or code.

use std::sync::Arc;

use taskrow::{TaskRef, TaskStore};

use super::{assert_not_found, insert, secs, t0};

/// A task reads the same by id and by code.
pub async fn by_id_and_code(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let a = insert(s, "a", t0()).await;
    let b = insert(s, "b", secs(1)).await;
    for rec in [a, b] {
        assert_eq!(s.get(&TaskRef::Id(rec.id)).await.expect("get by id"), rec);
        assert_eq!(
            s.get(&TaskRef::Code(rec.code.clone()))
                .await
                .expect("get by code"),
            rec
        );
    }
}

/// An unknown id or code is `NotFound`, naming it.
pub async fn missing_is_not_found(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    assert_not_found(s.get(&TaskRef::Id(1)).await, &TaskRef::Id(1));
    let a = insert(s, "a", t0()).await;
    for target in [
        TaskRef::Id(a.id + 1_000),
        TaskRef::from("nope"),
        TaskRef::from("A"),
    ] {
        assert_not_found(s.get(&target).await, &target);
    }
}
