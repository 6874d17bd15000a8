//! Named queues: the claim's queue filter, pausing and resuming
//! ([`TaskStore::set_queue_paused`], [`TaskStore::queues`]), queue-name checks, and workers
//! that give each queue its own slots.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskrow::typetag;
use taskrow::{
    ClaimOne, ClaimRequest, Client, DEFAULT_QUEUE, EnqueueOptions, Error, FinishResult,
    FinishStatus, Jitter, ManualClock, ResetTarget, Task, TaskContext, TaskError, TaskFilter,
    TaskRef, TaskState, TaskStore, async_trait,
};
use tokio::sync::watch;

use super::worker::eventually;
use super::{
    LEASE, build, claim_req, finish_of, finish_one, insert_with, list_codes, opts, secs,
    sorted_codes, t0,
};

fn in_queue(code: &str, queue: &str) -> EnqueueOptions {
    opts(code).queue(queue)
}

/// Inserts noops `<queue>-<i>` in these queues, due at t0.
async fn fill(store: &dyn TaskStore, queues: &[(&str, usize)]) {
    for (q, n) in queues {
        for i in 0..*n {
            insert_with(store, in_queue(&format!("{q}-{i}"), q), t0()).await;
        }
    }
}

fn req(limit: usize) -> ClaimRequest {
    ClaimRequest::new("w", limit, LEASE, secs(1))
}

/// A claim for some queues takes only their tasks; one for none takes every queue's.
pub async fn claim_filters_by_queue(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    fill(s, &[("a", 2), ("b", 2), (DEFAULT_QUEUE, 1)]).await;
    let a = claim_req(s, &req(10).queues(["a"])).await;
    assert_eq!(sorted_codes(&a), ["a-0", "a-1"]);
    assert!(a.iter().all(|r| r.queue == "a"));
    let none = claim_req(s, &req(10).queues(["nothing-here"])).await;
    assert!(none.is_empty());
    let rest = claim_req(s, &req(10)).await;
    assert_eq!(sorted_codes(&rest), ["b-0", "b-1", "default-0"]);
}

/// [`TaskStore::list`] and a matching reset filter by queue.
pub async fn list_and_reset_filter_by_queue(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    fill(s, &[("a", 2), ("b", 1)]).await;
    let f = TaskFilter::all().queues(["a"]);
    assert_eq!(list_codes(s, &f).await, ["a-0", "a-1"]);
    assert_eq!(
        list_codes(s, &TaskFilter::all().queues(["a", "b"])).await,
        ["a-0", "a-1", "b-0"]
    );
    for code in ["a-0", "b-0"] {
        s.cancel(&code.into(), secs(1)).await.unwrap();
    }
    let n = s
        .reset(
            &ResetTarget::Matching(TaskFilter::all().queues(["b"])),
            secs(2),
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        s.get(&"a-0".into()).await.unwrap().state,
        TaskState::Cancelled
    );
    assert_eq!(
        s.get(&"b-0".into()).await.unwrap().state,
        TaskState::Pending
    );
}

/// A paused queue's due tasks are not claimed, by a claim for every queue or for that queue;
/// other queues go on; a task claimed before the pause finishes; after resume the queue's tasks
/// are claimed again.
pub async fn paused_queue_is_not_claimed_until_resumed(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    fill(s, &[("a", 3), ("b", 1)]).await;
    let running = claim_req(s, &req(1).queues(["a"])).await;
    assert_eq!(running.len(), 1);

    s.set_queue_paused("a", true, secs(1)).await.unwrap();
    assert!(claim_req(s, &req(10).queues(["a"])).await.is_empty());
    let others = claim_req(s, &req(10)).await;
    assert_eq!(sorted_codes(&others), ["b-0"], "only the running queue");
    assert!(claim_req(s, &req(10).queues(["a", "b"])).await.is_empty());
    // The run that started before the pause still finishes.
    let done = finish_one(
        s,
        finish_of(&running[0], secs(1), FinishResult::Succeeded),
        secs(2),
    )
    .await;
    assert_eq!(done, FinishStatus::Applied);
    // Run-now, an operator's decision, still runs one by hand.
    let left: Vec<String> = ["a-0", "a-1", "a-2"]
        .into_iter()
        .filter(|c| **c != running[0].code)
        .map(str::to_owned)
        .collect();
    let by_hand = s
        .claim_one(
            &TaskRef::from(left[0].as_str()),
            &ClaimOne::new("op", LEASE, secs(2)),
        )
        .await
        .unwrap();
    assert_eq!(by_hand.state, TaskState::Running);

    s.set_queue_paused("a", false, secs(3)).await.unwrap();
    let after = claim_req(s, &ClaimRequest::new("w", 10, LEASE, secs(3))).await;
    assert_eq!(sorted_codes(&after), [left[1].clone()]);
}

/// [`TaskStore::queues`] lists queues with tasks and queues ever paused, with their state and
/// counts; pausing twice keeps the first time, resuming sets a new one.
pub async fn queues_lists_state_and_counts(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    assert!(s.queues().await.unwrap().is_empty());
    fill(s, &[("a", 2), (DEFAULT_QUEUE, 1)]).await;
    claim_req(s, &req(1).queues(["a"])).await;
    s.set_queue_paused("a", true, secs(10)).await.unwrap();
    s.set_queue_paused("a", true, secs(20)).await.unwrap();
    s.set_queue_paused("empty", true, secs(30)).await.unwrap();
    s.set_queue_paused("empty", false, secs(40)).await.unwrap();

    let qs = s.queues().await.unwrap();
    let names: Vec<&str> = qs.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["a", DEFAULT_QUEUE, "empty"]);
    let a = &qs[0];
    assert!(a.paused);
    assert_eq!(
        a.changed_at,
        Some(secs(10)),
        "a second pause changes nothing"
    );
    assert_eq!(a.counts, [(TaskState::Pending, 1), (TaskState::Running, 1)]);
    assert_eq!(a.count(TaskState::Pending), 1);
    assert_eq!(a.count(TaskState::Failed), 0);
    let d = &qs[1];
    assert!(!d.paused);
    assert_eq!(d.changed_at, None);
    assert_eq!(d.counts, [(TaskState::Pending, 1)]);
    let e = &qs[2];
    assert!(!e.paused);
    assert_eq!(e.changed_at, Some(secs(40)));
    assert!(e.counts.is_empty());
}

/// A queue name must be 1 to 64 characters without whitespace or control characters: the
/// options, the store's insert, pause and the worker builder all refuse others, saying why.
pub async fn invalid_queue_name_is_refused(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let long = "q".repeat(65);
    for bad in ["", "two words", "tab\there", long.as_str()] {
        let built = opts("x").queue(bad).build(&crate::tasks::Noop {}, t0());
        assert!(
            matches!(&built, Err(Error::InvalidInput(m)) if m.contains("queue name")),
            "{bad:?}: {built:?}"
        );
        let mut row = build(opts("x"), t0());
        row.queue = bad.to_owned();
        let inserted = s.insert(row).await;
        assert!(
            matches!(&inserted, Err(Error::InvalidInput(m)) if m.contains("queue name")),
            "{bad:?}: {inserted:?}"
        );
        let paused = s.set_queue_paused(bad, true, t0()).await;
        assert!(
            matches!(&paused, Err(Error::InvalidInput(m)) if m.contains("queue name")),
            "{bad:?}: {paused:?}"
        );
    }
    assert!(s.queues().await.unwrap().is_empty(), "nothing was stored");
    let ok = "q".repeat(64);
    insert_with(s, in_queue("longest", &ok), t0()).await;
    assert_eq!(s.get(&"longest".into()).await.unwrap().queue, ok);

    let client = Client::new(store.clone());
    for (builder, what) in [
        (client.worker().queue("", 2), "queue name"),
        (client.worker().queue("a", 0), "concurrency 0"),
        (client.worker().queue("a", 1).queue("a", 2), "twice"),
    ] {
        let built = builder.build();
        assert!(
            matches!(&built, Err(Error::Config(m)) if m.contains(what)),
            "{what}: {built:?}"
        );
    }
}

/// What the gated tasks record: runs started and running per queue, the most running at once
/// per queue, and the order queues' runs started in.
#[derive(Debug)]
pub struct Gate {
    open: watch::Receiver<bool>,
    running: Mutex<HashMap<String, usize>>,
    max: Mutex<HashMap<String, usize>>,
    started: AtomicUsize,
    starts: Mutex<Vec<String>>,
}

impl Gate {
    fn new() -> (Arc<Self>, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(false);
        let gate = Self {
            open: rx,
            running: Mutex::default(),
            max: Mutex::default(),
            started: AtomicUsize::new(0),
            starts: Mutex::default(),
        };
        (Arc::new(gate), tx)
    }
    fn running(&self, queue: &str) -> usize {
        self.running
            .lock()
            .unwrap()
            .get(queue)
            .copied()
            .unwrap_or(0)
    }
    fn max(&self, queue: &str) -> usize {
        self.max.lock().unwrap().get(queue).copied().unwrap_or(0)
    }
}

/// Runs until the [`Gate`] opens (or at once, when `wait` is false), recording its queue.
#[derive(Debug, Clone, Default, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct Gated {
    /// The queue it was enqueued in (for the record).
    pub queue: String,
    /// Wait for the gate.
    pub wait: bool,
}

#[typetag::serde(name = "conformance.queues.gated")]
#[async_trait]
impl Task for Gated {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        let gate = ctx.data::<Gate>()?;
        {
            let mut running = gate.running.lock().unwrap();
            let n = running.entry(self.queue.clone()).or_default();
            *n += 1;
            let mut max = gate.max.lock().unwrap();
            let m = max.entry(self.queue.clone()).or_default();
            *m = (*m).max(*n);
        }
        gate.started.fetch_add(1, Ordering::SeqCst);
        gate.starts.lock().unwrap().push(self.queue.clone());
        if self.wait {
            let mut open = gate.open.clone();
            let _ = open.wait_for(|o| *o).await;
        }
        *gate
            .running
            .lock()
            .unwrap()
            .get_mut(&self.queue)
            .expect("counted at start") -= 1;
        Ok(())
    }
}

async fn enqueue_gated(client: &Client, queue: &str, n: usize, wait: bool) {
    for i in 0..n {
        client
            .enqueue(
                &Gated {
                    queue: queue.to_owned(),
                    wait,
                },
                EnqueueOptions::new()
                    .code(format!("{queue}-{i}"))
                    .queue(queue),
            )
            .await
            .unwrap();
    }
}

fn gated_client(store: &Arc<dyn TaskStore>, gate: &Arc<Gate>, clock: &ManualClock) -> Client {
    Client::builder(store.clone())
        .data_arc(gate.clone())
        .clock(clock.clone())
        .jitter(Jitter::fixed(0.0))
        .build()
        .unwrap()
}

async fn pending_in(store: &Arc<dyn TaskStore>, queue: &str) -> u64 {
    let qs = store.queues().await.unwrap();
    qs.iter()
        .find(|q| q.name == queue)
        .map_or(0, |q| q.count(TaskState::Pending))
}

/// A flood in queue `a` fills only `a`'s slots: with `a`'s 2 slots busy and 18 of its tasks
/// due, `b`'s task starts at once, and `a` never runs more than 2 at a time (manual clock).
pub async fn flood_in_one_queue_leaves_anothers_slots(store: Arc<dyn TaskStore>) {
    let clock = ManualClock::new(t0());
    let (gate, open) = Gate::new();
    let client = gated_client(&store, &gate, &clock);
    enqueue_gated(&client, "a", 20, true).await;
    let w = client
        .worker()
        .queue("a", 2)
        .queue("b", 1)
        .poll_interval(Duration::from_millis(10))
        .start()
        .unwrap();
    eventually("a's two slots to fill", Duration::from_secs(20), || {
        let g = gate.clone();
        async move { g.running("a") == 2 }
    })
    .await;
    enqueue_gated(&client, "b", 1, true).await;
    eventually(
        "b's task to start while a's slots are full",
        Duration::from_secs(20),
        || {
            let g = gate.clone();
            async move { g.running("b") == 1 }
        },
    )
    .await;
    assert_eq!(gate.running("a"), 2, "a's slots are still full");
    let a_started = gate
        .starts
        .lock()
        .unwrap()
        .iter()
        .filter(|q| *q == "a")
        .count();
    assert_eq!(a_started, 2, "18 of a's tasks still wait for a's slots");
    open.send_replace(true);
    eventually("everything to run", Duration::from_secs(60), || {
        let s = store.clone();
        async move { s.counts().await.unwrap().is_empty() }
    })
    .await;
    w.shutdown().await;
    assert_eq!(gate.max("a"), 2, "a ran at most its 2 slots at once");
    assert_eq!(gate.max("b"), 1);
    assert_eq!(gate.started.load(Ordering::SeqCst), 21);
}

/// A worker leaves a paused queue's tasks alone while it runs the others, and runs them once
/// the queue is resumed; a worker with no queues runs every queue.
pub async fn worker_honours_pause_and_resume(store: Arc<dyn TaskStore>) {
    let clock = ManualClock::new(t0());
    let (gate, _open) = Gate::new();
    let client = gated_client(&store, &gate, &clock);
    client.pause_queue("held").await.unwrap();
    enqueue_gated(&client, "held", 2, false).await;
    enqueue_gated(&client, "free", 2, false).await;
    let w = client
        .worker()
        .poll_interval(Duration::from_millis(10))
        .start()
        .unwrap();
    eventually("the free queue to run", Duration::from_secs(20), || {
        let g = gate.clone();
        async move { g.started.load(Ordering::SeqCst) == 2 }
    })
    .await;
    // Several polls later the held queue has still not run.
    for _ in 0..5 {
        w.wake();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gate.started.load(Ordering::SeqCst), 2);
    assert_eq!(pending_in(&store, "held").await, 2);
    assert!(gate.starts.lock().unwrap().iter().all(|q| q == "free"));
    let paused = client.queues().await.unwrap();
    assert!(paused.iter().any(|q| q.name == "held" && q.paused));

    client.resume_queue("held").await.unwrap();
    eventually("the held queue to run", Duration::from_secs(20), || {
        let s = store.clone();
        async move { s.counts().await.unwrap().is_empty() }
    })
    .await;
    w.shutdown().await;
    assert_eq!(gate.started.load(Ordering::SeqCst), 4);
}

/// `run_until_idle` with queues runs each queue's due tasks and leaves a paused one's.
pub async fn run_until_idle_runs_each_queue(store: Arc<dyn TaskStore>) {
    let clock = ManualClock::new(t0());
    let (gate, _open) = Gate::new();
    let client = gated_client(&store, &gate, &clock);
    enqueue_gated(&client, "a", 3, false).await;
    enqueue_gated(&client, "b", 3, false).await;
    enqueue_gated(&client, "c", 1, false).await;
    client.pause_queue("b").await.unwrap();
    let report = client
        .worker()
        .queue("a", 1)
        .queue("b", 1)
        .build()
        .unwrap()
        .run_until_idle()
        .await
        .unwrap();
    assert_eq!(
        report.executed, 3,
        "a's three; b is paused; c is not the worker's"
    );
    assert_eq!(pending_in(&store, "b").await, 3);
    assert_eq!(pending_in(&store, "c").await, 1);
}
