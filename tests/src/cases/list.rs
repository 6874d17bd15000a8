//! [`TaskStore::list`]: filters and keyset pages in id order.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use taskrow::{ClaimOne, Page, TaskFilter, TaskRecord, TaskRef, TaskState, TaskStore};

use super::{
    assert_id_order, build_task, insert, insert_with, list_codes, make_cancelled, make_failed,
    make_running, make_succeeded, opts, secs, strings, t0,
};
use crate::tasks::{Noop, SendEmail};

/// Six tasks, one of each kind:
///
/// | code | type | biz | state |
/// |---|---|---|---|
/// | p1 | noop | billing | pending, due t0 |
/// | p2 | send_email | mail | pending, due t0+100 s |
/// | r1 | noop | billing | running, lease until t0+30 s |
/// | f1 | send_email | billing | failed |
/// | c1 | noop | (empty) | cancelled |
/// | s1 | noop | mail | succeeded |
async fn mixed(s: &dyn TaskStore) {
    let email = SendEmail {
        to: "a@example.com".to_owned(),
    };
    insert_with(s, opts("p1").biz_type("billing"), t0()).await;
    s.insert(build_task(
        opts("p2").biz_type("mail").run_at(secs(100)),
        &email,
        t0(),
    ))
    .await
    .expect("insert");
    make_running(s, opts("r1").biz_type("billing"), "w1", t0()).await;
    s.insert(build_task(opts("f1").biz_type("billing"), &email, t0()))
        .await
        .expect("insert");
    super::run_and_finish(s, "f1", t0(), super::failed("no")).await;
    make_cancelled(s, opts("c1"), t0()).await;
    make_succeeded(s, opts("s1").biz_type("mail"), t0()).await;
}

/// Without a filter every task is listed, in id order, as `get` reads it.
pub async fn returns_all_in_id_order(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    mixed(s).await;
    let rows = s
        .list(&TaskFilter::all(), &Page::first(100))
        .await
        .expect("list");
    assert_id_order(&rows, |r| r.id);
    assert_eq!(
        super::sorted_codes(&rows),
        strings(["p1", "p2", "r1", "f1", "c1", "s1"])
    );
    for rec in &rows {
        assert_eq!(&s.get(&TaskRef::Id(rec.id)).await.expect("get"), rec);
    }
}

/// Only tasks in the given states are listed.
pub async fn filters_by_state(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    mixed(s).await;
    let by = |states: &[TaskState]| TaskFilter::all().states(states.to_vec());
    assert_eq!(
        list_codes(s, &by(&[TaskState::Pending])).await,
        strings(["p1", "p2"])
    );
    assert_eq!(
        list_codes(s, &by(&[TaskState::Running])).await,
        strings(["r1"])
    );
    assert_eq!(
        list_codes(s, &by(&[TaskState::Failed, TaskState::Cancelled])).await,
        strings(["f1", "c1"])
    );
    assert_eq!(
        list_codes(s, &by(&[TaskState::Succeeded])).await,
        strings(["s1"])
    );
}

/// Only tasks of the given biz types are listed (the empty biz type included when named).
pub async fn filters_by_biz_type(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    mixed(s).await;
    assert_eq!(
        list_codes(s, &TaskFilter::all().biz_types(["billing"])).await,
        strings(["p1", "r1", "f1"])
    );
    assert_eq!(
        list_codes(s, &TaskFilter::all().biz_types(["mail", ""])).await,
        strings(["p2", "s1", "c1"])
    );
}

/// Only tasks of the given type names are listed.
pub async fn filters_by_task_type(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    mixed(s).await;
    assert_eq!(
        list_codes(s, &TaskFilter::all().task_types([SendEmail::TYPE])).await,
        strings(["p2", "f1"])
    );
    assert_eq!(
        list_codes(
            s,
            &TaskFilter::all().task_types([Noop::TYPE, "conformance.unknown"])
        )
        .await,
        strings(["p1", "r1", "c1", "s1"])
    );
}

/// Only codes starting with the prefix are listed (case-sensitively; a code containing it
/// elsewhere is not).
pub async fn filters_by_code_prefix(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    for code in [
        "order-1",
        "order-2",
        "orders",
        "x-order-3",
        "Order-4",
        "order-",
    ] {
        insert(s, code, t0()).await;
    }
    assert_eq!(
        list_codes(s, &TaskFilter::all().code_prefix("order-")).await,
        strings(["order-1", "order-2", "order-"])
    );
    assert_eq!(
        list_codes(s, &TaskFilter::all().code_prefix("order-1")).await,
        strings(["order-1"])
    );
}

/// The prefix is literal text: `_`, `%` and `\` in it match only themselves (no SQL `LIKE`
/// wildcards leak through).
pub async fn code_prefix_is_literal(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    for code in ["a_1", "ab1", "a%2", "a%%", "abc%", "a\\x", "ax", "a\\\\"] {
        insert(s, code, t0()).await;
    }
    let by = |p: &str| TaskFilter::all().code_prefix(p);
    assert_eq!(list_codes(s, &by("a_")).await, strings(["a_1"]));
    assert_eq!(list_codes(s, &by("a%")).await, strings(["a%2", "a%%"]));
    assert_eq!(list_codes(s, &by("a\\")).await, strings(["a\\x", "a\\\\"]));
    assert_eq!(list_codes(s, &by("a\\\\")).await, strings(["a\\\\"]));
}

/// Prefixes of any characters match exactly what starts with them: multibyte and accented
/// characters, a prefix whose last character is the greatest there is, codes that sort just
/// after the prefix's range (`ab` is not under `aa`) or inside it only by case.
pub async fn code_prefix_of_any_characters(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let max = char::MAX;
    for code in [
        "ü-1".to_owned(),
        "ü".to_owned(),
        "üb".to_owned(),
        "u-1".to_owned(),
        "v".to_owned(),
        "订单-1".to_owned(),
        "订单-2".to_owned(),
        "订单".to_owned(),
        "订单x".to_owned(),
        "订".to_owned(),
        format!("z{max}"),
        format!("z{max}1"),
        "z".to_owned(),
        "aa".to_owned(),
        "aa\u{7f}".to_owned(),
        "ab".to_owned(),
        "AA".to_owned(),
    ] {
        insert(s, &code, t0()).await;
    }
    let by = |p: &str| TaskFilter::all().code_prefix(p);
    assert_eq!(list_codes(s, &by("ü")).await, strings(["ü-1", "ü", "üb"]));
    assert_eq!(
        list_codes(s, &by("订单-")).await,
        strings(["订单-1", "订单-2"])
    );
    assert_eq!(
        list_codes(s, &by("订单")).await,
        strings(["订单-1", "订单-2", "订单", "订单x"])
    );
    assert_eq!(
        list_codes(s, &by(&format!("z{max}"))).await,
        [format!("z{max}"), format!("z{max}1")]
    );
    assert_eq!(
        list_codes(s, &by("z")).await,
        ["z".to_owned(), format!("z{max}"), format!("z{max}1")]
    );
    assert_eq!(list_codes(s, &by("aa")).await, strings(["aa", "aa\u{7f}"]));
}

/// `due_before` lists what a claim at that time could take: pending tasks due by then (the
/// instant included) and running tasks whose lease expires by then.
pub async fn filters_by_due_before(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    insert_with(s, opts("due-early").run_at(secs(10)), t0()).await;
    insert_with(s, opts("due-at-edge").run_at(secs(50)), t0()).await;
    insert_with(s, opts("due-later").run_at(secs(100)), t0()).await;
    make_running(s, opts("lease-expired"), "w1", t0()).await; // expires t0+30 s
    insert(s, "lease-live", t0()).await;
    s.claim_one(
        &TaskRef::from("lease-live"),
        &ClaimOne::new("w1", Duration::from_secs(200), t0()),
    )
    .await
    .expect("claim_one");
    make_failed(s, opts("failed"), t0()).await;
    make_cancelled(s, opts("cancelled"), t0()).await;
    make_succeeded(s, opts("succeeded"), t0()).await;
    assert_eq!(
        list_codes(s, &TaskFilter::all().due_before(secs(50))).await,
        strings(["due-early", "due-at-edge", "lease-expired"])
    );
}

/// Filters combine: a task is listed only when it matches every one given.
pub async fn combines_filters(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    mixed(s).await;
    let filter = TaskFilter::all()
        .states([TaskState::Pending, TaskState::Running, TaskState::Failed])
        .biz_types(["billing"])
        .task_types([Noop::TYPE]);
    assert_eq!(list_codes(s, &filter).await, strings(["p1", "r1"]));
    assert_eq!(
        list_codes(s, &filter.clone().code_prefix("r")).await,
        strings(["r1"])
    );
    assert_eq!(
        list_codes(s, &filter.due_before(t0())).await,
        strings(["p1"])
    );
}

/// Keyset pages (`Page::first`, then `Page::after` the last id) return at most `limit` rows
/// each, in id order, and together every matching row exactly once.
pub async fn pages_cover_all_rows_once(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let mut all_ids = Vec::new();
    let mut even_ids = Vec::new();
    for i in 0..25 {
        let biz = if i % 2 == 0 { "even" } else { "odd" };
        let rec = insert_with(s, opts(&format!("t{i:02}")).biz_type(biz), t0()).await;
        all_ids.push(rec.id);
        if i % 2 == 0 {
            even_ids.push(rec.id);
        }
    }
    all_ids.sort_unstable();
    even_ids.sort_unstable();

    for (filter, limit, sizes, expected) in [
        (TaskFilter::all(), 7, vec![7, 7, 7, 4], &all_ids),
        (
            TaskFilter::all().biz_types(["even"]),
            3,
            vec![3, 3, 3, 3, 1],
            &even_ids,
        ),
        (TaskFilter::all(), 25, vec![25], &all_ids),
        (TaskFilter::all(), 100, vec![25], &all_ids),
    ] {
        let mut seen = Vec::new();
        let mut got_sizes = Vec::new();
        let mut page = Page::first(limit);
        loop {
            let rows = s.list(&filter, &page).await.expect("list");
            let Some(last) = rows.last() else { break };
            if let Some(after) = page.after_id {
                assert!(
                    rows.iter().all(|r| r.id > after),
                    "a row at or before {after}"
                );
            }
            assert!(rows.iter().all(|r| filter.matches(r)));
            got_sizes.push(rows.len());
            page = Page::after(last.id, limit);
            seen.extend(rows.iter().map(|r| r.id));
        }
        assert_eq!(got_sizes, sizes, "page sizes for {filter:?}");
        assert_id_order(&seen, |id| *id);
        let unique: HashSet<i64> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "a row on two pages");
        assert_eq!(&seen, expected, "every matching row once, for {filter:?}");
    }
}

/// `list_rows` shows the same rows as `list`, each a readable task, page for page.
pub async fn rows_match_list(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    for code in ["a", "b", "c", "d"] {
        insert(s, code, t0()).await;
    }
    make_failed(s, opts("e"), t0()).await;
    for filter in [
        TaskFilter::all(),
        TaskFilter::all().states([TaskState::Failed]),
    ] {
        let mut page = Page::first(2);
        loop {
            let tasks = s.list(&filter, &page).await.expect("list");
            let rows = s.list_rows(&filter, &page).await.expect("list_rows");
            let read: Vec<TaskRecord> = rows.iter().filter_map(|r| r.task().cloned()).collect();
            assert_eq!(read, tasks);
            assert_eq!(rows.len(), tasks.len(), "no unreadable rows here");
            match rows.last() {
                Some(last) if rows.len() == 2 => page = Page::after(last.id(), 2),
                _ => break,
            }
        }
    }
    assert_eq!(
        s.unreadable(&Page::first(10)).await.expect("unreadable"),
        []
    );
}
