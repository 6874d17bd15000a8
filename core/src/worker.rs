//! The worker: claims due tasks in batches, runs them with a concurrency limit, writes their
//! results in batches, keeps long tasks' leases alive, and shuts down gracefully.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::record::{Outcome, TaskRecord};
use crate::registry::{self, WorkerBeat};
use crate::retention::Retention;
use crate::runner::{Claimed, Env, RunReport, Stops, execute, execute_and_finish};
use crate::schedule::{Schedule, Ticker};
use crate::store::{ClaimRequest, Finish, FinishStatus};

/// Configures and starts a [`Worker`]. Get one from [`Client::worker`].
#[derive(Debug, Clone)]
#[must_use]
pub struct WorkerBuilder {
    client: Client,
    id: Option<String>,
    concurrency: usize,
    batch_size: Option<usize>,
    claims_in_flight: usize,
    poll_interval: Duration,
    lease: Duration,
    heartbeat: Option<Duration>,
    default_timeout: Duration,
    shutdown_timeout: Duration,
    cancel_grace: Duration,
    finish_batch: usize,
    biz_types: Vec<String>,
    task_types: Vec<String>,
    retention: Retention,
    queues: Vec<(String, usize)>,
    schedules: Vec<Schedule>,
}

impl WorkerBuilder {
    pub(crate) fn new(client: Client) -> Self {
        let heartbeat = client.inner.heartbeat;
        let lease = client.inner.lease;
        let default_timeout = client.inner.default_timeout;
        Self {
            client,
            id: None,
            concurrency: 8,
            batch_size: None,
            claims_in_flight: 2,
            poll_interval: Duration::from_secs(1),
            lease,
            heartbeat,
            default_timeout,
            shutdown_timeout: Duration::from_secs(30),
            cancel_grace: crate::client::DEFAULT_CANCEL_GRACE,
            finish_batch: 128,
            biz_types: Vec::new(),
            task_types: Vec::new(),
            retention: Retention::default(),
            queues: Vec::new(),
            schedules: Vec::new(),
        }
    }

    /// What this worker purges, and how often (default: succeeded and cancelled tasks and log
    /// rows older than 30 days, every 10 minutes; see [`Retention`]). `Retention::off()` turns
    /// it off.
    pub fn retention(mut self, r: Retention) -> Self {
        self.retention = r;
        self
    }

    /// Most tasks running at once (default 8), over all queues. Not used once
    /// [`WorkerBuilder::queue`] gives queues their own slots.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }
    /// How many tasks to claim ahead of the free slots (default: the concurrency, at least
    /// 32 — in the benchmark this tripled drain throughput over claiming 8). The worker
    /// claims enough to fill its free slots plus this many, and claims again once half of
    /// that is missing, so a fast drain claims in batches and claims the next one while this
    /// one runs. While the slots sit idle waiting for claims that come back full (tasks that
    /// run faster than the database answers), the worker claims further ahead, doubling up to
    /// four times this, and back to it once a claim finds less than it asked for. A waiting task holds its lease, and its attempt is
    /// counted; so that it never loses that lease while it waits (and with it an attempt that
    /// never ran), a task still waiting when half its lease is gone is handed back (its attempt
    /// given back) for this or another worker to claim, and the worker claims no further ahead
    /// until one of its runs ends. Shutdown hands waiting tasks back the same way. With heartbeats
    /// off nothing is claimed ahead (the lease, counted from the claim, limits the run).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = Some(n);
        self
    }
    /// How many claims the worker may have in flight at once (default 2). It claims the next
    /// batch while the last one runs; when the database answers slower than the tasks run, a
    /// second claim keeps the slots busy (the database works on both at once). Each claim
    /// asks only for what is missing from the free slots plus [`WorkerBuilder::batch_size`],
    /// so this never claims further ahead. 1 claims one batch at a time.
    pub fn claims_in_flight(mut self, n: usize) -> Self {
        self.claims_in_flight = n;
        self
    }
    /// How often an idle worker looks for due tasks (default 1 s). Enqueues in this process
    /// wake it at once.
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }
    /// How long a claim holds a task without a heartbeat (default 60 s).
    pub fn lease(mut self, d: Duration) -> Self {
        self.lease = d;
        self
    }
    /// How often a running task's lease is extended (default 20 s). `None` disables it: the
    /// lease is then a hard limit on a run (the handler is told to stop a fifth of the lease,
    /// at most 10 s, before its end and aborted at a tenth).
    pub fn heartbeat(mut self, d: Option<Duration>) -> Self {
        self.heartbeat = d;
        self
    }
    /// Longest run for tasks that set no timeout (default 10 min).
    pub fn default_timeout(mut self, d: Duration) -> Self {
        self.default_timeout = d;
        self
    }
    /// How long shutdown waits for running tasks before interrupting them (default 30 s).
    pub fn shutdown_timeout(mut self, d: Duration) -> Self {
        self.shutdown_timeout = d;
        self
    }
    /// How long a run whose task was cancelled while it ran may take to stop after its
    /// handler is told ([`TaskContext::cancelled`](crate::TaskContext::cancelled)) before it is
    /// aborted (default 10 s). The worker sees the cancel at the run's next heartbeat, so a
    /// running task stops within one heartbeat interval plus this grace. With heartbeats off
    /// the worker never sees it: the run goes on, and ends cancelled unless it succeeds.
    pub fn cancel_grace(mut self, d: Duration) -> Self {
        self.cancel_grace = d;
        self
    }
    /// Most results written in one transaction (default 128). A run keeps its slot until its
    /// result is handed to the writer; at most twice this many results wait unwritten, and
    /// while they do the worker claims nothing, so a stalled database stops the worker instead
    /// of growing a backlog.
    pub fn finish_batch(mut self, n: usize) -> Self {
        self.finish_batch = n;
        self
    }
    /// Only claim tasks of these biz types.
    pub fn biz_types(mut self, b: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.biz_types = b.into_iter().map(Into::into).collect();
        self
    }
    /// Only claim tasks of these type names.
    pub fn task_types(mut self, t: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.task_types = t.into_iter().map(Into::into).collect();
        self
    }
    /// Runs `queue` with `concurrency` slots of its own. Call it once per queue: a worker given
    /// queues runs only those, each claiming for its own free slots, so a flood in one queue
    /// cannot take another's slots (`.queue("emails", 4).queue("default", 8)` runs up to 12
    /// tasks). A worker given no queue runs every queue within [`WorkerBuilder::concurrency`].
    /// Biz-type and type filters apply within each queue. A paused queue's tasks are not
    /// claimed ([`Client::pause_queue`]).
    pub fn queue(mut self, queue: impl Into<String>, concurrency: usize) -> Self {
        self.queues.push((queue.into(), concurrency));
        self
    }

    /// Ticks this schedule: the worker registers it at its start and enqueues its task at
    /// every tick (see [`crate::schedule`]). Every instance may register the same schedules;
    /// each tick is enqueued once among them. The worker wakes at the next tick or its poll
    /// interval, whichever comes first. Names must be unique; [`WorkerBuilder::build`] checks
    /// each schedule ([`Schedule::check`]).
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedules.push(schedule);
        self
    }
    /// This worker's id (default: the client's).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Checks the settings and builds the worker (not started).
    pub fn build(self) -> Result<Worker> {
        let bad = |m: &str| Err(Error::Config(m.to_owned()));
        if self.concurrency == 0 {
            return bad("concurrency must be at least 1");
        }
        for (i, (queue, n)) in self.queues.iter().enumerate() {
            crate::options::validate_queue(queue).map_err(|e| match e {
                Error::InvalidInput(m) => Error::Config(m),
                other => other,
            })?;
            if *n == 0 {
                return Err(Error::Config(format!(
                    "queue `{queue}` has concurrency 0: give it at least 1 slot, or leave it out"
                )));
            }
            if self.queues[..i].iter().any(|(q, _)| q == queue) {
                return Err(Error::Config(format!(
                    "queue `{queue}` is given twice: give each queue once, with its concurrency"
                )));
            }
        }
        if self.batch_size == Some(0) {
            return bad("batch size must be at least 1");
        }
        if self.finish_batch == 0 {
            return bad("finish batch must be at least 1");
        }
        if self.claims_in_flight == 0 {
            return bad("claims in flight must be at least 1");
        }
        if self.poll_interval.is_zero() {
            return bad("the poll interval must be longer than zero");
        }
        crate::options::validate_lease(self.lease, self.heartbeat)?;
        if let Some(id) = &self.id {
            crate::options::validate_worker_id(id)?;
        }
        if self.default_timeout.is_zero() {
            return bad("the default timeout must be longer than zero");
        }
        self.retention.validate()?;
        let id = self
            .id
            .clone()
            .unwrap_or_else(|| self.client.id().to_owned());
        let env = Env {
            store: self.client.inner.store.clone(),
            clock: self.client.inner.clock.clone(),
            data: self.client.inner.data.clone(),
            jitter: self.client.inner.jitter.clone(),
            worker: id,
            lease: self.lease,
            heartbeat: self.heartbeat,
            default_timeout: self.default_timeout,
            cancel_grace: self.cancel_grace,
        };
        let ticker = if self.schedules.is_empty() {
            None
        } else {
            Some(Arc::new(Ticker::new(self.schedules.clone())?))
        };
        Ok(Worker {
            cfg: self,
            env,
            ticker,
            running: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Builds and starts the worker on the current tokio runtime.
    pub fn start(self) -> Result<WorkerHandle> {
        Ok(self.build()?.start())
    }
}

/// A configured worker. [`Worker::start`] runs it in the background;
/// [`Worker::run_until_idle`] runs what is due in the caller (tests, scripts).
#[derive(Debug)]
pub struct Worker {
    cfg: WorkerBuilder,
    env: Env,
    ticker: Option<Arc<Ticker>>,
    /// Runs going on now, over all lanes (for the registry's beats).
    running: Arc<AtomicUsize>,
}

/// Counts from [`Worker::run_until_idle`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Runs started.
    pub executed: u64,
    /// Runs that succeeded.
    pub succeeded: u64,
    /// Runs that failed and were rescheduled.
    pub retried: u64,
    /// Runs that failed for good.
    pub failed: u64,
    /// Runs whose result was refused (lease lost).
    pub lease_lost: u64,
    /// Runs stopped from outside (shutdown, a lease that could not be kept).
    pub interrupted: u64,
    /// Tasks this call enqueued for due ticks of the worker's schedules.
    pub scheduled: u64,
}

impl DrainReport {
    fn add(&mut self, r: &RunReport) {
        self.executed += 1;
        match r.outcome {
            Outcome::Succeeded => self.succeeded += 1,
            Outcome::Retrying => self.retried += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::LeaseLost => self.lease_lost += 1,
            Outcome::Interrupted => self.interrupted += 1,
            _ => {}
        }
    }
}

impl Worker {
    /// This worker's id.
    pub fn id(&self) -> &str {
        &self.env.worker
    }

    fn claim_request(&self, limit: usize) -> ClaimRequest {
        ClaimRequest::new(
            self.env.worker.clone(),
            limit,
            self.env.lease,
            self.env.clock.now(),
        )
        .biz_types(self.cfg.biz_types.clone())
        .task_types(self.cfg.task_types.clone())
        .queues(self.cfg.queues.iter().map(|(q, _)| q.clone()))
    }

    /// This worker's slots: its one queue's concurrency, or the worker's.
    fn slots(&self) -> usize {
        match self.cfg.queues.as_slice() {
            [(_, n)] => *n,
            _ => self.cfg.concurrency,
        }
    }

    /// One worker per queue, each with that queue's slots (itself, cloned, when it has at
    /// most one queue): the lanes that run side by side. The first lane also ticks the
    /// schedules and purges old rows; the others only claim and run.
    fn lanes(&self) -> Vec<Worker> {
        if self.cfg.queues.len() <= 1 {
            return vec![Worker {
                cfg: self.cfg.clone(),
                env: self.env.clone(),
                ticker: self.ticker.clone(),
                running: self.running.clone(),
            }];
        }
        self.cfg
            .queues
            .iter()
            .enumerate()
            .map(|(i, q)| Worker {
                cfg: WorkerBuilder {
                    queues: vec![q.clone()],
                    retention: if i == 0 {
                        self.cfg.retention.clone()
                    } else {
                        Retention::off()
                    },
                    ..self.cfg.clone()
                },
                env: self.env.clone(),
                ticker: if i == 0 { self.ticker.clone() } else { None },
                running: self.running.clone(),
            })
            .collect()
    }

    /// Runs due tasks in the caller until none is due at the clock's current time, and says
    /// what happened. Retries scheduled for later wait: move the clock and call again. Each
    /// queue given ([`WorkerBuilder::queue`]) claims up to its own concurrency per round.
    ///
    /// A worker with schedules first registers them (on its first call) and enqueues the
    /// tasks of the ticks due at the clock's time, as a started worker does.
    pub async fn run_until_idle(&self) -> Result<DrainReport> {
        self.env.store.check_schema().await?;
        self.env.clock.ready().await?;
        let mut report = DrainReport::default();
        if let Some(ticker) = &self.ticker {
            report.scheduled = ticker
                .tick(&*self.env.store, self.env.clock.now())
                .await?
                .enqueued;
        }
        let stops = Stops::never();
        let lanes = self.lanes();
        loop {
            let sent = Instant::now();
            let mut claimed = Vec::new();
            for lane in &lanes {
                let limit = lane.cfg.batch_size.unwrap_or(lane.slots());
                claimed.extend(self.env.store.claim(&lane.claim_request(limit)).await?);
            }
            if claimed.is_empty() {
                return Ok(report);
            }
            let claimed: Vec<Claimed> = claimed
                .into_iter()
                .map(|task| Claimed { task, sent })
                .collect();
            let runs = claimed
                .iter()
                .map(|c| execute_and_finish(&self.env, c, &stops));
            for r in futures::future::join_all(runs).await {
                report.add(&r?);
            }
        }
    }

    /// Starts the worker in the background. Before its first claim it checks the store's
    /// schema ([`crate::TaskStore::check_schema`]); a schema it does not know stops it at once,
    /// with an error event, and [`WorkerHandle::shutdown`] reports why
    /// ([`ShutdownReport::refused`]). Once running it keeps its row in the worker registry
    /// fresh ([`crate::registry`]: one row for all its queues, a beat at its heartbeat
    /// interval, at most every 10 s) and removes the row when it has shut down.
    /// [`Worker::run_until_idle`] registers nothing.
    pub fn start(self) -> WorkerHandle {
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (hard_tx, hard_rx) = watch::channel(false);
        let stops = Stops {
            shutdown: shutdown_rx,
            hard_stop: hard_rx,
        };
        let shutdown_timeout = self.cfg.shutdown_timeout;
        let wake = self.cfg.client.clone();
        let (health_tx, health) = watch::channel(WorkerHealth::Starting);
        let join = tokio::spawn(self.main_loop(stops, health_tx));
        WorkerHandle {
            health,
            shutdown: shutdown_tx,
            hard_stop: hard_tx,
            join: Some(join),
            shutdown_timeout,
            client: wake,
        }
    }

    /// Most runs at once over all queues: the sum of the queues' slots, or the concurrency.
    fn total_slots(&self) -> usize {
        if self.cfg.queues.is_empty() {
            self.cfg.concurrency
        } else {
            self.cfg.queues.iter().map(|(_, n)| *n).sum()
        }
    }

    async fn main_loop(self, stops: Stops, health: watch::Sender<WorkerHealth>) -> ShutdownReport {
        // The registry row: one per worker, however many lanes it runs. It beats until every
        // lane has ended (running tasks included), then goes.
        let (registry_stop, registry_stopped) = watch::channel(false);
        let registry = tokio::spawn(registry_loop(
            Registration {
                env: self.env.clone(),
                queues: self.cfg.queues.iter().map(|(q, _)| q.clone()).collect(),
                concurrency: self.total_slots(),
                running: self.running.clone(),
            },
            health.subscribe(),
            registry_stopped,
        ));
        let report = if self.cfg.queues.len() <= 1 {
            self.run_loop(stops, &health).await
        } else {
            // One loop per queue, each with its own slots, claims and result writer: a flood
            // in one queue fills only that queue's slots.
            let loops = self
                .lanes()
                .into_iter()
                .map(|lane| lane.run_loop(stops.clone(), &health));
            let mut all = ShutdownReport::default();
            for r in futures::future::join_all(loops).await {
                all.finished += r.finished;
                all.released += r.released;
                all.refused = all.refused.or(r.refused);
            }
            all
        };
        let _ = registry_stop.send(true);
        if let Err(e) = registry.await {
            warn!(error = %e, "the worker registry's beats failed");
        }
        health.send_replace(WorkerHealth::Stopped(report.refused.clone()));
        report
    }

    async fn run_loop(self, stops: Stops, health: &watch::Sender<WorkerHealth>) -> ShutdownReport {
        let mut report = ShutdownReport::default();
        if let Err(e) = self.env.store.check_schema().await {
            error!(worker = %self.env.worker, error = %e, "taskrow worker refuses to start");
            report.refused = Some(e.to_string());
            return report;
        }
        health.send_replace(WorkerHealth::Running);
        let concurrency = self.slots();
        // With heartbeats off the lease is a run's hard limit, counted from its claim: a task
        // that waited for a slot would lose that time from its run, so nothing is claimed ahead.
        let ahead = if self.env.heartbeat.is_none() {
            0
        } else {
            self.cfg.batch_size.unwrap_or(concurrency.max(32))
        };
        let slots = Arc::new(Semaphore::new(concurrency));
        let claims_in_flight = self.cfg.claims_in_flight;
        let ticking = self.ticker.clone().map(|t| {
            tokio::spawn(tick_loop(
                t,
                self.env.clone(),
                self.cfg.client.clone(),
                self.cfg.poll_interval,
                stops.shutdown.clone(),
            ))
        });
        let mut wake = self.cfg.client.wake_receiver();
        // Other processes' enqueues, where the store hears of them (PostgreSQL NOTIFY).
        let mut remote_wake = self.env.store.wakeups();
        let mut shutdown = stops.shutdown.clone();
        // Results wait here for the writer. A run keeps its slot until its result is handed
        // over, and the loop claims nothing while `unwritten` is at its bound: a stalled
        // writer stops the worker instead of growing a backlog.
        let max_unwritten = self.cfg.finish_batch.saturating_mul(2);
        let unwritten = Arc::new(AtomicUsize::new(0));
        // Told after every write, so that a loop held back by the bound claims again at once.
        let written = Arc::new(Notify::new());
        let (fin_tx, fin_rx) = mpsc::channel::<Finish>(max_unwritten);
        // Old finished tasks and log rows, purged beside the runs; it stops at shutdown.
        let retention = tokio::spawn(crate::retention::run(
            self.env.clone(),
            self.cfg.retention.clone(),
            stops.shutdown.clone(),
        ));
        let finisher = tokio::spawn(finisher(
            self.env.clone(),
            fin_rx,
            self.cfg.finish_batch,
            (unwritten.clone(), written.clone()),
            stops.hard_stop.clone(),
        ));
        let mut running: JoinSet<RunEnd> = JoinSet::new();
        // Ids of the tasks this worker runs: its claims exclude them, so a task whose lease
        // expired under a slow run here is left to other workers, never queued behind or
        // run beside its own earlier run.
        let mut active: HashSet<i64> = HashSet::new();
        // Tasks whose run here was stopped for want of its lease: this worker (whose heartbeats
        // failed) leaves them to others for one lease before it claims them again.
        let mut cooldown: HashMap<i64, Instant> = HashMap::new();
        // Claimed tasks waiting for a slot, in the order their claims landed.
        let mut waiting: VecDeque<Claimed> = VecDeque::new();
        // Claims in flight (at most `claims_in_flight`), and how many tasks they asked for in
        // all. A fast drain claims the next batch while the last one runs, and, when the
        // database answers slower than the tasks run, several at once.
        let mut claims: JoinSet<ClaimEnd> = JoinSet::new();
        let mut asking: HashMap<tokio::task::Id, usize> = HashMap::new();
        let mut landed: Vec<ClaimEnd> = Vec::new();
        // A claim found fewer due tasks than it asked for: no more claims until a wake-up.
        let mut drained = false;
        // Whether to claim ahead of the free slots; off after waiting tasks were handed back
        // (the slots stay busy for long), on again once a run ends.
        let mut claim_ahead = true;
        // How far ahead it claims now: `ahead`, doubled (up to four times) whenever a claim
        // comes back full after the slots sat idle waiting for it, the claim before it full
        // too (the tasks run faster than the database answers a claim), and back to `ahead`
        // once a claim finds less than it asked for or waiting tasks are handed back. Slow
        // tasks never grow it: their slots do not wait for claims.
        let mut window = ahead;
        let mut starved = false;
        // Whether the last claim to land came back full: only then does a wait for a claim
        // count as starving (the first claim after an idle spell finds every slot free,
        // whatever the tasks' speed).
        let mut last_full = false;
        // When the newest claim that came back short was sent: a claim sent later that comes
        // back full means more work arrived, and ends `drained`.
        let mut short_sent: Option<Instant> = None;
        // After a failed claim: no claim before this instant (the loop goes on starting and
        // handing back the tasks that wait meanwhile).
        let mut retry_at: Option<Instant> = None;
        let mut backoff = Duration::from_millis(100);
        // A waiting task is handed back once half its lease is gone, so that it starts (here
        // or elsewhere) with at least half a lease left and never loses it while it waits.
        let wait_limit = self.env.lease / 2;
        // Wake-ups from other processes know nothing of this worker's queues and filters: a
        // flood of others' work would make it claim at every wake-up and find nothing. After
        // two such empty claims in a row (each within `REMOTE_STREAK` of the one before) it
        // waits before claiming on the next one, from 10 ms doubling, never past its poll; a
        // claim that finds work, or a quiet spell, ends the pause. Sparse wake-ups that find
        // nothing (this process's own commits, a registry beat) never build one up.
        let mut remote_woke = false;
        let mut remote = RemoteWakes::default();
        let queues: Vec<&str> = self.cfg.queues.iter().map(|(q, _)| q.as_str()).collect();
        info!(worker = %self.env.worker, concurrency, ?queues, "taskrow worker started");

        let start =
            |running: &mut JoinSet<RunEnd>, claimed: Claimed, permit: OwnedSemaphorePermit| {
                let env = self.env.clone();
                let stops = stops.clone();
                let fin_tx = fin_tx.clone();
                let unwritten = unwritten.clone();
                let running_now = self.running.clone();
                let id = claimed.task.id;
                running.spawn(async move {
                    let started = async {
                        if *stops.shutdown.borrow() {
                            // Claimed but not started: hand it back without using an attempt.
                            release(&env, &[claimed], &stops.hard_stop).await;
                            return None;
                        }
                        let counted = Counted::new(running_now);
                        let ran = execute(&env, &claimed, &stops).await;
                        drop(counted);
                        unwritten.fetch_add(1, Ordering::SeqCst);
                        if fin_tx.send(ran.finish).await.is_err() {
                            unwritten.fetch_sub(1, Ordering::SeqCst);
                        }
                        drop(permit);
                        Some(ran.lease_trouble)
                    };
                    (id, started.await)
                });
            };

        'outer: loop {
            while let Some(r) = running.try_join_next() {
                if let Some(id) = report.count(r, &mut active) {
                    cooldown.insert(id, Instant::now() + self.env.lease);
                }
                claim_ahead = true;
            }
            // What the claims that landed found.
            while let Some(r) = claims.try_join_next_with_id() {
                landed.push(ClaimEnd::of(r, &mut asking));
            }
            for end in landed.drain(..) {
                match end.found {
                    Ok(found) => {
                        backoff = Duration::from_millis(100);
                        if !found.is_empty() || end.remote {
                            remote.claimed(!found.is_empty(), Instant::now());
                        }
                        if found.len() < end.asked {
                            drained = true;
                            short_sent = short_sent.max(Some(end.sent));
                            window = ahead;
                            last_full = false;
                        } else {
                            if short_sent.is_some_and(|t| end.sent > t) {
                                drained = false;
                            }
                            if starved && last_full {
                                window = window.saturating_mul(2).min(ahead.saturating_mul(4));
                            }
                            last_full = true;
                        }
                        starved = false;
                        let again = take_landed(&mut waiting, &active, found, end.sent);
                        if !again.is_empty() {
                            // Claimed again while it runs here (its lease ran out between two
                            // claims in flight): the run here has lost its lease; hand the
                            // new claim back rather than run the task beside itself.
                            report.released += again.len() as u64;
                            release(&self.env, &again, &stops.hard_stop).await;
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "claiming tasks failed; backing off");
                        retry_at = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
            if *shutdown.borrow() {
                break 'outer;
            }
            // Hand back what waited past half its lease.
            if waiting.iter().any(|c| c.sent.elapsed() >= wait_limit) {
                let stale: Vec<Claimed> = waiting.drain(..).collect();
                report.released += stale.len() as u64;
                info!(
                    count = stale.len(),
                    "claimed tasks waited half their lease for a slot; handing them back"
                );
                release(&self.env, &stale, &stops.hard_stop).await;
                claim_ahead = false;
                window = ahead;
            }
            // Start what the free slots allow.
            while !waiting.is_empty() {
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    break;
                };
                let claimed = waiting.pop_front().expect("not empty");
                active.insert(claimed.task.id);
                start(&mut running, claimed, permit);
            }
            // Claim while the writer keeps up, enough to fill the free slots and `ahead` more,
            // so a fast drain claims in batches, not one slot at a time: at once when nothing
            // waits or is asked for, and before the waiting tasks run out once half of that is
            // missing (so the next batch is claimed while this one runs).
            let backlog = unwritten.load(Ordering::SeqCst) >= max_unwritten;
            let free = slots.available_permits();
            let full = free + if claim_ahead { window } else { 0 };
            let want = full.saturating_sub(waiting.len() + asking.values().sum::<usize>());
            let backing_off = retry_at.is_some_and(|t| Instant::now() < t);
            if !drained
                && !backlog
                && !backing_off
                && claims.len() < claims_in_flight
                && want > 0
                && want * 2 >= full
            {
                // Due times and leases are judged by the clock: claim nothing while it cannot
                // be trusted (a clock following a database it cannot read).
                let trusted = tokio::select! {
                    r = self.env.clock.ready() => r,
                    _ = shutdown.wait_for(|s| *s) => break 'outer,
                };
                if let Err(e) = trusted {
                    if !matches!(*health.borrow(), WorkerHealth::Paused(_)) {
                        warn!(worker = %self.env.worker, error = %e, "not claiming until the clock can be trusted");
                    }
                    health.send_replace(WorkerHealth::Paused(e.to_string()));
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = shutdown.wait_for(|s| *s) => break 'outer,
                    }
                    continue 'outer;
                }
                if *health.borrow() != WorkerHealth::Running {
                    info!(worker = %self.env.worker, "the clock can be trusted again: claiming");
                    health.send_replace(WorkerHealth::Running);
                }
                wake.borrow_and_update();
                // Taken before the claim's `now`: the run's deadline never outlasts the lease
                // the store grants from that `now`.
                let sent = Instant::now();
                cooldown.retain(|_, until| *until > sent);
                // The waiting tasks are under this worker's leases (not due); should one run
                // out and the task come back, `take_landed` keeps the newer claim.
                let req = self
                    .claim_request(want)
                    .exclude_ids(active.iter().chain(cooldown.keys()).copied());
                let store = self.env.store.clone();
                let remote = std::mem::take(&mut remote_woke);
                let claim = claims.spawn(async move {
                    ClaimEnd {
                        sent,
                        asked: want,
                        remote,
                        found: store.claim(&req).await,
                    }
                });
                asking.insert(claim.id(), want);
                continue 'outer;
            }
            if backlog {
                // The writer is behind: wait for it to write a batch before claiming more,
                // starting waiting tasks as slots free up.
                tokio::select! {
                    biased;
                    _ = shutdown.wait_for(|s| *s) => break 'outer,
                    _ = written.notified() => {}
                    permit = slots.clone().acquire_owned(), if !waiting.is_empty() => drop(permit),
                    Some(r) = claims.join_next_with_id(), if !claims.is_empty() => landed.push(ClaimEnd::of(r, &mut asking)),
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            } else if waiting.is_empty() && !claims.is_empty() {
                // Nothing to start until a claim lands. A claim that hangs (a database that
                // stopped answering) is given up at the hard stop (below).
                starved |= slots.available_permits() > 0;
                tokio::select! {
                    Some(r) = claims.join_next_with_id() => landed.push(ClaimEnd::of(r, &mut asking)),
                    _ = shutdown.wait_for(|s| *s) => break 'outer,
                }
            } else if waiting.is_empty()
                && backing_off
                && let Some(at) = retry_at
            {
                // A claim failed: wait out the backoff (or shutdown) before the next one.
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = shutdown.wait_for(|s| *s) => break 'outer,
                }
            } else if waiting.is_empty() && want == 0 {
                // Every slot busy and no claiming ahead: wait for a run to end.
                tokio::select! {
                    Some(r) = running.join_next() => {
                        if let Some(id) = report.count(r, &mut active) {
                            cooldown.insert(id, Instant::now() + self.env.lease);
                        }
                        claim_ahead = true;
                    }
                    _ = shutdown.wait_for(|s| *s) => break 'outer,
                }
            } else if waiting.is_empty() {
                // Drained: wait for an enqueue here or elsewhere, the poll interval, or
                // shutdown.
                let idle_since = Instant::now();
                let woke = tokio::select! {
                    _ = wake.changed() => Woke::Here,
                    _ = changed(&mut remote_wake) => Woke::Elsewhere,
                    _ = tokio::time::sleep(self.cfg.poll_interval) => Woke::Poll,
                    _ = shutdown.wait_for(|s| *s) => break 'outer,
                };
                remote_woke = woke == Woke::Elsewhere;
                let pause = remote.pause(self.cfg.poll_interval, idle_since, Instant::now());
                if remote_woke && !pause.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = wake.changed() => remote_woke = false,
                        _ = shutdown.wait_for(|s| *s) => break 'outer,
                    }
                }
                drained = false;
            } else {
                // Every slot is busy: wait for one (the loop's top starts the task), a claim
                // to land, or until the waiting tasks must be handed back.
                let hand_back_at = waiting
                    .iter()
                    .map(|c| c.sent + wait_limit)
                    .min()
                    .unwrap_or_else(|| Instant::now() + self.cfg.poll_interval);
                tokio::select! {
                    biased;
                    _ = shutdown.wait_for(|s| *s) => break 'outer,
                    permit = slots.clone().acquire_owned() => drop(permit),
                    Some(r) = claims.join_next_with_id(), if !claims.is_empty() => landed.push(ClaimEnd::of(r, &mut asking)),
                    _ = tokio::time::sleep_until(hand_back_at) => {}
                }
            }
        }

        // Claims still in flight land before the waiting tasks are handed back; one that hangs
        // is given up at the hard stop: what it may have claimed runs again after its leases
        // expire.
        let mut hs = stops.hard_stop.clone();
        loop {
            tokio::select! {
                r = claims.join_next_with_id() => match r {
                    Some(r) => landed.push(ClaimEnd::of(r, &mut asking)),
                    None => break,
                },
                _ = past_hard_stop(&mut hs) => {
                    claims.abort_all();
                    break;
                }
            }
        }
        for end in landed.drain(..) {
            if let Ok(found) = end.found {
                let again = take_landed(&mut waiting, &active, found, end.sent);
                waiting.extend(again);
            }
        }

        // Shutdown: no more claims; hand back what waits, then wait for running tasks up to
        // the deadline (the handle fires the hard stop then, and interrupted runs are finished
        // as interrupted: they run again without using an attempt).
        if !waiting.is_empty() {
            report.released += waiting.len() as u64;
            release(&self.env, waiting.make_contiguous(), &stops.hard_stop).await;
        }
        while let Some(r) = running.join_next().await {
            report.count(r, &mut active);
        }
        if let Some(t) = ticking
            && let Err(e) = t.await
        {
            warn!(error = %e, "the schedule ticker failed");
        }
        drop(fin_tx);
        if let Err(e) = finisher.await {
            warn!(error = %e, "the result writer failed");
        }
        // A purge cut short here is taken up by the next round of some worker.
        retention.abort();
        info!(worker = %self.env.worker, finished = report.finished, released = report.released, "taskrow worker stopped");
        report
    }
}

/// Ticks the worker's schedules until shutdown: at each pass it enqueues what is due at the
/// clock's time, then sleeps until the next tick or the poll interval, whichever is first (the
/// poll interval bounds how long a changed row or a moved clock goes unseen). While the clock
/// cannot be trusted it enqueues nothing and looks again every 100 ms; after a failed pass it
/// tries again sooner than the poll interval (from 250 ms, doubling up to it, at most 5 s, so a
/// tick is late by little more than an outage).
async fn tick_loop(
    ticker: Arc<Ticker>,
    env: Env,
    client: Client,
    poll: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut untrusted = false;
    let mut backoff = Duration::from_millis(250);
    loop {
        let ready = tokio::select! {
            r = env.clock.ready() => r,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let wait = match ready {
            Err(e) => {
                if !untrusted {
                    warn!(worker = %env.worker, error = %e, "not ticking schedules until the clock can be trusted");
                }
                untrusted = true;
                Duration::from_millis(100).min(poll)
            }
            Ok(()) => {
                if untrusted {
                    info!(worker = %env.worker, "the clock can be trusted again: ticking schedules");
                    untrusted = false;
                }
                match ticker.tick(&*env.store, env.clock.now()).await {
                    Ok(pass) => {
                        backoff = Duration::from_millis(250);
                        if pass.enqueued > 0 {
                            client.wake_workers();
                        }
                        // A next tick already past (the pass took longer than the time
                        // left to it) is ticked at once, not after the poll interval.
                        pass.next.map_or(poll, |next| {
                            (next - env.clock.now())
                                .to_std()
                                .unwrap_or(Duration::ZERO)
                                .min(poll)
                        })
                    }
                    Err(e) => {
                        // The pass may have stored a tick's task before it failed (a reply
                        // lost after COMMIT): look for it now rather than at the next poll.
                        client.wake_workers();
                        warn!(worker = %env.worker, error = %e, "ticking schedules failed; trying again");
                        let wait = backoff.min(poll);
                        backoff = (backoff * 2).min(poll).min(Duration::from_secs(5));
                        wait
                    }
                }
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// What ended an idle worker's wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Woke {
    /// An enqueue in this process.
    Here,
    /// The store heard of a change elsewhere (another process).
    Elsewhere,
    /// The poll interval.
    Poll,
}

/// A claim that landed: when it was sent, how many tasks it asked for, whether it was made on
/// a wake-up from another process, and what it found.
struct ClaimEnd {
    sent: Instant,
    asked: usize,
    remote: bool,
    found: Result<Vec<TaskRecord>>,
}

impl ClaimEnd {
    /// The end of the claim task `r`, which is no longer asking; a claim whose task panicked
    /// (a store's bug) counts as a failed claim.
    fn of(
        r: std::result::Result<(tokio::task::Id, Self), tokio::task::JoinError>,
        asking: &mut HashMap<tokio::task::Id, usize>,
    ) -> Self {
        match r {
            Ok((id, end)) => {
                asking.remove(&id);
                end
            }
            Err(e) => Self {
                sent: Instant::now(),
                asked: asking.remove(&e.id()).unwrap_or(0),
                remote: false,
                found: Err(Error::Backend {
                    transient: true,
                    source: format!("the claim's task failed: {e}").into(),
                }),
            },
        }
    }
}

/// Queues the tasks a claim found behind the waiting ones. A task found again while it waits
/// (its lease ran out between two claims in flight) keeps its place under the newer claim;
/// one found again while it runs here is returned, to be handed back.
fn take_landed(
    waiting: &mut VecDeque<Claimed>,
    active: &HashSet<i64>,
    found: Vec<TaskRecord>,
    sent: Instant,
) -> Vec<Claimed> {
    let mut again = Vec::new();
    for task in found {
        let claimed = Claimed { task, sent };
        if active.contains(&claimed.task.id) {
            again.push(claimed);
        } else if let Some(w) = waiting.iter_mut().find(|w| w.task.id == claimed.task.id) {
            *w = claimed;
        } else {
            waiting.push_back(claimed);
        }
    }
    again
}

/// Empty claims on other processes' wake-ups further apart than this do not add up to a pause.
const REMOTE_STREAK: Duration = Duration::from_secs(1);

/// How an idle worker paces its claims on other processes' wake-ups, which know nothing of its
/// queues: a flood of others' work would make it claim at every wake-up and find nothing.
#[derive(Debug, Default)]
struct RemoteWakes {
    /// Empty claims on wake-ups in a row, each within [`REMOTE_STREAK`] of the one before.
    empty: u32,
    /// When the last of them was.
    last_empty: Option<Instant>,
}

impl RemoteWakes {
    /// A claim ended at `now`, made on a wake-up from elsewhere or finding work: work ends the
    /// streak, an empty one adds to it (or starts one after a quiet spell).
    fn claimed(&mut self, found: bool, now: Instant) {
        if found {
            *self = Self::default();
            return;
        }
        let in_streak = self
            .last_empty
            .is_some_and(|at| now.saturating_duration_since(at) <= REMOTE_STREAK);
        self.empty = if in_streak {
            self.empty.saturating_add(1)
        } else {
            1
        };
        self.last_empty = Some(now);
    }

    /// The pause before claiming on a wake-up from elsewhere at `now`, in an idle wait begun at
    /// `idle_since`: none for the first two empty claims of a streak, then 10 ms doubling; never
    /// past the poll this wait would have ended at (work no wake-up announces, such as a retry
    /// falling due, is found on time), and none after a quiet spell.
    fn pause(&mut self, poll: Duration, idle_since: Instant, now: Instant) -> Duration {
        if self
            .last_empty
            .is_some_and(|at| now.saturating_duration_since(at) > REMOTE_STREAK)
        {
            *self = Self::default();
        }
        if self.empty < 2 {
            return Duration::ZERO;
        }
        let doublings = (self.empty - 2).min(20);
        (Duration::from_millis(10) * 2u32.pow(doublings))
            .min(poll.saturating_sub(now.saturating_duration_since(idle_since)))
    }
}

/// One run counted in a worker's running count while it lives (also when its future is
/// dropped half-way).
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a worker's registry row says of it, apart from the time and the running count.
struct Registration {
    env: Env,
    queues: Vec<String>,
    concurrency: usize,
    running: Arc<AtomicUsize>,
}

impl Registration {
    fn beat(&self, started_at: chrono::DateTime<chrono::Utc>, interval: Duration) -> WorkerBeat {
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        WorkerBeat::new(
            self.env.worker.clone(),
            started_at,
            self.env.clock.now(),
            interval,
        )
        .queues(self.queues.clone())
        .concurrency(n(self.concurrency))
        .running(n(self.running.load(Ordering::SeqCst)))
    }
}

/// Keeps the worker's registry row fresh ([`crate::registry`]): once the worker runs (its
/// schema checked), a beat at once and then every [`registry::beat_interval`], a prune of rows
/// gone long ago at the first beat and every [`registry::PRUNE_EVERY_BEATS`] beats; at `stop`
/// (every lane ended), the row's removal. A failed beat or prune is a warning: the runs go on,
/// and the row goes stale if beats keep failing. Neither a hung beat nor the removal holds up
/// the shutdown for long ([`HARD_STOP_GRACE`]).
async fn registry_loop(
    reg: Registration,
    mut health: watch::Receiver<WorkerHealth>,
    mut stop: watch::Receiver<bool>,
) {
    let runs = tokio::select! {
        h = health.wait_for(|h| *h != WorkerHealth::Starting) => {
            h.is_ok_and(|h| !matches!(*h, WorkerHealth::Stopped(_)))
        }
        _ = stop.wait_for(|s| *s) => false,
    };
    if !runs {
        return;
    }
    let env = &reg.env;
    let interval = registry::beat_interval(env.heartbeat);
    let started_at = env.clock.now();
    let mut beats: u32 = 0;
    let mut failing = false;
    let beating = async {
        loop {
            match env.store.beat_worker(&reg.beat(started_at, interval)).await {
                Ok(()) if failing => {
                    info!(worker = %env.worker, "the worker registry takes this worker's beats again");
                    failing = false;
                }
                Ok(()) => {}
                Err(e) => {
                    if !failing {
                        warn!(worker = %env.worker, error = %e, "the worker registry beat failed (runs go on; the row goes stale if beats keep failing)");
                    }
                    failing = true;
                }
            }
            if beats.is_multiple_of(registry::PRUNE_EVERY_BEATS) {
                let gone_before = env.clock.now() - registry::GONE_KEPT;
                match env
                    .store
                    .prune_workers(gone_before, registry::PRUNE_BATCH)
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => {
                        info!(worker = %env.worker, pruned = n, "pruned worker registry rows gone for long")
                    }
                    Err(e) => {
                        warn!(worker = %env.worker, error = %e, "pruning the worker registry failed")
                    }
                }
            }
            beats = beats.wrapping_add(1);
            tokio::time::sleep(interval).await;
        }
    };
    tokio::select! {
        _ = beating => {}
        _ = stop.wait_for(|s| *s) => {}
    }
    match tokio::time::timeout(HARD_STOP_GRACE, env.store.remove_worker(&env.worker)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            warn!(worker = %env.worker, error = %e, "could not remove this worker's registry row: it shows as gone once its beats are missed")
        }
        Err(_) => {
            warn!(worker = %env.worker, "removing this worker's registry row took too long: it shows as gone once its beats are missed")
        }
    }
}

/// Completes when `rx` changes; never for `None` or a closed channel.
async fn changed(rx: &mut Option<watch::Receiver<u64>>) {
    if let Some(r) = rx
        && r.changed().await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

/// Hands claimed, unstarted tasks back (their attempts given back), retrying a few times, but
/// never past the hard stop: a task not handed back runs again once its lease expires.
async fn release(env: &Env, tasks: &[Claimed], hard_stop: &watch::Receiver<bool>) {
    let leases: Vec<_> = tasks.iter().map(|c| c.task.lease()).collect();
    let mut hs = hard_stop.clone();
    let tries = async {
        let mut delay = Duration::from_millis(50);
        for _ in 0..5 {
            match env.store.release(&leases, env.clock.now()).await {
                Ok(_) => return true,
                Err(e) => {
                    warn!(count = leases.len(), error = %e, "releasing unstarted tasks failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        false
    };
    let released = tokio::select! {
        r = tries => r,
        _ = past_hard_stop(&mut hs) => false,
    };
    if !released {
        warn!(
            count = leases.len(),
            "could not release unstarted tasks: they run again once their leases expire"
        );
    }
}

/// Writes finishes in batches: whatever has queued up while the last batch was written goes
/// in the next one, so a fast drain is not one commit per task.
///
/// A batch that fails is written again item by item, so one result the store refuses never
/// holds back the others. Items that still fail wait aside and are tried again once a second:
/// one the store refuses for good (a permanent error) is given up at once, the others at the
/// shutdown deadline. A result given up leaves its task to run again once its lease expires
/// (at least once, never lost). `unwritten` counts what was handed over and is not written
/// yet; the worker claims nothing while it is at its bound.
async fn finisher(
    env: Env,
    mut rx: mpsc::Receiver<Finish>,
    max: usize,
    (unwritten, written): (Arc<AtomicUsize>, Arc<Notify>),
    hard_stop: watch::Receiver<bool>,
) {
    let mut batch = Vec::with_capacity(max);
    let mut parked: Vec<Finish> = Vec::new();
    let mut closed = false;
    let mut next_retry = Instant::now();
    let settle = |before: usize, left: usize| {
        unwritten.fetch_sub(before - left, Ordering::SeqCst);
        written.notify_one();
    };
    loop {
        if closed && parked.is_empty() {
            return;
        }
        let mut hs = hard_stop.clone();
        if !closed {
            if parked.is_empty() {
                closed = rx.recv_many(&mut batch, max).await == 0;
            } else {
                tokio::select! {
                    n = rx.recv_many(&mut batch, max) => closed = n == 0,
                    _ = tokio::time::sleep_until(next_retry) => {}
                    _ = hs.wait_for(|s| *s) => {}
                }
            }
        } else {
            tokio::select! {
                _ = tokio::time::sleep_until(next_retry) => {}
                _ = hs.wait_for(|s| *s) => {}
            }
        }
        if *hard_stop.borrow() && !parked.is_empty() {
            warn!(
                count = parked.len(),
                "shutting down with task results unwritten: those tasks run again after their leases expire"
            );
            settle(parked.len(), 0);
            parked.clear();
        }
        let fresh = std::mem::take(&mut batch);
        if !fresh.is_empty() {
            let n = fresh.len();
            let left = write_until(&env, fresh, &hard_stop).await;
            settle(n, left.len());
            parked.extend(left);
        }
        if !parked.is_empty() && Instant::now() >= next_retry {
            let retry = std::mem::take(&mut parked);
            let n = retry.len();
            parked = write_until(&env, retry, &hard_stop).await;
            settle(n, parked.len());
            next_retry = Instant::now() + Duration::from_secs(1);
        }
    }
}

/// How long writes at shutdown may still take once the hard stop has come: enough for the
/// interrupted runs' results, not for a pool timeout.
const HARD_STOP_GRACE: Duration = Duration::from_secs(1);

/// Completes [`HARD_STOP_GRACE`] after the hard stop.
async fn past_hard_stop(hs: &mut watch::Receiver<bool>) {
    let _ = hs.wait_for(|s| *s).await;
    tokio::time::sleep(HARD_STOP_GRACE).await;
}

/// [`write`], unless the hard stop (and its grace) comes first: the shutdown deadline does not wait for a
/// database that does not answer (a pool timeout). A write cut short may or may not have
/// committed; its results are given up either way (a finish is idempotent, and a task whose
/// result is lost runs again after its lease).
async fn write_until(
    env: &Env,
    batch: Vec<Finish>,
    hard_stop: &watch::Receiver<bool>,
) -> Vec<Finish> {
    let mut hs = hard_stop.clone();
    let n = batch.len();
    tokio::select! {
        left = write(env, batch) => left,
        _ = past_hard_stop(&mut hs) => {
            warn!(count = n, "shutdown deadline reached while writing task results: giving them up; those tasks run again after their leases expire");
            Vec::new()
        }
    }
}

/// Writes `batch` (once: contention is retried inside the stores); returns the items that
/// could not be written and may be tried again.
async fn write(env: &Env, batch: Vec<Finish>) -> Vec<Finish> {
    match env.store.finish(batch.clone(), env.clock.now()).await {
        Ok(statuses) => {
            report_written(&batch, &statuses);
            Vec::new()
        }
        Err(e) if batch.len() == 1 => keep_if_transient(batch, &e),
        Err(e) => {
            warn!(error = %e, count = batch.len(), "writing task results failed; writing them one by one");
            let mut left = Vec::new();
            for f in batch {
                match env.store.finish(vec![f.clone()], env.clock.now()).await {
                    Ok(statuses) => report_written(std::slice::from_ref(&f), &statuses),
                    Err(e) => left.extend(keep_if_transient(vec![f], &e)),
                }
            }
            left
        }
    }
}

fn keep_if_transient(one: Vec<Finish>, e: &Error) -> Vec<Finish> {
    if e.is_transient() {
        warn!(error = %e, id = one[0].lease.id, code = %one[0].code, task_type = %one[0].task_type, "writing a task result failed; will try again");
        one
    } else {
        error!(error = %e, id = one[0].lease.id, code = %one[0].code, task_type = %one[0].task_type, "the store refuses this task result; giving it up: the task runs again after its lease expires");
        Vec::new()
    }
}

fn report_written(batch: &[Finish], statuses: &[FinishStatus]) {
    for (f, s) in batch.iter().zip(statuses) {
        crate::metrics::finished(f, *s);
        if *s == FinishStatus::LeaseLost {
            warn!(id = f.lease.id, code = %f.code, task_type = %f.task_type, "result refused: the lease was lost to another claim");
        }
    }
}

/// What a run's tokio task reports: the task's id, and `None` when the task was handed back
/// unstarted, or whether the run was stopped for want of its lease.
type RunEnd = (i64, Option<bool>);

/// Counts over a worker's life, reported at shutdown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Executions that ran to a result (including interrupted ones, finished as retries).
    pub finished: u64,
    /// Claimed tasks handed back unstarted (at shutdown, or after waiting half their lease
    /// for a slot).
    pub released: u64,
    /// Why the worker refused to start (a schema it does not know), if it did.
    pub refused: Option<String>,
}

impl ShutdownReport {
    /// Counts a run's end; answers its task's id when the run was stopped for want of its
    /// lease.
    fn count(
        &mut self,
        r: std::result::Result<RunEnd, tokio::task::JoinError>,
        active: &mut HashSet<i64>,
    ) -> Option<i64> {
        match r {
            Ok((id, ended)) => {
                active.remove(&id);
                match ended {
                    None => self.released += 1,
                    Some(lease_trouble) => {
                        self.finished += 1;
                        return lease_trouble.then_some(id);
                    }
                }
            }
            Err(e) => warn!(error = %e, "an execution task failed"),
        }
        None
    }
}

/// What a worker is doing, for a health check ([`WorkerHandle::health`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerHealth {
    /// Checking the schema before its first claim.
    Starting,
    /// Claiming and running tasks.
    Running,
    /// Not claiming, for the reason given (a clock that cannot be trusted); running tasks go
    /// on. It claims again by itself once the reason is gone.
    Paused(String),
    /// Stopped: shut down, or refused to start (the reason given).
    Stopped(Option<String>),
}

/// A running worker. Dropping it signals shutdown without waiting; call
/// [`WorkerHandle::shutdown`] to wait.
///
/// Keep it for as long as the worker should run:
///
/// ```
/// # #![deny(unused_must_use)]
/// async fn serve(client: taskrow::Client) -> taskrow::Result<()> {
///     let worker = client.worker().start()?;
///     // … the application runs …
///     worker.shutdown().await;
///     Ok(())
/// }
/// ```
///
/// A handle dropped at once would stop the worker as soon as it started, so the compiler
/// refuses to let it go unnoticed (`#[must_use]`):
///
/// ```compile_fail
/// # #![deny(unused_must_use)]
/// async fn serve(client: taskrow::Client) -> taskrow::Result<()> {
///     client.worker().start()?; // unused `WorkerHandle` that must be used
///     Ok(())
/// }
/// ```
#[derive(Debug)]
#[must_use = "dropping a WorkerHandle shuts the worker down at once: keep it, and call shutdown().await when done"]
pub struct WorkerHandle {
    health: watch::Receiver<WorkerHealth>,
    shutdown: watch::Sender<bool>,
    hard_stop: watch::Sender<bool>,
    join: Option<tokio::task::JoinHandle<ShutdownReport>>,
    shutdown_timeout: Duration,
    client: Client,
}

impl WorkerHandle {
    /// Wakes the worker to look for due tasks now.
    pub fn wake(&self) {
        self.client.wake_workers();
    }

    /// What the worker is doing now: the basis of a health check.
    pub fn health(&self) -> WorkerHealth {
        self.health.borrow().clone()
    }

    /// Whether the worker loop has ended.
    pub fn is_finished(&self) -> bool {
        self.join.as_ref().is_none_or(|j| j.is_finished())
    }

    /// Stops claiming, signals running tasks through their context, waits for them up to the
    /// shutdown timeout, then interrupts the rest (their runs are recorded as retries due at
    /// once) and hands back what was claimed but not started.
    pub async fn shutdown(mut self) -> ShutdownReport {
        let _ = self.shutdown.send(true);
        let Some(mut join) = self.join.take() else {
            return ShutdownReport::default();
        };
        let r = tokio::select! {
            r = &mut join => r,
            _ = tokio::time::sleep(self.shutdown_timeout) => {
                warn!("shutdown timeout reached: interrupting running tasks");
                let _ = self.hard_stop.send(true);
                join.await
            }
        };
        r.unwrap_or_else(|e| {
            warn!(error = %e, "the worker loop failed");
            ShutdownReport::default()
        })
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLL: Duration = Duration::from_secs(1);

    fn task(id: i64) -> TaskRecord {
        let now = chrono::Utc::now();
        TaskRecord::inserted(
            id,
            crate::NewTask {
                code: format!("t{id}"),
                task_type: "t".into(),
                payload: "{}".into(),
                name: "t".into(),
                description: None,
                biz_type: String::new(),
                queue: crate::DEFAULT_QUEUE.into(),
                priority: crate::Priority::default(),
                run_at: now,
                max_attempts: None,
                retry: crate::RetryPolicy::default(),
                timeout: None,
                on_success: crate::OnSuccess::default(),
                dispatch: crate::Dispatch::default(),
                created_at: now,
            },
        )
    }

    /// Two claims in flight can find one task twice when its lease runs out in between: a
    /// waiting one keeps its place under the newer claim, a running one is returned to be
    /// handed back, the rest queue in order.
    #[test]
    fn landed_claims_never_queue_a_task_twice() {
        let (t0, t1) = (Instant::now(), Instant::now() + Duration::from_millis(5));
        let mut waiting: VecDeque<Claimed> = [1, 2]
            .into_iter()
            .map(|id| Claimed {
                task: task(id),
                sent: t0,
            })
            .collect();
        let active: HashSet<i64> = [7].into_iter().collect();
        let again = take_landed(&mut waiting, &active, vec![task(2), task(7), task(3)], t1);
        let queued: Vec<(i64, Instant)> = waiting.iter().map(|c| (c.task.id, c.sent)).collect();
        assert_eq!(queued, [(1, t0), (2, t1), (3, t1)]);
        assert_eq!(again.iter().map(|c| c.task.id).collect::<Vec<_>>(), [7]);
    }

    /// A flood: empty claims 10 ms apart pause from the third on, doubling, within the poll.
    #[test]
    fn dense_empty_wakeups_pause_doubling_within_the_poll() {
        let t0 = Instant::now();
        let mut r = RemoteWakes::default();
        let mut pauses = Vec::new();
        for i in 0..12u32 {
            let now = t0 + Duration::from_millis(10) * i;
            pauses.push(r.pause(POLL, now, now).as_millis());
            r.claimed(false, now);
        }
        assert_eq!(
            pauses,
            [0, 0, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]
        );
        // Never past the poll the idle wait began for.
        let now = t0 + Duration::from_millis(120);
        assert_eq!(
            r.pause(POLL, now - Duration::from_millis(900), now),
            Duration::from_millis(100)
        );
    }

    /// Sparse empty claims (this process's own commits, a registry beat every few seconds)
    /// never build a pause, however many; nor does a quiet spell after a flood.
    #[test]
    fn sparse_empty_wakeups_never_pause() {
        let t0 = Instant::now();
        let mut r = RemoteWakes::default();
        for i in 0..50u32 {
            let now = t0 + Duration::from_millis(1100) * i;
            assert_eq!(r.pause(POLL, now, now), Duration::ZERO, "wake-up {i}");
            r.claimed(false, now);
        }
        let mut r = RemoteWakes::default();
        for i in 0..10u32 {
            r.claimed(false, t0 + Duration::from_millis(10) * i);
        }
        let later = t0 + Duration::from_secs(3);
        assert_eq!(r.pause(POLL, later, later), Duration::ZERO);
    }

    /// A claim that finds work ends the pause.
    #[test]
    fn work_found_ends_the_pause() {
        let t0 = Instant::now();
        let mut r = RemoteWakes::default();
        for i in 0..6u32 {
            r.claimed(false, t0 + Duration::from_millis(10) * i);
        }
        let now = t0 + Duration::from_millis(60);
        assert!(r.pause(POLL, now, now) > Duration::ZERO);
        r.claimed(true, now);
        assert_eq!(r.pause(POLL, now, now), Duration::ZERO);
    }
}
