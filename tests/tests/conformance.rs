//! The conformance suite against every store: one line per store.
//!
//! Tests are named `<store>::<operation>::<behaviour>`; run one store with
//! `cargo test -p taskrow-tests --test conformance memory::`.

use taskrow_memory::MemoryStore;
use taskrow_tests::factory::{Setup, TestStore};

taskrow_tests::store_conformance!(memory, || async { TestStore::new(MemoryStore::new()) });

taskrow_tests::store_conformance!(sqlite, || async {
    let (store, dir) = taskrow_sqlite::testing::temp_store().await;
    TestStore::new(store).keep_alive(dir)
});

taskrow_tests::store_conformance!(mysql, || async {
    match taskrow_mysql::testing::fresh_store().await {
        None => Setup::skip("TASKROW_MYSQL_URL not set"),
        Some((store, db)) => TestStore::new(store)
            .with_cleanup(move || db.drop_database())
            .into(),
    }
});

taskrow_tests::store_conformance!(postgres, || async {
    match taskrow_postgres::testing::fresh_store().await {
        None => Setup::skip("TASKROW_POSTGRES_URL not set"),
        Some((store, db)) => TestStore::new(store)
            .with_cleanup(move || db.drop_database())
            .into(),
    }
});

/// Consistency tasks (enqueue in the application's transaction, dispatch after commit) on
/// every SQL store.
mod consistency {
    use taskrow_tests::factory::TestStore;

    taskrow_tests::consistency_cases!(sqlite, || async {
        let (store, dir) = taskrow_sqlite::testing::temp_store().await;
        Some((store.clone(), TestStore::new(store).keep_alive(dir)))
    });
    taskrow_tests::consistency_cases!(mysql, || async {
        let (store, db) = taskrow_mysql::testing::fresh_store().await?;
        let guard = TestStore::new(store.clone()).with_cleanup(move || db.drop_database());
        Some((store, guard))
    });
    taskrow_tests::consistency_cases!(postgres, || async {
        let (store, db) = taskrow_postgres::testing::fresh_store().await?;
        let guard = TestStore::new(store.clone()).with_cleanup(move || db.drop_database());
        Some((store, guard))
    });
}
