//! taskrow-postgres's own tests: schema, migrations, connection set-up, errors, concurrency and
//! LISTEN/NOTIFY wake-ups. The store's behaviour is the conformance suite's (`taskrow-tests`).
//!
//! They run against the server named by `TASKROW_POSTGRES_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432`), each in its own `taskrow_test_<uuid>` database,
//! dropped when the test passes. Without the variable they print `skipped: …` and pass (fail
//! under `CI=true`).

#[path = "../../store-sql/tests/common/shared.rs"]
mod shared;

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement, TransactionTrait};
use sea_orm_migration::MigratorTrait;
use taskrow::{Client, EnqueueOptions, Error, LogFilter, TaskRef, TaskStore};
use taskrow_migration::Migrator;
use taskrow_postgres::{PostgresDialect, PostgresStore, testing};
use taskrow_sql::entity::{schedule, task, task_log, worker};
use taskrow_sql::{Dialect, ErrorKind};

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

async fn rows(db: &impl ConnectionTrait, sql: &str) -> Vec<sea_orm::QueryResult> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
}

async fn tables(db: &DatabaseConnection) -> Vec<String> {
    rows(
        db,
        "SELECT table_name::text AS name FROM information_schema.tables \
         WHERE table_schema = current_schema() ORDER BY table_name",
    )
    .await
    .iter()
    .map(|r| r.try_get::<String>("", "name").unwrap())
    .collect()
}

/// (name, type, identity) of a table's columns, in order; types as `format_type` writes them
/// (`timestamp(6) without time zone`).
async fn columns(db: &DatabaseConnection, table: &str) -> Vec<(String, String, bool)> {
    rows(
        db,
        &format!(
            "SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS ty, \
             a.attidentity <> '' AS identity FROM pg_attribute a \
             WHERE a.attrelid = '{table}'::regclass AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum"
        ),
    )
    .await
    .iter()
    .map(|r| {
        (
            r.try_get::<String>("", "name").unwrap(),
            r.try_get::<String>("", "ty").unwrap(),
            r.try_get::<bool>("", "identity").unwrap(),
        )
    })
    .collect()
}

async fn index_names(db: &DatabaseConnection) -> Vec<String> {
    rows(
        db,
        "SELECT indexname::text AS name FROM pg_indexes \
         WHERE schemaname = current_schema() AND tablename LIKE 'taskrow_task%' ORDER BY name",
    )
    .await
    .iter()
    .map(|r| r.try_get::<String>("", "name").unwrap())
    .collect()
}

async fn triggers(db: &DatabaseConnection) -> Vec<String> {
    rows(
        db,
        "SELECT tgname::text AS name FROM pg_trigger \
         WHERE tgrelid = 'taskrow_task'::regclass AND NOT tgisinternal ORDER BY tgname",
    )
    .await
    .iter()
    .map(|r| r.try_get::<String>("", "name").unwrap())
    .collect()
}

#[tokio::test]
async fn migrations_run_up_down_up() {
    let Some(fresh) = testing::fresh_database().await else {
        return;
    };
    let store = PostgresStore::connect(&fresh.url).await.unwrap();
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
    assert_eq!(triggers(db).await, ["taskrow_task_notify"]);
    store.check_schema().await.unwrap();
    Migrator::down(db, None).await.unwrap();
    assert_eq!(tables(db).await, ["taskrow_seaql_migrations"]);
    let functions = rows(
        db,
        "SELECT COUNT(*) AS n FROM pg_proc WHERE proname = 'taskrow_notify'",
    )
    .await[0]
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(functions, 0, "the trigger's function goes with it");
    Migrator::up(db, None).await.unwrap();
    Migrator::up(db, None).await.unwrap();
    assert_eq!(tables(db).await.len(), 6);
    assert_eq!(
        history(db, "taskrow_seaql_migrations").await,
        ALL_MIGRATIONS
    );
    store.check_schema().await.unwrap();
    claim_token_columns_come_and_go(db).await;
    queues_migration_comes_and_goes(db).await;
    store.check_schema().await.unwrap();
    fresh.drop_database().await;
}

/// The second migration (and the third, after it) down and up again, on a database with rows
/// written before it: its columns and index go and come back, old rows read with their
/// defaults; the notify trigger goes and comes back with the third.
async fn claim_token_columns_come_and_go(db: &DatabaseConnection) {
    let names = |cols: Vec<(String, String, bool)>| -> Vec<String> {
        cols.into_iter().map(|c| c.0).collect()
    };
    // The migrations after the third first, then the third (the trigger), then the second.
    Migrator::down(db, Some(ALL_MIGRATIONS.len() as u32 - 3))
        .await
        .unwrap();
    assert!(!triggers(db).await.is_empty());
    assert!(!tables(db).await.contains(&"taskrow_schedule".to_owned()));
    assert!(!tables(db).await.contains(&"taskrow_worker".to_owned()));
    Migrator::down(db, Some(1)).await.unwrap();
    assert!(triggers(db).await.is_empty());
    Migrator::down(db, Some(1)).await.unwrap();
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
    assert_eq!(triggers(db).await, ["taskrow_task_notify"]);
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
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
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
        let names: Vec<&str> = cols.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, entity, "{table}");
        for (name, ty, identity) in &cols {
            if name.ends_with("_at") {
                assert_eq!(ty, "timestamp(6) without time zone", "{table}.{name}");
            }
            if name == "id" {
                assert_eq!((ty.as_str(), *identity), ("bigint", true), "{table}.id");
            } else {
                assert!(!identity, "{table}.{name}");
            }
        }
    }
    let task_cols = columns(db, "taskrow_task").await;
    assert!(
        task_cols
            .iter()
            .any(|(n, ty, _)| n == "payload" && ty == "text"),
        "{task_cols:?}"
    );
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
            "taskrow_task_log_pkey",
            "taskrow_task_pkey",
            "uq_taskrow_task_code",
            "uq_taskrow_task_log_run",
        ]
    );
    full_rows_round_trip(&store).await;
    corrupt_rows_are_reported(&store).await;
    unreadable_rows_are_shown_and_deleted(&store).await;
    fresh.drop_database().await;
}

/// A payload comes back byte for byte: key order, spacing and duplicate keys are the task's
/// serializer's, not the database's (what `JSONB` would have changed).
#[tokio::test]
async fn payloads_come_back_verbatim() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    let mut t = new_task("verbatim", t0());
    t.payload = "{\"z\":1,  \"a\":[1,2],\"a\":\"dup\", \"u\":\"\\u00e9\"}".into();
    store.insert(t.clone()).await.unwrap();
    let got = store.get(&TaskRef::from("verbatim")).await.unwrap();
    assert_eq!(got.payload, t.payload);
    fresh.drop_database().await;
}

#[tokio::test]
async fn an_application_migrator_lives_beside_taskrows() {
    let Some(fresh) = testing::fresh_database().await else {
        return;
    };
    let store = PostgresStore::connect(&fresh.url).await.unwrap();
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
    fresh.drop_database().await;

    let Some(fresh) = testing::fresh_database().await else {
        return;
    };
    let store = PostgresStore::connect(&fresh.url).await.unwrap();
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
    fresh.drop_database().await;
}

#[tokio::test]
async fn times_keep_their_microseconds() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    microseconds_read_back_equal(&store).await;
    fresh.drop_database().await;
}

/// The database's time is `clock_timestamp()` in UTC: it moves within a transaction (unlike
/// `now()`), and is close to this host's.
#[tokio::test]
async fn database_time_is_the_clock_now() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    assert!(store.has_database_time());
    let a = store.database_time().await.unwrap().unwrap();
    let host = taskrow::chrono::Utc::now();
    assert!(
        (host - a).num_seconds().abs() < 60,
        "database {a} vs host {host}"
    );
    let sql = PostgresDialect::DATABASE_TIME.unwrap();
    let txn = store.connection().begin().await.unwrap();
    let first: taskrow::chrono::NaiveDateTime = rows(&txn, sql).await[0].try_get("", "t").unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second: taskrow::chrono::NaiveDateTime = rows(&txn, sql).await[0].try_get("", "t").unwrap();
    txn.rollback().await.unwrap();
    assert!(second > first, "{first} then {second}");
    fresh.drop_database().await;
}

#[tokio::test]
async fn connection_errors_say_what_to_do() {
    for url in [
        "mysql://localhost/x",
        "sqlite::memory:",
        "postgres://postgres@127.0.0.1:5432",
        "postgresql://postgres@127.0.0.1:5432/",
        "postgres://postgres@127.0.0.1:99999/x",
    ] {
        match PostgresStore::connect(url).await {
            Err(Error::BadUrl { url: u, reason }) => {
                assert_eq!(u, url);
                assert!(!reason.is_empty());
            }
            other => panic!("{url}: expected BadUrl, got {other:?}"),
        }
    }
    let err = PostgresStore::connect("postgres://root:hunter2@127.0.0.1:1/x")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient());
    let message = err.to_string();
    assert!(
        message.contains("postgres://root:***@127.0.0.1:1/x"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");

    let Some(fresh) = testing::fresh_database().await else {
        return;
    };
    // `postgresql://` opens too.
    let url = fresh.url.replacen("postgres://", "postgresql://", 1);
    let store = PostgresStore::connect(&url).await.unwrap();
    unmigrated_says_so(&store).await;
    fresh.drop_database().await;
}

/// A lock timeout (55P03) is contention: transient, and retried by the store; so are a
/// deadlock (40P01) and a serialization failure (40001).
#[tokio::test]
async fn lock_waits_are_transient() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    let r = store.insert(new_task("locked", t0())).await.unwrap();
    let holder = Database::connect(&fresh.url).await.unwrap();
    let hold = holder.begin().await.unwrap();
    hold.execute_unprepared(&format!(
        "SELECT id FROM taskrow_task WHERE id = {} FOR UPDATE",
        r.id
    ))
    .await
    .unwrap();

    let waiter = Database::connect(&fresh.url).await.unwrap();
    let wait = waiter.begin().await.unwrap();
    wait.execute_unprepared("SET LOCAL lock_timeout = '200ms'")
        .await
        .unwrap();
    let err = wait
        .execute_unprepared(&format!(
            "UPDATE taskrow_task SET version = version + 1 WHERE id = {}",
            r.id
        ))
        .await
        .unwrap_err();
    let dialect = PostgresDialect::default();
    assert_eq!(dialect.classify(&err), ErrorKind::Contention, "{err}");
    wait.rollback().await.unwrap();
    hold.rollback().await.unwrap();

    // A serialization failure, as a SERIALIZABLE application transaction meets one.
    let a = holder.begin().await.unwrap();
    let b = waiter.begin().await.unwrap();
    for t in [&a, &b] {
        t.execute_unprepared("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .await
            .unwrap();
        t.execute_unprepared("SELECT COUNT(*) FROM taskrow_task")
            .await
            .unwrap();
    }
    a.execute_unprepared(&format!(
        "UPDATE taskrow_task SET version = version + 1 WHERE id = {}",
        r.id
    ))
    .await
    .unwrap();
    a.commit().await.unwrap();
    let err = b
        .execute_unprepared(&format!(
            "UPDATE taskrow_task SET version = version + 1 WHERE id = {}",
            r.id
        ))
        .await
        .unwrap_err();
    assert_eq!(dialect.classify(&err), ErrorKind::Contention, "{err}");
    b.rollback().await.unwrap();

    // The row is free again: the store's writes go through.
    store
        .cancel(&TaskRef::Id(r.id), t0())
        .await
        .expect("cancel after the lock went");
    let _ = holder.close().await;
    let _ = waiter.close().await;
    fresh.drop_database().await;
}

/// A server that shuts a session down (57P01, `pg_terminate_backend`) fails that call with a
/// transient error.
#[tokio::test]
async fn a_terminated_session_is_transient() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    let victim = Database::connect(&fresh.url).await.unwrap();
    // A transaction holds its connection, so the next statement meets the terminated session.
    let txn = victim.begin().await.unwrap();
    let pid: i32 = rows(&txn, "SELECT pg_backend_pid() AS pid").await[0]
        .try_get("", "pid")
        .unwrap();
    rows(
        store.connection(),
        &format!("SELECT pg_terminate_backend({pid}) AS ok"),
    )
    .await;
    let err = txn
        .execute_unprepared("SELECT 1")
        .await
        .expect_err("the session was terminated");
    let kind = PostgresDialect::default().classify(&err);
    assert!(kind.is_transient(), "{kind:?}: {err}");
    println!("{kind:?}: {err}");
    drop(txn);
    let _ = victim.close().await;
    fresh.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_take_each_task_once_on_postgres() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    // Eight claimers on one pool…
    concurrent_claims_take_each_task_once(vec![store.clone()], 8, 600).await;
    fresh.drop_database().await;

    // …and three pools, as three processes would be.
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    let mut stores = vec![store];
    for _ in 0..2 {
        stores.push(PostgresStore::connect(&fresh.url).await.unwrap());
    }
    concurrent_claims_take_each_task_once(stores, 3, 600).await;
    fresh.drop_database().await;
}

#[tokio::test]
async fn big_mixed_finish_batches() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    big_mixed_finish_batches_apply_per_item(&store).await;
    fresh.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_single_inserts() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    concurrent_single_inserts_race_cleanly(&store).await;
    fresh.drop_database().await;
}

/// The isolation level of the transaction `txn` runs.
async fn trx_isolation(txn: &impl ConnectionTrait) -> String {
    rows(txn, "SELECT current_setting('transaction_isolation') AS l").await[0]
        .try_get::<String>("", "l")
        .unwrap()
}

/// The store's write transactions are `READ COMMITTED` — plain `BEGIN`s under PostgreSQL's
/// default, and set for the transaction when the database's default is another — while the
/// application's transactions on the same pool, `begin_with_tasks` ones included, keep the
/// default, on every pooled connection and after taskrow's transactions ran on them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn write_transactions_read_committed() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    let db = store.connection();
    let txn = store.dialect().begin_write(db).await.unwrap();
    assert_eq!(trx_isolation(&*txn).await, "read committed");
    txn.rollback().await.unwrap();

    // A database whose sessions default to SERIALIZABLE (new sessions see it).
    let admin = Database::connect(testing::server_url().unwrap())
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!(
            "ALTER DATABASE \"{}\" SET default_transaction_isolation = 'serializable'",
            fresh.name
        ))
        .await
        .unwrap();
    let _ = admin.close().await;
    let store = PostgresStore::connect(&fresh.url).await.unwrap();
    let db = store.connection();

    // taskrow's own transactions, several at once so that they open several connections.
    let tasks: Vec<_> = (0..20).map(|i| new_task(&format!("t{i}"), t0())).collect();
    store.insert_many(tasks).await.unwrap();
    let claims: Vec<_> = (0..taskrow_postgres::POOL_SIZE)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let lease = Duration::from_secs(60);
                let req = taskrow::ClaimRequest::new(format!("w{w}"), 2, lease, t0());
                store.claim(&req).await.unwrap()
            })
        })
        .collect();
    let mut claimed = 0;
    for c in claims {
        claimed += c.await.unwrap().len();
    }
    assert_eq!(claimed, 20);

    for _ in 0..3 {
        let own = store.dialect().begin_write(db).await.unwrap();
        assert_eq!(trx_isolation(&*own).await, "read committed");
        own.rollback().await.unwrap();
        let app = db.begin().await.unwrap();
        assert_eq!(trx_isolation(&app).await, "serializable");
        app.commit().await.unwrap();
    }
    let mut apps = Vec::new();
    for _ in 0..4 {
        apps.push(db.begin().await.unwrap());
    }
    for app in apps {
        assert_eq!(trx_isolation(&app).await, "serializable");
        app.rollback().await.unwrap();
    }

    // A task transaction is the application's too.
    let client = Client::builder(store.clone()).build().unwrap();
    let tx = store.begin_with_tasks(&client).await.unwrap();
    assert_eq!(trx_isolation(&*tx).await, "serializable");
    tx.rollback().await.unwrap();
    drop(store);
    fresh.drop_database().await;
}

#[tokio::test]
async fn claimed_rows_are_stored_rows() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    claimed_rows_are_the_stored_rows(&store).await;
    fresh.drop_database().await;
}

/// Connections the server dropped while they sat idle in the pool (a restart,
/// `idle_session_timeout`) are pinged when next taken, found dead and replaced: the store's
/// calls go through.
#[tokio::test]
async fn connections_dropped_while_idle_are_replaced() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    store.insert(new_task("before", t0())).await.unwrap();
    let admin = Database::connect(testing::server_url().unwrap())
        .await
        .unwrap();
    let killed = rows(
        &admin,
        &format!(
            "SELECT COUNT(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            fresh.name
        ),
    )
    .await[0]
        .try_get::<i64>("", "n")
        .unwrap();
    assert!(killed > 0);
    tokio::time::sleep(taskrow_postgres::PING_AFTER_IDLE + Duration::from_millis(200)).await;
    for i in 0..5 {
        store
            .insert(new_task(&format!("after-{i}"), t0()))
            .await
            .expect("a dropped idle connection is replaced");
    }
    assert_eq!(
        store.get(&TaskRef::from("before")).await.unwrap().code,
        "before"
    );
    let _ = admin.close().await;
    fresh.drop_database().await;
}

#[tokio::test]
async fn claims_come_oldest_due_first() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    claims_oldest_due_first(&store).await;
    fresh.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_now_has_one_winner() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    claim_one_has_one_winner(&store).await;
    fresh.drop_database().await;
}

#[tokio::test]
async fn insert_on_joins_the_callers_transaction() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    insert_on_follows_the_callers_transaction(&store).await;
    fresh.drop_database().await;
}

#[tokio::test]
async fn insert_many_reports_the_duplicate() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    insert_many_names_the_duplicate(&store).await;
    fresh.drop_database().await;
}

#[tokio::test]
async fn codes_compare_exactly() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    text_compares_exactly(&store).await;
    fresh.drop_database().await;
}

#[tokio::test]
async fn a_failing_unreadable_row_does_not_drop_the_batch() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    a_failing_unreadable_row_keeps_the_batch(&store).await;
    fresh.drop_database().await;
}

#[tokio::test]
async fn claim_tokens_fence_finishes_extensions_and_releases() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    claim_tokens_fence_writes(&store).await;
    fresh.drop_database().await;
}

#[tokio::test]
async fn a_finish_retried_after_it_applied_is_applied() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    finish_retried_after_applied_is_applied(&store).await;
    fresh.drop_database().await;
}

#[tokio::test]
async fn a_worker_lost_at_the_last_attempt_fails_the_task() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    worker_lost_at_the_last_attempt_fails_the_task(&store).await;
    fresh.drop_database().await;
}

#[tokio::test]
async fn an_interrupted_run_gives_the_attempt_back() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    interrupted_runs_give_the_attempt_back(&store).await;
    fresh.drop_database().await;
}

#[tokio::test]
async fn check_schema_refuses_older_and_newer_schemas() {
    let Some(fresh) = testing::fresh_database().await else {
        return;
    };
    let store = PostgresStore::connect(&fresh.url).await.unwrap();
    check_schema_reads_the_history(&store).await;
    fresh.drop_database().await;
}

/// A store write beside an open task transaction does not wait for it on PostgreSQL (another
/// connection, row locks only): each goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_inside_a_task_transaction_goes_through() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    for c in writes_beside_an_open_task_transaction(&store).await {
        c.result.unwrap_or_else(|e| panic!("{}: {e}", c.what));
        assert!(c.took < Duration::from_secs(2), "{}: {:?}", c.what, c.took);
    }
    fresh.drop_database().await;
}

// ---------------------------------------------------------------------------------------------
// LISTEN/NOTIFY wake-ups

/// Waits until `what` holds, checking every 20 ms, for at most `bound`.
async fn eventually<F, Fut>(what: &str, bound: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < bound, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for the next change of `rx`, for at most `bound`.
async fn next_wakeup(rx: &mut tokio::sync::watch::Receiver<u64>, bound: Duration) -> bool {
    matches!(tokio::time::timeout(bound, rx.changed()).await, Ok(Ok(())))
}

/// Whether the listener of the database `name` is connected (as `pg_stat_activity` shows it).
async fn listening(admin: &DatabaseConnection, name: &str) -> Vec<i32> {
    rows(
        admin,
        &format!(
            "SELECT pid FROM pg_stat_activity WHERE datname = '{name}' \
             AND application_name = '{}'",
            taskrow_postgres::APPLICATION_NAME
        ),
    )
    .await
    .iter()
    .map(|r| r.try_get::<i32>("", "pid").unwrap())
    .collect()
}

/// A store with a started worker (poll 10 s) whose listener is connected, and another store
/// on the same database (another pool, as another process would have); both clients on the
/// system clock (see `a_worker_wakes_for_another_process_enqueue` for why).
struct Listening {
    store: PostgresStore,
    fresh: testing::FreshDatabase,
    worker: taskrow::WorkerHandle,
    other: PostgresStore,
    other_client: Client,
    admin: DatabaseConnection,
}

impl Listening {
    async fn start() -> Option<Self> {
        let (store, fresh) = testing::fresh_store().await?;
        let on_system_clock = |s: &PostgresStore| {
            Client::builder(s.clone())
                .clock(taskrow::SystemClock)
                .build()
                .unwrap()
        };
        let worker = on_system_clock(&store)
            .worker()
            .poll_interval(Duration::from_secs(10))
            .start()
            .unwrap();
        let other = PostgresStore::connect(&fresh.url).await.unwrap();
        let other_client = on_system_clock(&other);
        let admin = Database::connect(testing::server_url().unwrap())
            .await
            .unwrap();
        eventually("the listener connects", Duration::from_secs(5), || {
            let (admin, name) = (&admin, &fresh.name);
            async move { !listening(admin, name).await.is_empty() }
        })
        .await;
        Some(Self {
            store,
            fresh,
            worker,
            other,
            other_client,
            admin,
        })
    }

    /// Whether the task `code` has run (has a log row).
    async fn ran(&self, code: &str) -> bool {
        !self
            .store
            .logs(&LogFilter::code(code))
            .await
            .unwrap()
            .is_empty()
    }

    async fn stop(self) {
        self.worker.shutdown().await;
        drop((self.other_client, self.other, self.store));
        let _ = self.admin.close().await;
        self.fresh.drop_database().await;
    }
}

/// A worker whose poll is 10 s picks up, within 2 s, a task enqueued through another store
/// (another pool, as another process would have): alone, and inside a transaction, at its
/// commit.
///
/// Both clients keep the system clock, which two processes on one host share exactly. With the
/// default `DatabaseClock`, two processes' readings of the database's time differ by up to half
/// a round trip each (a first reading that opened a connection: milliseconds), so a task the
/// other process enqueued "now" can be a few milliseconds in the waking worker's future: its
/// claim finds nothing and the task waits for the poll. That is the clock's bound, not the
/// wake-up's; this test is about the wake-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_wakes_for_another_process_enqueue() {
    let Some(l) = Listening::start().await else {
        return;
    };
    // The worker is idle (its first claim found nothing) and listening.
    tokio::time::sleep(Duration::from_millis(200)).await;

    for round in 0..3u32 {
        let code = format!("remote-{round}");
        let sent = Instant::now();
        l.other_client
            .enqueue(&Ping { n: round }, EnqueueOptions::new().code(code.clone()))
            .await
            .unwrap();
        eventually("the remote task to run", Duration::from_secs(2), || {
            l.ran(&code)
        })
        .await;
        println!("{code} picked up in {:?}", sent.elapsed());
    }

    // Inside a transaction of the other process: the task runs after the commit.
    let mut tx = l.other.begin_with_tasks(&l.other_client).await.unwrap();
    tx.enqueue(
        &Ping { n: 9 },
        EnqueueOptions::new()
            .code("in-tx")
            .dispatch(taskrow::Dispatch::Scheduled),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        l.store.get(&TaskRef::from("in-tx")).await.is_err(),
        "not visible before the commit"
    );
    let committed = tx.commit().await.unwrap();
    let sent = Instant::now();
    drop(committed);
    eventually("the committed task to run", Duration::from_secs(2), || {
        l.ran("in-tx")
    })
    .await;
    println!("in-tx picked up in {:?}", sent.elapsed());
    l.stop().await;
}

/// Tasks that become due by a change other than an insert wake another process's idle worker
/// too (its poll is 10 s; each must run within 2 s): a resumed queue, and tasks a worker there
/// handed back unstarted. (A reset: the shared `wakes_for_another_stores_commits`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_wakes_for_another_process_resume_and_release() {
    let Some(l) = Listening::start().await else {
        return;
    };
    let within_2s = |what: &'static str, code: &'static str| {
        let l = &l;
        async move {
            let sent = Instant::now();
            eventually(what, Duration::from_secs(2), || l.ran(code)).await;
            println!("{what}: picked up in {:?}", sent.elapsed());
        }
    };

    // A resumed queue.
    l.other_client.pause_queue("default").await.unwrap();
    l.other_client
        .enqueue(&Ping { n: 2 }, EnqueueOptions::new().code("held"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!l.ran("held").await, "its queue is paused");
    l.other_client.resume_queue("default").await.unwrap();
    within_2s("the resumed queue's task", "held").await;

    // Tasks handed back: claimed by the other process, released unstarted.
    l.other_client
        .enqueue(
            &Ping { n: 3 },
            EnqueueOptions::new()
                .code("handed-back")
                .delay(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    let claimed = l
        .other
        .claim_one(
            &TaskRef::from("handed-back"),
            &taskrow::ClaimOne::new("other", Duration::from_secs(60), chrono::Utc::now()),
        )
        .await
        .unwrap();
    l.other
        .release(&[claimed.lease()], chrono::Utc::now())
        .await
        .unwrap();
    within_2s("the handed-back task", "handed-back").await;
    l.stop().await;
}

/// The listener comes back after its connection is killed, wakes the workers once when it is
/// back (for what was enqueued meanwhile), and hears enqueues again; while it is away the
/// wake-ups are silent (workers poll).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_reconnects_after_a_loss() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    let admin = Database::connect(testing::server_url().unwrap())
        .await
        .unwrap();
    let mut rx = store.wakeups().expect("PostgreSQL has wake-ups");
    assert!(
        next_wakeup(&mut rx, Duration::from_secs(5)).await,
        "a wake-up once listening"
    );
    let other = PostgresStore::connect(&fresh.url).await.unwrap();
    other.insert(new_task("first", t0())).await.unwrap();
    assert!(next_wakeup(&mut rx, Duration::from_secs(2)).await);

    for round in 0..2 {
        let pids = listening(&admin, &fresh.name).await;
        assert_eq!(pids.len(), 1, "one listening connection: {pids:?}");
        rows(
            &admin,
            &format!("SELECT pg_terminate_backend({}) AS ok", pids[0]),
        )
        .await;
        // Back (a new connection), with the wake-up that says to look.
        assert!(
            next_wakeup(&mut rx, Duration::from_secs(5)).await,
            "round {round}: a wake-up after reconnecting"
        );
        eventually("a new listening connection", Duration::from_secs(5), || {
            let (admin, name, old) = (&admin, &fresh.name, pids[0]);
            async move {
                let now = listening(admin, name).await;
                now.len() == 1 && now[0] != old
            }
        })
        .await;
        other
            .insert(new_task(&format!("after-{round}"), t0()))
            .await
            .unwrap();
        assert!(
            next_wakeup(&mut rx, Duration::from_secs(2)).await,
            "round {round}: an enqueue heard after reconnecting"
        );
    }

    // Bursts coalesce: 200 enqueues (200 transactions, 200 notifications) while nobody looks
    // are one change for a worker that looks afterwards.
    for i in 0..200 {
        other
            .insert(new_task(&format!("burst-{i}"), t0()))
            .await
            .unwrap();
    }
    // A batch insert is one statement: one notification.
    let batch: Vec<_> = (0..50).map(|i| new_task(&format!("b-{i}"), t0())).collect();
    other.insert_many(batch).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.has_changed().unwrap());
    rx.borrow_and_update();
    assert!(!rx.has_changed().unwrap(), "one change for the whole burst");

    // The listener ends with the store and its receivers.
    drop(rx);
    drop(store);
    eventually("the listener closes", Duration::from_secs(5), || {
        let (admin, name) = (&admin, &fresh.name);
        async move { listening(admin, name).await.is_empty() }
    })
    .await;
    drop(other);
    let _ = admin.close().await;
    fresh.drop_database().await;
}

/// A store without wake-ups has none, and opens no listening connection.
#[tokio::test]
async fn wakeups_can_be_turned_off() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    let quiet = PostgresStore::from_parts(
        store.connection().clone(),
        store.dialect().clone().without_wakeups(),
    );
    assert!(quiet.wakeups().is_none());
    assert!(
        PostgresStore::from_parts(store.connection().clone(), PostgresDialect::default())
            .wakeups()
            .is_none()
    );
    assert!(store.wakeups().is_some());
    fresh.drop_database().await;
}

/// The shared check of wake-ups (as on SQLite and MySQL): a worker whose poll is 10 s runs,
/// within 2 s, tasks another store enqueues and one it resets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_wakes_for_another_process_commit() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    let other = PostgresStore::connect(&fresh.url).await.unwrap();
    wakes_for_another_stores_commits(&store, &other).await;
    drop((store, other));
    fresh.drop_database().await;
}
