//! The [`Client`]: enqueue tasks, run one now, build workers.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::watch;

use crate::clock::{Clock, DatabaseClock, SystemClock};
use crate::context::Data;
use crate::error::{Error, Result};
use crate::options::EnqueueOptions;
use crate::record::TaskLog;
use crate::record::TaskRecord;
use crate::retry::Jitter;
use crate::runner::{Claimed, Env, RunReport, Stops, execute_and_finish};
use crate::store::{
    ClaimOne, LogFilter, Page, Purge, PurgeReport, QueueInfo, ResetTarget, StateCount, TaskFilter,
    TaskRef, TaskStore,
};
use crate::task::Task;
use crate::worker::WorkerBuilder;

/// Default lease: how long a claim holds a task without a heartbeat.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// Default cancel grace: how long a run cancelled while it runs may take to stop after its
/// handler is told, before it is aborted ([`crate::WorkerBuilder::cancel_grace`]).
pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(10);
/// Default heartbeat interval (a third of the lease).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(20);
/// Default longest run, for tasks that set no timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The entry point: a store, a clock and the data handlers use. Cheap to clone.
///
/// ```
/// # async fn demo(store: impl taskrow::TaskStore, task: impl taskrow::Task) -> taskrow::Result<()> {
/// use taskrow::{Client, EnqueueOptions};
/// let client = Client::builder(store).build()?;
/// let row = client.enqueue(&task, EnqueueOptions::new().code("sync_order_job")).await?;
/// let worker = client.worker().concurrency(8).start()?;
/// // ...
/// worker.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub store: Arc<dyn TaskStore>,
    pub clock: Arc<dyn Clock>,
    pub data: Arc<Data>,
    pub jitter: Arc<Jitter>,
    pub wake: watch::Sender<u64>,
    pub id: String,
    pub lease: Duration,
    pub heartbeat: Option<Duration>,
    pub default_timeout: Duration,
}

/// Builds a [`Client`].
#[derive(Debug)]
pub struct ClientBuilder {
    store: Arc<dyn TaskStore>,
    clock: Option<Arc<dyn Clock>>,
    data: Data,
    jitter: Jitter,
    id: Option<String>,
    lease: Duration,
    heartbeat: Option<Duration>,
    default_timeout: Duration,
}

impl ClientBuilder {
    /// Time source (a [`crate::ManualClock`] in tests; an `Arc` of a clock is a clock too). By
    /// default, a store that can read the
    /// database's time (MySQL, MariaDB, PostgreSQL) gets a [`DatabaseClock`] following it, so
    /// that hosts need not agree on the time; other stores the [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }
    /// Registers a value handlers fetch with [`crate::TaskContext::data`].
    pub fn data<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.data.insert(value);
        self
    }
    /// Registers a shared value.
    pub fn data_arc<T: Send + Sync + 'static>(mut self, value: Arc<T>) -> Self {
        self.data.insert_arc(value);
        self
    }
    /// Randomness for retry jitter (seed it in tests).
    pub fn jitter(mut self, j: Jitter) -> Self {
        self.jitter = j;
        self
    }
    /// This process's id as lease owner and in log rows (default: host, pid and a random part).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
    /// Lease for run-now and dispatch claims (workers have their own setting).
    pub fn lease(mut self, d: Duration) -> Self {
        self.lease = d;
        self
    }
    /// Heartbeat for run-now and dispatch runs; `None` disables it.
    pub fn heartbeat(mut self, d: Option<Duration>) -> Self {
        self.heartbeat = d;
        self
    }
    /// Longest run for tasks that set no timeout.
    pub fn default_timeout(mut self, d: Duration) -> Self {
        self.default_timeout = d;
        self
    }
    /// Checks the settings and builds the client: [`Error::Config`] for a lease and heartbeat
    /// that cannot keep a run's lease (a heartbeat longer than half the lease),
    /// [`Error::InvalidInput`] for an id that does not fit.
    pub fn build(self) -> Result<Client> {
        crate::options::validate_lease(self.lease, self.heartbeat)?;
        if let Some(id) = &self.id {
            crate::options::validate_worker_id(id)?;
        }
        if self.default_timeout.is_zero() {
            return Err(Error::Config(
                "the default timeout must be longer than zero".into(),
            ));
        }
        Ok(Client {
            inner: Arc::new(Inner {
                clock: self.clock.unwrap_or_else(|| default_clock(&self.store)),
                store: self.store,
                data: Arc::new(self.data),
                jitter: Arc::new(self.jitter),
                wake: watch::channel(0).0,
                id: self.id.unwrap_or_else(default_worker_id),
                lease: self.lease,
                heartbeat: self.heartbeat,
                default_timeout: self.default_timeout,
            }),
        })
    }
}

/// The clock a client gets when none is given: the database's time where the store can read
/// it, else this host's.
fn default_clock(store: &Arc<dyn TaskStore>) -> Arc<dyn Clock> {
    if store.has_database_time() {
        Arc::new(DatabaseClock::new(store.clone()))
    } else {
        Arc::new(SystemClock)
    }
}

/// Awaits a spawned run; a run that panicked outside the handler (a bug in taskrow or a
/// store) becomes an error instead of a panic in the caller.
async fn join_run<T>(handle: tokio::task::JoinHandle<Result<T>>) -> Result<T> {
    handle.await.unwrap_or_else(|e| {
        Err(Error::backend(
            false,
            format!("the run's tokio task ended without a result: {e}"),
        ))
    })
}

/// `host-pid-random`: unique per process, readable in log rows.
pub fn default_worker_id() -> String {
    let host = crate::registry::host_name();
    let rand = uuid::Uuid::now_v7().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &rand[rand.len() - 6..])
}

impl Client {
    /// A client on `store` with the default settings and clock, and no data.
    pub fn new(store: impl TaskStore) -> Self {
        Self::builder(store)
            .build()
            .expect("the default settings are valid")
    }

    /// A builder for a client on `store`: a store value, or one already shared as an `Arc`
    /// (`Arc<S>` and `Arc<dyn TaskStore>` are stores too).
    pub fn builder(store: impl TaskStore) -> ClientBuilder {
        ClientBuilder {
            store: Arc::new(store),
            clock: None,
            data: Data::new(),
            jitter: Jitter::from_entropy(),
            id: None,
            lease: DEFAULT_LEASE,
            heartbeat: Some(DEFAULT_HEARTBEAT),
            default_timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn TaskStore> {
        &self.inner.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// This process's id (lease owner, log rows).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Wakes this process's workers at once (they also poll).
    pub fn wake_workers(&self) {
        self.inner.wake.send_modify(|g| *g = g.wrapping_add(1));
    }

    pub(crate) fn wake_receiver(&self) -> watch::Receiver<u64> {
        self.inner.wake.subscribe()
    }

    /// Stores `task` to run per `options`, and wakes this process's workers.
    pub async fn enqueue(&self, task: &dyn Task, options: EnqueueOptions) -> Result<TaskRecord> {
        // A chance for a clock that follows the database to read it first; an enqueue never
        // fails for the clock (its times decide only when the task is due).
        let _ = self.inner.clock.ready().await;
        let row = options.build(task, self.inner.clock.now())?;
        let rec = self.inner.store.insert(row).await?;
        crate::metrics::enqueued(&rec.task_type, &rec.queue, 1);
        self.wake_workers();
        Ok(rec)
    }

    /// Stores `task` unless a task with its code exists: returns the row and whether it was
    /// created. Without a code in `options` this always creates.
    pub async fn enqueue_if_absent(
        &self,
        task: &dyn Task,
        options: EnqueueOptions,
    ) -> Result<(TaskRecord, bool)> {
        // A chance for a clock that follows the database to read it first; an enqueue never
        // fails for the clock (its times decide only when the task is due).
        let _ = self.inner.clock.ready().await;
        let row = options.build(task, self.inner.clock.now())?;
        let (rec, created) = self.inner.store.insert_if_absent(row).await?;
        if created {
            crate::metrics::enqueued(&rec.task_type, &rec.queue, 1);
            self.wake_workers();
        }
        Ok((rec, created))
    }

    /// Stores many tasks in one transaction, all or none. Returns how many were stored.
    pub async fn enqueue_batch<'a, I>(&self, tasks: I) -> Result<u64>
    where
        I: IntoIterator<Item = (&'a dyn Task, EnqueueOptions)>,
    {
        // A chance for a clock that follows the database to read it first; an enqueue never
        // fails for the clock (its times decide only when the task is due).
        let _ = self.inner.clock.ready().await;
        let now = self.inner.clock.now();
        let rows = tasks
            .into_iter()
            .map(|(t, o)| o.build(t, now))
            .collect::<Result<Vec<_>>>()?;
        let mut per_type: std::collections::BTreeMap<(String, String), u64> = Default::default();
        for r in &rows {
            *per_type
                .entry((r.task_type.clone(), r.queue.clone()))
                .or_default() += 1;
        }
        let n = self.inner.store.insert_many(rows).await?;
        for ((task_type, queue), count) in per_type {
            crate::metrics::enqueued(&task_type, &queue, count);
        }
        self.wake_workers();
        Ok(n)
    }

    /// Runs one task now, due or not (seed 003's `execute?code=…`), and returns how it ended.
    /// Runs pending and failed tasks; refuses a task running under a live lease
    /// ([`Error::Running`]), a cancelled one ([`Error::Cancelled`]) and a succeeded one
    /// ([`Error::Succeeded`]).
    ///
    /// The claim, the run, its heartbeats, timeout and finish run on a tokio task of their
    /// own: dropping the returned future (a client that disconnects, a `timeout` around it)
    /// does not orphan the handler — the run goes on with its full upkeep and its result is
    /// recorded; only the report is lost (read it from the log).
    pub async fn run_now(&self, target: impl Into<TaskRef>) -> Result<RunReport> {
        let target = target.into();
        let client = self.clone();
        join_run(tokio::spawn(async move {
            client.inner.clock.ready().await?;
            let sent = Instant::now();
            let now = client.inner.clock.now();
            let task = client
                .inner
                .store
                .claim_one(
                    &target,
                    &ClaimOne::new(client.inner.id.clone(), client.inner.lease, now),
                )
                .await?;
            execute_and_finish(&client.env(), &Claimed { task, sent }, &Stops::never()).await
        }))
        .await
    }

    /// Immediate dispatch, awaited (seed 000's thread_way 2): runs a task that was just
    /// committed, unless a worker has taken it already. Returns the run's report, or `None`
    /// when the task was no longer pending (a worker claimed it, or it is gone) — the worker's
    /// run then stands, so the task never runs twice at once.
    ///
    /// Like [`Client::run_now`], the run goes on with its full upkeep if the returned future
    /// is dropped. Call it only after the transaction that inserted the task has committed; the
    /// transaction helpers in `taskrow-sql` make that order the only one available.
    pub async fn run_committed(&self, id: i64) -> Result<Option<RunReport>> {
        let client = self.clone();
        join_run(tokio::spawn(async move {
            client.inner.clock.ready().await?;
            let sent = Instant::now();
            let now = client.inner.clock.now();
            let claim =
                ClaimOne::new(client.inner.id.clone(), client.inner.lease, now).only_pending();
            match client.inner.store.claim_one(&TaskRef::Id(id), &claim).await {
                Ok(task) => {
                    execute_and_finish(&client.env(), &Claimed { task, sent }, &Stops::never())
                        .await
                        .map(Some)
                }
                Err(
                    Error::Running { .. }
                    | Error::NotFound(_)
                    | Error::Succeeded(_)
                    | Error::Cancelled(_)
                    | Error::WrongState { .. },
                ) => Ok(None),
                Err(e) => Err(e),
            }
        }))
        .await
    }

    /// Immediate dispatch, spawned (seed 000's thread_way 1): like
    /// [`Client::run_committed`] on a tokio task. If it fails, the worker retries the task
    /// per its policy.
    pub fn spawn_committed(&self, id: i64) -> tokio::task::JoinHandle<Result<Option<RunReport>>> {
        let client = self.clone();
        tokio::spawn(async move {
            let r = client.run_committed(id).await;
            if let Err(e) = &r {
                tracing::warn!(id, error = %e, "immediate dispatch failed; the worker will run the task after its delay");
            }
            r
        })
    }

    /// One task, named by code (`"sync_order_job"`), id (`42`) or [`TaskRef`];
    /// [`Error::NotFound`] when there is none.
    pub async fn get(&self, task: impl Into<TaskRef>) -> Result<TaskRecord> {
        self.inner.store.get(&task.into()).await
    }

    /// Tasks matching `filter`, in id order, one page ([`Page::first`], then
    /// [`Page::after`] the last id).
    pub async fn list(&self, filter: &TaskFilter, page: &Page) -> Result<Vec<TaskRecord>> {
        self.inner.store.list(filter, page).await
    }

    /// Every run of one task, oldest first: started, duration, outcome, error, worker, attempt.
    /// By code, the log outlives a task that success deleted.
    pub async fn logs(&self, task: impl Into<TaskRef>) -> Result<Vec<TaskLog>> {
        let filter = match task.into() {
            TaskRef::Id(id) => LogFilter::task(id),
            TaskRef::Code(code) => LogFilter::code(code),
        };
        self.inner.store.logs(&filter).await
    }

    /// Log rows matching `filter` (outcomes, since, limit …), oldest first.
    pub async fn logs_matching(&self, filter: &LogFilter) -> Result<Vec<TaskLog>> {
        self.inner.store.logs(filter).await
    }

    /// How many tasks there are of each type, queue and priority in each state.
    pub async fn counts(&self) -> Result<Vec<StateCount>> {
        self.inner.store.counts().await
    }

    /// Pauses a queue: from now on no worker claims its tasks (runs already started finish;
    /// run-now still runs one by hand) until [`Client::resume_queue`]. Every worker on the
    /// store honours it at its next claim. The queue need not hold tasks yet.
    pub async fn pause_queue(&self, queue: &str) -> Result<()> {
        self.inner
            .store
            .set_queue_paused(queue, true, self.now().await?)
            .await
    }

    /// Resumes a paused queue: its due tasks are claimed again (workers here are woken).
    pub async fn resume_queue(&self, queue: &str) -> Result<()> {
        self.inner
            .store
            .set_queue_paused(queue, false, self.now().await?)
            .await?;
        self.wake_workers();
        Ok(())
    }

    /// Every queue that holds a task or was ever paused or resumed, with its paused state and
    /// its tasks per state.
    pub async fn queues(&self) -> Result<Vec<QueueInfo>> {
        self.inner.store.queues().await
    }

    /// Makes one task run again from scratch (seed 003's manual re-run after a fix): pending,
    /// due now, attempts and interruptions 0, last error cleared. Refuses a task running under
    /// a live lease ([`Error::Running`]) and a succeeded one ([`Error::Succeeded`]).
    pub async fn reset(&self, task: impl Into<TaskRef>) -> Result<()> {
        let target = ResetTarget::One(task.into());
        self.inner.store.reset(&target, self.now().await?).await?;
        self.wake_workers();
        Ok(())
    }

    /// Resets every failed or cancelled task matching `filter` (its states, if given, narrow
    /// that further); answers how many.
    pub async fn reset_matching(&self, filter: &TaskFilter) -> Result<u64> {
        let target = ResetTarget::Matching(filter.clone());
        let n = self.inner.store.reset(&target, self.now().await?).await?;
        if n > 0 {
            self.wake_workers();
        }
        Ok(n)
    }

    /// Cancels a pending or failed task (or one whose worker was lost); a cancelled task stays
    /// until reset or deleted. Refuses a task running under a live lease and a succeeded one.
    pub async fn cancel(&self, task: impl Into<TaskRef>) -> Result<TaskRecord> {
        self.inner
            .store
            .cancel(&task.into(), self.now().await?)
            .await
    }

    /// Deletes a task (its log rows stay) and returns it as it was. Refuses a task running
    /// under a live lease.
    pub async fn delete(&self, task: impl Into<TaskRef>) -> Result<TaskRecord> {
        self.inner
            .store
            .delete(&task.into(), self.now().await?)
            .await
    }

    /// Cancels every task matching `filter`, one by one with [`Client::cancel`]'s refusals
    /// reported as skipped (see [`crate::bulk::apply_matching`]); with `dry_run`, changes
    /// nothing and reports what would happen.
    pub async fn cancel_matching(
        &self,
        filter: &TaskFilter,
        dry_run: bool,
    ) -> Result<crate::BulkReport> {
        let now = self.now().await?;
        crate::bulk::apply_matching(
            &*self.inner.store,
            crate::BulkAction::Cancel,
            filter,
            now,
            dry_run,
        )
        .await
    }

    /// Deletes every task matching `filter` (their log rows stay), one by one with
    /// [`Client::delete`]'s refusals reported as skipped; with `dry_run`, changes nothing and
    /// reports what would happen.
    pub async fn delete_matching(
        &self,
        filter: &TaskFilter,
        dry_run: bool,
    ) -> Result<crate::BulkReport> {
        let now = self.now().await?;
        crate::bulk::apply_matching(
            &*self.inner.store,
            crate::BulkAction::Delete,
            filter,
            now,
            dry_run,
        )
        .await
    }

    /// Removes old finished tasks and log rows ([`Purge::before`] a time, e.g. 30 days ago by
    /// the client's clock: `Purge::before(client.clock().now() - chrono::TimeDelta::days(30))`).
    pub async fn purge(&self, purge: &Purge) -> Result<PurgeReport> {
        self.inner.store.purge(purge).await
    }

    /// Every schedule's row ([`crate::schedule`]): spec, time zone, last and next tick, and
    /// when an instance last registered it.
    pub async fn schedules(&self) -> Result<Vec<crate::ScheduleRecord>> {
        self.inner.store.schedules().await
    }

    /// Deletes a schedule's row (its tasks stay) and returns it as it was
    /// ([`Error::ScheduleNotFound`] when there is none). Workers that still register the
    /// schedule stop ticking it until they start again.
    pub async fn remove_schedule(&self, name: &str) -> Result<crate::ScheduleRecord> {
        self.inner.store.remove_schedule(name).await
    }

    /// The client's clock's time, once it can be trusted (a clock that follows the database
    /// reads it first): reset, cancel and delete judge whether a lease is live by it, so they
    /// refuse to guess ([`Error::Clock`]) rather than take a live lease for an expired one.
    async fn now(&self) -> Result<chrono::DateTime<chrono::Utc>> {
        self.inner.clock.ready().await?;
        Ok(self.inner.clock.now())
    }

    /// Every worker in the registry ([`crate::registry`]), by id, each judged alive or gone at
    /// the client's clock's time. Workers started with [`Worker::start`](crate::Worker::start)
    /// keep their row fresh and remove it at a clean shutdown.
    pub async fn workers(&self) -> Result<Vec<crate::WorkerRecord>> {
        let now = self.now().await?;
        self.inner.store.workers(now).await
    }

    /// A health check for an orchestrator (never an error: a failure is an unhealthy report
    /// saying why). Healthy when the database answers, its schema is the one this version
    /// knows ([`Client::check_schema`]), the client's clock can be trusted, and what `check`
    /// asks of the registry holds ([`crate::registry::HealthCheck`]).
    pub async fn health(
        &self,
        check: &crate::registry::HealthCheck,
    ) -> crate::registry::HealthReport {
        use crate::registry::HealthReport;
        let now = match self.now().await {
            Ok(now) => now,
            Err(e) => {
                return HealthReport::unhealthy(format!("clock: {e}"), self.inner.clock.now());
            }
        };
        if let Err(e) = self.inner.store.check_schema().await {
            return HealthReport::unhealthy(format!("database: {e}"), now);
        }
        match self.inner.store.workers(now).await {
            Ok(workers) => check.judge(now, &workers),
            Err(e) => HealthReport::unhealthy(format!("worker registry: {e}"), now),
        }
    }

    /// Checks that the store's schema is the one this version knows
    /// ([`TaskStore::check_schema`]); workers do it before their first claim. Call it at
    /// start-up to fail early.
    pub async fn check_schema(&self) -> Result<()> {
        self.inner.store.check_schema().await
    }

    /// The execution environment for run-now and dispatch.
    pub(crate) fn env(&self) -> Env {
        Env {
            store: self.inner.store.clone(),
            clock: self.inner.clock.clone(),
            data: self.inner.data.clone(),
            jitter: self.inner.jitter.clone(),
            worker: self.inner.id.clone(),
            lease: self.inner.lease,
            heartbeat: self.inner.heartbeat,
            default_timeout: self.inner.default_timeout,
            cancel_grace: DEFAULT_CANCEL_GRACE,
        }
    }

    /// A builder for a worker that runs this client's tasks.
    pub fn worker(&self) -> WorkerBuilder {
        WorkerBuilder::new(self.clone())
    }
}
