//! The cases: one module per [`TaskStore`] operation, one `pub async fn` per behaviour. Each
//! takes a fresh, empty store and panics when the store breaks the contract.
//!
//! Times are built from [`t0`] and moved by hand; stores never read a clock.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Debug;
use std::time::Duration;

use taskrow::chrono::{DateTime, TimeDelta, Utc};
use taskrow::{
    ClaimOne, ClaimRequest, EnqueueOptions, Error, Finish, FinishResult, FinishStatus, Lease,
    LogFilter, NewTask, Outcome, Page, Result, Task, TaskFilter, TaskLog, TaskRecord, TaskRef,
    TaskState, TaskStore,
};

use crate::tasks::Noop;

/// Asserts that `$result` is an `Err` matching `$pattern` (matched against `&Error`).
macro_rules! assert_err {
    ($result:expr, $pattern:pat $(if $guard:expr)? $(,)?) => {
        match $result {
            Ok(v) => panic!("expected Err({}), got Ok({v:?})", stringify!($pattern)),
            Err(e) => assert!(
                matches!(&e, $pattern $(if $guard)?),
                "expected Err({}), got Err({e:?})",
                stringify!($pattern)
            ),
        }
    };
}

pub mod cancel;
pub mod claim;
pub mod claim_one;
pub mod counts;
pub mod delete;
pub mod extend_lease;
pub mod finish;
pub mod get;
pub mod insert;
pub mod insert_if_absent;
pub mod insert_many;
pub mod list;
pub mod logs;
pub mod priority;
pub mod purge;
pub mod queues;
pub mod release;
pub mod reset;
pub mod retention;
pub mod retry;
pub mod schedule;
pub mod times;
pub mod upkeep;
pub mod wait;
pub mod worker;
pub mod workers;

/// The base time of every case: 2026-01-01T00:00:00Z.
pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).expect("a valid timestamp")
}

/// [`t0`] plus `n` seconds.
pub(crate) fn secs(n: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(n)
}

/// [`t0`] plus `n` milliseconds.
pub(crate) fn millis(n: i64) -> DateTime<Utc> {
    t0() + TimeDelta::milliseconds(n)
}

/// `t` plus a `std` duration.
pub(crate) fn plus(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    taskrow::clock::add(t, d)
}

/// One microsecond, the precision stores keep.
pub(crate) fn micro() -> TimeDelta {
    TimeDelta::microseconds(1)
}

/// The lease most cases claim with.
pub(crate) const LEASE: Duration = Duration::from_secs(30);

/// Options with this code.
pub(crate) fn opts(code: &str) -> EnqueueOptions {
    EnqueueOptions::new().code(code)
}

/// A [`Noop`] row from `options`, enqueued at `now`.
pub(crate) fn build(options: EnqueueOptions, now: DateTime<Utc>) -> NewTask {
    build_task(options, &Noop {}, now)
}

/// A row of `task` from `options`, enqueued at `now`.
pub(crate) fn build_task(options: EnqueueOptions, task: &dyn Task, now: DateTime<Utc>) -> NewTask {
    options
        .build(task, now)
        .expect("valid enqueue options build")
}

/// Inserts a [`Noop`] with this code, enqueued and due at `now`.
pub(crate) async fn insert(store: &dyn TaskStore, code: &str, now: DateTime<Utc>) -> TaskRecord {
    insert_with(store, opts(code), now).await
}

/// Inserts a [`Noop`] built from `options` at `now`.
pub(crate) async fn insert_with(
    store: &dyn TaskStore,
    options: EnqueueOptions,
    now: DateTime<Utc>,
) -> TaskRecord {
    let rec = store
        .insert(build(options, now))
        .await
        .expect("insert succeeds");
    check_invariants(&rec);
    rec
}

/// The record of `code`, which must exist.
pub(crate) async fn get(store: &dyn TaskStore, code: &str) -> TaskRecord {
    let rec = store
        .get(&TaskRef::from(code))
        .await
        .unwrap_or_else(|e| panic!("get `{code}`: {e}"));
    check_invariants(&rec);
    rec
}

/// Asserts that no task has this code.
#[track_caller]
pub(crate) fn assert_not_found(result: Result<TaskRecord>, target: &TaskRef) {
    assert_err!(result, Error::NotFound(r) if r == target);
}

/// Claims up to `limit` due tasks at `now` for `worker` with [`LEASE`].
pub(crate) async fn claim(
    store: &dyn TaskStore,
    worker: &str,
    limit: usize,
    now: DateTime<Utc>,
) -> Vec<TaskRecord> {
    claim_req(store, &ClaimRequest::new(worker, limit, LEASE, now)).await
}

/// Claims with this request, checking every returned row.
pub(crate) async fn claim_req(store: &dyn TaskStore, req: &ClaimRequest) -> Vec<TaskRecord> {
    let claimed = store.claim(req).await.expect("claim succeeds");
    for rec in &claimed {
        check_invariants(rec);
        assert_eq!(rec.state, TaskState::Running, "claimed row {rec:?}");
        assert_eq!(rec.lease_owner.as_deref(), Some(req.worker.as_str()));
    }
    assert!(
        claimed.len() <= req.limit,
        "claim returned {} rows, more than its limit {}",
        claimed.len(),
        req.limit
    );
    claimed
}

/// The sorted codes of what a claim at `now` (any type, up to 1000) takes.
pub(crate) async fn claim_codes(store: &dyn TaskStore, now: DateTime<Utc>) -> Vec<String> {
    sorted_codes(&claim(store, "claimer", 1000, now).await)
}

/// Runs `code` now (claim_one, due or not) for `worker` at `now` with [`LEASE`].
pub(crate) async fn run_now(
    store: &dyn TaskStore,
    code: &str,
    worker: &str,
    now: DateTime<Utc>,
) -> TaskRecord {
    let rec = store
        .claim_one(&TaskRef::from(code), &ClaimOne::new(worker, LEASE, now))
        .await
        .unwrap_or_else(|e| panic!("claim_one `{code}`: {e}"));
    check_invariants(&rec);
    rec
}

/// The finish of `claimed` (under the lease it was claimed with), run by its lease owner from
/// `started_at` for 10 ms.
pub(crate) fn finish_of(
    claimed: &TaskRecord,
    started_at: DateTime<Utc>,
    result: FinishResult,
) -> Finish {
    Finish::new(
        claimed,
        claimed.lease(),
        claimed
            .lease_owner
            .clone()
            .expect("a claimed task has an owner"),
        started_at,
        10,
        result,
    )
}

/// Applies one finish at `now` and returns its status.
pub(crate) async fn finish_one(
    store: &dyn TaskStore,
    finish: Finish,
    now: DateTime<Utc>,
) -> FinishStatus {
    let statuses = store
        .finish(vec![finish], now)
        .await
        .expect("finish succeeds");
    assert_eq!(statuses.len(), 1, "one status per finish: {statuses:?}");
    statuses[0]
}

/// A retry result.
pub(crate) fn retry_at(at: DateTime<Utc>, error: &str) -> FinishResult {
    FinishResult::Retry {
        at,
        error: error.to_owned(),
    }
}

/// A final failure result.
pub(crate) fn failed(error: &str) -> FinishResult {
    FinishResult::Failed {
        error: error.to_owned(),
    }
}

/// An interruption result (the run was stopped from outside; due again at `at`).
pub(crate) fn interrupted(at: DateTime<Utc>, error: &str) -> FinishResult {
    FinishResult::Interrupted {
        at,
        error: error.to_owned(),
    }
}

/// Runs `code` (already inserted) at `now` and finishes it with `result` a second later;
/// returns the claimed record.
pub(crate) async fn run_and_finish(
    store: &dyn TaskStore,
    code: &str,
    now: DateTime<Utc>,
    result: FinishResult,
) -> TaskRecord {
    let claimed = run_now(store, code, "runner", now).await;
    let status = finish_one(
        store,
        finish_of(&claimed, now, result),
        now + TimeDelta::seconds(1),
    )
    .await;
    assert_eq!(status, FinishStatus::Applied);
    claimed
}

/// Inserts `code` at `now` and makes it failed (after one attempt) a second later.
pub(crate) async fn make_failed(
    store: &dyn TaskStore,
    options: EnqueueOptions,
    now: DateTime<Utc>,
) -> TaskRecord {
    let code = options.code.clone().expect("options with a code");
    insert_with(store, options, now).await;
    run_and_finish(store, &code, now, failed("it broke")).await;
    let rec = get(store, &code).await;
    assert_eq!(rec.state, TaskState::Failed);
    rec
}

/// Inserts `code` (kept on success) at `now` and makes it succeeded a second later.
pub(crate) async fn make_succeeded(
    store: &dyn TaskStore,
    options: EnqueueOptions,
    now: DateTime<Utc>,
) -> TaskRecord {
    let code = options.code.clone().expect("options with a code");
    insert_with(store, options.keep_on_success(), now).await;
    run_and_finish(store, &code, now, FinishResult::Succeeded).await;
    let rec = get(store, &code).await;
    assert_eq!(rec.state, TaskState::Succeeded);
    rec
}

/// Inserts `code` at `now` and cancels it at once.
pub(crate) async fn make_cancelled(
    store: &dyn TaskStore,
    options: EnqueueOptions,
    now: DateTime<Utc>,
) -> TaskRecord {
    let code = options.code.clone().expect("options with a code");
    insert_with(store, options, now).await;
    let rec = store
        .cancel(&TaskRef::from(code.as_str()), now)
        .await
        .expect("cancel succeeds");
    assert_eq!(rec.state, TaskState::Cancelled);
    rec
}

/// Inserts `code` at `now` and claims it for `worker` (lease [`LEASE`], expiring at
/// `now + LEASE`).
pub(crate) async fn make_running(
    store: &dyn TaskStore,
    options: EnqueueOptions,
    worker: &str,
    now: DateTime<Utc>,
) -> TaskRecord {
    let code = options.code.clone().expect("options with a code");
    insert_with(store, options, now).await;
    run_now(store, &code, worker, now).await
}

/// Every task matching `filter`, page by page.
pub(crate) async fn list_all(store: &dyn TaskStore, filter: &TaskFilter) -> Vec<TaskRecord> {
    let mut all = Vec::new();
    let mut page = Page::first(1000);
    loop {
        let rows = store.list(filter, &page).await.expect("list succeeds");
        let Some(last) = rows.last() else {
            return all;
        };
        assert!(
            page.after_id
                .is_none_or(|after| rows.iter().all(|r| r.id > after)),
            "a page after id {:?} holds rows at or before it",
            page.after_id
        );
        page = Page::after(last.id, 1000);
        all.extend(rows);
    }
}

/// The codes of every task matching `filter`, sorted.
pub(crate) async fn list_codes(store: &dyn TaskStore, filter: &TaskFilter) -> Vec<String> {
    sorted_codes(&list_all(store, filter).await)
}

/// Every log row, oldest first.
pub(crate) async fn all_logs(store: &dyn TaskStore) -> Vec<TaskLog> {
    logs(store, &LogFilter::default()).await
}

/// The log rows matching `filter`, checked: every row names its run's claim token, and no
/// run has two rows.
pub(crate) async fn logs(store: &dyn TaskStore, filter: &LogFilter) -> Vec<TaskLog> {
    let rows = store.logs(filter).await.expect("logs succeeds");
    check_one_row_per_run(&rows);
    rows
}

/// The log rows of the run that held `lease` (its task and claim token).
pub(crate) async fn run_logs(store: &dyn TaskStore, lease: Lease) -> Vec<TaskLog> {
    logs(store, &LogFilter::task(lease.id))
        .await
        .into_iter()
        .filter(|l| l.claim_token == Some(lease.token))
        .collect()
}

/// Asserts that every row names the claim token of its run, and that no task has two rows
/// under one token (one row per run).
#[track_caller]
pub(crate) fn check_one_row_per_run(rows: &[TaskLog]) {
    let mut runs = HashSet::new();
    for row in rows {
        let token = row
            .claim_token
            .unwrap_or_else(|| panic!("a log row without its run's claim token: {row:?}"));
        assert!(
            runs.insert((row.task_id, token)),
            "two log rows for one run (task {}, claim token {token}): {rows:?}",
            row.task_id
        );
    }
}

/// Asserts that `row` is the worker-lost row of the run that `before` (the task as stored just
/// before a claim, reset, cancel or delete found its lease expired) was holding; `last` says
/// whether that run was the task's last attempt (a claim then fails it).
#[track_caller]
pub(crate) fn assert_worker_lost(row: &TaskLog, before: &TaskRecord, last: bool) {
    let expiry = before
        .lease_expires_at
        .expect("a task found running has a lease expiry");
    assert_eq!(
        *row,
        TaskLog::worker_lost(row.id, before, expiry, last),
        "the lost run of {before:?} is logged as worker lost"
    );
    assert_eq!(row.outcome, Outcome::WorkerLost);
    assert_eq!(row.claim_token, before.claim_token);
}

/// Asserts that the run `claimed` held (its lease since expired, and the task settled by a
/// reset, cancel or delete) is the task's one log row, logged as worker lost:
/// its attempt, worker, claim token, start and lease time. (Its error text, which says what
/// became of the task, is left to the operation.)
pub(crate) async fn assert_lost_run_logged(store: &dyn TaskStore, claimed: &TaskRecord) {
    let rows = logs(store, &LogFilter::task(claimed.id)).await;
    assert_eq!(rows.len(), 1, "the lost run is logged once: {rows:?}");
    let row = &rows[0];
    let expected = TaskLog::worker_lost(row.id, claimed, t0(), false);
    assert_eq!(
        (
            row.task_id,
            row.code.as_str(),
            row.task_type.as_str(),
            row.attempt,
            row.started_at,
            row.duration_ms,
            row.outcome,
            row.worker.as_str(),
            row.claim_token
        ),
        (
            expected.task_id,
            expected.code.as_str(),
            expected.task_type.as_str(),
            expected.attempt,
            expected.started_at,
            expected.duration_ms,
            Outcome::WorkerLost,
            expected.worker.as_str(),
            claimed.claim_token
        ),
        "the lost run of {claimed:?}: {row:?}"
    );
    assert!(row.error.is_some(), "a lost run says why: {row:?}");
}

/// Asserts that `row` is the row of `finish`, applied (its own outcome) or refused (lease
/// lost).
#[track_caller]
pub(crate) fn assert_finish_row(row: &TaskLog, finish: &Finish, applied: bool) {
    assert_eq!(*row, TaskLog::of_finish(row.id, finish, applied));
}

/// The sorted codes of `records`.
pub(crate) fn sorted_codes(records: &[TaskRecord]) -> Vec<String> {
    let mut codes: Vec<String> = records.iter().map(|r| r.code.clone()).collect();
    codes.sort();
    codes
}

/// Sorted owned strings.
pub(crate) fn strings<const N: usize>(items: [&str; N]) -> Vec<String> {
    let set: BTreeSet<String> = items.into_iter().map(str::to_owned).collect();
    set.into_iter().collect()
}

/// Checks what the record's docs promise in every state: a pending task has a next run time
/// and no lease expiry; a running one a lease expiry and owner, a claim token and claim time,
/// and no next run time; others neither time. A claim token (never 0) and a claim time come
/// together.
#[track_caller]
pub(crate) fn check_invariants(r: &TaskRecord) {
    assert_eq!(
        r.claim_token.is_some(),
        r.claimed_at.is_some(),
        "a claim token and a claim time come together: {r:?}"
    );
    assert_ne!(r.claim_token, Some(0), "a claim token is never 0: {r:?}");
    if r.state == TaskState::Running {
        assert!(
            r.claim_token.is_some(),
            "a running task has a claim token: {r:?}"
        );
    }
    match r.state {
        TaskState::Pending => assert!(
            r.next_run_at.is_some() && r.lease_expires_at.is_none(),
            "a pending task has a next run time and no lease expiry: {r:?}"
        ),
        TaskState::Running => assert!(
            r.next_run_at.is_none() && r.lease_expires_at.is_some() && r.lease_owner.is_some(),
            "a running task has a lease expiry and owner and no next run time: {r:?}"
        ),
        _ => assert!(
            r.next_run_at.is_none() && r.lease_expires_at.is_none(),
            "a {} task has neither next run time nor lease expiry: {r:?}",
            r.state
        ),
    }
}

/// Asserts that ids are strictly increasing.
#[track_caller]
pub(crate) fn assert_id_order<T: Debug>(items: &[T], id: impl Fn(&T) -> i64) {
    for pair in items.windows(2) {
        assert!(
            id(&pair[0]) < id(&pair[1]),
            "not in id order: {:?} before {:?}",
            pair[0],
            pair[1]
        );
    }
}
