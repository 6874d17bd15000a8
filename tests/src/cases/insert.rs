//! [`TaskStore::insert`]: one pending row, exactly as given; unique codes; valid input only.

use std::sync::Arc;
use std::time::Duration;

use taskrow::task::{from_row, to_row};
use taskrow::{
    Dispatch, EnqueueOptions, Error, OnSuccess, RetryPolicy, TaskFilter, TaskRef, TaskState,
    TaskStore,
};

use super::{build, build_task, get, insert, list_all, list_codes, opts, secs, strings, t0};
use crate::tasks::{SendEmail, SyncOrder};

/// The row comes back pending, with 0 attempts, version 0, no claim yet, every given field as
/// given, due at its run time; `get` reads the same row.
pub async fn returns_pending_row(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let now = secs(5);
    let full = EnqueueOptions::new()
        .code("mail-1")
        .name("Welcome mail")
        .description("the first mail a user gets")
        .biz_type("crm")
        .run_at(secs(90))
        .max_attempts(7)
        .retry(RetryPolicy::exponential(
            Duration::from_secs(2),
            Duration::from_secs(600),
        ))
        .timeout(Duration::from_millis(9_500))
        .keep_on_success()
        .dispatch(Dispatch::ImmediateSpawned)
        .build(
            &SendEmail {
                to: "ann@example.com".to_owned(),
            },
            now,
        )
        .expect("valid options");
    // Unlimited attempts, no description, no timeout, empty biz type: the `None`s and the empty
    // string must come back as such.
    let sparse = EnqueueOptions::new()
        .code("mail-2")
        .unlimited_attempts()
        .build(
            &SendEmail {
                to: "bob@example.com".to_owned(),
            },
            now,
        )
        .expect("valid options");
    assert_eq!(sparse.description, None);
    assert_eq!(sparse.timeout, None);

    for new in [full, sparse] {
        let rec = s.insert(new.clone()).await.expect("insert");
        assert_eq!(rec.code, new.code);
        assert_eq!(rec.task_type, SendEmail::TYPE);
        assert_eq!(
            taskrow::serde_json::from_str::<taskrow::serde_json::Value>(&rec.payload).unwrap(),
            taskrow::serde_json::from_str::<taskrow::serde_json::Value>(&new.payload).unwrap(),
        );
        assert_eq!(rec.name, new.name);
        assert_eq!(rec.description, new.description);
        assert_eq!(rec.biz_type, new.biz_type);
        assert_eq!(rec.state, TaskState::Pending);
        assert_eq!(rec.attempts, 0);
        assert_eq!(rec.max_attempts, new.max_attempts);
        assert_eq!(rec.retry, new.retry);
        assert_eq!(rec.timeout, new.timeout);
        assert_eq!(rec.on_success, new.on_success);
        assert_eq!(rec.dispatch, new.dispatch);
        assert_eq!(rec.next_run_at, Some(new.run_at));
        assert_eq!(rec.lease_expires_at, None);
        assert_eq!(rec.lease_owner, None);
        assert_eq!(rec.last_error, None);
        assert_eq!(rec.version, 0);
        assert_eq!(rec.claim_token, None);
        assert_eq!(rec.claimed_at, None);
        assert_eq!(rec.interruptions, 0);
        assert_eq!(rec.created_at, now);
        assert_eq!(rec.updated_at, now);
        assert_eq!(s.get(&TaskRef::Id(rec.id)).await.expect("get by id"), rec);
    }
    let first = get(s, "mail-1").await;
    assert_eq!(first.next_run_at, Some(secs(90)));
    assert_eq!(first.max_attempts, Some(7));
    assert_eq!(first.on_success, OnSuccess::Keep);
    assert_eq!(first.timeout, Some(Duration::from_millis(9_500)));
    let second = get(s, "mail-2").await;
    assert_eq!(second.max_attempts, None);
    assert_eq!(second.biz_type, "");
    assert_ne!(first.id, second.id, "each row has its own id");
}

/// A second insert with a taken code fails with `DuplicateCode` naming it, and changes nothing.
pub async fn duplicate_code_changes_nothing(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let first = insert(s, "order-1", t0()).await;
    let again = build_task(
        opts("order-1")
            .name("another")
            .biz_type("other")
            .run_at(secs(60)),
        &SendEmail {
            to: "x@example.com".to_owned(),
        },
        secs(1),
    );
    assert_err!(s.insert(again).await, Error::DuplicateCode(c) if c == "order-1");
    assert_eq!(get(s, "order-1").await, first);
    assert_eq!(list_all(s, &TaskFilter::all()).await, vec![first]);
    // The store still takes other codes.
    insert(s, "order-2", t0()).await;
}

/// Codes are compared exactly: case and trailing spaces make different codes (no
/// case-insensitive or space-padding collation).
pub async fn codes_are_exact(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let codes = ["order-1", "Order-1", "ORDER-1", "order-1 ", "ordér-1"];
    for code in codes {
        insert(s, code, t0()).await;
    }
    for code in codes {
        assert_eq!(get(s, code).await.code, code);
    }
    assert_eq!(list_codes(s, &TaskFilter::all()).await, strings(codes));
}

/// The longest allowed values (in characters, not bytes) are stored whole.
pub async fn keeps_code_of_max_length(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let code = "ü".repeat(taskrow::record::MAX_CODE_CHARS);
    let name = "名".repeat(taskrow::record::MAX_CODE_CHARS);
    let biz = "é".repeat(taskrow::record::MAX_BIZ_TYPE_CHARS);
    let rec = s
        .insert(build(
            opts(&code).name(name.clone()).biz_type(biz.clone()),
            t0(),
        ))
        .await
        .expect("the longest values fit");
    let got = get(s, &code).await;
    assert_eq!(got, rec);
    assert_eq!(got.code, code);
    assert_eq!(got.name, name);
    assert_eq!(got.biz_type, biz);
}

/// Input over the limits is `InvalidInput`: from `EnqueueOptions::build`, and from the store's
/// `insert` when a row is changed after it was built.
pub async fn rejects_invalid_input(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let noop = crate::tasks::Noop {};
    let too_long = "x".repeat(taskrow::record::MAX_CODE_CHARS + 1);
    assert_err!(opts(&too_long).build(&noop, t0()), Error::InvalidInput(_));
    assert_err!(opts("").build(&noop, t0()), Error::InvalidInput(_));
    assert_err!(
        opts("a").max_attempts(0).build(&noop, t0()),
        Error::InvalidInput(_)
    );
    assert_err!(
        opts("a")
            .biz_type("b".repeat(taskrow::record::MAX_BIZ_TYPE_CHARS + 1))
            .build(&noop, t0()),
        Error::InvalidInput(_)
    );

    let mut long_code = build(opts("a"), t0());
    long_code.code = too_long.clone();
    assert_err!(s.insert(long_code).await, Error::InvalidInput(_));
    let mut zero_attempts = build(opts("b"), t0());
    zero_attempts.max_attempts = Some(0);
    assert_err!(s.insert(zero_attempts).await, Error::InvalidInput(_));
    let mut long_batch_item = build(opts("c"), t0());
    long_batch_item.code = too_long;
    assert_err!(
        s.insert_many(vec![build(opts("d"), t0()), long_batch_item])
            .await,
        Error::InvalidInput(_)
    );
    assert_eq!(list_all(s, &TaskFilter::all()).await, vec![]);
}

/// A payload with nesting, lists, options, a map, times, big integers and text needing escapes
/// is stored and restored: `from_row` gives the task back, and it serializes to the same JSON.
pub async fn payload_round_trips(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let sample = SyncOrder::sample();
    let new = build_task(opts("order-42"), &sample, t0());
    s.insert(new.clone()).await.expect("insert");
    let rec = get(s, "order-42").await;
    assert_eq!(rec.task_type, SyncOrder::TYPE);

    let task = from_row(&rec.task_type, &rec.payload).expect("the row loads as a task");
    let (task_type, payload) = to_row(task.as_ref()).expect("the task serializes");
    assert_eq!(task_type, SyncOrder::TYPE);
    let json = |p: &str| -> taskrow::serde_json::Value {
        taskrow::serde_json::from_str(p).expect("the payload is JSON")
    };
    assert_eq!(json(&payload), json(&new.payload));
    assert_eq!(json(&rec.payload), json(&new.payload));
    let typed: SyncOrder =
        taskrow::serde_json::from_str(&rec.payload).expect("the payload deserializes");
    assert_eq!(typed, sample);
}
