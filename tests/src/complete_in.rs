//! Completion inside the handler's own transaction (`SqlStore::complete_in`): the handler's
//! business write and "this task succeeded" commit together or not at all, fenced by the
//! run's claim token. Cases for every SQL store, listed with the consistency cases.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use taskrow::Clock as _;
use taskrow::typetag;
use taskrow::{
    ClaimRequest, Client, EnqueueOptions, Error, Jitter, LogFilter, ManualClock, Outcome,
    RetryPolicy, Task, TaskContext, TaskError, TaskRef, TaskState, TaskStore, async_trait,
};
use taskrow_sql::sea_orm::TransactionTrait;
use taskrow_sql::{Dialect, SqlStore};
use tokio::sync::Notify;

use crate::cases::t0;
use crate::cases::worker::eventually;
use crate::consistency::{business_table, documents, finish_document};

/// What the handler does after its business write and `complete_in`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, taskrow::serde::Serialize, taskrow::serde::Deserialize,
)]
#[serde(crate = "taskrow::serde")]
pub enum Then {
    /// Commit and succeed.
    Commit,
    /// Fail before the commit: the transaction is dropped and rolls back.
    FailBeforeCommit,
}

/// Writes document `doc` and completes itself in one transaction of its own.
#[derive(Debug, Clone, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct LocalEffect {
    doc: i64,
    then: Then,
}

/// The store side of [`LocalEffect`], registered as data (the task type cannot name the
/// dialect).
pub trait Effects: Send + Sync {
    /// Runs the handler's transaction.
    fn apply<'a>(
        &'a self,
        ctx: &'a TaskContext,
        doc: i64,
        then: Then,
    ) -> Pin<Box<dyn Future<Output = Result<(), TaskError>> + Send + 'a>>;
}

/// What the handler saw, and a gate it waits at before its transaction.
#[derive(Debug, Default)]
pub struct Seen {
    gate: Option<Arc<Notify>>,
    completions: Mutex<Vec<Result<(), String>>>,
}

impl<D: Dialect> Effects for SqlStore<D> {
    fn apply<'a>(
        &'a self,
        ctx: &'a TaskContext,
        doc: i64,
        then: Then,
    ) -> Pin<Box<dyn Future<Output = Result<(), TaskError>> + Send + 'a>> {
        Box::pin(async move {
            let seen = ctx.data::<Seen>()?;
            if let Some(gate) = &seen.gate {
                gate.notified().await;
            }
            let tx = self.connection().begin().await.map_err(TaskError::retry)?;
            finish_document(&tx, doc).await;
            let completed = self.complete_in(&tx, ctx).await;
            seen.completions
                .lock()
                .unwrap()
                .push(completed.as_ref().map(|_| ()).map_err(|e| format!("{e:?}")));
            completed?;
            match then {
                Then::Commit => {
                    tx.commit().await.map_err(TaskError::retry)?;
                    Ok(())
                }
                Then::FailBeforeCommit => Err(TaskError::msg("a check after the write failed")),
            }
        })
    }
}

#[typetag::serde(name = "conformance.complete_in.local_effect")]
#[async_trait]
impl Task for LocalEffect {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        let effects = ctx.data::<Box<dyn Effects>>()?;
        effects.apply(ctx, self.doc, self.then).await
    }
}

fn client<D: Dialect>(store: &SqlStore<D>, clock: &ManualClock, seen: &Arc<Seen>) -> Client {
    let effects: Box<dyn Effects> = Box::new(store.clone());
    Client::builder(store.clone())
        .data(effects)
        .data_arc(seen.clone())
        .clock(clock.clone())
        .jitter(Jitter::fixed(0.0))
        .build()
        .unwrap()
}

async fn outcomes<D: Dialect>(store: &SqlStore<D>, code: &str) -> Vec<Outcome> {
    store
        .logs(&LogFilter::code(code))
        .await
        .unwrap()
        .iter()
        .map(|l| l.outcome)
        .collect()
}

async fn running<D: Dialect>(store: &SqlStore<D>, code: &str) -> bool {
    store.get(&TaskRef::from(code)).await.unwrap().state == TaskState::Running
}

async fn logged<D: Dialect>(store: &SqlStore<D>, code: &str) -> bool {
    !outcomes(store, code).await.is_empty()
}

/// The business row and the task's end commit together: the document is written, the task is
/// gone, and its one log row says succeeded (the worker's own finish wrote nothing more).
pub async fn completes_with_the_business_write<D: Dialect>(store: SqlStore<D>) {
    business_table(&store).await;
    let clock = ManualClock::new(t0());
    let c = client(&store, &clock, &Arc::default());
    let task = LocalEffect {
        doc: 1,
        then: Then::Commit,
    };
    c.enqueue(&task, EnqueueOptions::new().code("local-1"))
        .await
        .unwrap();
    c.worker().build().unwrap().run_until_idle().await.unwrap();

    assert_eq!(documents(&store).await, [(1, "done".to_owned())]);
    assert!(matches!(
        store.get(&TaskRef::from("local-1")).await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(outcomes(&store, "local-1").await, [Outcome::Succeeded]);
}

/// A handler that completes its task in its transaction and then fails before the commit
/// leaves neither: no document, and the task pending for its retry with one `retrying` row.
pub async fn rolls_back_with_the_business_write<D: Dialect>(store: SqlStore<D>) {
    business_table(&store).await;
    let clock = ManualClock::new(t0());
    let c = client(&store, &clock, &Arc::default());
    let task = LocalEffect {
        doc: 2,
        then: Then::FailBeforeCommit,
    };
    c.enqueue(
        &task,
        EnqueueOptions::new()
            .code("local-2")
            .retry(RetryPolicy::fixed(Duration::from_secs(60))),
    )
    .await
    .unwrap();
    c.worker().build().unwrap().run_until_idle().await.unwrap();

    assert!(documents(&store).await.is_empty(), "the write rolled back");
    let row = store.get(&TaskRef::from("local-2")).await.unwrap();
    assert_eq!((row.state, row.attempts), (TaskState::Pending, 1));
    assert_eq!(outcomes(&store, "local-2").await, [Outcome::Retrying]);
}

/// The fault: the run's lease is lost mid-run (the clock passes its end and another worker
/// claims the task) before the handler's transaction. `complete_in` refuses with `LeaseLost`,
/// the business write rolls back with it, and no run is logged as succeeded; the task stays
/// with the claim that took it.
pub async fn refuses_after_the_lease_is_lost<D: Dialect>(store: SqlStore<D>) {
    business_table(&store).await;
    let clock = ManualClock::new(t0());
    let gate = Arc::new(Notify::new());
    let seen = Arc::new(Seen {
        gate: Some(gate.clone()),
        ..Seen::default()
    });
    let c = client(&store, &clock, &seen);
    let task = LocalEffect {
        doc: 3,
        then: Then::Commit,
    };
    c.enqueue(&task, EnqueueOptions::new().code("local-3"))
        .await
        .unwrap();
    let lease = Duration::from_secs(30);
    let w = c
        .worker()
        .lease(lease)
        .heartbeat(None)
        .poll_interval(Duration::from_millis(20))
        .start()
        .unwrap();
    eventually("the run to start", Duration::from_secs(30), || {
        running(&store, "local-3")
    })
    .await;

    clock.advance(lease + Duration::from_secs(1));
    let taken = store
        .claim(&ClaimRequest::new("thief", 10, lease, clock.now()))
        .await
        .unwrap();
    assert_eq!(
        taken.len(),
        1,
        "the expired lease is claimed by another worker"
    );
    gate.notify_one();

    eventually("the first run to end", Duration::from_secs(30), || {
        logged(&store, "local-3")
    })
    .await;
    w.shutdown().await;

    let completions = seen.completions.lock().unwrap().clone();
    assert_eq!(completions.len(), 1);
    assert!(
        completions[0]
            .as_ref()
            .is_err_and(|e| e.starts_with("LeaseLost")),
        "complete_in refused: {completions:?}"
    );
    assert!(documents(&store).await.is_empty(), "the write rolled back");
    assert_eq!(outcomes(&store, "local-3").await, [Outcome::LeaseLost]);
    let row = store.get(&TaskRef::from("local-3")).await.unwrap();
    assert_eq!(
        (row.state, row.lease_owner.as_deref(), row.claim_token),
        (TaskState::Running, Some("thief"), taken[0].claim_token)
    );
}
