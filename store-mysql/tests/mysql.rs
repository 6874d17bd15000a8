//! taskrow-mysql's own tests: schema, migrations, connection set-up, errors and concurrency.
//! The store's behaviour is the conformance suite's (`taskrow-tests`).
//!
//! They run against the server named by `TASKROW_MYSQL_URL` (e.g.
//! `mysql://root@127.0.0.1:3306`), each in its own `taskrow_test_<uuid>` database, dropped when
//! the test passes. Without the variable they print `skipped: …` and pass (fail under `CI=true`).

#[path = "../../store-sql/tests/common/shared.rs"]
mod shared;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement, TransactionTrait};
use sea_orm_migration::MigratorTrait;
use taskrow::{Error, TaskRef, TaskStore};
use taskrow_migration::Migrator;
use taskrow_mysql::{MysqlDialect, MysqlStore, testing};
use taskrow_sql::entity::{schedule, task, task_log, worker};
use taskrow_sql::{Capabilities, Dialect, ErrorKind};

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

async fn rows(db: &DatabaseConnection, sql: &str) -> Vec<sea_orm::QueryResult> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
}

async fn tables(db: &DatabaseConnection) -> Vec<String> {
    rows(
        db,
        "SELECT CAST(table_name AS CHAR) AS name FROM information_schema.tables \
         WHERE table_schema = DATABASE() ORDER BY table_name",
    )
    .await
    .iter()
    .map(|r| r.try_get::<String>("", "name").unwrap())
    .collect()
}

/// (name, column type, collation) of a table's columns, in order.
async fn columns(db: &DatabaseConnection, table: &str) -> Vec<(String, String, Option<String>)> {
    rows(
        db,
        &format!(
            "SELECT CAST(column_name AS CHAR) AS name, CAST(column_type AS CHAR) AS ty, \
             CAST(collation_name AS CHAR) AS coll FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = '{table}' ORDER BY ordinal_position"
        ),
    )
    .await
    .iter()
    .map(|r| {
        (
            r.try_get::<String>("", "name").unwrap(),
            r.try_get::<String>("", "ty").unwrap(),
            r.try_get::<Option<String>>("", "coll").unwrap(),
        )
    })
    .collect()
}

async fn index_names(db: &DatabaseConnection) -> Vec<String> {
    rows(
        db,
        "SELECT DISTINCT CAST(index_name AS CHAR) AS name FROM information_schema.statistics \
         WHERE table_schema = DATABASE() AND table_name LIKE 'taskrow_task%' ORDER BY name",
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
    let store = MysqlStore::connect(&fresh.url).await.unwrap();
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
    Migrator::up(db, None).await.unwrap();
    assert_eq!(tables(db).await.len(), 6);
    assert_eq!(
        history(db, "taskrow_seaql_migrations").await,
        ALL_MIGRATIONS
    );
    claim_token_columns_come_and_go(db).await;
    queues_migration_comes_and_goes(db).await;
    fresh.drop_database().await;
}

/// The second migration (and the third, after it) down and up again, on a database with rows
/// written before it: its columns and index go and come back, old rows read with their
/// defaults.
async fn claim_token_columns_come_and_go(db: &DatabaseConnection) {
    let names = |cols: Vec<(String, String, Option<String>)>| -> Vec<String> {
        cols.into_iter().map(|c| c.0).collect()
    };
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
        for (name, ty, collation) in &cols {
            if name.ends_with("_at") {
                assert_eq!(ty, "datetime(6)", "{table}.{name}");
            }
            if let Some(c) = collation {
                assert!(
                    c == "utf8mb4_nopad_bin" || c == "utf8mb4_0900_bin",
                    "{table}.{name}: {c}"
                );
            }
        }
    }
    let payload = columns(db, "taskrow_task").await;
    assert!(
        payload
            .iter()
            .any(|(n, ty, _)| n == "payload" && ty == "longtext")
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
            "PRIMARY",
            "uq_taskrow_task_code",
            "uq_taskrow_task_log_run",
        ]
    );
    full_rows_round_trip(&store).await;
    corrupt_rows_are_reported(&store).await;
    unreadable_rows_are_shown_and_deleted(&store).await;
    fresh.drop_database().await;
}

#[tokio::test]
async fn an_application_migrator_lives_beside_taskrows() {
    let Some(fresh) = testing::fresh_database().await else {
        return;
    };
    let store = MysqlStore::connect(&fresh.url).await.unwrap();
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
    let store = MysqlStore::connect(&fresh.url).await.unwrap();
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

#[tokio::test]
async fn connection_errors_say_what_to_do() {
    for url in [
        "postgres://localhost/x",
        "sqlite::memory:",
        "mysql://root@127.0.0.1:3306",
        "mysql://root@127.0.0.1:99999/x",
    ] {
        match MysqlStore::connect(url).await {
            Err(Error::BadUrl { url: u, reason }) => {
                assert_eq!(u, url);
                assert!(!reason.is_empty());
            }
            other => panic!("{url}: expected BadUrl, got {other:?}"),
        }
    }
    let err = MysqlStore::connect("mysql://root:hunter2@127.0.0.1:1/x")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient());
    let message = err.to_string();
    assert!(
        message.contains("mysql://root:***@127.0.0.1:1/x"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");

    let Some(fresh) = testing::fresh_database().await else {
        return;
    };
    let store = MysqlStore::connect(&fresh.url).await.unwrap();
    unmigrated_says_so(&store).await;
    fresh.drop_database().await;
}

/// A lock-wait timeout (1205) is contention: transient, and retried by the store.
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
    wait.execute_unprepared("SET SESSION innodb_lock_wait_timeout = 1")
        .await
        .unwrap();
    let err = wait
        .execute_unprepared(&format!(
            "UPDATE taskrow_task SET version = version + 1 WHERE id = {}",
            r.id
        ))
        .await
        .unwrap_err();
    assert_eq!(
        MysqlDialect::default().classify(&err),
        ErrorKind::Contention,
        "{err}"
    );
    wait.rollback().await.unwrap();
    hold.rollback().await.unwrap();

    // The row is free again: the store's writes go through.
    store
        .cancel(&TaskRef::Id(r.id), t0())
        .await
        .expect("cancel after the lock went");
    fresh.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_take_each_task_once_on_mariadb() {
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
        stores.push(MysqlStore::connect(&fresh.url).await.unwrap());
    }
    concurrent_claims_take_each_task_once(stores, 3, 600).await;
    fresh.drop_database().await;
}

#[tokio::test]
async fn big_mixed_finish_batches() {
    // MariaDB groups the deletes; as on MySQL 8, every item is its own statement.
    for caps in [None, Some(Capabilities::NONE)] {
        let Some((store, fresh)) = testing::fresh_store().await else {
            return;
        };
        let store = match caps {
            None => store,
            Some(caps) => MysqlStore::from_parts(
                store.connection().clone(),
                store.dialect().clone().assuming(caps),
            ),
        };
        big_mixed_finish_batches_apply_per_item(&store).await;
        fresh.drop_database().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_single_inserts() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    concurrent_single_inserts_race_cleanly(&store).await;
    fresh.drop_database().await;
}

/// The isolation level of the transaction `txn` runs (once it has read an InnoDB table).
async fn trx_isolation(txn: &impl ConnectionTrait) -> String {
    txn.query_one_raw(Statement::from_string(
        txn.get_database_backend(),
        "SELECT COUNT(*) AS n FROM taskrow_task",
    ))
    .await
    .unwrap();
    // The server refreshes `innodb_trx` at most every 100 ms.
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    txn.query_one_raw(Statement::from_string(
        txn.get_database_backend(),
        "SELECT CAST(trx_isolation_level AS CHAR) AS level FROM information_schema.innodb_trx \
         WHERE trx_mysql_thread_id = CONNECTION_ID()",
    ))
    .await
    .unwrap()
    .expect("the transaction shows in innodb_trx")
    .try_get::<String>("", "level")
    .unwrap()
}

/// The isolation level `conn`'s session gives its transactions (`@@transaction_isolation` on
/// MySQL 8 and MariaDB 11.1+, `@@tx_isolation` on MariaDB before), `REPEATABLE-READ` style.
async fn session_isolation(conn: &impl ConnectionTrait) -> String {
    let backend = conn.get_database_backend();
    let mut last = None;
    for var in ["@@SESSION.transaction_isolation", "@@SESSION.tx_isolation"] {
        let sql = format!("SELECT CAST({var} AS CHAR) AS l");
        match conn
            .query_one_raw(Statement::from_string(backend, sql))
            .await
        {
            Ok(row) => return row.unwrap().try_get::<String>("", "l").unwrap(),
            Err(e) => last = Some(e),
        }
    }
    panic!("neither isolation variable reads: {last:?}")
}

/// On a pool `connect` opened, the application's transactions — plain ones and
/// `begin_with_tasks` ones — keep the server's isolation level (`REPEATABLE READ`, MariaDB's
/// default), on every pooled connection and after taskrow's own `READ COMMITTED` transactions
/// ran on the same connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn application_transactions_keep_the_servers_isolation() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    let db = store.connection();
    let server = rows(db, "SELECT CAST(@@GLOBAL.tx_isolation AS CHAR) AS l").await[0]
        .try_get::<String>("", "l")
        .unwrap();
    assert_eq!(server, "REPEATABLE-READ", "the test server's default level");

    // taskrow's own transactions, several at once so that they open several connections.
    let tasks: Vec<_> = (0..20).map(|i| new_task(&format!("t{i}"), t0())).collect();
    store.insert_many(tasks).await.unwrap();
    let claims: Vec<_> = (0..taskrow_mysql::POOL_SIZE)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let lease = std::time::Duration::from_secs(60);
                let req = taskrow::ClaimRequest::new(format!("w{w}"), 2, lease, t0());
                store.claim(&req).await.unwrap()
            })
        })
        .collect();
    for c in claims {
        c.await.unwrap();
    }

    // The application's transactions, one after another between taskrow's (so on the same
    // connection), and several at once (so on several).
    for _ in 0..3 {
        let own = store.dialect().begin_write(db).await.unwrap();
        assert_eq!(trx_isolation(&*own).await, "READ COMMITTED");
        own.rollback().await.unwrap();
        let app = db.begin().await.unwrap();
        assert_eq!(session_isolation(&app).await, "REPEATABLE-READ");
        assert_eq!(trx_isolation(&app).await, "REPEATABLE READ");
        app.commit().await.unwrap();
    }
    let mut apps = Vec::new();
    for _ in 0..4 {
        apps.push(db.begin().await.unwrap());
    }
    for app in apps {
        assert_eq!(session_isolation(&app).await, "REPEATABLE-READ");
        app.rollback().await.unwrap();
    }
    assert_eq!(session_isolation(db).await, "REPEATABLE-READ");

    // A task transaction is the application's too.
    let client = taskrow::Client::builder(store.clone()).build().unwrap();
    let tx = store.begin_with_tasks(&client).await.unwrap();
    assert_eq!(session_isolation(&*tx).await, "REPEATABLE-READ");
    assert_eq!(trx_isolation(&*tx).await, "REPEATABLE READ");
    tx.rollback().await.unwrap();
    fresh.drop_database().await;
}

/// The store's write transactions are `READ COMMITTED`, on a pool it opened and on one opened
/// elsewhere alike (each transaction sets its level), and the sessions keep their own level.
#[tokio::test]
async fn write_transactions_read_committed() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    let elsewhere =
        MysqlStore::from_connection(Database::connect(&fresh.url).await.unwrap()).unwrap();
    for store in [store, elsewhere] {
        let txn = store
            .dialect()
            .begin_write(store.connection())
            .await
            .unwrap();
        assert_eq!(trx_isolation(&*txn).await, "READ COMMITTED");
        assert_eq!(session_isolation(&*txn).await, "REPEATABLE-READ");
        txn.rollback().await.unwrap();
        assert_eq!(
            session_isolation(store.connection()).await,
            "REPEATABLE-READ"
        );
    }
    fresh.drop_database().await;
}

/// `SELECT v FROM probe` in `txn`.
async fn probe_value(txn: &sea_orm::DatabaseTransaction) -> i32 {
    let stmt = Statement::from_string(txn.get_database_backend(), "SELECT v FROM probe");
    let row = txn.query_one_raw(stmt).await.unwrap().unwrap();
    row.try_get::<i32>("", "v").unwrap()
}

/// A store transaction whose caller stops waiting in the middle of its begin (between the
/// `SET TRANSACTION` and the `BEGIN`, or anywhere else) leaves no `READ COMMITTED` pending for
/// the connection's next transaction: the application's, on a pool of one connection, still
/// reads as `REPEATABLE READ` does (a row changed and committed meanwhile reads as before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_begin_cut_short_leaves_no_level_behind() {
    let Some(fresh) = testing::fresh_database().await else {
        return;
    };
    let one = sea_orm::ConnectOptions::new(fresh.url.clone())
        .max_connections(1)
        .to_owned();
    let store = MysqlStore::from_connection(Database::connect(one).await.unwrap()).unwrap();
    let db = store.connection();
    let admin = Database::connect(&fresh.url).await.unwrap();
    admin
        .execute_unprepared("CREATE TABLE probe (id INT PRIMARY KEY, v INT NOT NULL)")
        .await
        .unwrap();
    admin
        .execute_unprepared("INSERT INTO probe VALUES (1, 0)")
        .await
        .unwrap();
    let mut cut = 0;
    for i in 0..200u64 {
        // Cut after 0–399 µs: before, between and after the two statements.
        let after = std::time::Duration::from_micros(i * 2 % 400);
        match tokio::time::timeout(after, store.dialect().begin_write(db)).await {
            Ok(txn) => txn.unwrap().rollback().await.unwrap(),
            Err(_) => cut += 1,
        }
        let app = db.begin().await.unwrap();
        let before = probe_value(&app).await;
        admin
            .execute_unprepared("UPDATE probe SET v = v + 1")
            .await
            .unwrap();
        assert_eq!(
            probe_value(&app).await,
            before,
            "round {i}: the application's transaction read a change committed after it began \
             (READ COMMITTED left behind by a store transaction cut short)"
        );
        app.commit().await.unwrap();
    }
    assert!(cut > 0, "no begin was cut short");
    println!("{cut} of 200 begins cut short");
    let _ = admin.close().await;
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

/// Connections the server dropped while they sat idle in the pool (a restart, `wait_timeout`)
/// are pinged when next taken, found dead and replaced: the store's calls go through.
#[tokio::test]
async fn connections_dropped_while_idle_are_replaced() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    store.insert(new_task("before", t0())).await.unwrap();
    let admin = Database::connect(testing::server_url().unwrap())
        .await
        .unwrap();
    let ids: Vec<i64> = rows(
        &admin,
        &format!(
            "SELECT id FROM information_schema.processlist WHERE db = '{}'",
            fresh.name
        ),
    )
    .await
    .iter()
    .map(|r| r.try_get::<i64>("", "id").unwrap())
    .collect();
    assert!(!ids.is_empty());
    for id in ids {
        admin
            .execute_unprepared(&format!("KILL CONNECTION {id}"))
            .await
            .unwrap();
    }
    tokio::time::sleep(taskrow_mysql::PING_AFTER_IDLE + std::time::Duration::from_millis(200))
        .await;
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
    // MariaDB groups the deletes; as on MySQL 8, every item is its own statement.
    for caps in [None, Some(Capabilities::NONE)] {
        let Some((store, fresh)) = testing::fresh_store().await else {
            return;
        };
        let store = match caps {
            None => store,
            Some(caps) => MysqlStore::from_parts(
                store.connection().clone(),
                store.dialect().clone().assuming(caps),
            ),
        };
        claim_tokens_fence_writes(&store).await;
        fresh.drop_database().await;
    }
}

#[tokio::test]
async fn a_finish_retried_after_it_applied_is_applied() {
    // MariaDB groups the deletes; as on MySQL 8, every item is its own statement.
    for caps in [None, Some(Capabilities::NONE)] {
        let Some((store, fresh)) = testing::fresh_store().await else {
            return;
        };
        let store = match caps {
            None => store,
            Some(caps) => MysqlStore::from_parts(
                store.connection().clone(),
                store.dialect().clone().assuming(caps),
            ),
        };
        finish_retried_after_applied_is_applied(&store).await;
        fresh.drop_database().await;
    }
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
    // MariaDB groups the deletes; as on MySQL 8, every item is its own statement.
    for caps in [None, Some(Capabilities::NONE)] {
        let Some((store, fresh)) = testing::fresh_store().await else {
            return;
        };
        let store = match caps {
            None => store,
            Some(caps) => MysqlStore::from_parts(
                store.connection().clone(),
                store.dialect().clone().assuming(caps),
            ),
        };
        interrupted_runs_give_the_attempt_back(&store).await;
        fresh.drop_database().await;
    }
}

#[tokio::test]
async fn check_schema_refuses_older_and_newer_schemas() {
    let Some(fresh) = testing::fresh_database().await else {
        return;
    };
    let store = MysqlStore::connect(&fresh.url).await.unwrap();
    check_schema_reads_the_history(&store).await;
    fresh.drop_database().await;
}

/// A store write beside an open task transaction does not wait for it on MySQL (another
/// connection, row locks only): each goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_inside_a_task_transaction_goes_through() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    for c in writes_beside_an_open_task_transaction(&store).await {
        c.result.unwrap_or_else(|e| panic!("{}: {e}", c.what));
        assert!(
            c.took < std::time::Duration::from_secs(2),
            "{}: {:?}",
            c.what,
            c.took
        );
    }
    fresh.drop_database().await;
}

/// The store reads the server's own UTC time (`UTC_TIMESTAMP(6)`), and a
/// client on it follows that time by default: `DatabaseClock` is within a round trip of the
/// server, whatever this host's wall clock says.
#[tokio::test]
async fn the_database_clock_follows_the_servers_time() {
    use taskrow::Client;
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    assert!(store.has_database_time());
    let server = store
        .database_time()
        .await
        .unwrap()
        .expect("MySQL has a time");
    let local = taskrow::chrono::Utc::now();
    assert!(
        (local - server).num_milliseconds().abs() < 2_000,
        "server {server}, this host {local}: the same machine, so within a moment"
    );
    let client = Client::builder(store.clone()).build().unwrap();
    assert!(
        format!("{:?}", client.clock()).starts_with("DatabaseClock"),
        "the default clock on MySQL follows the database: {:?}",
        client.clock()
    );
    client.clock().ready().await.unwrap();
    let followed = client.clock().now();
    let server = store.database_time().await.unwrap().unwrap();
    assert!(
        (server - followed).num_milliseconds().abs() < 200,
        "the clock ({followed}) follows the server ({server})"
    );
    fresh.drop_database().await;
}

// ---------------------------------------------------------------------------------------------
// Wake-ups from other processes

/// A worker whose poll is 10 s picks up, within 2 s, a task that another store on the same
/// database (another pool, as another process would have) enqueues, or resets: the store's
/// check of the newest id and earliest pending time wakes it (see
/// `wakes_for_another_stores_commits`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_wakes_for_another_process_commit() {
    let Some((store, fresh)) = testing::fresh_store().await else {
        return;
    };
    let other = MysqlStore::connect(&fresh.url).await.unwrap();
    wakes_for_another_stores_commits(&store, &other).await;
    let off = MysqlStore::from_parts(
        store.connection().clone(),
        store.dialect().clone().without_wakeups(),
    );
    assert!(off.wakeups().is_none());
    drop((store, other, off));
    fresh.drop_database().await;
}
