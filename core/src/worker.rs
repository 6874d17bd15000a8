//! The worker: claims due tasks in batches, runs them with a concurrency limit, writes their
//! results in batches, keeps long tasks' leases alive, and shuts down gracefully.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::record::Outcome;
use crate::record::TaskRecord;
use crate::runner::{Env, RunReport, Stops, execute, execute_and_finish, finish_with_retry};
use crate::store::{ClaimRequest, Finish, FinishStatus};

/// Configures and starts a [`Worker`]. Get one from [`Client::worker`].
#[derive(Debug, Clone)]
#[must_use]
pub struct WorkerBuilder {
    client: Client,
    id: Option<String>,
    concurrency: usize,
    batch_size: Option<usize>,
    poll_interval: Duration,
    lease: Duration,
    heartbeat: Option<Duration>,
    default_timeout: Duration,
    shutdown_timeout: Duration,
    finish_batch: usize,
    biz_types: Vec<String>,
    task_types: Vec<String>,
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
            poll_interval: Duration::from_secs(1),
            lease,
            heartbeat,
            default_timeout,
            shutdown_timeout: Duration::from_secs(30),
            finish_batch: 128,
            biz_types: Vec::new(),
            task_types: Vec::new(),
        }
    }

    /// Most tasks running at once (default 8).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }
    /// How many tasks to claim ahead of the free slots (default: the concurrency, at least
    /// 32 — in the benchmark this tripled drain throughput over claiming 8). The worker
    /// claims when no claimed task is waiting, enough to fill its free slots plus this many,
    /// so a fast drain claims in batches. Waiting tasks hold their leases; one that waited past
    /// half its lease has it extended before it starts, and shutdown hands waiting tasks back
    /// without using an attempt. Raise it for many short tasks; keep it small for long ones,
    /// so that other workers get a share.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = Some(n);
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
    /// How often a running task's lease is extended (default 20 s); `None` disables it, so a
    /// task running past its lease may be claimed again elsewhere.
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
    /// Most results written in one transaction (default 128). A run frees its slot when it
    /// ends; its result then waits (at most twice this many) for the writer.
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
        if self.batch_size == Some(0) {
            return bad("batch size must be at least 1");
        }
        if self.finish_batch == 0 {
            return bad("finish batch must be at least 1");
        }
        if self.poll_interval.is_zero() {
            return bad("the poll interval must be longer than zero");
        }
        if self.lease.is_zero() {
            return bad("the lease must be longer than zero");
        }
        if let Some(h) = self.heartbeat {
            if h.is_zero() {
                return bad("the heartbeat must be longer than zero (or None to disable it)");
            }
            if h >= self.lease {
                return Err(Error::Config(format!(
                    "the heartbeat ({h:?}) must be shorter than the lease ({:?}), or the lease expires between beats; a third of the lease is a good choice",
                    self.lease
                )));
            }
        }
        if self.default_timeout.is_zero() {
            return bad("the default timeout must be longer than zero");
        }
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
        };
        Ok(Worker { cfg: self, env })
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
}

impl DrainReport {
    fn add(&mut self, r: &RunReport) {
        self.executed += 1;
        match r.outcome {
            Outcome::Succeeded => self.succeeded += 1,
            Outcome::Retrying => self.retried += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::LeaseLost => self.lease_lost += 1,
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
    }

    /// Runs due tasks in the caller until none is due at the clock's current time, and says
    /// what happened. Retries scheduled for later wait: move the clock and call again.
    pub async fn run_until_idle(&self) -> Result<DrainReport> {
        let mut report = DrainReport::default();
        let stops = Stops::never();
        let limit = self.cfg.batch_size.unwrap_or(self.cfg.concurrency);
        loop {
            let claimed = self.env.store.claim(&self.claim_request(limit)).await?;
            if claimed.is_empty() {
                return Ok(report);
            }
            let runs = claimed
                .iter()
                .map(|t| execute_and_finish(&self.env, t, &stops));
            for r in futures::future::join_all(runs).await {
                report.add(&r?);
            }
        }
    }

    /// Starts the worker in the background.
    pub fn start(self) -> WorkerHandle {
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (hard_tx, hard_rx) = watch::channel(false);
        let stops = Stops {
            shutdown: shutdown_rx,
            hard_stop: hard_rx,
        };
        let shutdown_timeout = self.cfg.shutdown_timeout;
        let wake = self.cfg.client.clone();
        let join = tokio::spawn(self.main_loop(stops));
        WorkerHandle {
            shutdown: shutdown_tx,
            hard_stop: hard_tx,
            join: Some(join),
            shutdown_timeout,
            client: wake,
        }
    }

    async fn main_loop(self, stops: Stops) -> ShutdownReport {
        let concurrency = self.cfg.concurrency;
        let ahead = self.cfg.batch_size.unwrap_or(concurrency.max(32));
        let slots = Arc::new(Semaphore::new(concurrency));
        let mut wake = self.cfg.client.wake_receiver();
        let mut shutdown = stops.shutdown.clone();
        // Results wait here for the writer. A slot is freed when its run ends, not when its result
        // is written, so results gather into larger batches; the bound keeps the backlog (whose
        // tasks are still leased) short.
        let (fin_tx, fin_rx) = mpsc::channel::<Finish>(self.cfg.finish_batch.saturating_mul(2));
        let finisher = tokio::spawn(finisher(
            self.env.clone(),
            fin_rx,
            self.cfg.finish_batch,
            stops.hard_stop.clone(),
        ));
        let mut running: JoinSet<(i64, bool)> = JoinSet::new();
        // Ids of the tasks this worker runs: its claims exclude them, so a task whose lease
        // expired under a slow run here is left to other workers, never queued behind or
        // run beside its own earlier run.
        let mut active: HashSet<i64> = HashSet::new();
        // Claimed tasks waiting for a slot, oldest due first.
        let mut waiting: VecDeque<TaskRecord> = VecDeque::new();
        // The last claim found fewer due tasks than it asked for.
        let mut drained = false;
        let mut backoff = Duration::from_millis(100);
        info!(worker = %self.env.worker, concurrency, "taskrow worker started");

        let start =
            |running: &mut JoinSet<(i64, bool)>, task: TaskRecord, permit: OwnedSemaphorePermit| {
                let env = self.env.clone();
                let stops = stops.clone();
                let fin_tx = fin_tx.clone();
                let id = task.id;
                running.spawn(async move {
                    let started = async {
                        if *stops.shutdown.borrow() {
                            // Claimed but not started: hand it back without using an attempt.
                            release(&env, &[task]).await;
                            return false;
                        }
                        let Some(task) = refresh_lease(&env, task).await else {
                            return false;
                        };
                        let finish = execute(&env, &task, &stops).await;
                        drop(permit);
                        let _ = fin_tx.send(finish).await;
                        true
                    };
                    (id, started.await)
                });
            };

        let mut report = ShutdownReport::default();
        'outer: loop {
            while let Some(r) = running.try_join_next() {
                report.count(r, &mut active);
            }
            if *shutdown.borrow() {
                break 'outer;
            }
            // Start what the free slots allow.
            while !waiting.is_empty() {
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    break;
                };
                let task = waiting.pop_front().expect("not empty");
                active.insert(task.id);
                start(&mut running, task, permit);
            }
            // Claim when nothing waits: enough to fill the free slots and `ahead` more, so a
            // fast drain claims in batches instead of one slot at a time.
            if waiting.is_empty() && !drained {
                let busy = concurrency - slots.available_permits();
                let want = concurrency + ahead - busy;
                wake.borrow_and_update();
                let req = self.claim_request(want).exclude_ids(active.iter().copied());
                match self.env.store.claim(&req).await {
                    Ok(claimed) => {
                        backoff = Duration::from_millis(100);
                        drained = claimed.len() < want;
                        waiting.extend(claimed);
                        continue 'outer;
                    }
                    Err(e) => {
                        warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "claiming tasks failed; backing off");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = shutdown.wait_for(|s| *s) => break 'outer,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                        continue 'outer;
                    }
                }
            }
            if waiting.is_empty() {
                // Drained: wait for an enqueue here, the poll interval, or shutdown.
                tokio::select! {
                    _ = wake.changed() => {}
                    _ = tokio::time::sleep(self.cfg.poll_interval) => {}
                    _ = shutdown.wait_for(|s| *s) => break 'outer,
                }
                drained = false;
            } else {
                // Every slot is busy: wait for one (the loop's top starts the task).
                tokio::select! {
                    biased;
                    _ = shutdown.wait_for(|s| *s) => break 'outer,
                    permit = slots.clone().acquire_owned() => drop(permit),
                }
            }
        }

        // Shutdown: no more claims; hand back what waits, then wait for running tasks up to
        // the deadline (the handle fires the hard stop then, and interrupted runs are finished
        // as retries).
        if !waiting.is_empty() {
            report.released += waiting.len() as u64;
            release(&self.env, waiting.make_contiguous()).await;
        }
        while let Some(r) = running.join_next().await {
            report.count(r, &mut active);
        }
        drop(fin_tx);
        if let Err(e) = finisher.await {
            warn!(error = %e, "the result writer failed");
        }
        info!(worker = %self.env.worker, finished = report.finished, released = report.released, "taskrow worker stopped");
        report
    }
}

/// Makes sure a task that waited for a slot still holds its lease with time to spare: past
/// half its lease, it is extended (guarded by version) before the run starts. `None` if the
/// lease was lost meanwhile (another worker has the task) or could not be extended (the
/// database is unreachable): the task is not run here then.
async fn refresh_lease(env: &Env, mut task: TaskRecord) -> Option<TaskRecord> {
    let now = env.clock.now();
    let expires = task.lease_expires_at?;
    if expires - now > chrono::TimeDelta::from_std(env.lease / 2).unwrap_or(chrono::TimeDelta::MAX)
    {
        return Some(task);
    }
    let until = crate::clock::add(now, env.lease);
    match env.store.extend_lease(task.lease(), until, now).await {
        Ok(lease) => {
            task.version = lease.version;
            task.lease_expires_at = Some(until);
            Some(task)
        }
        Err(Error::LeaseLost { .. }) => {
            warn!(
                id = task.id,
                "a claimed task lost its lease while waiting for a slot; skipped"
            );
            None
        }
        Err(e) => {
            // Without a confirmed lease the run could outlast it and meet another worker's run
            // of the same task: leave the task to be claimed again once its lease expires.
            warn!(id = task.id, error = %e, "could not extend a waiting task's lease; leaving it to be claimed again after the lease expires");
            None
        }
    }
}

async fn release(env: &Env, tasks: &[TaskRecord]) {
    let leases: Vec<_> = tasks.iter().map(TaskRecord::lease).collect();
    let mut delay = Duration::from_millis(50);
    for _ in 0..5 {
        match env.store.release(&leases, env.clock.now()).await {
            Ok(_) => return,
            Err(e) => {
                warn!(count = leases.len(), error = %e, "releasing unstarted tasks failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    warn!(
        count = leases.len(),
        "could not release unstarted tasks: they run again once their leases expire"
    );
}

/// Writes finishes in batches: whatever has queued up while the last batch was written goes
/// in the next one, so a fast drain is not one commit per task.
async fn finisher(
    env: Env,
    mut rx: mpsc::Receiver<Finish>,
    max: usize,
    hard_stop: watch::Receiver<bool>,
) {
    let mut batch = Vec::with_capacity(max);
    let mut giving_up = false;
    while rx.recv_many(&mut batch, max).await > 0 {
        let finishes = std::mem::take(&mut batch);
        while !giving_up {
            match finish_with_retry(&env, finishes.clone()).await {
                Ok(statuses) => {
                    for (f, s) in finishes.iter().zip(statuses) {
                        if s == FinishStatus::LeaseLost {
                            warn!(id = f.lease.id, code = %f.code, "result refused: the lease was lost to another claim");
                        }
                    }
                    break;
                }
                Err(e) => {
                    // Keep the results until the database takes them. Only past the shutdown
                    // deadline are they given up: their tasks then run again once their
                    // leases expire (at least once, never lost).
                    warn!(error = %e, count = finishes.len(), "writing task results failed; will try again");
                    let mut hs = hard_stop.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = hs.wait_for(|s| *s) => {
                            warn!(count = finishes.len(), "shutting down with task results unwritten: those tasks run again after their leases expire");
                            giving_up = true;
                        }
                    }
                }
            }
        }
    }
}

/// Counts over a worker's life, reported at shutdown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Executions that ran to a result (including interrupted ones, finished as retries).
    pub finished: u64,
    /// Claimed tasks handed back unstarted.
    pub released: u64,
}

impl ShutdownReport {
    fn count(
        &mut self,
        r: std::result::Result<(i64, bool), tokio::task::JoinError>,
        active: &mut HashSet<i64>,
    ) {
        match r {
            Ok((id, started)) => {
                active.remove(&id);
                if started {
                    self.finished += 1;
                } else {
                    self.released += 1;
                }
            }
            Err(e) => warn!(error = %e, "an execution task failed"),
        }
    }
}

/// A running worker. Dropping it signals shutdown without waiting; call
/// [`WorkerHandle::shutdown`] to wait.
#[derive(Debug)]
pub struct WorkerHandle {
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
