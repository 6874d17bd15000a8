//! The points of the contract that are easy to get subtly wrong. The cross-store conformance
//! suite in `taskrow-tests` covers the rest.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use taskrow::{
    ClaimOne, ClaimRequest, EnqueueOptions, Error, Finish, FinishResult, FinishStatus, Lease,
    LogFilter, NewTask, Outcome, Page, Purge, ResetTarget, Task, TaskContext, TaskError,
    TaskFilter, TaskLog, TaskRecord, TaskRef, TaskState, TaskStore, async_trait,
};

use super::MemoryStore;
use taskrow::typetag;

#[derive(Serialize, Deserialize)]
struct Noop;

#[typetag::serde(name = "test.noop")]
#[async_trait]
impl Task for Noop {
    async fn run(&self, _ctx: &TaskContext) -> Result<(), TaskError> {
        Ok(())
    }
}

const LEASE: Duration = Duration::from_secs(30);

fn t0() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn at(secs: u64) -> DateTime<Utc> {
    taskrow::clock::add(t0(), Duration::from_secs(secs))
}

fn task(code: &str, opts: EnqueueOptions) -> NewTask {
    opts.code(code).build(&Noop, t0()).unwrap()
}

fn plain(code: &str) -> NewTask {
    task(code, EnqueueOptions::new())
}

async fn claim(s: &MemoryStore, worker: &str, limit: usize, now: DateTime<Utc>) -> Vec<TaskRecord> {
    let req = ClaimRequest::new(worker, limit, LEASE, now);
    s.claim(&req).await.unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn done(r: &TaskRecord, result: FinishResult, now: DateTime<Utc>) -> Finish {
    Finish::new(r, r.lease(), "w1", now, 5, result)
}

fn codes(rs: &[TaskRecord]) -> Vec<&str> {
    rs.iter().map(|r| r.code.as_str()).collect()
}

async fn all_logs(s: &MemoryStore) -> Vec<TaskLog> {
    s.logs(&LogFilter::default()).await.unwrap()
}

fn outcomes(logs: &[TaskLog]) -> Vec<Outcome> {
    logs.iter().map(|l| l.outcome).collect()
}

#[tokio::test]
async fn insert_starts_pending_at_version_zero_and_codes_are_unique() {
    let s = MemoryStore::new();
    let r = s.insert(plain("a")).await.unwrap();
    assert_eq!((r.id, r.version, r.attempts), (1, 0, 0));
    assert_eq!(r.state, TaskState::Pending);
    assert_eq!(r.next_run_at, Some(t0()));
    assert_eq!((r.lease_expires_at, r.updated_at), (None, t0()));
    assert_eq!(s.get(&TaskRef::Id(1)).await.unwrap(), r);
    assert_eq!(s.get(&"a".into()).await.unwrap(), r);

    let e = s.insert(plain("a")).await.unwrap_err();
    assert!(matches!(e, Error::DuplicateCode(c) if c == "a"));
    let (same, inserted) = s.insert_if_absent(plain("a")).await.unwrap();
    assert_eq!((same, inserted), (r, false));

    let mut bad = plain("b");
    bad.code = String::new();
    assert!(matches!(s.insert(bad).await, Err(Error::InvalidInput(_))));
    assert!(matches!(
        s.get(&TaskRef::Id(9)).await,
        Err(Error::NotFound(TaskRef::Id(9)))
    ));
}

#[tokio::test]
async fn insert_many_is_all_or_nothing() {
    let s = MemoryStore::new();
    s.insert(plain("x")).await.unwrap();
    let e = s
        .insert_many(vec![plain("a"), plain("b"), plain("a"), plain("x")])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::DuplicateCode(c) if c == "a"));
    let e = s
        .insert_many(vec![plain("a"), plain("x")])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::DuplicateCode(c) if c == "x"));
    assert_eq!(
        s.list(&TaskFilter::all(), &Page::default())
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.insert_many(vec![plain("a"), plain("b")]).await.unwrap(),
        2
    );
    let ids: Vec<i64> = s
        .list(&TaskFilter::all(), &Page::after(1, 10))
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, [2, 3]);
}

#[tokio::test]
async fn claim_takes_due_tasks_oldest_first_and_expired_leases_again() {
    let s = MemoryStore::new();
    s.insert(task(
        "later",
        EnqueueOptions::new().delay(Duration::from_secs(20)),
    ))
    .await
    .unwrap();
    s.insert(task(
        "soon",
        EnqueueOptions::new().delay(Duration::from_secs(10)),
    ))
    .await
    .unwrap();
    s.insert(plain("now1")).await.unwrap();
    s.insert(plain("now2")).await.unwrap();
    s.insert(task("other", EnqueueOptions::new().biz_type("billing")))
        .await
        .unwrap();

    let req = ClaimRequest::new("w1", 10, LEASE, at(10)).biz_types([""]);
    let got = s.claim(&req).await.unwrap();
    assert_eq!(codes(&got), ["now1", "now2", "soon"]);
    let soon = got[2].clone();
    let r = &got[0];
    assert_eq!((r.state, r.attempts, r.version), (TaskState::Running, 1, 1));
    assert_eq!((r.next_run_at, r.lease_expires_at), (None, Some(at(40))));
    assert_eq!(r.lease_owner.as_deref(), Some("w1"));
    assert_eq!((r.updated_at, r.claimed_at), (at(10), Some(at(10))));
    assert!(r.claim_token.is_some_and(|t| t != 0));
    assert_eq!(r.lease().token, r.claim_token.unwrap());

    // Nothing is taken twice while leases live; limit counts.
    assert_eq!(codes(&claim(&s, "w2", 1, at(39)).await), ["other"]);
    assert!(claim(&s, "w2", 10, at(19)).await.is_empty());
    // At 40 the first three leases have expired (due again at 40), behind "later" (due at 20).
    let got = claim(&s, "w2", 2, at(40)).await;
    // Equal due times go by id: "soon" (id 2) before "now1" (id 3).
    assert_eq!(codes(&got), ["later", "soon"]);
    assert_eq!((got[1].attempts, got[1].version), (2, 2));
    assert_eq!(got[1].claimed_at, Some(at(40)));
    // "soon" was reclaimed: a new token, and its lost run logged under the old one.
    assert_ne!(got[1].claim_token, soon.claim_token);
    assert!(claim(&s, "w2", 0, at(1000)).await.is_empty());
    let logs = all_logs(&s).await;
    assert_eq!(outcomes(&logs), [Outcome::WorkerLost]);
    assert_eq!((logs[0].code.as_str(), logs[0].attempt), ("soon", 1));
    assert_eq!(logs[0], TaskLog::worker_lost(1, &soon, at(40), false));
}

#[tokio::test]
async fn finish_applies_or_logs_lease_lost() {
    let s = MemoryStore::new();
    s.insert(plain("del")).await.unwrap();
    s.insert(task("keep", EnqueueOptions::new().keep_on_success()))
        .await
        .unwrap();
    s.insert(plain("retry")).await.unwrap();
    s.insert(plain("fail")).await.unwrap();
    let got = claim(&s, "w1", 10, t0()).await;

    // "retry" is taken over by w2 after its lease expired (w1's run is logged as worker lost):
    // w1's finish of it is lease lost.
    let taken = s
        .claim_one(&"retry".into(), &ClaimOne::new("w2", LEASE, at(31)))
        .await
        .unwrap();
    assert_eq!(taken.attempts, 2);
    assert_eq!(outcomes(&all_logs(&s).await), [Outcome::WorkerLost]);

    let batch = vec![
        done(&got[0], FinishResult::Succeeded, at(1)),
        done(&got[1], FinishResult::Succeeded, at(1)),
        done(
            &got[2],
            FinishResult::Retry {
                at: at(100),
                error: "boom".into(),
            },
            at(1),
        ),
        done(
            &got[3],
            FinishResult::Failed {
                error: "bad".into(),
            },
            at(1),
        ),
        // The same lease twice: the second is lost, the first having changed the row; the run
        // has its one log row already, so nothing more is written.
        done(&got[3], FinishResult::Succeeded, at(1)),
    ];
    let st = s.finish(batch.clone(), at(32)).await.unwrap();
    use FinishStatus::*;
    assert_eq!(st, [Applied, Applied, LeaseLost, Applied, LeaseLost]);

    assert!(matches!(
        s.get(&"del".into()).await,
        Err(Error::NotFound(_))
    ));
    let keep = s.get(&"keep".into()).await.unwrap();
    assert_eq!(
        (keep.state, keep.version, keep.lease_expires_at),
        (TaskState::Succeeded, 2, None)
    );
    assert_eq!(keep.lease_owner.as_deref(), Some("w1"));
    assert_eq!(s.get(&"retry".into()).await.unwrap(), taken);
    let fail = s.get(&"fail".into()).await.unwrap();
    assert_eq!(
        (fail.state, fail.last_error.as_deref()),
        (TaskState::Failed, Some("bad"))
    );
    assert_eq!((fail.next_run_at, fail.updated_at), (None, at(32)));

    let logs = all_logs(&s).await;
    use Outcome as O;
    // w1's run of "retry" keeps its one row (the first): worker lost, now lease lost.
    assert_eq!(
        outcomes(&logs),
        [O::LeaseLost, O::Succeeded, O::Succeeded, O::Failed]
    );
    assert_eq!(logs[0], TaskLog::of_finish(1, &batch[2], false));
    assert!(
        logs[0]
            .error
            .as_deref()
            .unwrap()
            .starts_with("lease lost: the run failed (boom)")
    );
    assert_eq!(logs[1].task_id, got[0].id);
    assert_eq!((logs[1].code.as_str(), logs[1].attempt), ("del", 1));
    assert_eq!(logs[1].claim_token, got[0].claim_token);
    assert_eq!(logs.iter().map(|l| l.id).collect::<Vec<_>>(), [1, 2, 3, 4]);
    let del = s.logs(&LogFilter::code("del")).await.unwrap();
    assert_eq!(del.len(), 1);

    // The whole batch again (its reply lost): the same answers, nothing written.
    let tasks = s.list(&TaskFilter::all(), &Page::default()).await.unwrap();
    let st = s.finish(batch, at(40)).await.unwrap();
    assert_eq!(st, [Applied, Applied, LeaseLost, Applied, LeaseLost]);
    assert_eq!(all_logs(&s).await, logs);
    assert_eq!(
        s.list(&TaskFilter::all(), &Page::default()).await.unwrap(),
        tasks
    );

    // w2's own retry applies.
    let st = s
        .finish(
            vec![Finish::new(
                &taken,
                taken.lease(),
                "w2",
                at(31),
                1,
                FinishResult::Retry {
                    at: at(100),
                    error: "boom".into(),
                },
            )],
            at(33),
        )
        .await
        .unwrap();
    assert_eq!(st, [Applied]);
    let r = s.get(&"retry".into()).await.unwrap();
    assert_eq!(
        (r.state, r.next_run_at, r.attempts),
        (TaskState::Pending, Some(at(100)), 2)
    );
    assert_eq!(r.last_error.as_deref(), Some("boom"));
}

#[tokio::test]
async fn release_and_extend_are_guarded() {
    let s = MemoryStore::new();
    s.insert(plain("a")).await.unwrap();
    let r = claim(&s, "w1", 1, t0()).await.remove(0);
    let forged = Lease {
        id: r.id,
        token: r.lease().token.wrapping_add(1),
    };
    // A heartbeat bumps the version and keeps the token: repeating it (a lost reply) works.
    s.extend_lease(r.lease(), at(60), at(10)).await.unwrap();
    s.extend_lease(r.lease(), at(60), at(11)).await.unwrap();
    let now = s.get(&TaskRef::Id(1)).await.unwrap();
    assert_eq!(
        (now.version, now.claim_token, now.lease_expires_at),
        (r.version + 2, r.claim_token, Some(at(60)))
    );
    assert_eq!((now.claimed_at, now.updated_at), (Some(t0()), at(11)));
    assert!(matches!(
        s.extend_lease(forged, at(90), at(10)).await,
        Err(Error::LeaseLost { id: 1 })
    ));
    // Lease extended to 60: not claimable at 59.
    assert!(claim(&s, "w2", 1, at(59)).await.is_empty());
    assert_eq!(
        s.release(&[forged, r.lease(), r.lease()], at(20))
            .await
            .unwrap(),
        [
            FinishStatus::LeaseLost,
            FinishStatus::Applied,
            FinishStatus::LeaseLost
        ]
    );
    let back = s.get(&TaskRef::Id(1)).await.unwrap();
    assert_eq!(
        (back.state, back.attempts, back.version),
        (TaskState::Pending, 0, 4)
    );
    assert_eq!(
        (back.next_run_at, back.lease_expires_at),
        (Some(at(20)), None)
    );
    assert!(matches!(
        s.extend_lease(r.lease(), at(90), at(21)).await,
        Err(Error::LeaseLost { id: 1 })
    ));
    assert!(s.logs(&LogFilter::default()).await.unwrap().is_empty());
}

#[tokio::test]
async fn claim_one_refusals() {
    let s = MemoryStore::new();
    s.insert(task(
        "future",
        EnqueueOptions::new().delay(Duration::from_secs(3600)),
    ))
    .await
    .unwrap();
    let one = ClaimOne::new("w1", LEASE, t0());
    let r = s.claim_one(&"future".into(), &one).await.unwrap();
    match s.claim_one(&"future".into(), &one).await {
        Err(Error::Running { code, owner, until }) => {
            assert_eq!(
                (code.as_str(), owner.as_str(), until),
                ("future", "w1", at(30))
            )
        }
        other => panic!("{other:?}"),
    }
    s.finish(
        vec![done(&r, FinishResult::Failed { error: "e".into() }, t0())],
        t0(),
    )
    .await
    .unwrap();
    assert!(matches!(
        s.claim_one(&"future".into(), &one.clone().only_pending())
            .await,
        Err(Error::WrongState {
            state: TaskState::Failed,
            ..
        })
    ));
    let r = s.claim_one(&"future".into(), &one).await.unwrap();
    assert_eq!(r.attempts, 2);
    s.finish(vec![done(&r, FinishResult::Succeeded, t0())], t0())
        .await
        .unwrap();
    assert!(matches!(
        s.claim_one(&"future".into(), &one).await,
        Err(Error::NotFound(_))
    ));

    s.insert(task("kept", EnqueueOptions::new().keep_on_success()))
        .await
        .unwrap();
    let r = s.claim_one(&"kept".into(), &one).await.unwrap();
    s.finish(vec![done(&r, FinishResult::Succeeded, t0())], t0())
        .await
        .unwrap();
    assert!(
        matches!(s.claim_one(&"kept".into(), &one).await, Err(Error::Succeeded(c)) if c == "kept")
    );

    s.insert(plain("c")).await.unwrap();
    s.cancel(&"c".into(), t0()).await.unwrap();
    assert!(matches!(s.claim_one(&"c".into(), &one).await, Err(Error::Cancelled(c)) if c == "c"));
}

#[tokio::test]
async fn reset_cancel_delete_purge_counts() {
    let s = MemoryStore::new();
    for c in ["p", "f", "k", "run"] {
        s.insert(task(c, EnqueueOptions::new().keep_on_success()))
            .await
            .unwrap();
    }
    let got = claim(&s, "w1", 3, t0()).await; // p, f, k
    s.finish(
        vec![
            done(&got[1], FinishResult::Failed { error: "e".into() }, t0()),
            done(&got[2], FinishResult::Succeeded, t0()),
        ],
        at(1),
    )
    .await
    .unwrap();
    let run = s
        .claim_one(&"run".into(), &ClaimOne::new("w1", LEASE, at(1)))
        .await
        .unwrap();

    // Cancel: live running marked, succeeded refused; expired running ("p", lease until 30)
    // cancelled.
    let marked = s.cancel(&"run".into(), at(2)).await.unwrap();
    assert_eq!(
        (marked.state, marked.cancel_requested_at),
        (TaskState::Running, Some(at(2)))
    );
    assert_eq!(
        marked.lease(),
        run.lease(),
        "it keeps running under its claim"
    );
    assert!(matches!(
        s.cancel(&"k".into(), at(2)).await,
        Err(Error::Succeeded(_))
    ));
    let p_run = s.get(&"p".into()).await.unwrap();
    let p = s.cancel(&"p".into(), at(31)).await.unwrap();
    assert_eq!(
        (p.state, p.lease_expires_at, p.next_run_at),
        (TaskState::Cancelled, None, None)
    );
    assert_eq!(s.cancel(&"p".into(), at(40)).await.unwrap(), p);
    // Its lost run is logged (once).
    let p_logs = s.logs(&LogFilter::code("p")).await.unwrap();
    assert_eq!(p_logs.len(), 1);
    assert_eq!(
        p_logs[0],
        TaskLog::worker_lost(p_logs[0].id, &p_run, at(31), false)
    );

    let counts: Vec<(String, TaskState, u64)> = s
        .counts()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.task_type, c.state, c.count))
        .collect();
    let n = |st| ("test.noop".to_owned(), st, 1);
    assert_eq!(
        counts,
        [
            n(TaskState::Running),
            n(TaskState::Succeeded),
            n(TaskState::Failed),
            n(TaskState::Cancelled)
        ]
    );

    // Reset one: live running and succeeded refused.
    assert!(matches!(
        s.reset(&ResetTarget::One("run".into()), at(2)).await,
        Err(Error::Running { .. })
    ));
    assert!(matches!(
        s.reset(&ResetTarget::One("k".into()), at(2)).await,
        Err(Error::Succeeded(_))
    ));
    // Matching: failed and cancelled only, narrowed by states.
    let only_failed = TaskFilter::all().states([TaskState::Failed, TaskState::Running]);
    assert_eq!(
        s.reset(&ResetTarget::Matching(only_failed), at(50))
            .await
            .unwrap(),
        1
    );
    let f = s.get(&"f".into()).await.unwrap();
    assert_eq!(
        (f.state, f.attempts, f.last_error.clone()),
        (TaskState::Pending, 0, None)
    );
    assert_eq!(f.next_run_at, Some(at(50)));
    assert_eq!(
        s.reset(&ResetTarget::Matching(TaskFilter::all()), at(50))
            .await
            .unwrap(),
        1
    );

    // Delete refuses a live lease, keeps logs.
    assert!(matches!(
        s.delete(&"run".into(), at(2)).await,
        Err(Error::Running { .. })
    ));
    assert_eq!(s.delete(&"run".into(), at(31)).await.unwrap(), marked);
    assert_eq!(
        outcomes(&s.logs(&LogFilter::code("run")).await.unwrap()),
        [Outcome::WorkerLost]
    );
    assert!(
        s.insert(plain("run")).await.is_ok(),
        "the code is free again"
    );

    // Purge: finished states only.
    let e = s
        .purge(&Purge::before(at(100)).states([TaskState::Pending]))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)));
    let rep = s.purge(&Purge::before(t0())).await.unwrap();
    assert_eq!((rep.tasks, rep.logs), (0, 0), "strictly before");
    let rep = s.purge(&Purge::before(at(100))).await.unwrap();
    // Logs: f failed, k succeeded, and the lost runs of p and run.
    assert_eq!((rep.tasks, rep.logs), (1, 4));
    assert!(matches!(s.get(&"k".into()).await, Err(Error::NotFound(_))));
}

#[tokio::test]
async fn a_retried_finish_after_success_deleted_the_row_is_applied_once() {
    let s = MemoryStore::new();
    s.insert(plain("a")).await.unwrap();
    let r = claim(&s, "w1", 1, t0()).await.remove(0);
    let f = done(&r, FinishResult::Succeeded, at(1));
    assert_eq!(
        s.finish(vec![f.clone()], at(1)).await.unwrap(),
        [FinishStatus::Applied]
    );
    assert!(matches!(s.get(&"a".into()).await, Err(Error::NotFound(_))));
    // The reply was lost: the worker sends it again, alone and twice in one batch.
    assert_eq!(
        s.finish(vec![f.clone()], at(2)).await.unwrap(),
        [FinishStatus::Applied]
    );
    assert_eq!(
        s.finish(vec![f.clone(), f.clone()], at(3)).await.unwrap(),
        [FinishStatus::Applied, FinishStatus::Applied]
    );
    let logs = all_logs(&s).await;
    assert_eq!(logs, [TaskLog::of_finish(1, &f, true)]);
    assert_eq!(logs[0].claim_token, r.claim_token);

    // Within one batch too: the second copy finds the first's row.
    s.insert(task("b", EnqueueOptions::new().keep_on_success()))
        .await
        .unwrap();
    let r = claim(&s, "w1", 1, at(5)).await.remove(0);
    let f = done(
        &r,
        FinishResult::Retry {
            at: at(60),
            error: "later".into(),
        },
        at(5),
    );
    assert_eq!(
        s.finish(vec![f.clone(), f.clone()], at(6)).await.unwrap(),
        [FinishStatus::Applied, FinishStatus::Applied]
    );
    let b = s.get(&"b".into()).await.unwrap();
    assert_eq!(
        (b.state, b.version, b.next_run_at),
        (TaskState::Pending, 2, Some(at(60)))
    );
    assert_eq!(s.logs(&LogFilter::code("b")).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_claim_token_fences_finishes_and_heartbeats() {
    let s = MemoryStore::new();
    s.insert(plain("a")).await.unwrap();
    let r1 = claim(&s, "w1", 1, t0()).await.remove(0);

    // Heartbeats keep the token; a finish after one is applied.
    s.extend_lease(r1.lease(), at(40), at(20)).await.unwrap();
    let row = s.get(&"a".into()).await.unwrap();
    assert_eq!((row.claim_token, row.version), (r1.claim_token, 2));
    let retry = FinishResult::Retry {
        at: at(41),
        error: "e".into(),
    };
    assert_eq!(
        s.finish(vec![done(&r1, retry, at(21))], at(21))
            .await
            .unwrap(),
        [FinishStatus::Applied]
    );
    let row = s.get(&"a".into()).await.unwrap();
    // The token stays on the row after the run ends.
    assert_eq!((row.claim_token, row.version), (r1.claim_token, 3));

    // The next run's worker goes quiet; another worker reclaims the task after its lease.
    let r2 = claim(&s, "w1", 1, at(41)).await.remove(0);
    assert_ne!(r2.claim_token, r1.claim_token);
    let r3 = claim(&s, "w2", 1, at(71)).await.remove(0);
    assert_eq!((r3.attempts, r3.lease_owner.as_deref()), (3, Some("w2")));
    assert_ne!(r3.claim_token, r2.claim_token);
    let lost = TaskLog::worker_lost(2, &r2, at(71), false);
    assert_eq!(all_logs(&s).await[1], lost);
    assert!(lost.error.as_deref().unwrap().contains("runs again"));

    // The old token is refused: heartbeat and finish. The finish turns the worker-lost row
    // into its lease-lost row, in place; sent again, it writes nothing.
    assert!(matches!(
        s.extend_lease(r2.lease(), at(100), at(72)).await,
        Err(Error::LeaseLost { id: 1 })
    ));
    let late = done(&r2, FinishResult::Succeeded, at(41));
    for _ in 0..2 {
        assert_eq!(
            s.finish(vec![late.clone()], at(72)).await.unwrap(),
            [FinishStatus::LeaseLost]
        );
        let logs = all_logs(&s).await;
        assert_eq!(outcomes(&logs), [Outcome::Retrying, Outcome::LeaseLost]);
        assert_eq!(logs[1], TaskLog::of_finish(2, &late, false));
    }
    let row = s.get(&"a".into()).await.unwrap();
    assert_eq!(
        (row.state, row.claim_token, row.version),
        (TaskState::Running, r3.claim_token, r3.version)
    );

    // The current token is accepted.
    s.extend_lease(r3.lease(), at(120), at(80)).await.unwrap();
    assert_eq!(
        s.finish(vec![done(&r3, FinishResult::Succeeded, at(71))], at(81))
            .await
            .unwrap(),
        [FinishStatus::Applied]
    );
    assert_eq!(
        outcomes(&all_logs(&s).await),
        [Outcome::Retrying, Outcome::LeaseLost, Outcome::Succeeded]
    );
}

#[tokio::test]
async fn a_claim_fails_a_lost_task_at_its_last_attempt_and_takes_another() {
    let s = MemoryStore::new();
    s.insert(task("last", EnqueueOptions::new().max_attempts(1)))
        .await
        .unwrap();
    let r = claim(&s, "w1", 1, t0()).await.remove(0);
    s.insert(task(
        "next",
        EnqueueOptions::new().delay(Duration::from_secs(70)),
    ))
    .await
    .unwrap();

    // At 30 the lease of "last" has expired: failed, not claimed, and not counted.
    assert!(claim(&s, "w2", 1, at(30)).await.is_empty());
    let failed = s.get(&"last".into()).await.unwrap();
    assert_eq!(
        (failed.state, failed.attempts, failed.version),
        (TaskState::Failed, 1, 2)
    );
    assert_eq!(
        (
            failed.lease_expires_at,
            failed.next_run_at,
            failed.updated_at
        ),
        (None, None, at(30))
    );
    assert_eq!(
        failed.last_error.as_deref(),
        Some(TaskLog::worker_lost_failure(&r).as_str())
    );
    assert_eq!(failed.claim_token, r.claim_token);
    let logs = all_logs(&s).await;
    assert_eq!(logs, [TaskLog::worker_lost(1, &r, at(30), true)]);
    assert!(logs[0].error.as_deref().unwrap().contains("last attempt"));
    assert_eq!(
        (
            logs[0].started_at,
            logs[0].duration_ms,
            logs[0].worker.as_str()
        ),
        (t0(), 30_000, "w1")
    );
    // A late finish of that run is lease lost and takes over its row.
    let late = done(&r, FinishResult::Succeeded, t0());
    assert_eq!(
        s.finish(vec![late.clone()], at(31)).await.unwrap(),
        [FinishStatus::LeaseLost]
    );
    assert_eq!(all_logs(&s).await, [TaskLog::of_finish(1, &late, false)]);

    // Again, with another task due behind it (at 70, the lease ending at 62): the claim
    // fails the lost one, which does not count against the limit, and takes the next.
    s.reset(&ResetTarget::One("last".into()), at(32))
        .await
        .unwrap();
    let r = claim(&s, "w1", 1, at(32)).await.remove(0);
    assert_eq!(r.code, "last");
    let got = claim(&s, "w2", 1, at(70)).await;
    assert_eq!(codes(&got), ["next"]);
    assert_eq!(
        s.get(&"last".into()).await.unwrap().state,
        TaskState::Failed
    );
    assert_eq!(
        outcomes(&all_logs(&s).await),
        [Outcome::LeaseLost, Outcome::WorkerLost]
    );
}

#[tokio::test]
async fn claim_one_settles_a_lost_run_first() {
    let s = MemoryStore::new();
    s.insert(task("a", EnqueueOptions::new().max_attempts(1)))
        .await
        .unwrap();
    let r1 = claim(&s, "w1", 1, t0()).await.remove(0);

    // Run-now runs it again, past its last attempt (an operator's decision).
    let one = ClaimOne::new("op", LEASE, at(30));
    let r2 = s.claim_one(&"a".into(), &one).await.unwrap();
    assert_eq!((r2.state, r2.attempts), (TaskState::Running, 2));
    assert_ne!(r2.claim_token, r1.claim_token);
    assert_eq!(
        all_logs(&s).await,
        [TaskLog::worker_lost(1, &r1, at(30), false)]
    );

    // Immediate dispatch fails it instead.
    let only = ClaimOne::new("w1", LEASE, at(60)).only_pending();
    match s.claim_one(&"a".into(), &only).await {
        Err(Error::WrongState { code, state, what }) => {
            assert_eq!((code.as_str(), state), ("a", TaskState::Failed));
            assert!(what.contains("worker was lost"), "{what}");
        }
        other => panic!("{other:?}"),
    }
    let a = s.get(&"a".into()).await.unwrap();
    assert_eq!((a.state, a.attempts), (TaskState::Failed, 2));
    assert_eq!(
        a.last_error.as_deref(),
        Some(TaskLog::worker_lost_failure(&r2).as_str())
    );
    assert_eq!(
        all_logs(&s).await[1],
        TaskLog::worker_lost(2, &r2, at(60), true)
    );
}

#[tokio::test]
async fn an_interrupted_run_gives_its_attempt_back() {
    let s = MemoryStore::new();
    s.insert(plain("a")).await.unwrap();
    let r = claim(&s, "w1", 1, t0()).await.remove(0);
    let f = done(
        &r,
        FinishResult::Interrupted {
            at: at(5),
            error: "interrupted: shutdown".into(),
        },
        t0(),
    );
    assert_eq!(
        s.finish(vec![f.clone()], at(2)).await.unwrap(),
        [FinishStatus::Applied]
    );
    let a = s.get(&"a".into()).await.unwrap();
    assert_eq!(
        (a.state, a.attempts, a.interruptions, a.version),
        (TaskState::Pending, 0, 1, 2)
    );
    assert_eq!((a.next_run_at, a.lease_expires_at), (Some(at(5)), None));
    assert_eq!(a.last_error.as_deref(), Some("interrupted: shutdown"));
    let logs = all_logs(&s).await;
    assert_eq!(logs, [TaskLog::of_finish(1, &f, true)]);
    assert_eq!(logs[0].outcome, Outcome::Interrupted);
    // Retried after a lost reply: applied, nothing more given back.
    assert_eq!(
        s.finish(vec![f], at(3)).await.unwrap(),
        [FinishStatus::Applied]
    );
    assert_eq!(s.get(&"a".into()).await.unwrap(), a);

    // Not due before 5; then attempt 1 again. Reset clears the interruptions.
    assert!(claim(&s, "w1", 1, at(4)).await.is_empty());
    let r = claim(&s, "w1", 1, at(5)).await.remove(0);
    assert_eq!((r.attempts, r.interruptions), (1, 1));
    s.finish(
        vec![done(&r, FinishResult::Failed { error: "x".into() }, at(5))],
        at(6),
    )
    .await
    .unwrap();
    s.reset(&ResetTarget::One("a".into()), at(7)).await.unwrap();
    let a = s.get(&"a".into()).await.unwrap();
    assert_eq!((a.attempts, a.interruptions), (0, 0));
}

#[test]
fn debug_is_short() {
    let s = MemoryStore::new();
    block_on(s.insert(plain("a"))).unwrap();
    assert_eq!(format!("{s:?}"), "MemoryStore { tasks: 1, logs: 0 }");
}

/// A small deterministic generator (xorshift64*), so the random walk below needs no crate and
/// replays exactly from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// A span below `max_ms`: on whole seconds half of the time, so that due times often tie
    /// with each other and with the claim's `now`.
    fn span(&mut self, max_ms: u64) -> Duration {
        let ms = self.below(max_ms);
        Duration::from_millis(if self.chance(50) {
            ms / 1000 * 1000
        } else {
            ms
        })
    }
}

/// What a claim takes, found without the due index: every matching due task, sorted by
/// (due, id), the first `limit` of them, passing over (not counting) the expired ones at
/// their last attempt, which the claim fails instead.
fn claim_by_scan(s: &MemoryStore, req: &ClaimRequest) -> Vec<i64> {
    let now = taskrow::clock::truncate_micros(req.now);
    let inner = s.lock();
    let mut due: Vec<(DateTime<Utc>, i64)> = inner
        .tasks
        .values()
        .filter(|r| {
            (req.biz_types.is_empty() || req.biz_types.contains(&r.biz_type))
                && (req.task_types.is_empty() || req.task_types.contains(&r.task_type))
                && !(r.state == TaskState::Running
                    && (r.attempts_exhausted() || r.cancel_requested_at.is_some()))
        })
        .filter_map(|r| {
            let d = match r.state {
                TaskState::Pending => r.next_run_at,
                TaskState::Running => r.lease_expires_at,
                _ => None,
            };
            d.filter(|&d| d <= now).map(|d| (d, r.id))
        })
        .collect();
    due.sort_unstable();
    due.truncate(req.limit);
    due.into_iter().map(|(_, id)| id).collect()
}

/// Every kind of change, at random times (not always moving forward), against the due index:
/// after each call the index must equal one rebuilt from the rows, and each claim must take
/// exactly what a full scan and sort would have taken.
#[tokio::test]
async fn due_index_matches_the_rows_after_random_changes() {
    const CODES: [&str; 24] = [
        "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r",
        "s", "t", "u", "v", "w", "x",
    ];
    const BIZ: [&str; 3] = ["", "billing", "mail"];
    const TYPES: [&str; 2] = ["test.noop", "test.other"];
    let mut claims_compared = 0;
    // Lost runs that were their task's last attempt (the claim failed the task).
    let mut lost_last = 0;
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let s = MemoryStore::new();
        // Leases handed out, some of which go stale as the walk goes on.
        let mut held: Vec<TaskRecord> = Vec::new();
        let new_task = |rng: &mut Rng| {
            let mut opts = EnqueueOptions::new()
                .delay(rng.span(90_000))
                .biz_type(rng.pick(&BIZ));
            if rng.chance(40) {
                opts = opts.keep_on_success();
            }
            let mut t = task(rng.pick(&CODES), opts);
            t.task_type = rng.pick(&TYPES).to_owned();
            t
        };
        for _ in 0..400 {
            // Mostly forward, sometimes a little back, at millisecond steps.
            let now = taskrow::clock::add(t0(), rng.span(150_000));
            let code = TaskRef::Code(rng.pick(&CODES).to_owned());
            match rng.below(14) {
                0 | 1 => {
                    let _ = s.insert(new_task(&mut rng)).await;
                }
                2 => {
                    let _ = s.insert_if_absent(new_task(&mut rng)).await;
                }
                3 => {
                    let n = rng.below(4);
                    let batch = (0..n).map(|_| new_task(&mut rng)).collect();
                    let _ = s.insert_many(batch).await;
                }
                4..=6 => {
                    let mut req = ClaimRequest::new("w", rng.below(6) as usize, LEASE, now);
                    if rng.chance(30) {
                        req = req.biz_types([rng.pick(&BIZ)]);
                    }
                    if rng.chance(30) {
                        req = req.task_types([rng.pick(&TYPES)]);
                    }
                    let expected = claim_by_scan(&s, &req);
                    let got = s.claim(&req).await.unwrap();
                    let ids: Vec<i64> = got.iter().map(|r| r.id).collect();
                    assert_eq!(ids, expected, "seed {seed}: claim at {now}");
                    claims_compared += 1;
                    held.extend(got);
                }
                7 => {
                    let mut one = ClaimOne::new("w", LEASE, now);
                    if rng.chance(50) {
                        one = one.only_pending();
                    }
                    if let Ok(r) = s.claim_one(&code, &one).await {
                        held.push(r);
                    }
                }
                8 if !held.is_empty() => {
                    let k = rng.below(held.len() as u64) as usize;
                    let r = held.swap_remove(k);
                    let result = match rng.below(4) {
                        0 => FinishResult::Succeeded,
                        1 => FinishResult::Retry {
                            at: taskrow::clock::add(now, rng.span(20_000)),
                            error: "again".into(),
                        },
                        2 => FinishResult::Interrupted {
                            at: taskrow::clock::add(now, rng.span(20_000)),
                            error: "stopped".into(),
                        },
                        _ => FinishResult::Failed { error: "no".into() },
                    };
                    s.finish(vec![done(&r, result, now)], now).await.unwrap();
                }
                9 if !held.is_empty() => {
                    let k = rng.below(held.len() as u64) as usize;
                    let r = held.swap_remove(k);
                    s.release(&[r.lease()], now).await.unwrap();
                }
                10 if !held.is_empty() => {
                    let k = rng.below(held.len() as u64) as usize;
                    let until = taskrow::clock::add(now, rng.span(60_000));
                    let _ = s.extend_lease(held[k].lease(), until, now).await;
                }
                11 => {
                    let target = if rng.chance(70) {
                        ResetTarget::One(code)
                    } else {
                        ResetTarget::Matching(TaskFilter::all().biz_types([rng.pick(&BIZ)]))
                    };
                    let _ = s.reset(&target, now).await;
                }
                12 => {
                    if rng.chance(50) {
                        let _ = s.cancel(&code, now).await;
                    } else {
                        let _ = s.delete(&code, now).await;
                    }
                }
                _ => {
                    let purge = Purge::before(now).states([
                        TaskState::Succeeded,
                        TaskState::Failed,
                        TaskState::Cancelled,
                    ]);
                    s.purge(&purge).await.unwrap();
                }
            }
            s.lock().tasks.check();
        }
        // One log row per run: no `(task id, claim token)` twice.
        let logs = all_logs(&s).await;
        let runs: std::collections::HashSet<_> =
            logs.iter().map(|l| (l.task_id, l.claim_token)).collect();
        assert_eq!(runs.len(), logs.len(), "seed {seed}: a run logged twice");
        lost_last += logs
            .iter()
            .filter(|l| l.outcome == Outcome::WorkerLost)
            .filter(|l| {
                l.error
                    .as_deref()
                    .is_some_and(|e| e.contains("last attempt"))
            })
            .count();
    }
    assert!(
        claims_compared > 1000,
        "only {claims_compared} claims compared"
    );
    assert!(
        lost_last > 0,
        "no claim met a lost task at its last attempt"
    );
}
