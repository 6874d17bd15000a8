//! Worker cases: the worker, run-now and the runner against a store. Each case takes a fresh
//! store; waits are conditions with a deadline, never fixed sleeps.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use taskrow::chrono::{self, DateTime, Utc};
use taskrow::typetag;
use taskrow::{
    Client, ClientBuilder, EnqueueOptions, Error, Jitter, LogFilter, ManualClock, Outcome,
    RetryPolicy, Task, TaskContext, TaskError, TaskLog, TaskRecord, TaskRef, TaskState, TaskStore,
    WorkerHandle, async_trait,
};

/// What the worker-case tasks record: each run's code and real start/end, and how many ran at
/// once.
#[derive(Debug, Default)]
pub struct Probe {
    runs: Mutex<Vec<(String, Instant, Instant)>>,
    active: AtomicUsize,
    max_active: AtomicUsize,
    failures: Mutex<HashMap<String, u32>>,
    /// Runs of [`Hangs`] that started.
    hung: AtomicUsize,
}

impl Probe {
    fn begin(&self) -> Instant {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_active.fetch_max(now, Ordering::SeqCst);
        Instant::now()
    }
    fn end(&self, code: &str, started: Instant) {
        self.active.fetch_sub(1, Ordering::SeqCst);
        self.runs
            .lock()
            .unwrap()
            .push((code.to_owned(), started, Instant::now()));
    }
    /// How many times each code ran.
    pub fn counts(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for (c, _, _) in self.runs.lock().unwrap().iter() {
            *m.entry(c.clone()).or_default() += 1;
        }
        m
    }
    /// Whether two runs of one code overlapped in time.
    pub fn overlaps(&self) -> Vec<String> {
        let runs = self.runs.lock().unwrap();
        let mut by: HashMap<&str, Vec<(Instant, Instant)>> = HashMap::new();
        for (c, s, e) in runs.iter() {
            by.entry(c).or_default().push((*s, *e));
        }
        let mut out = Vec::new();
        for (c, mut v) in by {
            v.sort();
            if v.windows(2).any(|w| w[1].0 < w[0].1) {
                out.push(c.to_owned());
            }
        }
        out
    }
}

/// Records its run in the [`Probe`]; sleeps `millis` first; fails its first `fail_times` runs.
#[derive(Debug, Clone, Default, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct Work {
    /// Sleep this long (real time) while running.
    pub millis: u64,
    /// Fail this many runs before succeeding.
    pub fail_times: u32,
    /// Fail permanently instead.
    pub permanent: bool,
}

#[typetag::serde(name = "conformance.worker.work")]
#[async_trait]
impl Task for Work {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        let probe = ctx.data::<Probe>()?;
        let started = probe.begin();
        if self.millis > 0 {
            tokio::time::sleep(Duration::from_millis(self.millis)).await;
        }
        probe.end(ctx.code(), started);
        if self.permanent {
            return Err(TaskError::permanent("bad input"));
        }
        let mut f = probe.failures.lock().unwrap();
        let n = f.entry(ctx.code().to_owned()).or_default();
        if *n < self.fail_times {
            *n += 1;
            return Err(TaskError::msg(format!("planned failure {n}")));
        }
        Ok(())
    }
}

/// Panics.
#[derive(Debug, Clone, Default, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct Panics {}

#[typetag::serde(name = "conformance.worker.panics")]
#[async_trait]
impl Task for Panics {
    async fn run(&self, _ctx: &TaskContext) -> Result<(), TaskError> {
        panic!("boom from a handler")
    }
}

/// Never completes: an await that hangs.
#[derive(Debug, Clone, Default, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct Hangs {}

#[typetag::serde(name = "conformance.worker.hangs")]
#[async_trait]
impl Task for Hangs {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        if let Ok(probe) = ctx.data::<Probe>() {
            probe.hung.fetch_add(1, Ordering::SeqCst);
        }
        std::future::pending::<()>().await;
        Ok(())
    }
}

/// Waits for the worker's shutdown signal, then succeeds.
#[derive(Debug, Clone, Default, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct UntilShutdown {}

#[typetag::serde(name = "conformance.worker.until_shutdown")]
#[async_trait]
impl Task for UntilShutdown {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        let probe = ctx.data::<Probe>()?;
        let started = probe.begin();
        ctx.shutdown().wait().await;
        probe.end(ctx.code(), started);
        Ok(())
    }
}

/// Asks for data nobody registered.
#[derive(Debug, Clone, Default, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct NeedsMissingData {}

/// A service no case registers.
#[derive(Debug)]
pub struct UnregisteredService;

#[typetag::serde(name = "conformance.worker.needs_missing_data")]
#[async_trait]
impl Task for NeedsMissingData {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        ctx.data::<UnregisteredService>()?;
        Ok(())
    }
}

fn t0() -> DateTime<Utc> {
    crate::cases::t0()
}

fn client(
    store: &Arc<dyn TaskStore>,
    probe: &Arc<Probe>,
    f: impl FnOnce(ClientBuilder) -> ClientBuilder,
) -> Client {
    f(Client::builder(store.clone())
        .data_arc(probe.clone())
        .jitter(Jitter::fixed(0.0)))
    .build()
    .unwrap()
}

/// Waits until `check` holds, polling; panics naming `what` after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn logs(store: &Arc<dyn TaskStore>, code: &str) -> Vec<TaskLog> {
    store.logs(&LogFilter::code(code)).await.unwrap()
}

async fn get(store: &Arc<dyn TaskStore>, code: &str) -> TaskRecord {
    store.get(&TaskRef::from(code)).await.unwrap()
}

async fn empty(store: &Arc<dyn TaskStore>) -> bool {
    store.counts().await.unwrap().is_empty()
}

/// Enqueues `n` copies of `work` in one batch, coded `<prefix>-000`, `<prefix>-001`, ….
async fn enqueue_numbered(c: &Client, work: &Work, prefix: &str, n: u64) {
    let batch: Vec<(&dyn Task, EnqueueOptions)> = (0..n)
        .map(|i| {
            (
                work as &dyn Task,
                EnqueueOptions::new().code(format!("{prefix}-{i:03}")),
            )
        })
        .collect();
    assert_eq!(c.enqueue_batch(batch).await.unwrap(), n);
}

/// Waits (up to a minute) until the store holds no task, stops `w`, and checks the drain of
/// `n` numbered tasks: every one ran exactly once, with one log row, succeeded at attempt 1.
async fn drained_each_once(store: &Arc<dyn TaskStore>, w: WorkerHandle, probe: &Probe, n: u64) {
    eventually("the drain to finish", Duration::from_secs(60), || {
        empty(store)
    })
    .await;
    w.shutdown().await;
    let counts = probe.counts();
    assert_eq!(counts.len(), n as usize, "every task ran");
    assert!(
        counts.values().all(|&k| k == 1),
        "each task ran exactly once"
    );
    let all = store.logs(&LogFilter::default()).await.unwrap();
    assert_eq!(all.len(), n as usize, "one log row per task");
    assert!(
        all.iter()
            .all(|l| l.outcome == Outcome::Succeeded && l.attempt == 1)
    );
}

/// 200 tasks drained by a worker with concurrency 4: each runs exactly once, never more than 4
/// at a time, every run logged as succeeded, nothing left.
pub async fn drains_with_concurrency(store: Arc<dyn TaskStore>) {
    let probe = Arc::new(Probe::default());
    let c = client(&store, &probe, |b| b);
    let work = Work {
        millis: 2,
        ..Work::default()
    };
    let n = 200;
    enqueue_numbered(&c, &work, "drain", n).await;
    let w = c
        .worker()
        .concurrency(4)
        .poll_interval(Duration::from_millis(20))
        .start()
        .unwrap();
    drained_each_once(&store, w, &probe, n).await;
    let max = probe.max_active.load(Ordering::SeqCst);
    assert!(max <= 4, "at most 4 at once, saw {max}");
}

/// A fast drain on a database that answers claims slowly (30 ms each, the tasks take none):
/// the worker claims the next batch while one runs, never more than `claims_in_flight` claims
/// at once, asks for more once its slots sat idle waiting for a claim but never more than its
/// free slots and four times `batch_size`, and runs every task exactly once.
pub async fn pipelined_claims_stay_bounded(store: Arc<dyn TaskStore>) {
    let slow = Arc::new(crate::wrappers::ReplyLost::new(store.clone()));
    slow.delay_claims(Duration::from_millis(30));
    let probe = Arc::new(Probe::default());
    let c = client(&(slow.clone() as Arc<dyn TaskStore>), &probe, |b| b);
    let work = Work::default();
    let n = 300;
    enqueue_numbered(&c, &work, "fast", n).await;
    let w = c
        .worker()
        .concurrency(4)
        .batch_size(8)
        .claims_in_flight(2)
        .poll_interval(Duration::from_millis(20))
        .start()
        .unwrap();
    drained_each_once(&store, w, &probe, n).await;
    assert_eq!(
        slow.most_claims_at_once(),
        2,
        "two claims in flight at most, and at some point"
    );
    let asked = slow.claim_limits();
    let most = asked.iter().copied().max().unwrap_or(0);
    assert!(
        most > 4 + 8,
        "the claims grew past the free slots and one batch: {asked:?}"
    );
    assert!(
        most <= 4 + 4 * 8,
        "never past the free slots and four batches: {asked:?}"
    );
}

/// A task failing twice under a fixed 60 s policy runs at t0, t0+60 s, t0+120 s — no earlier,
/// moved there by a manual clock — and the log shows retrying, retrying, succeeded.
pub async fn retries_at_policy_times(store: Arc<dyn TaskStore>) {
    let probe = Arc::new(Probe::default());
    let clock = ManualClock::new(t0());
    let c = client(&store, &probe, |b| b.clock(clock.clone()));
    let opts = EnqueueOptions::new()
        .code("flaky")
        .retry(RetryPolicy::fixed(Duration::from_secs(60)));
    c.enqueue(
        &Work {
            fail_times: 2,
            ..Work::default()
        },
        opts,
    )
    .await
    .unwrap();
    let w = c
        .worker()
        .poll_interval(Duration::from_millis(10))
        .start()
        .unwrap();

    let n_logs = |k: usize| {
        let store = store.clone();
        move || {
            let store = store.clone();
            async move { logs(&store, "flaky").await.len() >= k }
        }
    };
    eventually("the first attempt", Duration::from_secs(10), n_logs(1)).await;
    let t = get(&store, "flaky").await;
    assert_eq!(t.state, TaskState::Pending);
    assert_eq!(t.attempts, 1);
    assert_eq!(t.next_run_at, Some(t0() + chrono::TimeDelta::seconds(60)));
    assert_eq!(t.last_error.as_deref(), Some("planned failure 1"));

    clock.advance(Duration::from_secs(59));
    w.wake();
    // A claim at t0+59 s must find nothing: give the worker several polls to prove it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        logs(&store, "flaky").await.len(),
        1,
        "no run before the retry time"
    );

    clock.advance(Duration::from_secs(1));
    w.wake();
    eventually("the second attempt", Duration::from_secs(10), n_logs(2)).await;
    assert_eq!(
        get(&store, "flaky").await.next_run_at,
        Some(t0() + chrono::TimeDelta::seconds(120))
    );
    clock.advance(Duration::from_secs(60));
    w.wake();
    eventually("the third attempt", Duration::from_secs(10), n_logs(3)).await;
    w.shutdown().await;

    let l = logs(&store, "flaky").await;
    let seen: Vec<_> = l
        .iter()
        .map(|l| (l.attempt, l.outcome, l.started_at))
        .collect();
    assert_eq!(
        seen,
        [
            (1, Outcome::Retrying, t0()),
            (2, Outcome::Retrying, t0() + chrono::TimeDelta::seconds(60)),
            (
                3,
                Outcome::Succeeded,
                t0() + chrono::TimeDelta::seconds(120)
            ),
        ]
    );
    assert!(matches!(
        store.get(&"flaky".into()).await,
        Err(Error::NotFound(_))
    ));
}

/// A permanent error fails the task at once, whatever attempts remain; a task out of attempts
/// fails after its last one.
pub async fn permanent_failure_and_exhausted_attempts(store: Arc<dyn TaskStore>) {
    let probe = Arc::new(Probe::default());
    let clock = ManualClock::new(t0());
    let c = client(&store, &probe, |b| b.clock(clock.clone()));
    c.enqueue(
        &Work {
            permanent: true,
            ..Work::default()
        },
        EnqueueOptions::new().code("perm"),
    )
    .await
    .unwrap();
    c.enqueue(
        &Work {
            fail_times: 99,
            ..Work::default()
        },
        EnqueueOptions::new()
            .code("twice")
            .max_attempts(2)
            .retry(RetryPolicy::fixed(Duration::from_secs(1))),
    )
    .await
    .unwrap();
    let w = c.worker().build().unwrap();
    w.run_until_idle().await.unwrap();
    clock.advance(Duration::from_secs(1));
    w.run_until_idle().await.unwrap();

    let p = get(&store, "perm").await;
    assert_eq!((p.state, p.attempts), (TaskState::Failed, 1));
    assert!(p.last_error.unwrap().contains("bad input"));
    let t = get(&store, "twice").await;
    assert_eq!((t.state, t.attempts), (TaskState::Failed, 2));
    let outcomes: Vec<_> = logs(&store, "twice")
        .await
        .iter()
        .map(|l| l.outcome)
        .collect();
    assert_eq!(outcomes, [Outcome::Retrying, Outcome::Failed]);
}

/// A row whose type no binary registers, and one whose payload no longer fits its type, are
/// failed attempts with errors that say what and what to do; other tasks run.
pub async fn unknown_type_and_corrupt_payload(store: Arc<dyn TaskStore>) {
    let probe = Arc::new(Probe::default());
    let clock = ManualClock::new(t0());
    let c = client(&store, &probe, |b| b.clock(clock.clone()));
    let mut gone = EnqueueOptions::new()
        .code("gone")
        .build(&Work::default(), t0())
        .unwrap();
    gone.task_type = "conformance.worker.removed_type".into();
    store.insert(gone).await.unwrap();
    let mut bad = EnqueueOptions::new()
        .code("bad")
        .build(&Work::default(), t0())
        .unwrap();
    bad.payload = r#"{"millis":"not a number"}"#.into();
    store.insert(bad).await.unwrap();
    let mut not_json = EnqueueOptions::new()
        .code("not-json")
        .build(&Work::default(), t0())
        .unwrap();
    not_json.payload = "{oops".into();
    store.insert(not_json).await.unwrap();
    c.enqueue(&Work::default(), EnqueueOptions::new().code("fine"))
        .await
        .unwrap();

    let r = c.worker().build().unwrap().run_until_idle().await.unwrap();
    assert_eq!((r.executed, r.succeeded, r.retried), (4, 1, 3));
    let g = get(&store, "gone").await;
    assert_eq!(
        g.state,
        TaskState::Pending,
        "retried per policy: a deploy may bring the type"
    );
    let e = g.last_error.unwrap();
    assert!(
        e.contains("conformance.worker.removed_type") && e.contains("not registered"),
        "{e}"
    );
    for code in ["bad", "not-json"] {
        let e = get(&store, code).await.last_error.unwrap();
        assert!(
            e.contains("conformance.worker.work") && e.contains("does not deserialize"),
            "{e}"
        );
    }
    assert_eq!(probe.counts().get("fine"), Some(&1));
}

/// A panicking handler is a failed attempt carrying the panic message.
pub async fn panic_is_a_failed_attempt(store: Arc<dyn TaskStore>) {
    let probe = Arc::new(Probe::default());
    let c = client(&store, &probe, |b| b.clock(ManualClock::new(t0())));
    c.enqueue(&Panics {}, EnqueueOptions::new().code("p"))
        .await
        .unwrap();
    let r = c.worker().build().unwrap().run_until_idle().await.unwrap();
    assert_eq!(r.retried, 1);
    let l = logs(&store, "p").await;
    assert_eq!(l[0].outcome, Outcome::Retrying);
    assert!(
        l[0].error
            .as_deref()
            .unwrap()
            .contains("panicked: boom from a handler")
    );
}

/// A handler that never completes is stopped at its timeout and retried.
pub async fn timeout_stops_a_hanging_handler(store: Arc<dyn TaskStore>) {
    let probe = Arc::new(Probe::default());
    let c = client(&store, &probe, |b| b.clock(ManualClock::new(t0())));
    c.enqueue(
        &Hangs {},
        EnqueueOptions::new()
            .code("h")
            .timeout(Duration::from_millis(150)),
    )
    .await
    .unwrap();
    let r = c.worker().build().unwrap().run_until_idle().await.unwrap();
    assert_eq!(r.retried, 1);
    let e = get(&store, "h").await.last_error.unwrap();
    assert!(e.contains("timed out after 150 ms"), "{e}");
}

/// Data a handler asks for but nobody registered is an error naming the type.
pub async fn missing_data_names_the_type(store: Arc<dyn TaskStore>) {
    let probe = Arc::new(Probe::default());
    let c = client(&store, &probe, |b| b.clock(ManualClock::new(t0())));
    c.enqueue(&NeedsMissingData {}, EnqueueOptions::new().code("m"))
        .await
        .unwrap();
    c.worker().build().unwrap().run_until_idle().await.unwrap();
    let e = get(&store, "m").await.last_error.unwrap();
    assert!(
        e.contains("no data of type") && e.contains("UnregisteredService"),
        "{e}"
    );
}

/// Shutdown stops claiming, signals running tasks (which then finish), and leaves no task
/// leased: unclaimed ones stay pending with no attempt used.
pub async fn shutdown_signals_and_leaves_nothing_leased(store: Arc<dyn TaskStore>) {
    let probe = Arc::new(Probe::default());
    let c = client(&store, &probe, |b| b);
    for i in 0..2 {
        c.enqueue(
            &UntilShutdown {},
            EnqueueOptions::new().code(format!("s{i}")),
        )
        .await
        .unwrap();
    }
    let w = c
        .worker()
        .concurrency(2)
        .batch_size(2)
        .poll_interval(Duration::from_millis(10))
        .start()
        .unwrap();
    eventually("both tasks running", Duration::from_secs(10), || {
        let p = probe.clone();
        async move { p.active.load(Ordering::SeqCst) == 2 }
    })
    .await;
    // One batch, one wake-up: the worker's claim sees all three.
    let later = Work::default();
    let batch: Vec<(&dyn Task, EnqueueOptions)> = (0..3)
        .map(|i| {
            (
                &later as &dyn Task,
                EnqueueOptions::new().code(format!("later{i}")),
            )
        })
        .collect();
    c.enqueue_batch(batch).await.unwrap();
    // Both slots are busy, so the worker claims ahead: two `later` tasks wait, leased.
    eventually(
        "tasks claimed ahead of the busy slots",
        Duration::from_secs(10),
        || {
            let s = store.clone();
            async move {
                let running = taskrow::TaskFilter::all()
                    .states([TaskState::Running])
                    .code_prefix("later");
                s.list(&running, &taskrow::Page::first(10))
                    .await
                    .unwrap()
                    .len()
                    == 2
            }
        },
    )
    .await;
    let report = w.shutdown().await;
    assert_eq!(report.finished, 2);
    assert_eq!(
        report.released, 2,
        "the claimed-ahead tasks are handed back"
    );
    for i in 0..2 {
        assert_eq!(
            logs(&store, &format!("s{i}")).await[0].outcome,
            Outcome::Succeeded
        );
    }
    let left = store
        .list(&taskrow::TaskFilter::all(), &taskrow::Page::first(100))
        .await
        .unwrap();
    assert_eq!(left.len(), 3);
    for t in left {
        assert_eq!(
            (t.state, t.attempts, t.lease_expires_at),
            (TaskState::Pending, 0, None),
            "{}",
            t.code
        );
    }
}

/// A task that ignores the shutdown signal is interrupted at the shutdown deadline: its run is
/// logged as interrupted and it is pending again, due at once, its attempt given back.
pub async fn shutdown_deadline_interrupts(store: Arc<dyn TaskStore>) {
    let probe = Arc::new(Probe::default());
    let c = client(&store, &probe, |b| b);
    c.enqueue(&Hangs {}, EnqueueOptions::new().code("stuck"))
        .await
        .unwrap();
    let w = c
        .worker()
        .poll_interval(Duration::from_millis(10))
        .shutdown_timeout(Duration::from_millis(200))
        .start()
        .unwrap();
    // Started, not only claimed: a task claimed but not yet started when the shutdown comes
    // is handed back unstarted, with no interruption to count.
    eventually("the task to start", Duration::from_secs(10), || {
        let p = probe.clone();
        async move { p.hung.load(Ordering::SeqCst) > 0 }
    })
    .await;
    w.shutdown().await;
    let t = get(&store, "stuck").await;
    assert_eq!(
        (t.state, t.attempts, t.interruptions),
        (TaskState::Pending, 0, 1),
        "interrupted runs give their attempt back"
    );
    assert!(t.last_error.unwrap().contains("interrupted"));
    assert_eq!(logs(&store, "stuck").await[0].outcome, Outcome::Interrupted);
}

/// Heartbeats keep a slow task's lease: a competing claimer never gets it while it runs, and
/// its one run is applied.
pub async fn heartbeat_keeps_slow_task_leased(store: Arc<dyn TaskStore>) {
    let probe = Arc::new(Probe::default());
    let c = client(&store, &probe, |b| b);
    c.enqueue(
        &Work {
            millis: 1200,
            ..Work::default()
        },
        EnqueueOptions::new().code("slow"),
    )
    .await
    .unwrap();
    let w = c
        .worker()
        .lease(Duration::from_millis(400))
        .heartbeat(Some(Duration::from_millis(100)))
        .poll_interval(Duration::from_millis(10))
        .start()
        .unwrap();
    eventually(
        "the worker to claim the task",
        Duration::from_secs(10),
        || {
            let s = store.clone();
            async move { get(&s, "slow").await.state == TaskState::Running }
        },
    )
    .await;
    let mut stolen = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !logs(&store, "slow")
        .await
        .iter()
        .any(|l| l.outcome == Outcome::Succeeded)
    {
        assert!(
            Instant::now() < deadline,
            "the slow task never finished: stolen {stolen}, logs {:?}",
            logs(&store, "slow").await
        );
        let req = taskrow::ClaimRequest::new("thief", 10, Duration::from_secs(60), Utc::now());
        stolen += store.claim(&req).await.unwrap().len();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.shutdown().await;
    assert_eq!(
        stolen, 0,
        "no claim took the task while its lease was kept alive"
    );
    let l = logs(&store, "slow").await;
    assert_eq!(l.len(), 1);
    assert!(l[0].duration_ms >= 1200);
}

/// A worker limited to some biz types or type names claims only those.
pub async fn limits_by_biz_type_and_task_type(store: Arc<dyn TaskStore>) {
    let probe = Arc::new(Probe::default());
    let c = client(&store, &probe, |b| b.clock(ManualClock::new(t0())));
    c.enqueue(
        &Work::default(),
        EnqueueOptions::new().code("order-1").biz_type("order"),
    )
    .await
    .unwrap();
    c.enqueue(
        &Work::default(),
        EnqueueOptions::new().code("report-1").biz_type("report"),
    )
    .await
    .unwrap();
    c.enqueue(
        &Panics {},
        EnqueueOptions::new().code("panics-1").biz_type("order"),
    )
    .await
    .unwrap();

    let r = c
        .worker()
        .biz_types(["order"])
        .task_types(["conformance.worker.work"])
        .build()
        .unwrap()
        .run_until_idle()
        .await
        .unwrap();
    assert_eq!(r.executed, 1);
    assert_eq!(
        probe.counts().keys().cloned().collect::<Vec<_>>(),
        ["order-1"]
    );
    assert_eq!(get(&store, "report-1").await.state, TaskState::Pending);
    assert_eq!(get(&store, "panics-1").await.state, TaskState::Pending);
}

/// Run-now runs a task that is not due yet and a failed one, in the caller, and returns the
/// outcome; it refuses a cancelled task with a clear error.
pub async fn run_now_runs_and_refuses(store: Arc<dyn TaskStore>) {
    let probe = Arc::new(Probe::default());
    let clock = ManualClock::new(t0());
    let c = client(&store, &probe, |b| b.clock(clock.clone()));
    c.enqueue(
        &Work::default(),
        EnqueueOptions::new()
            .code("later")
            .delay(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    let r = c.run_now("later").await.unwrap();
    assert!(r.succeeded());
    assert_eq!(r.attempt, 1);
    assert_eq!(logs(&store, "later").await.len(), 1);

    c.enqueue(
        &Work {
            permanent: true,
            ..Work::default()
        },
        EnqueueOptions::new().code("failing"),
    )
    .await
    .unwrap();
    let r = c.run_now("failing").await.unwrap();
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(get(&store, "failing").await.state, TaskState::Failed);
    let r = c.run_now("failing").await.unwrap();
    assert_eq!(
        (r.outcome, r.attempt),
        (Outcome::Failed, 2),
        "a failed task can be re-run by hand"
    );

    store.cancel(&"failing".into(), t0()).await.unwrap();
    assert!(matches!(
        c.run_now("failing").await,
        Err(Error::Cancelled(_))
    ));
    assert!(matches!(c.run_now("nope").await, Err(Error::NotFound(_))));
}

/// Bad worker settings are errors when the worker is built, not hangs.
pub async fn bad_settings_fail_at_build(store: Arc<dyn TaskStore>) {
    let c = Client::builder(store).build().unwrap();
    assert!(matches!(
        c.worker().concurrency(0).build(),
        Err(Error::Config(_))
    ));
    // A heartbeat longer than half the lease lets a lease lapse after one failed beat: refused
    // by the worker and the client (run-now and dispatch) alike.
    let e = c
        .worker()
        .lease(Duration::from_secs(10))
        .heartbeat(Some(Duration::from_secs(6)))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("at most half the lease"), "{e}");
    assert!(
        c.worker()
            .lease(Duration::from_secs(10))
            .heartbeat(Some(Duration::from_secs(5)))
            .build()
            .is_ok()
    );
    let e = Client::builder(c.store().clone())
        .lease(Duration::from_secs(15))
        .build()
        .unwrap_err();
    assert!(
        matches!(e, Error::Config(_)) && e.to_string().contains("at most half the lease"),
        "the default 20 s heartbeat does not fit a 15 s lease: {e}"
    );
    let long = "w".repeat(taskrow::record::MAX_CODE_CHARS + 1);
    assert!(matches!(
        Client::builder(c.store().clone()).id(long.clone()).build(),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        c.worker().id(long).build(),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        c.worker().poll_interval(Duration::ZERO).build(),
        Err(Error::Config(_))
    ));
}

/// A task claimed ahead of a busy slot never waits past half its lease: it is handed back
/// with its attempt given back (no log row: it never ran), and runs later as attempt 1.
pub async fn claimed_ahead_task_is_handed_back(store: Arc<dyn TaskStore>) {
    let probe = Arc::new(Probe::default());
    let c = client(&store, &probe, |b| b);
    let work = Work {
        millis: 700,
        ..Work::default()
    };
    let batch: Vec<(&dyn Task, EnqueueOptions)> = vec![
        (&work, EnqueueOptions::new().code("first")),
        (&work, EnqueueOptions::new().code("second")),
    ];
    c.enqueue_batch(batch).await.unwrap();
    let w = c
        .worker()
        .concurrency(1)
        .batch_size(1)
        .lease(Duration::from_millis(1000))
        .heartbeat(Some(Duration::from_millis(200)))
        .poll_interval(Duration::from_millis(10))
        .start()
        .unwrap();
    eventually(
        "both claimed, the first running",
        Duration::from_secs(10),
        || {
            let (s, p) = (store.clone(), probe.clone());
            async move {
                p.active.load(Ordering::SeqCst) == 1
                    && get(&s, "second").await.state == TaskState::Running
            }
        },
    )
    .await;
    // Half a lease later the second, still waiting, is handed back: pending, attempt given back.
    eventually(
        "the waiting task handed back",
        Duration::from_secs(10),
        || {
            let s = store.clone();
            async move {
                let t = get(&s, "second").await;
                t.state == TaskState::Pending && t.attempts == 0
            }
        },
    )
    .await;
    eventually("both tasks to succeed", Duration::from_secs(10), || {
        let s = store.clone();
        async move { empty(&s).await }
    })
    .await;
    w.shutdown().await;
    for code in ["first", "second"] {
        let l = logs(&store, code).await;
        assert_eq!(l.len(), 1, "{code}: {l:?}");
        assert_eq!(
            (l[0].outcome, l[0].attempt),
            (Outcome::Succeeded, 1),
            "{code}"
        );
    }
}

/// The operations a user calls from code are on `Client`, take anything that names a task, and
/// use the client's clock: read a failed task and its log, reset it, cancel, delete and purge.
pub async fn client_operations_use_the_clients_clock(store: Arc<dyn TaskStore>) {
    let probe = Arc::new(Probe::default());
    let clock = ManualClock::new(t0());
    let c = client(&store, &probe, |b| b.clock(clock.clone()));
    let broken = Work {
        permanent: true,
        ..Work::default()
    };
    let row = c
        .enqueue(&broken, EnqueueOptions::new().code("broken"))
        .await
        .unwrap();
    c.worker().build().unwrap().run_until_idle().await.unwrap();
    let failed = c.get("broken").await.unwrap();
    assert_eq!(failed.state, TaskState::Failed);
    assert_eq!(c.get(row.id).await.unwrap(), failed, "by id too");
    assert_eq!(c.get(&failed).await.unwrap(), failed, "and by the record");
    let log = c.logs("broken").await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].outcome, Outcome::Failed);
    assert_eq!(c.logs(row.id).await.unwrap(), log);

    // Reset by code, at the client's clock's time.
    clock.advance(Duration::from_secs(90));
    c.reset("broken").await.unwrap();
    let again = c.get("broken").await.unwrap();
    assert_eq!(
        (again.state, again.attempts, again.next_run_at),
        (
            TaskState::Pending,
            0,
            Some(t0() + chrono::TimeDelta::seconds(90))
        )
    );
    c.worker().build().unwrap().run_until_idle().await.unwrap();
    assert_eq!(
        c.reset_matching(&taskrow::TaskFilter::all()).await.unwrap(),
        1,
        "every failed task"
    );
    assert_eq!(
        c.cancel("broken").await.unwrap().state,
        TaskState::Cancelled
    );
    let counts = c.counts().await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].state, TaskState::Cancelled);
    assert_eq!(
        c.list(&taskrow::TaskFilter::all(), &taskrow::Page::first(10))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        c.delete("broken").await.unwrap().state,
        TaskState::Cancelled
    );
    assert!(matches!(c.get("broken").await, Err(Error::NotFound(_))));
    clock.advance(Duration::from_secs(3600));
    let purged = c
        .purge(&taskrow::Purge::before(c.clock().now()))
        .await
        .unwrap();
    assert_eq!(purged.logs, 2, "both runs' log rows");
}

/// Waits for its cancel ([`TaskContext::cancelled`]) and returns; or, with `ignore`, never
/// returns (it is aborted at the cancel grace). Records its start and its end (or its drop).
#[derive(Debug, Clone, Default, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct UntilCancelled {
    /// Ignore the signal.
    pub ignore: bool,
}

/// Ends the run in the [`Probe`] when dropped: a handler aborted at the grace still ends.
struct EndOnDrop<'a>(&'a Probe, &'a str, Instant);

impl Drop for EndOnDrop<'_> {
    fn drop(&mut self) {
        self.0.end(self.1, self.2);
    }
}

#[typetag::serde(name = "conformance.worker.until_cancelled")]
#[async_trait]
impl Task for UntilCancelled {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        let probe = ctx.data::<Probe>()?;
        let _end = EndOnDrop(probe, ctx.code(), probe.begin());
        if self.ignore {
            std::future::pending::<()>().await;
        }
        ctx.cancelled().await;
        assert!(ctx.is_cancelled());
        Err(TaskError::msg("stopped for the cancel"))
    }
}

/// Starts a worker (heartbeat 100 ms, cancel grace `grace`) running one [`UntilCancelled`],
/// cancels it, and returns how long after the cancel the run was logged, with its log row.
async fn cancel_a_running_task(
    store: &Arc<dyn TaskStore>,
    ignore: bool,
    grace: Duration,
) -> (Duration, TaskLog, Arc<Probe>) {
    let probe = Arc::new(Probe::default());
    let c = client(store, &probe, |b| b);
    c.enqueue(&UntilCancelled { ignore }, EnqueueOptions::new().code("c"))
        .await
        .unwrap();
    let w = c
        .worker()
        .lease(Duration::from_secs(2))
        .heartbeat(Some(Duration::from_millis(100)))
        .cancel_grace(grace)
        .poll_interval(Duration::from_millis(10))
        .start()
        .unwrap();
    eventually("the handler to start", Duration::from_secs(10), || {
        let p = probe.clone();
        async move { p.active.load(Ordering::SeqCst) == 1 }
    })
    .await;
    let asked = Instant::now();
    let marked = c.cancel("c").await.expect("cancel of a running task");
    assert_eq!(marked.state, TaskState::Running);
    assert!(marked.cancel_requested_at.is_some());
    eventually("the run to be logged", Duration::from_secs(20), || {
        let s = store.clone();
        async move { !logs(&s, "c").await.is_empty() }
    })
    .await;
    let took = asked.elapsed();
    w.shutdown().await;
    let l = logs(store, "c").await;
    assert_eq!(l.len(), 1, "{l:?}");
    let rec = get(store, "c").await;
    assert_eq!(rec.state, TaskState::Cancelled, "{rec:?}");
    (took, l[0].clone(), probe)
}

/// A running task cancelled while its handler waits on `ctx.cancelled()`: the worker sees
/// the mark at its next heartbeat, the handler returns, and the run is logged `cancelled`
/// within heartbeat + grace.
pub async fn cancel_stops_a_listening_handler(store: Arc<dyn TaskStore>) {
    let grace = Duration::from_secs(5);
    let (took, log, probe) = cancel_a_running_task(&store, false, grace).await;
    assert_eq!(log.outcome, Outcome::Cancelled);
    assert!(
        log.error
            .as_deref()
            .is_some_and(|e| e.contains("stopped for the cancel")),
        "{log:?}"
    );
    assert_eq!(probe.active.load(Ordering::SeqCst), 0, "the handler ended");
    // Heartbeat 100 ms, plus the database's round trips; the handler did not need the grace.
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

/// A handler that ignores the cancel is aborted at the grace: the run is logged `cancelled`
/// saying so, within heartbeat + grace.
pub async fn cancel_aborts_an_ignoring_handler_at_grace(store: Arc<dyn TaskStore>) {
    let grace = Duration::from_millis(500);
    let (took, log, probe) = cancel_a_running_task(&store, true, grace).await;
    assert_eq!(log.outcome, Outcome::Cancelled);
    assert!(
        log.error
            .as_deref()
            .is_some_and(|e| e.contains("cancel grace")),
        "{log:?}"
    );
    assert_eq!(
        probe.active.load(Ordering::SeqCst),
        0,
        "the handler was dropped"
    );
    assert!(took >= grace, "stopped before the grace: {took:?}");
    assert!(took < grace + Duration::from_secs(3), "took {took:?}");
}

/// The heartbeats that carry the cancel lose their replies (ReplyLost on ExtendLease: they
/// commit, the worker sees an error): the worker tries again, a later beat reports the mark,
/// and the run still ends cancelled.
pub async fn cancel_survives_lost_beat_replies(store: Arc<dyn TaskStore>) {
    let lossy = Arc::new(crate::wrappers::ReplyLost::new(store.clone()));
    let lossy_store: Arc<dyn TaskStore> = lossy.clone();
    let probe = Arc::new(Probe::default());
    let c = client(&lossy_store, &probe, |b| b);
    c.enqueue(
        &UntilCancelled { ignore: false },
        EnqueueOptions::new().code("c"),
    )
    .await
    .unwrap();
    let w = c
        .worker()
        .lease(Duration::from_secs(2))
        .heartbeat(Some(Duration::from_millis(100)))
        .cancel_grace(Duration::from_secs(5))
        .poll_interval(Duration::from_millis(10))
        .start()
        .unwrap();
    eventually("the handler to start", Duration::from_secs(10), || {
        let p = probe.clone();
        async move { p.active.load(Ordering::SeqCst) == 1 }
    })
    .await;
    c.cancel("c").await.expect("cancel of a running task");
    // The next two beats see the mark, and their replies are lost.
    lossy.arm(crate::wrappers::Op::ExtendLease, 2);
    eventually("the run to be logged", Duration::from_secs(20), || {
        let s = store.clone();
        async move { !logs(&s, "c").await.is_empty() }
    })
    .await;
    w.shutdown().await;
    assert_eq!(
        lossy.lost(crate::wrappers::Op::ExtendLease),
        2,
        "two beats lost their replies"
    );
    let l = logs(&store, "c").await;
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0].outcome, Outcome::Cancelled);
    assert_eq!(get(&store, "c").await.state, TaskState::Cancelled);
}
