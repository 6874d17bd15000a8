// Tests shared by the SQLite, MySQL and PostgreSQL stores' test binaries (included with
// `#[path]`): each function takes a fresh, migrated store. The full contract is the conformance
// suite's (`taskrow-tests`); these check what only a SQL store can get wrong.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sea_orm::sea_query::{Alias, ColumnDef, Table};
use sea_orm::{ConnectionTrait, EntityTrait, Iterable, Statement, TransactionTrait};
use taskrow::chrono::{DateTime, TimeDelta, Utc};
use taskrow::{
    ClaimOne, ClaimRequest, EnqueueOptions, Error, Finish, FinishResult, FinishStatus, Lease,
    LogFilter, NewTask, Outcome, ResetTarget, Task, TaskContext, TaskError, TaskLog, TaskRef,
    TaskState, TaskStore, async_trait, typetag,
};
use taskrow_sql::entity::{task, task_log};
use taskrow_sql::{Dialect, SqlStore};

#[derive(Debug, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct Ping {
    pub n: u32,
}

#[typetag::serde(name = "store_sql_test.ping")]
#[async_trait]
impl Task for Ping {
    async fn run(&self, _ctx: &TaskContext) -> Result<(), TaskError> {
        Ok(())
    }
}

/// 2026-01-01T00:00:00.123456Z: a time with microseconds.
pub fn t0() -> DateTime<Utc> {
    "2026-01-01T00:00:00.123456Z".parse().unwrap()
}

pub fn new_task(code: &str, now: DateTime<Utc>) -> NewTask {
    EnqueueOptions::new()
        .code(code)
        .build(&Ping { n: 1 }, now)
        .unwrap()
}

/// The entity's column names, in order.
pub fn entity_columns<E: EntityTrait>() -> Vec<String> {
    E::Column::iter()
        .map(|c| sea_orm::IdenStatic::as_str(&c).to_owned())
        .collect()
}

/// A row with every column set goes in through the entity and comes back equal.
pub async fn full_rows_round_trip<D: Dialect>(store: &SqlStore<D>) {
    let db = store.connection();
    let at = t0() + TimeDelta::microseconds(1);
    let payload = "x".repeat(3 << 20); // several MB must fit
    let row = task::Model {
        id: 0,
        code: "full-row".into(),
        task_type: "store_sql_test.ping".into(),
        payload: format!("{{\"n\":1,\"pad\":\"{payload}\"}}"),
        name: "Full row ✓".into(),
        description: Some("every column set".into()),
        biz_type: "orders".into(),
        state: 1,
        attempts: 2,
        max_attempts: Some(7),
        retry_policy: taskrow::RetryPolicy::default().to_json(),
        timeout_ms: Some(1_500),
        on_success: 1,
        dispatch: 2,
        run_at: Some(at.naive_utc()),
        lease_owner: Some("worker-1".into()),
        last_error: Some("boom".into()),
        version: 41,
        created_at: t0().naive_utc(),
        updated_at: at.naive_utc(),
        claim_token: Some(-7_000_000_000_000_000_001),
        claimed_at: Some(t0().naive_utc()),
        interruptions: 2,
        queue: "ωmails-✓".into(),
        priority: 2,
        due_at: Some(t0().naive_utc()),
        cancel_requested_at: Some(at.naive_utc()),
    };
    let id = task::Entity::insert(row.clone().into_insert())
        .exec(db)
        .await
        .unwrap()
        .last_insert_id;
    let back = task::Entity::find_by_id(id).one(db).await.unwrap().unwrap();
    assert_eq!(back, task::Model { id, ..row });
    let record = back.into_record().unwrap();
    assert_eq!(record.state, TaskState::Running);
    assert_eq!(record.lease_expires_at, Some(at));
    assert_eq!(record.next_run_at, None);
    assert_eq!(record.claim_token, Some(-7_000_000_000_000_000_001));
    assert_eq!(record.claimed_at, Some(t0()));
    assert_eq!(record.interruptions, 2);
    assert_eq!(record.lease().token, -7_000_000_000_000_000_001);
    assert_eq!(record.queue, "ωmails-✓");
    assert_eq!(record.priority, taskrow::Priority::Low);

    let log = task_log::Model {
        id: 0,
        task_id: id,
        code: "full-row".into(),
        task_type: "store_sql_test.ping".into(),
        attempt: 2,
        started_at: at.naive_utc(),
        duration_ms: 12,
        outcome: 2,
        error: Some("boom".into()),
        worker: "worker-1".into(),
        claim_token: Some(-7_000_000_000_000_000_001),
    };
    let mut am: task_log::ActiveModel = log.clone().into();
    am.id = sea_orm::ActiveValue::NotSet;
    let log_id = task_log::Entity::insert(am)
        .exec(db)
        .await
        .unwrap()
        .last_insert_id;
    let back = task_log::Entity::find_by_id(log_id)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        back,
        task_log::Model {
            id: log_id,
            ..log.clone()
        }
    );
    let back = back.into_log().unwrap();
    assert_eq!(back.claim_token, Some(-7_000_000_000_000_000_001));
    assert_eq!(back.outcome, Outcome::Retrying);

    // A second log row of the same run is refused; rows without a token (written before
    // tokens) never collide.
    let mut again: task_log::ActiveModel = log.clone().into();
    again.id = sea_orm::ActiveValue::NotSet;
    assert!(task_log::Entity::insert(again).exec(db).await.is_err());
    for _ in 0..2 {
        let mut old: task_log::ActiveModel = task_log::Model {
            claim_token: None,
            ..log.clone()
        }
        .into();
        old.id = sea_orm::ActiveValue::NotSet;
        task_log::Entity::insert(old).exec(db).await.unwrap();
    }
}

/// Out-of-range codes in a row are `CorruptRow`, naming the row.
pub async fn corrupt_rows_are_reported<D: Dialect>(store: &SqlStore<D>) {
    let r = store.insert(new_task("corrupt", t0())).await.unwrap();
    let db = store.connection();
    db.execute_unprepared(&format!(
        "UPDATE taskrow_task SET state = 9 WHERE id = {}",
        r.id
    ))
    .await
    .unwrap();
    match store.get(&TaskRef::Id(r.id)).await {
        Err(Error::CorruptRow { id, reason }) => {
            assert_eq!(id, r.id);
            assert!(reason.contains("state 9"), "{reason}");
        }
        other => panic!("expected CorruptRow, got {other:?}"),
    }
    // A priority this version does not know.
    let r = store.insert(new_task("corrupt-level", t0())).await.unwrap();
    db.execute_unprepared(&format!(
        "UPDATE taskrow_task SET priority = 7 WHERE id = {}",
        r.id
    ))
    .await
    .unwrap();
    match store.get(&TaskRef::Id(r.id)).await {
        Err(Error::CorruptRow { id, reason }) => {
            assert_eq!(id, r.id);
            assert!(reason.contains("priority 7"), "{reason}");
        }
        other => panic!("expected CorruptRow, got {other:?}"),
    }
}

/// Rows this version cannot read do not break the operator's reads: `list_rows` shows each in
/// its place with the decode error, `unreadable` finds those with out-of-range codes, `counts`
/// and `queues` leave them out, and `delete_unreadable` removes them (by id and by code) where
/// `delete` refuses with `CorruptRow`.
pub async fn unreadable_rows_are_shown_and_deleted<D: Dialect>(store: &SqlStore<D>) {
    let db = store.connection();
    let total = |counts: Vec<taskrow::StateCount>| counts.iter().map(|c| c.count).sum::<u64>();
    let counted_before = total(store.counts().await.unwrap());
    let mut ids = Vec::new();
    for code in ["u-a", "u-state", "u-b", "u-level", "u-retry"] {
        ids.push(store.insert(new_task(code, t0())).await.unwrap().id);
    }
    for (id, set) in [
        (ids[1], "state = 9"),
        (ids[3], "priority = 7"),
        (ids[4], "retry_policy = 'garbage'"),
    ] {
        db.execute_unprepared(&format!("UPDATE taskrow_task SET {set} WHERE id = {id}"))
            .await
            .unwrap();
    }
    let filter = taskrow::TaskFilter::all().code_prefix("u-");
    let page = taskrow::Page::first(100);
    assert!(matches!(
        store.list(&filter, &page).await,
        Err(Error::CorruptRow { id, .. }) if id == ids[1]
    ));
    let rows = store.list_rows(&filter, &page).await.unwrap();
    let shown: Vec<(i64, Option<String>)> = rows
        .iter()
        .map(|r| match r {
            taskrow::ListedRow::Task(t) => (t.id, None),
            taskrow::ListedRow::Unreadable(u) => (u.id, Some(u.reason.clone())),
        })
        .collect();
    assert_eq!(shown.iter().map(|r| r.0).collect::<Vec<_>>(), ids);
    assert!(shown[0].1.is_none() && shown[2].1.is_none(), "{shown:?}");
    for (i, want) in [(1, "state 9"), (3, "priority 7"), (4, "retry_policy")] {
        let reason = shown[i]
            .1
            .as_deref()
            .unwrap_or_else(|| panic!("row {i}: {shown:?}"));
        assert!(reason.contains(want), "{reason}");
    }
    if let taskrow::ListedRow::Unreadable(u) = &rows[1] {
        assert_eq!(
            (u.code.as_str(), u.task_type.as_str()),
            ("u-state", "store_sql_test.ping")
        );
    }
    let found: Vec<i64> = store
        .unreadable(&page)
        .await
        .unwrap()
        .into_iter()
        .filter(|u| u.code.starts_with("u-"))
        .map(|u| u.id)
        .collect();
    assert_eq!(
        found,
        [ids[1], ids[3]],
        "out-of-range codes are found in SQL"
    );
    // Counts leave out the state-9 and priority-7 rows; the bad retry policy is counted.
    assert_eq!(total(store.counts().await.unwrap()), counted_before + 3);
    store.queues().await.unwrap();

    assert!(matches!(
        store.delete(&TaskRef::Id(ids[1]), t0()).await,
        Err(Error::CorruptRow { id, .. }) if id == ids[1]
    ));
    let gone = store.delete_unreadable(&TaskRef::Id(ids[1])).await.unwrap();
    assert_eq!((gone.id, gone.code.as_str()), (ids[1], "u-state"));
    let gone = store.delete_unreadable(&"u-retry".into()).await.unwrap();
    assert_eq!(gone.id, ids[4]);
    assert!(matches!(
        store.delete_unreadable(&"u-a".into()).await,
        Err(Error::InvalidInput(m)) if m.contains("can be read")
    ));
    assert!(matches!(
        store.delete_unreadable(&TaskRef::Id(ids[1])).await,
        Err(Error::NotFound(_))
    ));
    let left: Vec<i64> = store
        .list_rows(&filter, &page)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id())
        .collect();
    assert_eq!(left, [ids[0], ids[2], ids[3]]);
}

/// Times keep their microseconds through insert, claim, finish and the log.
pub async fn microseconds_read_back_equal<D: Dialect>(store: &SqlStore<D>) {
    let now = t0() + TimeDelta::microseconds(999_999);
    let inserted = store.insert(new_task("micros", now)).await.unwrap();
    assert_eq!(inserted.next_run_at, Some(now));
    let got = store.get(&TaskRef::Id(inserted.id)).await.unwrap();
    assert_eq!(got, inserted);

    let claim_at = now + TimeDelta::microseconds(7);
    let lease = Duration::from_micros(30_000_001);
    let claimed = store
        .claim(&ClaimRequest::new("w", 10, lease, claim_at))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let expected_expiry = claim_at + TimeDelta::microseconds(30_000_001);
    assert_eq!(claimed[0].lease_expires_at, Some(expected_expiry));
    assert_eq!(claimed[0].updated_at, claim_at);
    assert_eq!(
        store.get(&TaskRef::Id(inserted.id)).await.unwrap(),
        claimed[0]
    );

    let retry_at = claim_at + TimeDelta::microseconds(1_000_001);
    let f = Finish::new(
        &claimed[0],
        claimed[0].lease(),
        "w",
        claim_at,
        3,
        FinishResult::Retry {
            at: retry_at,
            error: "again".into(),
        },
    );
    store.finish(vec![f], claim_at).await.unwrap();
    let after = store.get(&TaskRef::Id(inserted.id)).await.unwrap();
    assert_eq!(after.next_run_at, Some(retry_at));
    let logs = store
        .logs(&taskrow::LogFilter::task(inserted.id))
        .await
        .unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].started_at, claim_at);

    // Far-future times fit (MariaDB would turn a `TIMESTAMP` parameter past 2038 into NULL), and
    // a lease that would end past year 9999 ends there.
    let far: DateTime<Utc> = "2199-12-31T23:59:59.999999Z".parse().unwrap();
    let f = store.insert(new_task("far", far)).await.unwrap();
    assert_eq!(
        store.get(&TaskRef::Id(f.id)).await.unwrap().next_run_at,
        Some(far)
    );
    let forever = store
        .claim_one(&TaskRef::Id(f.id), &ClaimOne::new("w", Duration::MAX, now))
        .await
        .unwrap();
    assert_eq!(forever.lease_expires_at, Some(taskrow_sql::time::latest()));
    assert_eq!(store.get(&TaskRef::Id(f.id)).await.unwrap(), forever);

    // Due exactly at its time, not a microsecond before.
    let early = store
        .claim(&ClaimRequest::new(
            "w",
            10,
            lease,
            retry_at - TimeDelta::microseconds(1),
        ))
        .await
        .unwrap();
    assert!(early.is_empty());
    let on_time = store
        .claim(&ClaimRequest::new("w", 10, lease, retry_at))
        .await
        .unwrap();
    assert_eq!(on_time.len(), 1);
}

/// Calls on a database without the tables say to migrate.
pub async fn unmigrated_says_so<D: Dialect>(store: &SqlStore<D>) {
    let err = store.get(&TaskRef::Id(1)).await.unwrap_err();
    assert!(matches!(err, Error::NotMigrated), "{err:?}");
    let err = store.insert(new_task("a", t0())).await.unwrap_err();
    assert!(matches!(err, Error::NotMigrated), "{err:?}");
    let err = store
        .claim(&ClaimRequest::new("w", 1, Duration::from_secs(1), t0()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotMigrated), "{err:?}");
    assert!(err.to_string().contains("run the migrations"), "{err}");
}

/// `workers` claimers (each looping until nothing is due) over `tasks` tasks, on `stores`
/// (several stores on one database act as several processes): every task claimed exactly once.
pub async fn concurrent_claims_take_each_task_once<D: Dialect>(
    stores: Vec<SqlStore<D>>,
    workers_per_store: usize,
    tasks: usize,
) {
    let now = t0();
    let batch: Vec<NewTask> = (0..tasks)
        .map(|i| {
            // Spread due times so the claim order matters.
            new_task(
                &format!("c-{i:05}"),
                now - TimeDelta::milliseconds((i % 97) as i64),
            )
        })
        .collect();
    assert_eq!(stores[0].insert_many(batch).await.unwrap(), tasks as u64);

    let mut handles = Vec::new();
    for (s, store) in stores.iter().enumerate() {
        for w in 0..workers_per_store {
            let store = store.clone();
            let worker = format!("s{s}-w{w}");
            handles.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = store
                        .claim(&ClaimRequest::new(
                            &worker,
                            7,
                            Duration::from_secs(600),
                            now,
                        ))
                        .await
                        .unwrap_or_else(|e| panic!("{worker}: {e}"));
                    if got.is_empty() {
                        break;
                    }
                    for r in &got {
                        assert_eq!(r.state, TaskState::Running);
                        assert_eq!(r.attempts, 1);
                        assert_eq!(r.version, 1);
                        assert_eq!(r.lease_owner.as_deref(), Some(worker.as_str()));
                    }
                    mine.extend(got.into_iter().map(|r| r.id));
                    tokio::task::yield_now().await;
                }
                mine
            }));
        }
    }
    let mut seen: HashMap<i64, usize> = HashMap::new();
    let mut per_worker = Vec::new();
    for h in handles {
        let ids = h.await.unwrap();
        per_worker.push(ids.len());
        for id in ids {
            *seen.entry(id).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), tasks, "claimed {} of {tasks}", seen.len());
    assert!(seen.values().all(|&n| n == 1), "a task was claimed twice");
    eprintln!("claims per worker: {per_worker:?}");
}

/// Claims come back oldest due first.
pub async fn claims_oldest_due_first<D: Dialect>(store: &SqlStore<D>) {
    let now = t0();
    for (code, ago) in [("b", 2), ("a", 3), ("c", 1), ("later", -5)] {
        store
            .insert(new_task(code, now - TimeDelta::seconds(ago)))
            .await
            .unwrap();
    }
    let got = store
        .claim(&ClaimRequest::new("w", 10, Duration::from_secs(60), now))
        .await
        .unwrap();
    let codes: Vec<&str> = got.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(codes, ["a", "b", "c"]);
}

/// A task inserted on the application's transaction commits and rolls back with it.
pub async fn insert_on_follows_the_callers_transaction<D: Dialect>(store: &SqlStore<D>) {
    let db = store.connection();
    let txn = db.begin().await.unwrap();
    store
        .insert_on(&txn, new_task("rolled-back", t0()))
        .await
        .unwrap();
    txn.rollback().await.unwrap();
    let err = store.get(&"rolled-back".into()).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");

    let txn = db.begin().await.unwrap();
    let r = store
        .insert_on(&txn, new_task("committed", t0()))
        .await
        .unwrap();
    let dup = store.insert_on(&txn, new_task("committed", t0())).await;
    assert!(
        matches!(dup, Err(Error::DuplicateCode(ref c)) if c == "committed"),
        "{dup:?}"
    );
    txn.commit().await.unwrap();
    assert_eq!(store.get(&"committed".into()).await.unwrap(), r);
}

/// `insert_many` names the duplicate (in the table or in the batch) and inserts nothing.
pub async fn insert_many_names_the_duplicate<D: Dialect>(store: &SqlStore<D>) {
    store.insert(new_task("taken", t0())).await.unwrap();
    let mut batch: Vec<NewTask> = (0..1200)
        .map(|i| new_task(&format!("m-{i}"), t0()))
        .collect();
    batch.push(new_task("taken", t0()));
    let err = store.insert_many(batch.clone()).await.unwrap_err();
    assert!(
        matches!(err, Error::DuplicateCode(ref c) if c == "taken"),
        "{err:?}"
    );
    batch.pop();
    batch.push(new_task("m-3", t0()));
    let err = store.insert_many(batch.clone()).await.unwrap_err();
    assert!(
        matches!(err, Error::DuplicateCode(ref c) if c == "m-3"),
        "{err:?}"
    );
    batch.pop();
    assert_eq!(store.insert_many(batch).await.unwrap(), 1200);
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.iter().map(|c| c.count).sum::<u64>(), 1201);
}

/// Codes, prefixes and type filters are case-sensitive, as in memory.
pub async fn text_compares_exactly<D: Dialect>(store: &SqlStore<D>) {
    store.insert(new_task("Order-1", t0())).await.unwrap();
    store.insert(new_task("order-1", t0())).await.unwrap();
    store.insert(new_task("order_%x", t0())).await.unwrap();
    let got = store
        .list(
            &taskrow::TaskFilter::all().code_prefix("order"),
            &taskrow::Page::first(10),
        )
        .await
        .unwrap();
    let codes: HashSet<&str> = got.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(codes, HashSet::from(["order-1", "order_%x"]));
    let got = store
        .list(
            &taskrow::TaskFilter::all().code_prefix("order_%"),
            &taskrow::Page::first(10),
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(store.get(&"Order-1".into()).await.unwrap().code, "Order-1");
}

/// Run-now claims race with the batch claim and each other: one winner, the others refused.
pub async fn claim_one_has_one_winner<D: Dialect>(store: &SqlStore<D>) {
    let r = store.insert(new_task("contested", t0())).await.unwrap();
    let store = Arc::new(store.clone());
    let mut handles = Vec::new();
    for w in 0..8 {
        let store = Arc::clone(&store);
        handles.push(tokio::spawn(async move {
            store
                .claim_one(
                    &TaskRef::Id(r.id),
                    &ClaimOne::new(format!("w{w}"), Duration::from_secs(60), t0()),
                )
                .await
        }));
    }
    let mut won = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(t) => {
                won += 1;
                assert_eq!(t.attempts, 1);
                assert_eq!(t.version, 1);
            }
            Err(Error::Running { .. }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(won, 1);
}

/// A result batch bigger than one grouped statement, of every kind of result in a scattered
/// order — deletes, kept successes, retries and failures each with their own time and error,
/// stale leases of each kind — is applied item by item: each answer, row and log row (in
/// batch order) is the one its own item calls for. Then a batch naming tasks twice: the first
/// finish of each applies, the later ones are lease lost.
pub async fn big_mixed_finish_batches_apply_per_item<D: Dialect>(store: &SqlStore<D>) {
    let now = t0();
    let lease = Duration::from_secs(60);
    let n = 260;
    for i in 0..n {
        let mut opts = EnqueueOptions::new().code(format!("t{i:03}"));
        if i % 6 == 1 {
            opts = opts.keep_on_success();
        }
        store
            .insert(opts.build(&Ping { n: i }, now).unwrap())
            .await
            .unwrap();
    }
    let claimed = store
        .claim(&ClaimRequest::new("w", 1000, lease, now))
        .await
        .unwrap();
    assert_eq!(claimed.len(), n as usize);
    let at = |i: usize| now + TimeDelta::seconds(100 + i as i64);
    // Kind by i % 6: 0 success (deleted), 1 success (kept), 2 retry, 3 failure, 4 and 5 a stale
    // lease (success, and retry or failure).
    let result = |i: usize| match i % 6 {
        0 | 1 | 4 => FinishResult::Succeeded,
        2 => FinishResult::Retry {
            at: at(i),
            error: format!("retry {i}"),
        },
        3 | 5 if i % 12 == 5 => FinishResult::Retry {
            at: at(i),
            error: format!("stale retry {i}"),
        },
        _ => FinishResult::Failed {
            error: format!("failure {i}"),
        },
    };
    // Scattered: odd positions first, then even ones backwards.
    let order: Vec<usize> = (0..n as usize)
        .filter(|i| i % 2 == 1)
        .chain((0..n as usize).filter(|i| i % 2 == 0).rev())
        .collect();
    let batch: Vec<Finish> = order
        .iter()
        .map(|&i| {
            let r = &claimed[i];
            let mut l = r.lease();
            if i % 6 >= 4 {
                l.token = l.token.wrapping_add(1);
            }
            Finish::new(r, l, "w", now, 7, result(i))
        })
        .collect();
    let later = now + TimeDelta::seconds(1);
    let answers = store.finish(batch, later).await.unwrap();
    let mut logs = store.logs(&taskrow::LogFilter::default()).await.unwrap();
    assert_eq!(logs.len(), n as usize);
    for (k, &i) in order.iter().enumerate() {
        let before = &claimed[i];
        let stale = i % 6 >= 4;
        let expected = if stale {
            FinishStatus::LeaseLost
        } else {
            FinishStatus::Applied
        };
        assert_eq!(answers[k], expected, "item {k} (task {i})");
        let log = &logs[k];
        assert_eq!(
            (log.task_id, log.code.as_str()),
            (before.id, before.code.as_str())
        );
        let row = store.get(&TaskRef::Id(before.id)).await;
        if stale {
            assert_eq!(log.outcome, Outcome::LeaseLost, "task {i}");
            assert_eq!(row.unwrap(), *before, "task {i} must be unchanged");
            continue;
        }
        match i % 6 {
            0 => {
                assert_eq!(log.outcome, Outcome::Succeeded);
                assert!(matches!(row, Err(Error::NotFound(_))), "task {i}: {row:?}");
            }
            1 => {
                assert_eq!(log.outcome, Outcome::Succeeded);
                let row = row.unwrap();
                assert_eq!(row.state, TaskState::Succeeded);
                assert_eq!((row.next_run_at, row.lease_expires_at), (None, None));
                assert_eq!((row.version, row.updated_at), (before.version + 1, later));
            }
            2 => {
                assert_eq!(log.outcome, Outcome::Retrying);
                let error = format!("retry {i}");
                assert_eq!(log.error.as_deref(), Some(error.as_str()));
                let row = row.unwrap();
                assert_eq!(row.state, TaskState::Pending);
                assert_eq!(row.next_run_at, Some(at(i)), "task {i}");
                assert_eq!(row.last_error.as_deref(), Some(error.as_str()));
                assert_eq!((row.version, row.updated_at), (before.version + 1, later));
                assert_eq!(row.attempts, before.attempts);
            }
            _ => {
                assert_eq!(log.outcome, Outcome::Failed);
                let error = format!("failure {i}");
                let row = row.unwrap();
                assert_eq!(row.state, TaskState::Failed);
                assert_eq!(row.next_run_at, None);
                assert_eq!(row.last_error.as_deref(), Some(error.as_str()), "task {i}");
                assert_eq!((row.version, row.updated_at), (before.version + 1, later));
            }
        }
    }

    // The same run twice in one batch: its second finish is answered by the row its first
    // wrote (the same outcome: applied; another: lease lost), and writes nothing.
    store
        .purge(
            &taskrow::Purge::before(later + TimeDelta::seconds(1))
                .states([TaskState::Succeeded, TaskState::Failed]),
        )
        .await
        .unwrap();
    for code in ["twice-a", "twice-b"] {
        store.insert(new_task(code, now)).await.unwrap();
    }
    let mut claimed = store
        .claim(&ClaimRequest::new("w", 10, lease, now).task_types(["store_sql_test.ping"]))
        .await
        .unwrap();
    claimed.retain(|r| r.code.starts_with("twice-"));
    assert_eq!(claimed.len(), 2);
    let (a, b) = (&claimed[0], &claimed[1]);
    let batch = vec![
        Finish::new(a, a.lease(), "w", now, 1, FinishResult::Succeeded),
        Finish::new(
            b,
            b.lease(),
            "w",
            now,
            1,
            FinishResult::Failed { error: "x".into() },
        ),
        Finish::new(a, a.lease(), "w", now, 1, FinishResult::Succeeded),
        Finish::new(b, b.lease(), "w", now, 1, FinishResult::Succeeded),
    ];
    assert_eq!(
        store.finish(batch, later).await.unwrap(),
        [
            FinishStatus::Applied,
            FinishStatus::Applied,
            FinishStatus::Applied,
            FinishStatus::LeaseLost,
        ]
    );
    assert!(store.get(&TaskRef::Id(a.id)).await.is_err());
    assert_eq!(
        store.get(&TaskRef::Id(b.id)).await.unwrap().state,
        TaskState::Failed
    );
    logs = store
        .logs(&taskrow::LogFilter::default().since(now))
        .await
        .unwrap();
    let tail: Vec<(&str, Outcome)> = logs
        .iter()
        .filter(|l| l.code.starts_with("twice-"))
        .map(|l| (l.code.as_str(), l.outcome))
        .collect();
    assert_eq!(
        tail,
        [
            ("twice-a", Outcome::Succeeded),
            ("twice-b", Outcome::Failed)
        ]
    );
}

/// Single inserts from many tasks at once, two for every code, beside a claimer: each code is
/// inserted once and its twin refused with `DuplicateCode`; nothing else fails (no "database
/// is locked", no deadlock).
pub async fn concurrent_single_inserts_race_cleanly<D: Dialect>(store: &SqlStore<D>) {
    let store = Arc::new(store.clone());
    let codes = 200;
    let mut handles = Vec::new();
    for w in 0..8 {
        let store = Arc::clone(&store);
        handles.push(tokio::spawn(async move {
            let (mut won, mut refused) = (0, 0);
            // Writers w and w + 4 insert the same codes.
            for i in (w % 4..codes).step_by(4) {
                match store.insert(new_task(&format!("c{i}"), t0())).await {
                    Ok(_) => won += 1,
                    Err(Error::DuplicateCode(c)) => {
                        assert_eq!(c, format!("c{i}"));
                        refused += 1;
                    }
                    Err(e) => panic!("insert c{i}: {e:?}"),
                }
            }
            (won, refused)
        }));
    }
    let claimer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut claimed = 0;
            for _ in 0..50 {
                claimed += store
                    .claim(&ClaimRequest::new("w", 8, Duration::from_secs(60), t0()))
                    .await
                    .expect("claim")
                    .len();
            }
            claimed
        })
    };
    let (mut won, mut refused) = (0, 0);
    for h in handles {
        let (w, r) = h.await.unwrap();
        won += w;
        refused += r;
    }
    claimer.await.unwrap();
    assert_eq!((won, refused), (codes, codes));
    let all = store
        .list(&taskrow::TaskFilter::all(), &taskrow::Page::first(1000))
        .await
        .unwrap();
    assert_eq!(all.len(), codes);
}

/// The rows a claim returns are the rows as stored after it, every field: for tasks with every
/// option set, a retried one (with its last error) and a reclaim of an expired lease.
pub async fn claimed_rows_are_the_stored_rows<D: Dialect>(store: &SqlStore<D>) {
    let now = t0();
    let lease = Duration::from_secs(60);
    for i in 0..5u32 {
        let opts = EnqueueOptions::new()
            .code(format!("full-{i}"))
            .name(format!("name {i}"))
            .description("a description")
            .biz_type("billing")
            .max_attempts(3 + i)
            .timeout(Duration::from_millis(1500))
            .keep_on_success()
            .run_at(now - TimeDelta::microseconds(i64::from(i) * 7));
        store
            .insert(opts.build(&Ping { n: i }, now).unwrap())
            .await
            .unwrap();
    }
    let check = |claimed: Vec<taskrow::TaskRecord>| async move {
        assert!(!claimed.is_empty());
        for r in claimed {
            assert_eq!(store.get(&TaskRef::Id(r.id)).await.unwrap(), r);
        }
    };
    let first = store
        .claim(&ClaimRequest::new("w1", 2, lease, now))
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    check(first.clone()).await;
    let retried = &first[0];
    let at = now + TimeDelta::seconds(5);
    store
        .finish(
            vec![Finish::new(
                retried,
                retried.lease(),
                "w1",
                now,
                3,
                FinishResult::Retry {
                    at,
                    error: "try again".into(),
                },
            )],
            now,
        )
        .await
        .unwrap();
    // The rest now; then, past every lease, the retried task (with its last error), the
    // expired lease and the rest again.
    check(
        store
            .claim(&ClaimRequest::new("w2", 10, lease, now))
            .await
            .unwrap(),
    )
    .await;
    let later = now + lease + TimeDelta::seconds(1);
    let again = store
        .claim(&ClaimRequest::new("w3", 10, lease, later))
        .await
        .unwrap();
    assert_eq!(again.len(), 5);
    let r = again.iter().find(|r| r.id == retried.id).unwrap();
    assert_eq!(r.last_error.as_deref(), Some("try again"));
    assert_eq!((r.attempts, r.version), (2, 3));
    check(again).await;
}

/// A user's own table and migrator next to taskrow's: each keeps its own history.
pub struct AppMigrator;

pub struct CreateOrders;

impl sea_orm_migration::MigrationName for CreateOrders {
    fn name(&self) -> &str {
        "m20260102_000001_create_orders"
    }
}

#[allow(elided_lifetimes_in_paths)] // async-trait cannot take `SchemaManager<'_>` here
#[async_trait]
impl sea_orm_migration::MigrationTrait for CreateOrders {
    async fn up(&self, m: &sea_orm_migration::SchemaManager) -> Result<(), sea_orm::DbErr> {
        m.create_table(
            Table::create()
                .table(Alias::new("app_orders"))
                .col(
                    ColumnDef::new(Alias::new("id"))
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &sea_orm_migration::SchemaManager) -> Result<(), sea_orm::DbErr> {
        m.drop_table(Table::drop().table(Alias::new("app_orders")).to_owned())
            .await
    }
}

#[async_trait]
impl sea_orm_migration::MigratorTrait for AppMigrator {
    fn migrations() -> Vec<Box<dyn sea_orm_migration::MigrationTrait>> {
        vec![Box::new(CreateOrders)]
    }
}

/// taskrow's migrations added to the application's own migrator: one history.
pub struct CombinedMigrator;

#[async_trait]
impl sea_orm_migration::MigratorTrait for CombinedMigrator {
    fn migrations() -> Vec<Box<dyn sea_orm_migration::MigrationTrait>> {
        let mut all = taskrow_migration::migrations();
        all.push(Box::new(CreateOrders));
        all
    }
}

/// The names recorded in a migration history table.
pub async fn history(db: &sea_orm::DatabaseConnection, table: &str) -> Vec<String> {
    db.query_all_raw(Statement::from_string(
        db.get_database_backend(),
        format!("SELECT version FROM {table} ORDER BY version"),
    ))
    .await
    .unwrap()
    .iter()
    .map(|r| r.try_get::<String>("", "version").unwrap())
    .collect()
}

/// Issue 11, item 8: a claimed row that cannot be read is failed on its own; when that write
/// fails too, the rest of the batch (already committed as claimed) still comes back to the
/// claimer, and the unreadable row is left to a later claim.
pub async fn a_failing_unreadable_row_keeps_the_batch<D: Dialect>(store: &SqlStore<D>) {
    let now = t0();
    let lease = Duration::from_secs(60);
    let bad = store
        .insert(new_task("unreadable", now - TimeDelta::seconds(10)))
        .await
        .unwrap();
    let mut good = Vec::new();
    for i in 0..3 {
        good.push(
            store
                .insert(new_task(
                    &format!("good-{i}"),
                    now - TimeDelta::seconds(5 - i),
                ))
                .await
                .unwrap()
                .id,
        );
    }
    let db = store.connection();
    db.execute_unprepared(&format!(
        "UPDATE taskrow_task SET retry_policy = 'garbage' WHERE id = {}",
        bad.id
    ))
    .await
    .unwrap();
    // Failing the unreadable row (state 3) is refused by the database.
    let (create, drop) = match db.get_database_backend() {
        sea_orm::DbBackend::Sqlite => (
            "CREATE TRIGGER taskrow_test_no_fail BEFORE UPDATE ON taskrow_task \
             WHEN NEW.state = 3 BEGIN SELECT RAISE(ABORT, 'injected'); END",
            "DROP TRIGGER taskrow_test_no_fail",
        ),
        sea_orm::DbBackend::Postgres => (
            "CREATE FUNCTION taskrow_test_no_fail() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN RAISE EXCEPTION 'injected'; END $$; \
             CREATE TRIGGER taskrow_test_no_fail BEFORE UPDATE ON taskrow_task FOR EACH ROW \
             WHEN (NEW.state = 3) EXECUTE FUNCTION taskrow_test_no_fail()",
            "DROP TRIGGER taskrow_test_no_fail ON taskrow_task; \
             DROP FUNCTION taskrow_test_no_fail()",
        ),
        _ => (
            "CREATE TRIGGER taskrow_test_no_fail BEFORE UPDATE ON taskrow_task FOR EACH ROW \
             BEGIN IF NEW.state = 3 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected'; \
             END IF; END",
            "DROP TRIGGER taskrow_test_no_fail",
        ),
    };
    db.execute_unprepared(create).await.unwrap();

    let claimed = store
        .claim(&ClaimRequest::new("w", 10, lease, now))
        .await
        .expect("the claim answers with the rows it committed");
    let ids: Vec<i64> = claimed.iter().map(|r| r.id).collect();
    assert_eq!(ids, good, "the good rows come back claimed, in due order");
    for r in &claimed {
        assert_eq!(r.state, TaskState::Running);
        assert_eq!(store.get(&TaskRef::Id(r.id)).await.unwrap(), *r);
    }
    // The unreadable row is still running under the claim (its failure was refused) …
    let row = task::Entity::find_by_id(bad.id)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.state, TaskState::Running.code());

    // … and a later claim, once the database lets it, fails it.
    db.execute_unprepared(drop).await.unwrap();
    let later = now + lease + TimeDelta::seconds(1);
    let again = store
        .claim(&ClaimRequest::new("w2", 10, lease, later))
        .await
        .unwrap();
    assert!(again.iter().all(|r| r.id != bad.id));
    let row = task::Entity::find_by_id(bad.id)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.state, TaskState::Failed.code());
    assert!(
        row.last_error
            .as_deref()
            .is_some_and(|e| e.contains("cannot be run")),
        "{:?}",
        row.last_error
    );
}

/// The log rows of task `id`, oldest first.
async fn logs_of<D: Dialect>(store: &SqlStore<D>, id: i64) -> Vec<TaskLog> {
    store.logs(&LogFilter::task(id)).await.unwrap()
}

/// Fencing: every claim sets a new token and its time; finishes, lease extensions and releases
/// hold only with the current claim's token; a heartbeat keeps the token (so it can be
/// repeated after a lost reply) and bumps the version. A stale finish turns the lost run's
/// worker-lost row into its lease-lost row: one row per run.
pub async fn claim_tokens_fence_writes<D: Dialect>(store: &SqlStore<D>) {
    let now = t0();
    let lease = Duration::from_secs(60);
    let task = store.insert(new_task("fenced", now)).await.unwrap();
    let first = store
        .claim(&ClaimRequest::new("w1", 1, lease, now))
        .await
        .unwrap()
        .remove(0);
    let token = first.claim_token.expect("a claim sets a token");
    assert_eq!(first.claimed_at, Some(now));
    assert_eq!(first.version, 1);
    assert_eq!(first.lease(), Lease { id: task.id, token });

    // A heartbeat, repeated: the token stays, the version moves on.
    let until = now + TimeDelta::seconds(90);
    for _ in 0..2 {
        store
            .extend_lease(first.lease(), until, now + TimeDelta::seconds(1))
            .await
            .unwrap();
    }
    let beaten = store.get(&TaskRef::Id(task.id)).await.unwrap();
    assert_eq!(beaten.claim_token, Some(token));
    assert_eq!(beaten.claimed_at, Some(now));
    assert_eq!(beaten.version, 3);
    assert_eq!(beaten.lease_expires_at, Some(until));

    // The lease lapses; another claim takes the task under a new token and logs the lost run.
    let later = until + TimeDelta::seconds(1);
    let second = store
        .claim(&ClaimRequest::new("w2", 1, lease, later))
        .await
        .unwrap()
        .remove(0);
    let token2 = second.claim_token.unwrap();
    assert_ne!(token2, token);
    assert_eq!((second.attempts, second.claimed_at), (2, Some(later)));
    let logs = logs_of(store, task.id).await;
    assert_eq!(logs.len(), 1);
    assert_eq!(
        logs[0],
        TaskLog::worker_lost(logs[0].id, &beaten, later, false)
    );

    // The first claim's writes are refused and change nothing on the task.
    let err = store
        .extend_lease(first.lease(), later + lease, later)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::LeaseLost { id } if id == task.id),
        "{err:?}"
    );
    assert_eq!(
        store.release(&[first.lease()], later).await.unwrap(),
        [FinishStatus::LeaseLost]
    );
    let stale = Finish::new(&first, first.lease(), "w1", now, 5, FinishResult::Succeeded);
    for _ in 0..2 {
        assert_eq!(
            store.finish(vec![stale.clone()], later).await.unwrap(),
            [FinishStatus::LeaseLost]
        );
    }
    assert_eq!(store.get(&TaskRef::Id(task.id)).await.unwrap(), second);
    // The worker-lost row became the stale finish's lease-lost row, once.
    let logs = logs_of(store, task.id).await;
    assert_eq!(logs, [TaskLog::of_finish(logs[0].id, &stale, false)]);

    // The current claim's writes hold; a release keeps the token.
    assert_eq!(
        store.release(&[second.lease()], later).await.unwrap(),
        [FinishStatus::Applied]
    );
    let released = store.get(&TaskRef::Id(task.id)).await.unwrap();
    assert_eq!(released.state, TaskState::Pending);
    assert_eq!((released.attempts, released.claim_token), (1, Some(token2)));
    assert_eq!(released.version, second.version + 1);
}

/// A finish retried after its reply was lost (applied, then sent again) is answered applied
/// again with no second log row: when success deleted the row, for a kept success, a retry and
/// a failure, alone or in a batch.
pub async fn finish_retried_after_applied_is_applied<D: Dialect>(store: &SqlStore<D>) {
    let now = t0();
    let lease = Duration::from_secs(60);
    store.insert(new_task("deleted", now)).await.unwrap();
    store
        .insert(
            EnqueueOptions::new()
                .code("kept")
                .keep_on_success()
                .build(&Ping { n: 1 }, now)
                .unwrap(),
        )
        .await
        .unwrap();
    store.insert(new_task("retried", now)).await.unwrap();
    store.insert(new_task("failed", now)).await.unwrap();
    let claimed = store
        .claim(&ClaimRequest::new("w", 10, lease, now))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 4);
    let results = [
        FinishResult::Succeeded,
        FinishResult::Succeeded,
        FinishResult::Retry {
            at: now + TimeDelta::seconds(9),
            error: "again".into(),
        },
        FinishResult::Failed {
            error: "for good".into(),
        },
    ];
    let batch: Vec<Finish> = claimed
        .iter()
        .zip(results)
        .map(|(r, result)| Finish::new(r, r.lease(), "w", now, 3, result))
        .collect();
    let later = now + TimeDelta::seconds(1);
    // The first item alone, then the whole batch (the first again), then the whole batch again.
    assert_eq!(
        store.finish(vec![batch[0].clone()], later).await.unwrap(),
        [FinishStatus::Applied]
    );
    assert!(matches!(
        store.get(&TaskRef::Id(claimed[0].id)).await,
        Err(Error::NotFound(_))
    ));
    let after_first: Vec<_> = stored_rows(store, &claimed).await;
    for _ in 0..2 {
        assert_eq!(
            store.finish(batch.clone(), later).await.unwrap(),
            [FinishStatus::Applied; 4]
        );
    }
    for (i, f) in batch.iter().enumerate() {
        let logs = logs_of(store, f.lease.id).await;
        assert_eq!(
            logs,
            [TaskLog::of_finish(logs[0].id, f, true)],
            "task {i}: one row for the run"
        );
    }
    // The retry applied once: its row moved on once.
    let after: Vec<_> = stored_rows(store, &claimed).await;
    assert_eq!(after[0], None);
    for i in 1..4 {
        let (before, after) = (after_first[i].as_ref().unwrap(), after[i].as_ref().unwrap());
        assert_eq!(after.version, before.version + 1, "task {i}");
    }
    assert_eq!(
        store.finish(vec![batch[0].clone()], later).await.unwrap(),
        [FinishStatus::Applied]
    );
    assert_eq!(logs_of(store, batch[0].lease.id).await.len(), 1);
}

/// The stored rows of `tasks` (`None` when gone), in order.
async fn stored_rows<D: Dialect>(
    store: &SqlStore<D>,
    tasks: &[taskrow::TaskRecord],
) -> Vec<Option<taskrow::TaskRecord>> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(store.get(&TaskRef::Id(t.id)).await.ok());
    }
    out
}

/// A worker lost during the last attempt: the next claim logs the run as worker lost and fails
/// the task instead of running it past `max_attempts`, and still fills its batch with the task
/// due behind it. Run-now runs such a task again (an operator's decision); immediate dispatch
/// fails it. Cancel, reset and delete log a lost run too.
pub async fn worker_lost_at_the_last_attempt_fails_the_task<D: Dialect>(store: &SqlStore<D>) {
    let now = t0();
    let lease = Duration::from_secs(60);
    let once = |code: &str, at: DateTime<Utc>| {
        EnqueueOptions::new()
            .code(code)
            .max_attempts(1)
            .run_at(at)
            .build(&Ping { n: 1 }, now)
            .unwrap()
    };
    let last = store.insert(once("last", now)).await.unwrap();
    // Due after the lease of `last` expires, before the claim below.
    let expires = now + TimeDelta::seconds(60);
    let behind = store
        .insert(once("behind", expires + TimeDelta::milliseconds(500)))
        .await
        .unwrap();
    let first = store
        .claim(&ClaimRequest::new("w1", 1, lease, now))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(first.id, last.id);

    let later = expires + TimeDelta::seconds(1);
    let got = store
        .claim(&ClaimRequest::new("w2", 1, lease, later))
        .await
        .unwrap();
    let ids: Vec<i64> = got.iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        [behind.id],
        "the failed task leaves its place to the next"
    );
    let failed = store.get(&TaskRef::Id(last.id)).await.unwrap();
    assert_eq!(failed.state, TaskState::Failed);
    assert_eq!(failed.attempts, 1);
    assert_eq!(
        failed.last_error.as_deref(),
        Some(TaskLog::worker_lost_failure(&first).as_str())
    );
    assert_eq!((failed.next_run_at, failed.lease_expires_at), (None, None));
    assert_eq!(
        (failed.version, failed.updated_at),
        (first.version + 1, later)
    );
    assert_eq!(failed.claim_token, first.claim_token);
    let logs = logs_of(store, last.id).await;
    assert_eq!(
        logs,
        [TaskLog::worker_lost(logs[0].id, &first, later, true)]
    );
    assert_eq!(logs[0].claim_token, first.claim_token);

    // Immediate dispatch of such a task fails it; run-now runs it again.
    let at = later + TimeDelta::seconds(1);
    let mut claimed = Vec::new();
    for code in ["dispatched", "by-hand"] {
        store.insert(once(code, at)).await.unwrap();
        claimed.push(
            store
                .claim_one(&TaskRef::from(code), &ClaimOne::new("w1", lease, at))
                .await
                .unwrap(),
        );
    }
    let lost_at = at + lease + TimeDelta::seconds(1);
    let err = store
        .claim_one(
            &TaskRef::from("dispatched"),
            &ClaimOne::new("w2", lease, lost_at).only_pending(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongState {
                state: TaskState::Failed,
                ..
            }
        ),
        "{err:?}"
    );
    let dispatched = store.get(&TaskRef::from("dispatched")).await.unwrap();
    assert_eq!(dispatched.state, TaskState::Failed);
    let logs = logs_of(store, claimed[0].id).await;
    assert_eq!(
        logs,
        [TaskLog::worker_lost(logs[0].id, &claimed[0], lost_at, true)]
    );
    let again = store
        .claim_one(
            &TaskRef::from("by-hand"),
            &ClaimOne::new("w2", lease, lost_at),
        )
        .await
        .unwrap();
    assert_eq!(again.attempts, 2);
    assert_ne!(again.claim_token, claimed[1].claim_token);
    let logs = logs_of(store, claimed[1].id).await;
    assert_eq!(
        logs,
        [TaskLog::worker_lost(
            logs[0].id,
            &claimed[1],
            lost_at,
            false
        )]
    );

    // Cancel, reset and delete of a task whose worker was lost log the lost run.
    let settle = [("cancelled", 0), ("reset", 1), ("deleted", 2)];
    for (code, _) in settle {
        store.insert(new_task(code, at)).await.unwrap();
    }
    for (code, op) in settle {
        let found = store
            .claim_one(&TaskRef::from(code), &ClaimOne::new("w1", lease, at))
            .await
            .unwrap();
        match op {
            0 => {
                store.cancel(&TaskRef::from(code), lost_at).await.unwrap();
            }
            1 => {
                store
                    .reset(&ResetTarget::One(TaskRef::from(code)), lost_at)
                    .await
                    .unwrap();
            }
            _ => {
                store.delete(&TaskRef::from(code), lost_at).await.unwrap();
            }
        }
        let logs = logs_of(store, found.id).await;
        assert_eq!(
            logs,
            [TaskLog::worker_lost(logs[0].id, &found, lost_at, false)],
            "{code}"
        );
    }
}

/// An interrupted run gives its attempt back and counts an interruption (alone and in a batch,
/// which SQLite applies with one grouped statement); reset clears the count.
pub async fn interrupted_runs_give_the_attempt_back<D: Dialect>(store: &SqlStore<D>) {
    let now = t0();
    let lease = Duration::from_secs(60);
    for code in ["i-0", "i-1", "i-2"] {
        store
            .insert(
                EnqueueOptions::new()
                    .code(code)
                    .max_attempts(1)
                    .build(&Ping { n: 1 }, now)
                    .unwrap(),
            )
            .await
            .unwrap();
    }
    let claimed = store
        .claim(&ClaimRequest::new("w", 10, lease, now))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    let at = |i: usize| now + TimeDelta::seconds(5 + i as i64);
    let finish = |i: usize| {
        let r = &claimed[i];
        Finish::new(
            r,
            r.lease(),
            "w",
            now,
            2,
            FinishResult::Interrupted {
                at: at(i),
                error: format!("shutdown {i}"),
            },
        )
    };
    let later = now + TimeDelta::seconds(1);
    assert_eq!(
        store.finish(vec![finish(0)], later).await.unwrap(),
        [FinishStatus::Applied]
    );
    assert_eq!(
        store
            .finish(vec![finish(1), finish(2)], later)
            .await
            .unwrap(),
        [FinishStatus::Applied; 2]
    );
    for (i, before) in claimed.iter().enumerate() {
        let r = store.get(&TaskRef::Id(before.id)).await.unwrap();
        assert_eq!(r.state, TaskState::Pending, "task {i}");
        assert_eq!((r.attempts, r.interruptions), (0, 1), "task {i}");
        assert_eq!(r.next_run_at, Some(at(i)));
        assert_eq!(r.lease_expires_at, None);
        assert_eq!(r.last_error, Some(format!("shutdown {i}")));
        assert_eq!((r.version, r.updated_at), (before.version + 1, later));
        assert_eq!(r.claim_token, before.claim_token);
        let f = finish(i);
        let logs = logs_of(store, before.id).await;
        assert_eq!(logs, [TaskLog::of_finish(logs[0].id, &f, true)]);
        assert_eq!(logs[0].outcome, Outcome::Interrupted);
    }
    // The attempt was given back: the task, at its only attempt, runs again.
    let again = store
        .claim(&ClaimRequest::new("w", 10, lease, at(2)))
        .await
        .unwrap();
    assert_eq!(again.len(), 3);
    assert!(
        again
            .iter()
            .all(|r| r.attempts == 1 && r.interruptions == 1)
    );
    let r = &again[0];
    store
        .finish(
            vec![Finish::new(
                r,
                r.lease(),
                "w",
                at(2),
                1,
                FinishResult::Failed { error: "no".into() },
            )],
            at(2),
        )
        .await
        .unwrap();
    store
        .reset(&ResetTarget::One(TaskRef::Id(r.id)), at(2))
        .await
        .unwrap();
    let reset = store.get(&TaskRef::Id(r.id)).await.unwrap();
    assert_eq!((reset.attempts, reset.interruptions), (0, 0));
}

/// `check_schema` on a database as `store` finds it (no tables), then migrated partly, fully,
/// and by a "newer" taskrow.
pub async fn check_schema_reads_the_history<D: Dialect>(store: &SqlStore<D>) {
    use sea_orm_migration::MigratorTrait;
    let db = store.connection();
    let err = store.check_schema().await.unwrap_err();
    assert!(matches!(err, Error::NotMigrated), "{err:?}");

    taskrow_migration::Migrator::up(db, Some(1)).await.unwrap();
    let err = store.check_schema().await.unwrap_err();
    let Error::Schema(message) = &err else {
        panic!("expected Schema, got {err:?}");
    };
    for part in [
        "m20261128_000001_taskrow_claim_tokens",
        "has not run",
        "Migrator::up",
        "SqlStore::migrate",
        "taskrow migrate",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }

    taskrow_migration::Migrator::up(db, None).await.unwrap();
    store.check_schema().await.unwrap();

    db.execute_unprepared(
        "INSERT INTO taskrow_seaql_migrations (version, applied_at) \
         VALUES ('m29990101_000001_taskrow_future', 0)",
    )
    .await
    .unwrap();
    let err = store.check_schema().await.unwrap_err();
    let Error::Schema(message) = &err else {
        panic!("expected Schema, got {err:?}");
    };
    for part in ["m29990101_000001_taskrow_future", "newer", "upgrade"] {
        assert!(message.contains(part), "{part}: {message}");
    }
    db.execute_unprepared(
        "DELETE FROM taskrow_seaql_migrations WHERE version = 'm29990101_000001_taskrow_future'",
    )
    .await
    .unwrap();
    store.check_schema().await.unwrap();
}

/// What a call came to, and how long it took.
pub struct Called {
    pub what: &'static str,
    pub result: Result<(), Error>,
    pub took: Duration,
}

/// `fut`, which must end within `bound`: a hang fails the test, naming `what`.
async fn within<T>(
    what: &'static str,
    bound: Duration,
    fut: impl std::future::Future<Output = Result<T, Error>>,
) -> Called {
    let t = std::time::Instant::now();
    match tokio::time::timeout(bound, fut).await {
        Ok(r) => Called {
            what,
            result: r.map(drop),
            took: t.elapsed(),
        },
        Err(_) => panic!(
            "{what}, called by the code holding an open task transaction, hung (still waiting \
             after {bound:?})"
        ),
    }
}

/// The store writes that code holding an open task transaction (`begin_with_tasks`) may call
/// on the same store, each bounded so that a hang fails the test instead of stalling it:
/// `client.enqueue`, `client.run_now` (whose claim runs on a task of its own), a claim (what a
/// worker of the process calls), another task transaction. Returns what each came to; reads
/// work meanwhile, and the task transaction still commits, with its task.
pub async fn writes_beside_an_open_task_transaction<D: Dialect>(
    store: &SqlStore<D>,
) -> Vec<Called> {
    let bound = Duration::from_secs(3);
    let client = taskrow::Client::builder(store.clone()).build().unwrap();
    client
        .enqueue(
            &Ping { n: 1 },
            EnqueueOptions::new().code("committed-before"),
        )
        .await
        .unwrap();
    let later = EnqueueOptions::new()
        .code("read-me")
        .delay(Duration::from_secs(3600));
    client.enqueue(&Ping { n: 1 }, later).await.unwrap();
    let mut tx = store.begin_with_tasks(&client).await.unwrap();
    tx.enqueue(
        &Ping { n: 2 },
        EnqueueOptions::new()
            .code("in-the-transaction")
            .dispatch(taskrow::Dispatch::Scheduled),
    )
    .await
    .unwrap();

    let enqueue = client.enqueue(&Ping { n: 3 }, EnqueueOptions::new().code("beside"));
    let run_now = client.run_now("committed-before");
    let lease = Duration::from_secs(60);
    let req = ClaimRequest::new("w", 10, lease, t0());
    let claim = store.claim(&req);
    let nested = async { store.begin_with_tasks(&client).await?.rollback().await };
    let out = vec![
        within("client.enqueue", bound, enqueue).await,
        within("client.run_now", bound, run_now).await,
        within("store.claim", bound, claim).await,
        within("store.begin_with_tasks", bound, nested).await,
    ];
    within("store.get", bound, store.get(&"read-me".into()))
        .await
        .result
        .expect("a read beside an open task transaction");

    let committed = tx.commit().await.unwrap();
    assert_eq!(committed.ids().len(), 1);
    let in_tx = store.get(&"in-the-transaction".into()).await.unwrap();
    assert_eq!(in_tx.state, TaskState::Pending);
    out
}

/// The queues migration (and those after it) down and up again on a migrated database holding a task
/// written before it: down, the queue table and the task's queue and priority columns are gone
/// (and the rest still reads); up, the old task reads in the `default` queue at normal
/// priority, and the queue table works.
pub async fn queues_migration_comes_and_goes(db: &sea_orm::DatabaseConnection) {
    use sea_orm_migration::MigratorTrait;
    use taskrow_migration::Migrator;
    use taskrow_sql::entity::queue;

    // The queues migration and the ones after it go down.
    let all = history(db, "taskrow_seaql_migrations").await;
    let at = all
        .iter()
        .position(|m| m == "m20261128_000003_taskrow_queues")
        .expect("the queues migration is applied");
    Migrator::down(db, Some(u32::try_from(all.len() - at).unwrap()))
        .await
        .unwrap();
    assert_eq!(history(db, "taskrow_seaql_migrations").await, all[..at]);
    let backend = db.get_database_backend();
    for gone in [
        "SELECT queue FROM taskrow_task",
        "SELECT priority FROM taskrow_task",
        "SELECT name FROM taskrow_queue",
    ] {
        let r = db
            .query_all_raw(Statement::from_string(backend, gone))
            .await;
        assert!(r.is_err(), "`{gone}` after the queues migration went down");
    }
    db.execute_unprepared(&format!(
        "INSERT INTO taskrow_task (code, task_type, payload, name, biz_type, state, attempts, \
         retry_policy, on_success, dispatch, run_at, version, created_at, updated_at, \
         interruptions) VALUES ('before-queues', 'store_sql_test.ping', '{{\"n\":1}}', 'old', '', \
         0, 0, '{}', 0, 0, '2026-01-01 00:00:00', 0, '2026-01-01 00:00:00', \
         '2026-01-01 00:00:00', 0)",
        taskrow::RetryPolicy::default().to_json()
    ))
    .await
    .unwrap();

    Migrator::up(db, None).await.unwrap();
    assert_eq!(history(db, "taskrow_seaql_migrations").await, all);
    let old = task::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.code == "before-queues")
        .expect("the old row is kept")
        .into_record()
        .unwrap();
    assert_eq!(
        (old.queue.as_str(), old.priority),
        (taskrow::DEFAULT_QUEUE, taskrow::Priority::Normal)
    );
    assert!(queue::Entity::find().all(db).await.unwrap().is_empty());
}

/// A worker on `store` whose poll is 10 s picks up, within 2 s, tasks that `other` (another
/// pool on the same database, as another process would have) enqueues, one it resets, and one
/// in a queue it resumes: the store's wake-ups wake it. Prints the pickup times.
pub async fn wakes_for_another_stores_commits<D: Dialect>(
    store: &SqlStore<D>,
    other: &SqlStore<D>,
) {
    assert!(store.wakeups().is_some(), "the store has wake-ups");
    // Both on the system clock, which two processes on one host share exactly: with the
    // database's (the default on a server), another process's "now" can be a few
    // milliseconds in the worker's future, and its claim would find the task not yet due.
    let on_system_clock = |s: &SqlStore<D>| {
        taskrow::Client::builder(s.clone())
            .clock(taskrow::SystemClock)
            .build()
            .unwrap()
    };
    let client = on_system_clock(store);
    let worker = client
        .worker()
        .poll_interval(Duration::from_secs(10))
        .start()
        .unwrap();
    let other_client = on_system_clock(other);
    // Idle: the worker's first claim found nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ran = |code: &'static str| async move {
        !store.logs(&LogFilter::code(code)).await.unwrap().is_empty()
    };
    let within = |what: &'static str, code: &'static str| async move {
        let sent = std::time::Instant::now();
        while !ran(code).await {
            assert!(
                sent.elapsed() < Duration::from_secs(2),
                "{what}: not run within 2 s (the worker waited for its 10 s poll)"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        println!("{what}: picked up in {:?}", sent.elapsed());
    };
    for (n, code) in [(1, "remote-1"), (2, "remote-2"), (3, "remote-3")] {
        tokio::time::sleep(Duration::from_millis(100)).await;
        other_client
            .enqueue(&Ping { n }, EnqueueOptions::new().code(code))
            .await
            .unwrap();
        within("an enqueue elsewhere", code).await;
    }
    other_client
        .enqueue(
            &Ping { n: 4 },
            EnqueueOptions::new()
                .code("later")
                .delay(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!ran("later").await, "not due yet");
    other_client.reset("later").await.unwrap();
    within("a reset elsewhere", "later").await;
    // A queue paused and resumed elsewhere, with a task waiting in it.
    other_client.pause_queue("default").await.unwrap();
    other_client
        .enqueue(&Ping { n: 5 }, EnqueueOptions::new().code("held"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!ran("held").await, "its queue is paused");
    other_client.resume_queue("default").await.unwrap();
    within("a queue resumed elsewhere", "held").await;

    worker.shutdown().await;
}
