//! The conformance suite against every store: one line per store.
//!
//! Tests are named `<store>::<operation>::<behaviour>`; run one store with
//! `cargo test -p taskrow-tests --test conformance memory::`.

use taskrow_memory::MemoryStore;
use taskrow_tests::factory::TestStore;

taskrow_tests::store_conformance!(memory, || async { TestStore::new(MemoryStore::new()) });

taskrow_tests::store_conformance!(sqlite, || async {
    let (store, dir) = taskrow_sqlite::testing::temp_store().await;
    TestStore::new(store).keep_alive(dir)
});

/// Consistency tasks (enqueue in the application's transaction, dispatch after commit) on
/// every SQL store.
mod consistency {
    taskrow_tests::consistency_cases!(sqlite, || async {
        Some(taskrow_sqlite::testing::temp_store().await)
    });
}
