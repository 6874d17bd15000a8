//! taskrow-sqlite's own tests: schema, migrations, connection set-up, errors and concurrency.
//! The store's behaviour is the conformance suite's (`taskrow-tests`).

#[path = "../../store-sql/tests/common/shared.rs"]
mod shared;

use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};
use sea_orm_migration::MigratorTrait;
use taskrow::{ClaimRequest, Client, EnqueueOptions, Error, TaskStore};
use taskrow_migration::Migrator;
use taskrow_sql::entity::{schedule, task, task_log, worker};
use taskrow_sqlite::{SqliteDialect, SqliteStore, testing};

use shared::*;

/// Every taskrow migration's name, oldest first.
const ALL_MIGRATIONS: [&str; 9] = [
    "m20260101_000001_taskrow_create_tables",
    "m20261128_000001_taskrow_claim_tokens",
    "m20261128_000002_taskrow_notify",
    "m20261128_000003_taskrow_queues",
    "m20261128_000004_taskrow_schedules",
    "m20261128_000005_taskrow_due_at",
    "m20261128_000006_taskrow_workers",
    "m20261128_000007_taskrow_cancel_requests",
    "m20261128_000008_taskrow_counts_index",
];

async fn pragma(db: &sea_orm::DatabaseConnection, sql: &str) -> Vec<sea_orm::QueryResult> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
}

async fn tables(db: &sea_orm::DatabaseConnection) -> Vec<String> {
    pragma(
        db,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .await
    .iter()
    .map(|r| r.try_get::<String>("", "name").unwrap())
    .collect()
}

async fn columns(db: &sea_orm::DatabaseConnection, table: &str) -> Vec<(String, String)> {
    pragma(db, &format!("PRAGMA table_info({table})"))
        .await
        .iter()
        .map(|r| {
            (
                r.try_get::<String>("", "name").unwrap(),
                r.try_get::<String>("", "type").unwrap(),
            )
        })
        .collect()
}

async fn index_names(db: &sea_orm::DatabaseConnection) -> Vec<String> {
    pragma(
        db,
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .await
    .iter()
    .map(|r| r.try_get::<String>("", "name").unwrap())
    .collect()
}

#[tokio::test]
async fn migrations_run_up_down_up() {
    let (url, _dir) = testing::temp_url();
    let store = SqliteStore::connect(&url).await.unwrap();
    let db = store.connection();
    Migrator::up(db, None).await.unwrap();
    assert_eq!(
        tables(db).await,
        [
            "taskrow_queue",
            "taskrow_schedule",
            "taskrow_seaql_migrations",
            "taskrow_task",
            "taskrow_task_log",
            "taskrow_worker"
        ]
    );
    Migrator::down(db, None).await.unwrap();
    assert_eq!(tables(db).await, ["taskrow_seaql_migrations"]);
    Migrator::up(db, None).await.unwrap();
    Migrator::up(db, None).await.unwrap(); // nothing pending: a no-op
    assert_eq!(tables(db).await.len(), 6);
    assert_eq!(
        history(db, "taskrow_seaql_migrations").await,
        ALL_MIGRATIONS
    );
    claim_token_columns_come_and_go(store.connection()).await;
    queues_migration_comes_and_goes(store.connection()).await;
}

/// The second migration (and the third, after it) down and up again, on a database with rows
/// written before it: its columns and index go and come back, old rows read with their
/// defaults.
async fn claim_token_columns_come_and_go(db: &sea_orm::DatabaseConnection) {
    let names =
        |cols: Vec<(String, String)>| -> Vec<String> { cols.into_iter().map(|c| c.0).collect() };
    Migrator::down(db, Some(ALL_MIGRATIONS.len() as u32 - 1))
        .await
        .unwrap();
    assert!(!tables(db).await.contains(&"taskrow_schedule".to_owned()));
    assert!(!tables(db).await.contains(&"taskrow_worker".to_owned()));
    assert_eq!(
        history(db, "taskrow_seaql_migrations").await,
        ALL_MIGRATIONS[..1]
    );
    let task_cols = names(columns(db, "taskrow_task").await);
    assert_eq!(task_cols.last().map(String::as_str), Some("updated_at"));
    let log_cols = names(columns(db, "taskrow_task_log").await);
    assert_eq!(log_cols.last().map(String::as_str), Some("worker"));
    assert!(
        !index_names(db)
            .await
            .contains(&"uq_taskrow_task_log_run".to_owned())
    );
    db.execute_unprepared(
        "INSERT INTO taskrow_task (code, task_type, payload, name, biz_type, state, attempts, \
         retry_policy, on_success, dispatch, run_at, version, created_at, updated_at) VALUES \
         ('old', 'store_sql_test.ping', '{\"n\":1}', 'old', 'default', 0, 0, \
         '{\"kind\":\"none\"}', 0, 0, '2026-01-01 00:00:00', 0, '2026-01-01 00:00:00', \
         '2026-01-01 00:00:00')",
    )
    .await
    .unwrap();

    Migrator::up(db, None).await.unwrap();
    assert_eq!(
        history(db, "taskrow_seaql_migrations").await,
        ALL_MIGRATIONS
    );
    let task_cols = names(columns(db, "taskrow_task").await);
    // The columns of later migrations follow, in order.
    let first_new = task_cols.iter().position(|c| c == "claim_token").unwrap();
    assert_eq!(
        task_cols[first_new..],
        [
            "claim_token",
            "claimed_at",
            "interruptions",
            "queue",
            "priority",
            "due_at",
            "cancel_requested_at"
        ]
    );
    let log_cols = names(columns(db, "taskrow_task_log").await);
    assert_eq!(log_cols.last().map(String::as_str), Some("claim_token"));
    assert!(
        index_names(db)
            .await
            .contains(&"uq_taskrow_task_log_run".to_owned())
    );
    let old = <task::Entity as sea_orm::EntityTrait>::find()
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (old.claim_token, old.claimed_at, old.interruptions),
        (None, None, 0)
    );
}

#[tokio::test]
async fn schema_matches_the_entities() {
    let (store, _dir) = testing::temp_store().await;
    let db = store.connection();
    for (table, entity) in [
        ("taskrow_task", entity_columns::<task::Entity>()),
        ("taskrow_task_log", entity_columns::<task_log::Entity>()),
        (
            "taskrow_queue",
            entity_columns::<taskrow_sql::entity::queue::Entity>(),
        ),
        ("taskrow_schedule", entity_columns::<schedule::Entity>()),
        ("taskrow_worker", entity_columns::<worker::Entity>()),
    ] {
        let cols = columns(db, table).await;
        let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, entity, "{table}");
        for (name, ty) in &cols {
            if name.ends_with("_at") {
                assert_eq!(ty, "DATETIME(6)", "{table}.{name}");
            }
        }
    }
    assert_eq!(
        index_names(db).await,
        [
            "idx_taskrow_task_biz_type",
            "idx_taskrow_task_claim",
            "idx_taskrow_task_counts",
            "idx_taskrow_task_log_code",
            "idx_taskrow_task_log_started_at",
            "idx_taskrow_task_log_task_id",
            "idx_taskrow_task_queue_claim",
            "idx_taskrow_task_run_at",
            "idx_taskrow_task_state_run_at",
            "uq_taskrow_schedule_name",
            "uq_taskrow_task_code",
            "uq_taskrow_task_log_run",
        ]
    );
    full_rows_round_trip(&store).await;
    corrupt_rows_are_reported(&store).await;
    unreadable_rows_are_shown_and_deleted(&store).await;
}

#[tokio::test]
async fn an_application_migrator_lives_beside_taskrows() {
    let (url, _dir) = testing::temp_url();
    let store = SqliteStore::connect(&url).await.unwrap();
    let db = store.connection();
    AppMigrator::up(db, None).await.unwrap();
    Migrator::up(db, None).await.unwrap();
    assert_eq!(
        history(db, "seaql_migrations").await,
        ["m20260102_000001_create_orders"]
    );
    assert_eq!(
        history(db, "taskrow_seaql_migrations").await,
        ALL_MIGRATIONS
    );
    store.check_schema().await.unwrap();
    AppMigrator::down(db, None).await.unwrap();
    assert!(!tables(db).await.contains(&"app_orders".to_owned()));
    store.insert(new_task("still-here", t0())).await.unwrap();

    // Or taskrow's migrations in the application's own list, under one history.
    let (url, _dir2) = testing::temp_url();
    let store = SqliteStore::connect(&url).await.unwrap();
    let db = store.connection();
    CombinedMigrator::up(db, None).await.unwrap();
    assert_eq!(
        history(db, "seaql_migrations").await,
        [
            "m20260101_000001_taskrow_create_tables",
            "m20260102_000001_create_orders",
            "m20261128_000001_taskrow_claim_tokens",
            "m20261128_000002_taskrow_notify",
            "m20261128_000003_taskrow_queues",
            "m20261128_000004_taskrow_schedules",
            "m20261128_000005_taskrow_due_at",
            "m20261128_000006_taskrow_workers",
            "m20261128_000007_taskrow_cancel_requests",
            "m20261128_000008_taskrow_counts_index",
        ]
    );
    // taskrow's migrations found in the application's history.
    store.check_schema().await.unwrap();
    store.insert(new_task("combined", t0())).await.unwrap();
}

#[tokio::test]
async fn times_keep_their_microseconds() {
    let (store, _dir) = testing::temp_store().await;
    microseconds_read_back_equal(&store).await;
}

#[tokio::test]
async fn connection_errors_say_what_to_do() {
    for url in [
        "postgres://localhost/x",
        "sqlite://x.db?mode=bogus",
        "tasks.db",
    ] {
        match SqliteStore::connect(url).await {
            Err(Error::BadUrl { url: u, reason }) => {
                assert_eq!(u, url);
                assert!(!reason.is_empty());
            }
            other => panic!("{url}: expected BadUrl, got {other:?}"),
        }
    }
    let (url, dir) = testing::temp_url();
    let missing = format!("sqlite://{}", dir.path().join("no/such/dir/x.db").display());
    let err = SqliteStore::connect(&missing).await.unwrap_err();
    assert!(
        matches!(&err, Error::NoSuchDatabase { hint, .. } if hint.contains("nor its directory")),
        "{err:?}"
    );
    assert!(
        !err.is_transient(),
        "a missing file does not appear by retrying"
    );
    let no_file = format!("sqlite://{}", dir.path().join("absent.db").display());
    let err = SqliteStore::connect(&no_file).await.unwrap_err();
    assert!(
        matches!(&err, Error::NoSuchDatabase { hint, .. } if hint.contains("?mode=rwc")),
        "{err:?}"
    );
    assert!(
        !dir.path().join("absent.db").exists(),
        "connect does not create the file without `mode=rwc`"
    );

    let store = SqliteStore::connect(&url).await.unwrap();
    unmigrated_says_so(&store).await;
}

#[tokio::test]
async fn a_file_uses_wal_and_a_pool() {
    let (store, _dir) = testing::temp_store().await;
    let db = store.connection();
    let mode = pragma(db, "PRAGMA journal_mode").await;
    assert_eq!(mode[0].try_get_by_index::<String>(0).unwrap(), "wal");
    let timeout = pragma(db, "PRAGMA busy_timeout").await;
    assert_eq!(timeout[0].try_get_by_index::<i64>(0).unwrap(), 10_000);
    let sync = pragma(db, "PRAGMA synchronous").await;
    assert_eq!(sync[0].try_get_by_index::<i64>(0).unwrap(), 1); // NORMAL
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_on_a_wal_file_take_each_task_once() {
    let (store, _dir) = testing::temp_store().await;
    // Eight claimers on one pool (one writer at a time)…
    concurrent_claims_take_each_task_once(vec![store.clone()], 8, 600).await;

    // …and three pools on one file, as three processes would be (SQLite busy, retried).
    let (url, _dir2) = testing::temp_url();
    let mut stores = vec![SqliteStore::connect_and_migrate(&url).await.unwrap()];
    for _ in 0..2 {
        stores.push(SqliteStore::connect(&url).await.unwrap());
    }
    concurrent_claims_take_each_task_once(stores, 3, 600).await;
}

#[tokio::test]
async fn big_mixed_finish_batches() {
    let (store, _dir) = testing::temp_store().await;
    big_mixed_finish_batches_apply_per_item(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_single_inserts() {
    let (store, _dir) = testing::temp_store().await;
    concurrent_single_inserts_race_cleanly(&store).await;
    concurrent_single_inserts_race_cleanly(&testing::memory_store().await).await;
}

#[tokio::test]
async fn claimed_rows_are_stored_rows() {
    let (store, _dir) = testing::temp_store().await;
    claimed_rows_are_the_stored_rows(&store).await;
}

#[tokio::test]
async fn claims_come_oldest_due_first() {
    let (store, _dir) = testing::temp_store().await;
    claims_oldest_due_first(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_now_has_one_winner() {
    let (store, _dir) = testing::temp_store().await;
    claim_one_has_one_winner(&store).await;
}

#[tokio::test]
async fn insert_on_joins_the_callers_transaction() {
    let (store, _dir) = testing::temp_store().await;
    insert_on_follows_the_callers_transaction(&store).await;
}

#[tokio::test]
async fn insert_many_reports_the_duplicate() {
    let (store, _dir) = testing::temp_store().await;
    insert_many_names_the_duplicate(&store).await;
}

#[tokio::test]
async fn codes_compare_exactly() {
    let (store, _dir) = testing::temp_store().await;
    text_compares_exactly(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_databases_work_concurrently_on_one_connection() {
    let store = testing::memory_store().await;
    let other = testing::memory_store().await;
    store.insert(new_task("only-here", t0())).await.unwrap();
    assert!(
        other.get(&"only-here".into()).await.is_err(),
        "two pools, two databases"
    );

    // Reads and writes interleave on the one connection without waiting on each other forever.
    let handles: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    store
                        .insert(new_task(&format!("m{w}-{i}"), t0()))
                        .await
                        .unwrap();
                    store.get(&format!("m{w}-{i}").into()).await.unwrap();
                    store
                        .claim(&ClaimRequest::new("w", 2, Duration::from_secs(60), t0()))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let all = tokio::time::timeout(Duration::from_secs(60), futures_join(handles)).await;
    assert!(all.is_ok(), "in-memory store deadlocked");
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.iter().map(|c| c.count).sum::<u64>(), 201);
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<()>>) {
    for h in handles {
        h.await.unwrap();
    }
}

#[tokio::test]
async fn a_failing_unreadable_row_does_not_drop_the_batch() {
    let (store, _dir) = testing::temp_store().await;
    a_failing_unreadable_row_keeps_the_batch(&store).await;
}

#[tokio::test]
async fn claim_tokens_fence_finishes_extensions_and_releases() {
    let (store, _dir) = testing::temp_store().await;
    claim_tokens_fence_writes(&store).await;
}

#[tokio::test]
async fn a_finish_retried_after_it_applied_is_applied() {
    let (store, _dir) = testing::temp_store().await;
    finish_retried_after_applied_is_applied(&store).await;
}

#[tokio::test]
async fn a_worker_lost_at_the_last_attempt_fails_the_task() {
    let (store, _dir) = testing::temp_store().await;
    worker_lost_at_the_last_attempt_fails_the_task(&store).await;
}

#[tokio::test]
async fn an_interrupted_run_gives_the_attempt_back() {
    let (store, _dir) = testing::temp_store().await;
    interrupted_runs_give_the_attempt_back(&store).await;
}

#[tokio::test]
async fn check_schema_refuses_older_and_newer_schemas() {
    let (url, _dir) = testing::temp_url();
    let store = SqliteStore::connect(&url).await.unwrap();
    check_schema_reads_the_history(&store).await;
}

/// A store write from the code holding an open task transaction would wait for that very
/// transaction (SQLite has one writer): it fails, transient, saying why and what to do, instead
/// of hanging its task and every worker of the process behind it — at once when called from the
/// task that opened the transaction, after the dialect's bound when it runs on a task of its own
/// (`run_now` spawns its claim), as any write elsewhere in the process would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_inside_a_task_transaction_fails_at_once() {
    let (store, _dir) = testing::temp_store().await;
    let bound = Duration::from_millis(500);
    let store = SqliteStore::from_parts(
        store.connection().clone(),
        SqliteDialect::default().wait_for_task_transactions(bound),
    );
    for c in writes_beside_an_open_task_transaction(&store).await {
        let what = c.what;
        let err = c.result.expect_err(what);
        assert!(err.is_transient(), "{what}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains("task transaction") && msg.contains("commit"),
            "{what}: {msg}"
        );
        if what == "client.run_now" {
            assert!(c.took >= bound, "{what} failed after {:?}", c.took);
        } else {
            assert!(
                c.took < bound,
                "{what} failed after {:?}, not at once",
                c.took
            );
            assert!(msg.contains("same task"), "{what}: {msg}");
        }
    }
    // Once it committed, the same calls go through.
    let client = Client::builder(store.clone()).build().unwrap();
    client
        .enqueue(&Ping { n: 3 }, EnqueueOptions::new().code("beside"))
        .await
        .unwrap();
    client.run_now("committed-before").await.unwrap();
}

/// A write elsewhere in the process (a worker, another request) waits for an open task
/// transaction; if that transaction stays open past the dialect's bound, the write fails,
/// transient, naming it, instead of waiting forever; once it ends, writes go through again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_elsewhere_waits_for_a_task_transaction_within_a_bound() {
    let (store, _dir) = testing::temp_store().await;
    let client = Client::builder(store.clone()).build().unwrap();

    // Committed within the bound: the waiting write goes through.
    let tx = store.begin_with_tasks(&client).await.unwrap();
    let waiting = {
        let store = store.clone();
        tokio::spawn(async move { store.insert(new_task("waited", t0())).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiting.is_finished(),
        "the write did not wait for the transaction"
    );
    let _ = tx.commit().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the write still waits after the commit")
        .unwrap()
        .unwrap();

    // Held past the bound: the waiting write (a worker's claim here) fails, and says why.
    let bound = Duration::from_millis(300);
    let store = SqliteStore::from_parts(
        store.connection().clone(),
        SqliteDialect::default().wait_for_task_transactions(bound),
    );
    let client = Client::builder(store.clone()).build().unwrap();
    let tx = store.begin_with_tasks(&client).await.unwrap();
    let claim = {
        let store = store.clone();
        tokio::spawn(async move {
            let t = std::time::Instant::now();
            let lease = Duration::from_secs(60);
            let r = store.claim(&ClaimRequest::new("w", 10, lease, t0())).await;
            (r, t.elapsed())
        })
    };
    let (r, waited) = tokio::time::timeout(Duration::from_secs(5), claim)
        .await
        .expect("a claim behind a task transaction held past the bound hung")
        .unwrap();
    let err = r.expect_err("a claim behind a task transaction held past the bound");
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("task transaction"), "{err}");
    assert!(waited >= bound, "failed after {waited:?}, before the bound");
    tx.rollback().await.unwrap();
    let lease = Duration::from_secs(60);
    let claimed = store
        .claim(&ClaimRequest::new("w", 10, lease, t0()))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);

    // A worker of the process, polling while a task transaction stays open past the bound:
    // its claims fail (transient) instead of stalling it; once the transaction commits, it
    // runs the task the transaction enqueued.
    let worker = client
        .worker()
        .poll_interval(Duration::from_millis(20))
        .start()
        .unwrap();
    let mut tx = store.begin_with_tasks(&client).await.unwrap();
    let scheduled = EnqueueOptions::new()
        .code("after-the-transaction")
        .dispatch(taskrow::Dispatch::Scheduled);
    tx.enqueue(&Ping { n: 4 }, scheduled).await.unwrap();
    tokio::time::sleep(bound * 3).await;
    let _ = tx.commit().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.get(&"after-the-transaction".into()).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker did not run the task after the transaction committed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Wake-ups from other processes' commits

/// A worker whose poll is 10 s picks up, within 2 s, a task that another store on the same
/// file (another pool, as another process would have) enqueues, or resets: the store's check
/// of `PRAGMA data_version` wakes it (see `wakes_for_another_stores_commits`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_wakes_for_another_process_commit() {
    let (store, dir) = testing::temp_store().await;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("tasks.db").display()
    );
    let other = SqliteStore::connect(&url).await.unwrap();
    wakes_for_another_stores_commits(&store, &other).await;
    // Off: an in-memory database, and a dialect without them.
    assert!(testing::memory_store().await.wakeups().is_none());
    let off = SqliteStore::from_parts(
        store.connection().clone(),
        store.dialect().clone().without_wakeups(),
    );
    assert!(off.wakeups().is_none());
}
