//! Upkeep cases: the guarantees of a run under partial failure — a run never outlives its
//! lease, survives its caller's dropped future with its full upkeep, keeps its attempt while it
//! waits for a slot, is not failed for good by a shutdown, and a stalled or refusing result
//! writer neither grows without bound nor holds back other results.
//!
//! Faults are injected by [`Faulty`], a store wrapper that fails or stalls chosen calls. Runs
//! are recorded by the handlers themselves ([`Runs`]), including runs that were aborted, so
//! overlaps are judged by what really ran. Leases here are real time (the system clock), short,
//! and waits are conditions with a deadline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use taskrow::chrono::{DateTime, Utc};
use taskrow::registry::{WorkerBeat, WorkerRecord};
use taskrow::schedule::{AdvanceStatus, NewSchedule, ScheduleAdvance, ScheduleRecord};
use taskrow::typetag;
use taskrow::{
    ClaimOne, ClaimRequest, Client, DatabaseClock, DatabaseClockConfig, EnqueueOptions, Error,
    Finish, FinishStatus, Lease, LogFilter, ManualClock, NewTask, Outcome, Page, Purge,
    PurgeReport, ResetTarget, Result, StateCount, Task, TaskContext, TaskError, TaskFilter,
    TaskLog, TaskRecord, TaskRef, TaskState, TaskStore, WorkerHealth, async_trait,
};
use tokio::sync::watch;

use super::worker::eventually;

/// What the upkeep tasks record: every run's code, attempt and real start and end — the end
/// taken when the handler's future is dropped, so an aborted run is recorded too.
#[derive(Debug, Default)]
pub struct Runs {
    runs: Mutex<Vec<Run>>,
}

/// One run: code, attempt, start, and end (`None` while it goes on).
type Run = (String, u32, Instant, Option<Instant>);

impl Runs {
    fn begin(self: &Arc<Self>, code: &str, attempt: u32) -> RunGuard {
        let mut runs = self.runs.lock().unwrap();
        runs.push((code.to_owned(), attempt, Instant::now(), None));
        RunGuard {
            runs: self.clone(),
            index: runs.len() - 1,
        }
    }

    /// Every run as `(code, attempt)`, in start order.
    fn attempts(&self) -> Vec<(String, u32)> {
        self.runs
            .lock()
            .unwrap()
            .iter()
            .map(|(c, a, _, _)| (c.clone(), *a))
            .collect()
    }

    /// How many runs each code had.
    fn counts(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for (c, _, _, _) in self.runs.lock().unwrap().iter() {
            *m.entry(c.clone()).or_default() += 1;
        }
        m
    }

    /// Codes two of whose runs overlapped in time (a run still going counts as going on now).
    fn overlaps(&self) -> Vec<String> {
        let runs = self.runs.lock().unwrap();
        let now = Instant::now();
        let mut by: HashMap<&str, Vec<(Instant, Instant)>> = HashMap::new();
        for (c, _, s, e) in runs.iter() {
            by.entry(c).or_default().push((*s, e.unwrap_or(now)));
        }
        let mut out: Vec<String> = by
            .into_iter()
            .filter_map(|(c, mut v)| {
                v.sort();
                v.windows(2).any(|w| w[1].0 < w[0].1).then(|| c.to_owned())
            })
            .collect();
        out.sort();
        out
    }
}

/// Marks a run's end when dropped: at return, or when the handler is aborted.
struct RunGuard {
    runs: Arc<Runs>,
    index: usize,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if let Ok(mut runs) = self.runs.runs.lock() {
            runs[self.index].3 = Some(Instant::now());
        }
    }
}

/// Runs for `millis` (real time), recorded in [`Runs`]; ignores the stop signal, as a handler
/// that does not look at it would.
#[derive(Debug, Clone, Default, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct Steady {
    /// How long a run takes.
    pub millis: u64,
}

#[typetag::serde(name = "conformance.upkeep.steady")]
#[async_trait]
impl Task for Steady {
    async fn run(&self, ctx: &TaskContext) -> std::result::Result<(), TaskError> {
        let runs = ctx.data_arc::<Runs>()?;
        let _run = runs.begin(ctx.code(), ctx.attempt());
        tokio::time::sleep(Duration::from_millis(self.millis)).await;
        Ok(())
    }
}

/// Never ends by itself and ignores every signal: only an abort stops it.
#[derive(Debug, Clone, Default, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct Stubborn {}

#[typetag::serde(name = "conformance.upkeep.stubborn")]
#[async_trait]
impl Task for Stubborn {
    async fn run(&self, ctx: &TaskContext) -> std::result::Result<(), TaskError> {
        let runs = ctx.data_arc::<Runs>()?;
        let _run = runs.begin(ctx.code(), ctx.attempt());
        std::future::pending::<()>().await;
        Ok(())
    }
}

/// A store wrapper that injects faults into chosen calls of the store it wraps.
#[derive(Debug)]
pub struct Faulty {
    inner: Arc<dyn TaskStore>,
    /// Heartbeats fail (a transient error, nothing written): a host cut off from the database.
    pub fail_beats: AtomicBool,
    /// Heartbeats apply, then report a lost connection (this many more times).
    pub lose_beat_replies: AtomicUsize,
    /// Finishes apply, then report a lost connection (this many more times).
    pub lose_finish_replies: AtomicUsize,
    /// Finishes wait while this reads `true` (a stalled database), then go through.
    stall: watch::Sender<bool>,
    /// A finish whose batch names this code fails with a permanent error, writing nothing.
    pub refuse_code: Mutex<Option<String>>,
    /// Finishes, heartbeats and hand-backs never answer (a database that stopped answering,
    /// with a pool that waits for it).
    pub hang: AtomicBool,
    /// Reading the database's time fails (the wrapper offers one: the inner store's, or this
    /// host's for a store without one).
    pub fail_database_time: AtomicBool,
}

impl Faulty {
    /// `inner`, with no fault armed.
    pub fn new(inner: Arc<dyn TaskStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            fail_beats: AtomicBool::new(false),
            lose_beat_replies: AtomicUsize::new(0),
            lose_finish_replies: AtomicUsize::new(0),
            stall: watch::channel(false).0,
            refuse_code: Mutex::new(None),
            hang: AtomicBool::new(false),
            fail_database_time: AtomicBool::new(false),
        })
    }

    /// Stalls finishes (`true`) or lets them through (`false`).
    pub fn stall_finishes(&self, yes: bool) {
        self.stall.send_replace(yes);
    }

    async fn hang_if_told(&self) {
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }

    fn lost_reply() -> Error {
        Error::backend(true, "connection lost after COMMIT (injected)")
    }

    fn take(counter: &AtomicUsize) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

#[async_trait]
impl TaskStore for Faulty {
    async fn insert(&self, task: NewTask) -> Result<TaskRecord> {
        self.inner.insert(task).await
    }
    async fn insert_many(&self, tasks: Vec<NewTask>) -> Result<u64> {
        self.inner.insert_many(tasks).await
    }
    async fn insert_if_absent(&self, task: NewTask) -> Result<(TaskRecord, bool)> {
        self.inner.insert_if_absent(task).await
    }
    async fn claim(&self, req: &ClaimRequest) -> Result<Vec<TaskRecord>> {
        self.inner.claim(req).await
    }
    async fn claim_one(&self, target: &TaskRef, req: &ClaimOne) -> Result<TaskRecord> {
        self.inner.claim_one(target, req).await
    }
    async fn finish(&self, batch: Vec<Finish>, now: DateTime<Utc>) -> Result<Vec<FinishStatus>> {
        self.hang_if_told().await;
        let mut stall = self.stall.subscribe();
        let _ = stall.wait_for(|s| !*s).await;
        if let Some(code) = self.refuse_code.lock().unwrap().clone()
            && batch.iter().any(|f| f.code == code)
        {
            return Err(Error::backend(
                false,
                format!("the store refuses the result of `{code}` (injected)"),
            ));
        }
        let r = self.inner.finish(batch, now).await?;
        if Self::take(&self.lose_finish_replies) {
            return Err(Self::lost_reply());
        }
        Ok(r)
    }
    async fn release(&self, leases: &[Lease], now: DateTime<Utc>) -> Result<Vec<FinishStatus>> {
        self.hang_if_told().await;
        self.inner.release(leases, now).await
    }
    async fn extend_lease(
        &self,
        lease: Lease,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<taskrow::ExtendStatus> {
        self.hang_if_told().await;
        if self.fail_beats.load(Ordering::SeqCst) {
            return Err(Error::backend(true, "database unreachable (injected)"));
        }
        let status = self.inner.extend_lease(lease, until, now).await?;
        if Self::take(&self.lose_beat_replies) {
            return Err(Self::lost_reply());
        }
        Ok(status)
    }
    async fn get(&self, target: &TaskRef) -> Result<TaskRecord> {
        self.inner.get(target).await
    }
    async fn list(&self, filter: &TaskFilter, page: &Page) -> Result<Vec<TaskRecord>> {
        self.inner.list(filter, page).await
    }
    async fn list_rows(&self, filter: &TaskFilter, page: &Page) -> Result<Vec<taskrow::ListedRow>> {
        self.inner.list_rows(filter, page).await
    }
    async fn unreadable(&self, page: &Page) -> Result<Vec<taskrow::UnreadableRow>> {
        self.inner.unreadable(page).await
    }
    async fn logs(&self, filter: &LogFilter) -> Result<Vec<TaskLog>> {
        self.inner.logs(filter).await
    }
    async fn counts(&self) -> Result<Vec<StateCount>> {
        self.inner.counts().await
    }
    async fn set_queue_paused(&self, queue: &str, paused: bool, now: DateTime<Utc>) -> Result<()> {
        self.inner.set_queue_paused(queue, paused, now).await
    }
    async fn queues(&self) -> Result<Vec<taskrow::QueueInfo>> {
        self.inner.queues().await
    }
    async fn reset(&self, target: &ResetTarget, now: DateTime<Utc>) -> Result<u64> {
        self.inner.reset(target, now).await
    }
    async fn cancel(&self, target: &TaskRef, now: DateTime<Utc>) -> Result<TaskRecord> {
        self.inner.cancel(target, now).await
    }
    async fn delete(&self, target: &TaskRef, now: DateTime<Utc>) -> Result<TaskRecord> {
        self.inner.delete(target, now).await
    }
    async fn delete_unreadable(&self, target: &TaskRef) -> Result<taskrow::UnreadableRow> {
        self.inner.delete_unreadable(target).await
    }
    async fn purge(&self, purge: &Purge) -> Result<PurgeReport> {
        self.inner.purge(purge).await
    }
    async fn check_schema(&self) -> Result<()> {
        self.inner.check_schema().await
    }
    fn has_database_time(&self) -> bool {
        true
    }
    async fn database_time(&self) -> Result<Option<DateTime<Utc>>> {
        if self.fail_database_time.load(Ordering::SeqCst) {
            return Err(Error::backend(true, "database unreachable (injected)"));
        }
        Ok(Some(
            self.inner.database_time().await?.unwrap_or_else(Utc::now),
        ))
    }
    fn wakeups(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.inner.wakeups()
    }
    async fn register_schedule(&self, schedule: &NewSchedule) -> Result<ScheduleRecord> {
        self.inner.register_schedule(schedule).await
    }
    async fn advance_schedule(&self, advance: &ScheduleAdvance) -> Result<AdvanceStatus> {
        self.inner.advance_schedule(advance).await
    }
    async fn schedules(&self) -> Result<Vec<ScheduleRecord>> {
        self.inner.schedules().await
    }
    async fn remove_schedule(&self, name: &str) -> Result<ScheduleRecord> {
        self.inner.remove_schedule(name).await
    }
    async fn beat_worker(&self, beat: &WorkerBeat) -> Result<()> {
        self.inner.beat_worker(beat).await
    }
    async fn workers(&self, now: DateTime<Utc>) -> Result<Vec<WorkerRecord>> {
        self.inner.workers(now).await
    }
    async fn remove_worker(&self, id: &str) -> Result<bool> {
        self.inner.remove_worker(id).await
    }
    async fn prune_workers(&self, gone_before: DateTime<Utc>, limit: u64) -> Result<u64> {
        self.inner.prune_workers(gone_before, limit).await
    }
}

fn client(store: Arc<dyn TaskStore>, runs: &Arc<Runs>) -> Client {
    Client::builder(store)
        .data_arc(runs.clone())
        .build()
        .unwrap()
}

async fn logs(store: &Arc<dyn TaskStore>, code: &str) -> Vec<TaskLog> {
    store.logs(&LogFilter::code(code)).await.unwrap()
}

fn outcomes(logs: &[TaskLog]) -> Vec<Outcome> {
    logs.iter().map(|l| l.outcome).collect()
}

async fn state_of(store: &Arc<dyn TaskStore>, code: &str) -> Option<TaskState> {
    store.get(&TaskRef::from(code)).await.ok().map(|t| t.state)
}

/// Issue 11, item 1. Heartbeats fail on one worker (cut off from the database) while its
/// handler runs on and ignores every signal; a second worker polls. The first run is stopped
/// before its lease ends and logged as interrupted; the second worker's run is the only other
/// one, and the two never overlap.
pub async fn lost_heartbeats_stop_the_handler(store: Arc<dyn TaskStore>) {
    let runs = Arc::new(Runs::default());
    let cut_off = Faulty::new(store.clone());
    cut_off.fail_beats.store(true, Ordering::SeqCst);
    let a = client(cut_off.clone(), &runs);
    a.enqueue(&Steady { millis: 4000 }, EnqueueOptions::new().code("long"))
        .await
        .unwrap();
    let lease = Duration::from_millis(1000);
    let wa = a
        .worker()
        .id("cut-off")
        .lease(lease)
        .heartbeat(Some(Duration::from_millis(200)))
        .poll_interval(Duration::from_millis(20))
        .start()
        .unwrap();
    eventually(
        "the cut-off worker to start the run",
        Duration::from_secs(10),
        || {
            let r = runs.clone();
            async move { !r.attempts().is_empty() }
        },
    )
    .await;
    let b = client(store.clone(), &runs);
    let wb = b
        .worker()
        .id("healthy")
        .lease(lease)
        .heartbeat(Some(Duration::from_millis(200)))
        .poll_interval(Duration::from_millis(20))
        .start()
        .unwrap();
    eventually("a run to succeed", Duration::from_secs(20), || {
        let s = store.clone();
        async move { outcomes(&logs(&s, "long").await).contains(&Outcome::Succeeded) }
    })
    .await;
    wa.shutdown().await;
    wb.shutdown().await;
    assert_eq!(
        runs.overlaps(),
        Vec::<String>::new(),
        "runs overlapped: {runs:?}"
    );
    // The cut-off worker may take the task again after its run was stopped (it is due at
    // once); each of its runs is stopped the same way, until the healthy worker's succeeds.
    let l = logs(&store, "long").await;
    let (last, stopped) = l.split_last().expect("log rows");
    assert_eq!(
        (last.outcome, last.worker.as_str()),
        (Outcome::Succeeded, "healthy"),
        "{l:#?}"
    );
    assert!(
        !stopped.is_empty(),
        "the cut-off worker's run is logged: {l:#?}"
    );
    for run in stopped {
        assert_eq!(
            (run.outcome, run.worker.as_str()),
            (Outcome::Interrupted, "cut-off"),
            "{l:#?}"
        );
        assert!(
            run.error.as_deref().unwrap_or("").contains("lease"),
            "the log says why the run was stopped: {:?}",
            run.error
        );
        assert!(
            run.duration_ms < 1000,
            "stopped inside its lease: {} ms",
            run.duration_ms
        );
    }
    assert_eq!(runs.counts()["long"], l.len(), "every run is logged");
}

/// Issue 11, item 2, through a worker: the first heartbeat's and the first finish's replies are
/// lost after they committed. The run keeps its lease, its result is kept, and no false
/// `lease_lost` row is written.
pub async fn lost_replies_keep_lease_and_result(store: Arc<dyn TaskStore>) {
    let runs = Arc::new(Runs::default());
    let faulty = Faulty::new(store.clone());
    faulty.lose_beat_replies.store(1, Ordering::SeqCst);
    faulty.lose_finish_replies.store(1, Ordering::SeqCst);
    let c = client(faulty.clone(), &runs);
    c.enqueue(
        &Steady { millis: 700 },
        EnqueueOptions::new().code("beating"),
    )
    .await
    .unwrap();
    let w = c
        .worker()
        .lease(Duration::from_millis(1000))
        .heartbeat(Some(Duration::from_millis(200)))
        .poll_interval(Duration::from_millis(20))
        .start()
        .unwrap();
    eventually("the task to be gone", Duration::from_secs(10), || {
        let s = store.clone();
        async move { state_of(&s, "beating").await.is_none() }
    })
    .await;
    w.shutdown().await;
    assert_eq!(
        faulty.lose_beat_replies.load(Ordering::SeqCst),
        0,
        "a beat reply was lost"
    );
    assert_eq!(
        faulty.lose_finish_replies.load(Ordering::SeqCst),
        0,
        "a finish reply was lost"
    );
    assert_eq!(
        outcomes(&logs(&store, "beating").await),
        [Outcome::Succeeded]
    );
    assert_eq!(runs.counts()["beating"], 1);
}

/// Issue 11, item 4. A run-now whose caller gives up after 100 ms (a client that disconnects):
/// the run goes on with its heartbeats, its result is recorded, and a worker polling beside it
/// never runs the task a second time.
pub async fn dropped_run_now_keeps_its_upkeep(store: Arc<dyn TaskStore>) {
    let runs = Arc::new(Runs::default());
    let c = Client::builder(store.clone())
        .data_arc(runs.clone())
        .lease(Duration::from_millis(1000))
        .heartbeat(Some(Duration::from_millis(200)))
        .build()
        .unwrap();
    c.enqueue(
        &Steady { millis: 1800 },
        EnqueueOptions::new()
            .code("dropped")
            .delay(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    let gave_up = tokio::time::timeout(Duration::from_millis(100), c.run_now("dropped")).await;
    assert!(gave_up.is_err(), "the caller gave up before the run ended");
    let w = c
        .worker()
        .lease(Duration::from_millis(1000))
        .heartbeat(Some(Duration::from_millis(200)))
        .poll_interval(Duration::from_millis(20))
        .start()
        .unwrap();
    eventually("the dropped run's result", Duration::from_secs(10), || {
        let s = store.clone();
        async move { !logs(&s, "dropped").await.is_empty() }
    })
    .await;
    // Past the end of the first lease the worker would have taken the task had the run lost it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.shutdown().await;
    assert_eq!(runs.overlaps(), Vec::<String>::new());
    assert_eq!(
        runs.counts()["dropped"],
        1,
        "one run: {:?}",
        runs.attempts()
    );
    assert_eq!(
        outcomes(&logs(&store, "dropped").await),
        [Outcome::Succeeded]
    );
    assert_eq!(
        state_of(&store, "dropped").await,
        None,
        "deleted on success"
    );
}

/// Issue 11, item 5. Two workers with one slot each and the default claim-ahead share long
/// tasks: a task claimed ahead never loses its lease (and an attempt) while it waits, so every
/// run is attempt 1, each task runs once, and no two runs of a task overlap.
pub async fn claimed_ahead_tasks_start_at_attempt_one(store: Arc<dyn TaskStore>) {
    let runs = Arc::new(Runs::default());
    let c = client(store.clone(), &runs);
    let work = Steady { millis: 700 };
    let codes: Vec<String> = (1..=4).map(|i| format!("long-{i}")).collect();
    let batch: Vec<(&dyn Task, EnqueueOptions)> = codes
        .iter()
        .map(|code| (&work as &dyn Task, EnqueueOptions::new().code(code)))
        .collect();
    c.enqueue_batch(batch).await.unwrap();
    let start = |id: &str| {
        c.worker()
            .id(id)
            .concurrency(1)
            .lease(Duration::from_millis(1000))
            .heartbeat(Some(Duration::from_millis(200)))
            .poll_interval(Duration::from_millis(20))
            .start()
            .unwrap()
    };
    let (wa, wb) = (start("a"), start("b"));
    eventually("every task to succeed", Duration::from_secs(30), || {
        let s = store.clone();
        async move { s.counts().await.unwrap().is_empty() }
    })
    .await;
    wa.shutdown().await;
    wb.shutdown().await;
    assert_eq!(runs.overlaps(), Vec::<String>::new());
    let mut attempts = runs.attempts();
    attempts.sort();
    let expected: Vec<(String, u32)> = codes.iter().map(|c| (c.clone(), 1)).collect();
    assert_eq!(attempts, expected, "every task ran once, as attempt 1");
    for code in &codes {
        let l = logs(&store, code).await;
        assert_eq!(outcomes(&l), [Outcome::Succeeded], "{code}: {l:#?}");
        assert_eq!(l[0].attempt, 1);
    }
}

/// Issue 11, item 6. A run interrupted by shutdown on the task's last attempt does not fail the
/// task: it is pending again with the attempt given back. Interruptions have their own bound:
/// past it, an interruption is a failed attempt, and the task ends.
pub async fn shutdown_on_last_attempt_runs_again(store: Arc<dyn TaskStore>) {
    let runs = Arc::new(Runs::default());
    let c = Client::builder(store.clone())
        .data_arc(runs.clone())
        .clock(ManualClock::new(super::t0()))
        .build()
        .unwrap();
    c.enqueue(
        &Stubborn {},
        EnqueueOptions::new().code("deployed").max_attempts(1),
    )
    .await
    .unwrap();
    let bound = taskrow::record::MAX_INTERRUPTIONS;
    for round in 1..=bound + 1 {
        let w = c
            .worker()
            .poll_interval(Duration::from_millis(10))
            .shutdown_timeout(Duration::from_millis(100))
            .start()
            .unwrap();
        eventually("the run to start", Duration::from_secs(10), || {
            let r = runs.clone();
            async move { r.attempts().len() == round as usize }
        })
        .await;
        w.shutdown().await;
        let t = store.get(&"deployed".into()).await.unwrap();
        if round <= bound {
            assert_eq!(
                (t.state, t.attempts, t.interruptions),
                (TaskState::Pending, 0, round),
                "round {round}: runs again, the attempt given back"
            );
            assert!(t.last_error.unwrap().contains("interrupted"));
        } else {
            assert_eq!(
                (t.state, t.attempts),
                (TaskState::Failed, 1),
                "past {bound} interruptions the task ends"
            );
        }
    }
    let l = logs(&store, "deployed").await;
    let mut expected = vec![Outcome::Interrupted; bound as usize];
    expected.push(Outcome::Failed);
    assert_eq!(outcomes(&l), expected);
    assert!(
        runs.attempts().iter().all(|(_, a)| *a == 1),
        "each run was the first attempt: {:?}",
        runs.attempts()
    );
}

/// Issue 11, item 7. A result writer that stalls: the worker keeps its unwritten results and
/// its claims bounded instead of claiming every due task, and once the database answers again,
/// every task is finished.
pub async fn stalled_writer_pauses_claiming(store: Arc<dyn TaskStore>) {
    let runs = Arc::new(Runs::default());
    let faulty = Faulty::new(store.clone());
    faulty.stall_finishes(true);
    let c = Client::builder(faulty.clone())
        .data_arc(runs.clone())
        .clock(ManualClock::new(super::t0()))
        .build()
        .unwrap();
    let work = Steady { millis: 0 };
    let codes: Vec<String> = (0..200).map(|i| format!("quick-{i:03}")).collect();
    let batch: Vec<(&dyn Task, EnqueueOptions)> = codes
        .iter()
        .map(|code| (&work as &dyn Task, EnqueueOptions::new().code(code)))
        .collect();
    c.enqueue_batch(batch).await.unwrap();
    let (concurrency, finish_batch, ahead) = (2, 2, 4);
    let w = c
        .worker()
        .concurrency(concurrency)
        .finish_batch(finish_batch)
        .batch_size(ahead)
        .poll_interval(Duration::from_millis(10))
        .start()
        .unwrap();
    let running = || async {
        let filter = TaskFilter::all().states([TaskState::Running]);
        store.list(&filter, &Page::first(1000)).await.unwrap().len()
    };
    eventually(
        "the worker to run into the stall",
        Duration::from_secs(10),
        || async { running().await > 0 },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = running().await;
    // The writer's batch, the queue of twice the batch, one result per blocked slot, the
    // tasks waiting for a slot, and one claim in flight.
    let bound = finish_batch + 2 * finish_batch + concurrency + (concurrency + ahead);
    assert!(
        held <= bound,
        "{held} tasks claimed under a stalled writer; at most {bound} expected"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        running().await,
        held,
        "claiming paused while the writer stalled"
    );
    faulty.stall_finishes(false);
    eventually("every task to finish", Duration::from_secs(30), || async {
        store.counts().await.unwrap().is_empty()
    })
    .await;
    w.shutdown().await;
    assert_eq!(runs.counts().len(), codes.len());
}

/// Issue 11, item 7. The store refuses one task's result for good: the worker gives that one
/// result up (the task stays leased, to run again after its lease) and writes every other.
pub async fn refused_result_does_not_block_others(store: Arc<dyn TaskStore>) {
    let runs = Arc::new(Runs::default());
    let faulty = Faulty::new(store.clone());
    *faulty.refuse_code.lock().unwrap() = Some("poison".to_owned());
    let c = Client::builder(faulty.clone())
        .data_arc(runs.clone())
        .clock(ManualClock::new(super::t0()))
        .build()
        .unwrap();
    c.enqueue(&Steady { millis: 0 }, EnqueueOptions::new().code("poison"))
        .await
        .unwrap();
    let slow = Steady { millis: 200 };
    let codes: Vec<String> = (0..6).map(|i| format!("good-{i}")).collect();
    let batch: Vec<(&dyn Task, EnqueueOptions)> = codes
        .iter()
        .map(|code| (&slow as &dyn Task, EnqueueOptions::new().code(code)))
        .collect();
    c.enqueue_batch(batch).await.unwrap();
    let w = c
        .worker()
        .concurrency(4)
        .poll_interval(Duration::from_millis(10))
        .start()
        .unwrap();
    eventually(
        "every good task to be written",
        Duration::from_secs(10),
        || {
            let s = store.clone();
            let codes = codes.clone();
            async move {
                for code in &codes {
                    if state_of(&s, code).await.is_some() {
                        return false;
                    }
                }
                true
            }
        },
    )
    .await;
    w.shutdown().await;
    assert_eq!(state_of(&store, "poison").await, Some(TaskState::Running));
    assert!(logs(&store, "poison").await.is_empty());
}

/// Issue 12, item 2. The database stops answering while a task runs (heartbeats, the result
/// write and hand-backs hang, as on a pool waiting for a connection): shutdown still ends at its
/// deadline, not a pool timeout later.
pub async fn shutdown_never_waits_for_a_hung_database(store: Arc<dyn TaskStore>) {
    let runs = Arc::new(Runs::default());
    let faulty = Faulty::new(store.clone());
    let c = Client::builder(faulty.clone())
        .data_arc(runs.clone())
        .clock(ManualClock::new(super::t0()))
        .build()
        .unwrap();
    c.enqueue(&Stubborn {}, EnqueueOptions::new().code("hung"))
        .await
        .unwrap();
    let w = c
        .worker()
        .lease(Duration::from_secs(30))
        .heartbeat(Some(Duration::from_millis(50)))
        .poll_interval(Duration::from_millis(10))
        .shutdown_timeout(Duration::from_millis(200))
        .start()
        .unwrap();
    eventually("the run to start", Duration::from_secs(10), || {
        let r = runs.clone();
        async move { !r.attempts().is_empty() }
    })
    .await;
    faulty.hang.store(true, Ordering::SeqCst);
    // Let a heartbeat get stuck in the hung database.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let began = Instant::now();
    let report = tokio::time::timeout(Duration::from_secs(5), w.shutdown()).await;
    assert!(
        report.is_ok(),
        "shutdown waited for the hung database past its 200 ms deadline"
    );
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        began.elapsed()
    );
    assert_eq!(runs.overlaps(), Vec::<String>::new());
}

/// Issue 12, item 1. A worker whose clock follows the database stops claiming while the
/// database's time cannot be read (its health says why), and claims again once it can.
pub async fn stale_clock_pauses_claiming(store: Arc<dyn TaskStore>) {
    let runs = Arc::new(Runs::default());
    let faulty = Faulty::new(store.clone());
    let clock = DatabaseClock::with_config(
        faulty.clone(),
        DatabaseClockConfig::default()
            .refresh(Duration::from_millis(20))
            .max_age(Duration::from_millis(300)),
    );
    let c = Client::builder(faulty.clone())
        .data_arc(runs.clone())
        .clock(clock)
        .build()
        .unwrap();
    c.enqueue(&Steady { millis: 0 }, EnqueueOptions::new().code("before"))
        .await
        .unwrap();
    let w = c
        .worker()
        .poll_interval(Duration::from_millis(10))
        .start()
        .unwrap();
    eventually("the first task to run", Duration::from_secs(10), || {
        let s = store.clone();
        async move { state_of(&s, "before").await.is_none() }
    })
    .await;
    assert_eq!(w.health(), WorkerHealth::Running);
    faulty.fail_database_time.store(true, Ordering::SeqCst);
    eventually("the worker to pause", Duration::from_secs(10), || {
        let paused = matches!(w.health(), WorkerHealth::Paused(_));
        async move { paused }
    })
    .await;
    let WorkerHealth::Paused(why) = w.health() else {
        unreachable!()
    };
    assert!(why.contains("database's time"), "{why}");
    c.enqueue(&Steady { millis: 0 }, EnqueueOptions::new().code("during"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        state_of(&store, "during").await,
        Some(TaskState::Pending),
        "nothing is claimed while the clock cannot be trusted"
    );
    faulty.fail_database_time.store(false, Ordering::SeqCst);
    eventually(
        "the task enqueued meanwhile to run",
        Duration::from_secs(10),
        || {
            let s = store.clone();
            async move { state_of(&s, "during").await.is_none() }
        },
    )
    .await;
    assert_eq!(w.health(), WorkerHealth::Running);
    w.shutdown().await;
}
