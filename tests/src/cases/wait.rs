//! `Client::wait`: how a task ended, read from its row or, once success deleted the row, from
//! its log.

use std::sync::Arc;
use std::time::Duration;

use taskrow::{
    Client, EnqueueOptions, Error, Jitter, ManualClock, Outcome, RetryPolicy, TaskEnd, TaskRef,
    TaskStore,
};

use crate::cases::t0;
use crate::cases::worker::{Probe, Work};

/// Long enough for any store here; a passing wait returns as soon as the task ends.
const LONG: Duration = Duration::from_secs(30);

fn client(store: &Arc<dyn TaskStore>, clock: &ManualClock) -> Client {
    Client::builder(store.clone())
        .data(Probe::default())
        .clock(clock.clone())
        .jitter(Jitter::fixed(0.0))
        .build()
        .unwrap()
}

/// Success that deletes the row, success that keeps it, a permanent failure and a cancel each
/// come back as such; the succeeded ones carry their run's log row.
pub async fn reports_each_end(store: Arc<dyn TaskStore>) {
    let clock = ManualClock::new(t0());
    let c = client(&store, &clock);
    let ok = Work::default();
    let bad = Work {
        permanent: true,
        ..Work::default()
    };
    c.enqueue(&ok, EnqueueOptions::new().code("deleted-on-success"))
        .await
        .unwrap();
    c.enqueue(&ok, EnqueueOptions::new().code("kept").keep_on_success())
        .await
        .unwrap();
    c.enqueue(&bad, EnqueueOptions::new().code("bad"))
        .await
        .unwrap();
    let later = c
        .enqueue(
            &ok,
            EnqueueOptions::new()
                .code("cancelled")
                .delay(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    c.worker().build().unwrap().run_until_idle().await.unwrap();
    c.cancel("cancelled").await.unwrap();

    match c.wait("deleted-on-success", LONG).await.unwrap() {
        TaskEnd::Succeeded { log: Some(log) } => {
            assert_eq!(
                (log.code.as_str(), log.outcome),
                ("deleted-on-success", Outcome::Succeeded)
            );
        }
        other => panic!("expected success with its log row, got {other:?}"),
    }
    match c.wait("kept", LONG).await.unwrap() {
        TaskEnd::Succeeded { log: Some(log) } => assert_eq!(log.outcome, Outcome::Succeeded),
        other => panic!("expected success with its log row, got {other:?}"),
    }
    match c.wait("bad", LONG).await.unwrap() {
        TaskEnd::Failed { error, task } => {
            assert!(error.unwrap().contains("bad input"));
            assert_eq!(task.code, "bad");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    match c.wait(later.id, LONG).await.unwrap() {
        TaskEnd::Cancelled { task } => assert_eq!(task.code, "cancelled"),
        other => panic!("expected a cancel, got {other:?}"),
    }
}

/// A wait started before the first run follows the task through a failed run and its retry
/// (moved there by the manual clock) and answers when the retry succeeds.
pub async fn follows_retries_to_the_end(store: Arc<dyn TaskStore>) {
    let clock = ManualClock::new(t0());
    let c = client(&store, &clock);
    let flaky = Work {
        fail_times: 1,
        ..Work::default()
    };
    c.enqueue(
        &flaky,
        EnqueueOptions::new()
            .code("flaky")
            .retry(RetryPolicy::fixed(Duration::from_secs(5))),
    )
    .await
    .unwrap();
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move { c.wait("flaky", LONG).await })
    };
    let w = c.worker().build().unwrap();
    w.run_until_idle().await.unwrap();
    assert!(!waiter.is_finished(), "a retrying task has not ended");
    clock.advance(Duration::from_secs(5));
    w.run_until_idle().await.unwrap();
    let end = waiter.await.unwrap().unwrap();
    assert!(end.succeeded(), "{end:?}");
    let outcomes: Vec<_> = c
        .logs("flaky")
        .await
        .unwrap()
        .iter()
        .map(|l| l.outcome)
        .collect();
    assert_eq!(outcomes, [Outcome::Retrying, Outcome::Succeeded]);
}

/// A task that has not ended when the time is up is a timeout naming its state, and is left
/// as it is; a task deleted after a failed run is `Deleted`; a code or id that never existed is `NotFound`.
pub async fn times_out_and_tells_deleted_from_unknown(store: Arc<dyn TaskStore>) {
    let clock = ManualClock::new(t0());
    let c = client(&store, &clock);
    let later = c
        .enqueue(
            &Work::default(),
            EnqueueOptions::new()
                .code("later")
                .delay(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    match c.wait("later", Duration::from_millis(50)).await {
        Err(Error::WaitTimeout { task, state, .. }) => {
            assert_eq!((task, state.as_str()), (TaskRef::from("later"), "pending"));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(
        c.get(later.id).await.unwrap(),
        later,
        "the task is left as it was"
    );

    // Failed, then deleted by an operator: the log has its runs, none succeeded.
    c.enqueue(
        &Work {
            permanent: true,
            ..Work::default()
        },
        EnqueueOptions::new().code("failed-then-deleted"),
    )
    .await
    .unwrap();
    c.worker().build().unwrap().run_until_idle().await.unwrap();
    c.delete("failed-then-deleted").await.unwrap();
    assert_eq!(
        c.wait("failed-then-deleted", LONG).await.unwrap(),
        TaskEnd::Deleted
    );

    assert!(matches!(
        c.wait("never-was", LONG).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        c.wait(later.id + 1000, LONG).await,
        Err(Error::NotFound(_))
    ));
}
