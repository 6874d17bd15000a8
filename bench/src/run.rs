//! The workloads, each measured with taskrow and with the floor.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use taskrow::chrono::{self, DateTime, Utc};
use taskrow::{
    ClaimRequest, Client, Dispatch, EnqueueOptions, LogFilter, NewTask, Priority, Task, TaskStore,
};
use taskrow_memory::MemoryStore;
use taskrow_mysql::MysqlStore;
use taskrow_postgres::PostgresStore;
use taskrow_sql::{Dialect, Dispatched, SqlStore};
use taskrow_sqlite::SqliteStore;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::floor::{Floor, FloorRow};
use crate::report::{Line, Target, Value, p50_p99};
use crate::tasks::{Noop, Probe, Stats, probe_sent_us, wall_us};
use crate::{BoxResult, Settings};

/// Lease of the floor's claims (as taskrow's default).
const LEASE: Duration = Duration::from_secs(60);
/// Pause between latency samples, so that one sample's finish does not overlap the next.
const SAMPLE_GAP: Duration = Duration::from_millis(5);
/// How long an immediately dispatched task waits before a worker may take it.
const DISPATCH_DELAY: Duration = Duration::from_secs(60);
/// The worker's default poll interval, which the cross-process pickup through NOTIFY keeps
/// (and the floor's listener polls at too).
const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// Which store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Memory,
    Sqlite,
    Mysql,
    Postgres,
}

/// The taskrow store as its concrete type, for the SQL-only transaction API.
#[derive(Debug, Clone)]
pub enum Concrete {
    Memory(MemoryStore),
    Sqlite(SqliteStore),
    Mysql(MysqlStore),
    Postgres(PostgresStore),
}

/// A store under test: taskrow on it, the floor beside it, and what handlers report to.
#[derive(Debug)]
pub struct Sut {
    pub kind: Kind,
    pub label: &'static str,
    pub concrete: Concrete,
    pub floor: Option<Floor>,
    pub url: Option<String>,
    pub stats: Arc<Stats>,
    /// When set, taskrow's calls go through this counting wrapper (`profile --count`).
    pub counting: Option<Arc<crate::counting::Counting>>,
}

impl Sut {
    pub fn new(kind: Kind, concrete: Concrete, floor: Option<Floor>, url: Option<String>) -> Self {
        let label = match kind {
            Kind::Memory => "memory",
            Kind::Sqlite => "SQLite",
            Kind::Mysql => "MariaDB",
            Kind::Postgres => "PostgreSQL",
        };
        Self {
            kind,
            label,
            concrete,
            floor,
            url,
            stats: Arc::new(Stats::default()),
            counting: None,
        }
    }

    fn store(&self) -> Arc<dyn TaskStore> {
        if let Some(c) = &self.counting {
            return c.clone();
        }
        self.bare_store()
    }

    fn bare_store(&self) -> Arc<dyn TaskStore> {
        match &self.concrete {
            Concrete::Memory(s) => Arc::new(s.clone()),
            Concrete::Sqlite(s) => Arc::new(s.clone()),
            Concrete::Mysql(s) => Arc::new(s.clone()),
            Concrete::Postgres(s) => Arc::new(s.clone()),
        }
    }

    /// A client on the store without its wake-ups from other processes (PostgreSQL's
    /// LISTEN/NOTIFY, the SQLite and MySQL stores' checks), so that it finds their tasks at its
    /// poll only; the store itself elsewhere.
    fn client_without_wakeups(&self) -> Client {
        let store: Arc<dyn TaskStore> = match &self.concrete {
            Concrete::Postgres(s) => Arc::new(PostgresStore::from_parts(
                s.connection().clone(),
                s.dialect().clone().without_wakeups(),
            )),
            Concrete::Sqlite(s) => Arc::new(SqliteStore::from_parts(
                s.connection().clone(),
                s.dialect().clone().without_wakeups(),
            )),
            Concrete::Mysql(s) => Arc::new(MysqlStore::from_parts(
                s.connection().clone(),
                s.dialect().clone().without_wakeups(),
            )),
            _ => self.store(),
        };
        Client::builder(store)
            .data_arc(self.stats.clone())
            .build()
            .unwrap()
    }

    fn client(&self) -> Client {
        Client::builder(self.store())
            .data_arc(self.stats.clone())
            .build()
            .unwrap()
    }

    /// A client on the store following the system clock instead of the default (the
    /// database's time, on the SQL stores that have one).
    fn client_on_system_clock(&self) -> Client {
        Client::builder(self.store())
            .clock(taskrow::SystemClock)
            .data_arc(self.stats.clone())
            .build()
            .unwrap()
    }

    /// Empties the tables (a new memory store).
    async fn reset(&mut self) -> BoxResult<()> {
        match &self.floor {
            Some(f) => f.clear().await?,
            None => self.concrete = Concrete::Memory(MemoryStore::new()),
        }
        Ok(())
    }

    /// Task rows and log rows.
    async fn counts(&self) -> BoxResult<(i64, i64)> {
        Ok(match &self.floor {
            Some(f) => (
                f.count("taskrow_task").await?,
                f.count("taskrow_task_log").await?,
            ),
            None => {
                let store = self.store();
                let tasks = store.counts().await?.iter().map(|c| c.count).sum::<u64>();
                let logs = store.logs(&LogFilter::default()).await?.len();
                (i64::try_from(tasks)?, i64::try_from(logs)?)
            }
        })
    }
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn log(sut: &Sut, what: &str, v: impl std::fmt::Display) {
    eprintln!("  {:<8} {what}: {v}", sut.label);
}

/// A task row as taskrow's enqueue builds it, for the floor.
fn row_of(task: &dyn Task, options: &EnqueueOptions) -> BoxResult<FloorRow> {
    let t: NewTask = options.build(task, Utc::now())?;
    Ok(FloorRow::of(&t))
}

/// Runs every selected workload on `sut`, appending lines.
pub async fn bench(sut: &mut Sut, s: &Settings, lines: &mut Vec<Line>) -> BoxResult<()> {
    if s.phases.enqueue {
        enqueue(sut, s, lines).await?;
    }
    if s.phases.drain {
        drain(sut, s, lines).await?;
    }
    if s.phases.latency {
        latency(sut, s, lines).await?;
    }
    if s.phases.scale || s.phases.scale_claims {
        scale(sut, s, lines).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Enqueue

async fn enqueue_single_taskrow(sut: &mut Sut, n: usize) -> BoxResult<f64> {
    sut.reset().await?;
    let client = sut.client();
    let t0 = Instant::now();
    for i in 0..n {
        client
            .enqueue(&Noop { i: i as u64 }, EnqueueOptions::new())
            .await?;
    }
    Ok(rate(n, t0.elapsed()))
}

async fn enqueue_single_floor(sut: &mut Sut, floor: &Floor, n: usize) -> BoxResult<f64> {
    sut.reset().await?;
    let t0 = Instant::now();
    for i in 0..n {
        let row = row_of(&Noop { i: i as u64 }, &EnqueueOptions::new())?;
        floor.insert_one(&row).await?;
    }
    Ok(rate(n, t0.elapsed()))
}

async fn enqueue_batch_taskrow(sut: &mut Sut, n: usize, batch: usize) -> BoxResult<f64> {
    sut.reset().await?;
    let client = sut.client();
    let tasks: Vec<Noop> = (0..n as u64).map(|i| Noop { i }).collect();
    let t0 = Instant::now();
    for chunk in tasks.chunks(batch) {
        client
            .enqueue_batch(
                chunk
                    .iter()
                    .map(|t| (t as &dyn Task, EnqueueOptions::new())),
            )
            .await?;
    }
    Ok(rate(n, t0.elapsed()))
}

async fn enqueue_batch_floor(
    sut: &mut Sut,
    floor: &Floor,
    n: usize,
    batch: usize,
) -> BoxResult<f64> {
    sut.reset().await?;
    let tasks: Vec<Noop> = (0..n as u64).map(|i| Noop { i }).collect();
    let t0 = Instant::now();
    for chunk in tasks.chunks(batch) {
        let rows = chunk
            .iter()
            .map(|t| row_of(t, &EnqueueOptions::new()))
            .collect::<BoxResult<Vec<_>>>()?;
        floor.insert_batch(&rows).await?;
    }
    Ok(rate(n, t0.elapsed()))
}

/// The best of several rates (external load only ever slows a run down).
#[derive(Debug, Default, Clone, Copy)]
struct Best(Option<f64>);

impl Best {
    fn add(&mut self, sut: &Sut, what: &str, r: f64) {
        log(sut, what, format!("{r:.0}/s"));
        self.0 = Some(self.0.map_or(r, |b| b.max(r)));
    }
    fn value(self) -> Option<Value> {
        self.0.map(Value::Rate)
    }
}

async fn enqueue(sut: &mut Sut, s: &Settings, lines: &mut Vec<Line>) -> BoxResult<()> {
    let n = s.n;
    let floor = sut.floor.clone();
    let (mut single, mut single_floor) = (Best::default(), Best::default());
    let (mut batch, mut batch_floor) = (Best::default(), Best::default());
    for _ in 0..s.repeat {
        let r = enqueue_single_taskrow(sut, n).await?;
        single.add(sut, "enqueue single, taskrow", r);
        if let Some(f) = &floor {
            let r = enqueue_single_floor(sut, f, n).await?;
            single_floor.add(sut, "enqueue single, floor", r);
        }
        let r = enqueue_batch_taskrow(sut, n, s.batch).await?;
        batch.add(sut, "enqueue batch, taskrow", r);
        if let Some(f) = &floor {
            let r = enqueue_batch_floor(sut, f, n, s.batch).await?;
            batch_floor.add(sut, "enqueue batch, floor", r);
        }
    }
    sut.reset().await?;

    let mut l = Line::new(sut.label, "enqueue, one task per transaction")
        .taskrow(single.value().ok_or("no run")?)
        .floor(single_floor.value());
    if floor.is_some() {
        l = l.target(Target::RatioAtLeast(1.0));
    }
    lines.push(l);
    let mut l = Line::new(
        sut.label,
        format!("enqueue, batches of {} per transaction", s.batch),
    )
    .taskrow(batch.value().ok_or("no run")?)
    .floor(batch_floor.value());
    if floor.is_some() {
        l = l.target(Target::RatioAtLeast(0.8));
    }
    lines.push(l);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Drain

/// Stores `n` due no-op tasks (not timed): through taskrow on memory, plain SQL elsewhere.
async fn fill_due(sut: &Sut, n: usize) -> BoxResult<()> {
    fill_due_at(sut, n, |_| Priority::Normal).await
}

/// The level of the `i`-th row of the scale workload: high, normal and low in turn.
fn mixed(i: usize) -> Priority {
    Priority::ALL[i % Priority::ALL.len()]
}

/// Stores `n` due no-op tasks (not timed), the `i`-th at level `level(i)`.
async fn fill_due_at(sut: &Sut, n: usize, level: fn(usize) -> Priority) -> BoxResult<()> {
    const CHUNK: usize = 5_000;
    match &sut.floor {
        Some(floor) => {
            let mut start = 0;
            while start < n {
                let end = (start + CHUNK).min(n);
                let rows = (start..end)
                    .map(|i| {
                        row_of(
                            &Noop { i: i as u64 },
                            &EnqueueOptions::new().priority(level(i)),
                        )
                    })
                    .collect::<BoxResult<Vec<_>>>()?;
                floor.insert_batch(&rows).await?;
                start = end;
            }
        }
        None => {
            let client = sut.client();
            let tasks: Vec<Noop> = (0..n as u64).map(|i| Noop { i }).collect();
            for chunk in tasks.chunks(CHUNK) {
                client
                    .enqueue_batch(chunk.iter().map(|t| {
                        (
                            t as &dyn Task,
                            EnqueueOptions::new().priority(level(t.i as usize)),
                        )
                    }))
                    .await?;
            }
        }
    }
    Ok(())
}

fn wait_budget(n: usize) -> Duration {
    Duration::from_secs(120) + Duration::from_millis(n as u64)
}

/// Drains `n` due tasks with a taskrow worker of concurrency `c`: from start until the worker
/// has run them all and written every result (its shutdown waits for the result writer).
async fn drain_taskrow(sut: &Sut, n: usize, c: usize) -> BoxResult<f64> {
    sut.stats.reset();
    // `TASKROW_BENCH_NO_WAKEUPS=1`: the drain without the store's wake-ups (to see their cost).
    let client = if std::env::var_os("TASKROW_BENCH_NO_WAKEUPS").is_some() {
        sut.client_without_wakeups()
    } else {
        sut.client()
    };
    let t0 = Instant::now();
    let worker = client.worker().concurrency(c).start()?;
    let ok = sut.stats.wait_for(n as u64, wait_budget(n)).await;
    worker.shutdown().await;
    let elapsed = t0.elapsed();
    if !ok {
        return Err(format!(
            "taskrow drain: only {} of {n} ran in time",
            sut.stats.done()
        )
        .into());
    }
    Ok(rate(n, elapsed))
}

/// Drains `n` due rows with plain SQL: `loops` claimers, each claiming `batch` rows at a time,
/// deleting each claimed batch in one statement (and logging it, with `with_log`).
async fn drain_floor(
    floor: &Floor,
    stats: &Arc<Stats>,
    n: usize,
    loops: usize,
    batch: usize,
    with_log: bool,
) -> BoxResult<f64> {
    stats.reset();
    let t0 = Instant::now();
    let mut set = JoinSet::new();
    for k in 0..loops {
        let floor = floor.clone();
        let stats = stats.clone();
        set.spawn(async move {
            let worker = format!("floor-{k}");
            loop {
                let rows = floor.claim(batch, &worker, LEASE).await?;
                if rows.is_empty() {
                    return BoxResult::Ok(());
                }
                for _ in &rows {
                    stats.ran();
                }
                if with_log {
                    floor.delete_and_log(&rows, &worker).await?;
                } else {
                    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                    floor.delete(&ids).await?;
                }
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let elapsed = t0.elapsed();
    if stats.done() != n as u64 {
        return Err(format!("floor drain ran {} of {n}", stats.done()).into());
    }
    Ok(rate(n, elapsed))
}

async fn drain(sut: &mut Sut, s: &Settings, lines: &mut Vec<Line>) -> BoxResult<()> {
    let (n, c) = (s.n, s.concurrency);
    let floor = sut.floor.clone();
    let (mut t, mut f, mut fl) = (Best::default(), Best::default(), Best::default());
    for _ in 0..s.repeat {
        sut.reset().await?;
        fill_due(sut, n).await?;
        let r = drain_taskrow(sut, n, c).await?;
        let (left, logs) = sut.counts().await?;
        if left != 0 || logs != n as i64 {
            return Err(format!(
                "taskrow drain left {left} tasks and {logs} log rows (expected 0, {n})"
            )
            .into());
        }
        t.add(sut, "drain, taskrow", r);
        if let Some(floor) = &floor {
            sut.reset().await?;
            fill_due(sut, n).await?;
            let r = drain_floor(floor, &sut.stats, n, c, s.floor_batch, false).await?;
            f.add(sut, "drain, floor", r);
            sut.reset().await?;
            fill_due(sut, n).await?;
            let r = drain_floor(floor, &sut.stats, n, c, s.floor_batch, true).await?;
            fl.add(sut, "drain, floor with log rows", r);
        }
    }
    sut.reset().await?;

    let t = t.value().ok_or("no run")?;
    let label = format!("drain, concurrency {c}");
    let mut l = Line::new(sut.label, label.clone())
        .taskrow(t)
        .floor(f.value());
    l = match sut.kind {
        // Issue 17: the memory store at least 3× SQLite's drain (a line of its own, once both
        // ran), SQLite at 0.7 of the floor, MariaDB and PostgreSQL at 0.8.
        Kind::Memory => l,
        Kind::Sqlite => l.target(Target::RatioAtLeast(0.7)),
        Kind::Mysql => l.target(Target::RatioAtLeast(0.8)),
        // The target: taskrow, writing its log rows, at 0.8 of the floor writing none.
        Kind::Postgres => l.target(Target::RatioAtLeast(0.8)),
    };
    lines.push(l);
    if floor.is_some() {
        lines.push(
            Line::new(sut.label, label)
                .taskrow(t)
                .floor(fl.value())
                .note("floor also writes log rows"),
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Pickup latency

fn latency_lines(
    sut: &Sut,
    lines: &mut Vec<Line>,
    what: &str,
    taskrow: Vec<u64>,
    floor: Option<Vec<u64>>,
    p50_target: Option<Target>,
) {
    let (t50, t99) = p50_p99(taskrow);
    let f = floor.map(p50_p99);
    log(
        sut,
        &format!("{what}, taskrow p50/p99"),
        format!("{:.0}/{:.0} µs", t50, t99),
    );
    if let Some((f50, f99)) = f {
        log(
            sut,
            &format!("{what}, floor p50/p99"),
            format!("{:.0}/{:.0} µs", f50, f99),
        );
    }
    let mut l = Line::new(sut.label, format!("{what}, p50"))
        .taskrow(Value::Micros(t50))
        .floor(f.map(|f| Value::Micros(f.0)));
    if let Some(t) = p50_target {
        l = l.target(t);
    }
    lines.push(l);
    lines.push(
        Line::new(sut.label, format!("{what}, p99"))
            .taskrow(Value::Micros(t99))
            .floor(f.map(|f| Value::Micros(f.1))),
    );
}

/// The child process enqueueing probes for the poller measurements (on the system clock with
/// `system_clock`, else at the client's default).
fn spawn_enqueuer(
    sut: &Sut,
    s: &Settings,
    floor_mode: bool,
    system_clock: bool,
) -> BoxResult<Child> {
    let url = sut.url.as_deref().ok_or("no URL for the child process")?;
    let kind = match sut.kind {
        Kind::Sqlite => "sqlite",
        Kind::Mysql => "mysql",
        Kind::Postgres => "postgres",
        Kind::Memory => return Err("the memory store cannot be shared with another process".into()),
    };
    let child = Command::new(std::env::current_exe()?)
        .arg("child-enqueue")
        .args(["--kind", kind, "--url", url])
        .args(["--count", &s.samples.to_string()])
        .args(["--poll-ms", &s.poll.as_millis().to_string()])
        .args(["--mode", if floor_mode { "floor" } else { "taskrow" }])
        .args(if system_clock {
            &["--system-clock"][..]
        } else {
            &[]
        })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    Ok(child)
}

/// Waits for the child; kills it (it is ours) if it does not end by itself.
async fn reap(mut child: Child, done: bool) -> BoxResult<()> {
    if !done {
        let _ = child.kill();
    }
    let status = tokio::task::spawn_blocking(move || child.wait()).await??;
    if done && !status.success() {
        return Err(format!("the enqueuing child process failed: {status}").into());
    }
    Ok(())
}

fn sample_budget(s: &Settings) -> Duration {
    Duration::from_secs(60) + (s.poll + Duration::from_millis(30)) * s.samples as u32
}

/// Poller pickup, taskrow: a worker here polls every `poll`; another process enqueues. On
/// PostgreSQL the worker's store has its wake-ups turned off, so that this measures the poll
/// (the wake-ups have their own measurement, [`notify_taskrow`]).
async fn poller_taskrow(sut: &Sut, s: &Settings) -> BoxResult<Vec<u64>> {
    sut.stats.reset();
    let client = sut.client_without_wakeups();
    let worker = client
        .worker()
        .concurrency(s.concurrency)
        .poll_interval(s.poll)
        .start()?;
    let child = spawn_enqueuer(sut, s, false, false)?;
    let ok = sut.stats.wait_for(s.samples as u64, sample_budget(s)).await;
    reap(child, ok).await?;
    worker.shutdown().await;
    if !ok {
        return Err("poller pickup (taskrow): not every probe ran in time".into());
    }
    Ok(sut.stats.latencies())
}

/// Poller pickup, floor: a plain-SQL poll loop with the worker's shape (claim up to C; sleep
/// `poll` when fewer came back); another process inserts.
async fn poller_floor(sut: &Sut, floor: &Floor, s: &Settings) -> BoxResult<Vec<u64>> {
    sut.stats.reset();
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (floor, stats, stop) = (floor.clone(), sut.stats.clone(), stop.clone());
        let (c, poll) = (s.concurrency, s.poll);
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let rows = floor.claim(c, "floor-poller", LEASE).await?;
                for r in &rows {
                    stats.picked_up(probe_sent_us(&r.payload).unwrap_or_default());
                }
                let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                floor.delete(&ids).await?;
                if rows.len() < c {
                    tokio::time::sleep(poll).await;
                }
            }
            BoxResult::Ok(())
        })
    };
    let child = spawn_enqueuer(sut, s, true, false)?;
    let ok = sut.stats.wait_for(s.samples as u64, sample_budget(s)).await;
    reap(child, ok).await?;
    stop.store(true, Ordering::SeqCst);
    poller.await??;
    if !ok {
        return Err("poller pickup (floor): not every probe ran in time".into());
    }
    Ok(sut.stats.latencies())
}

fn notify_budget(s: &Settings) -> Duration {
    Duration::from_secs(60) + (s.poll + DEFAULT_POLL) * s.samples as u32
}

/// Waits until the store's LISTEN connection is up (as `pg_stat_activity` shows it), and a
/// little longer for its `LISTEN` to have been sent.
async fn wait_for_listener(floor: &Floor) -> BoxResult<()> {
    let t0 = Instant::now();
    while floor
        .sessions_named(taskrow_postgres::APPLICATION_NAME)
        .await?
        == 0
    {
        if t0.elapsed() > Duration::from_secs(10) {
            return Err("the store's LISTEN connection did not come up in 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

/// Pickup from another process through LISTEN/NOTIFY, taskrow: a worker here at its default
/// poll interval (1 s) and otherwise as the other latency workers (concurrency C), woken by
/// its store's listener; another process enqueues probes through taskrow, spaced as for the
/// poller. Both clients at their default clock (the database's time), or both on the system
/// clock with `system_clock`.
async fn notify_taskrow(
    sut: &Sut,
    floor: &Floor,
    s: &Settings,
    system_clock: bool,
) -> BoxResult<Vec<u64>> {
    sut.stats.reset();
    let client = if system_clock {
        sut.client_on_system_clock()
    } else {
        sut.client()
    };
    let worker = client.worker().concurrency(s.concurrency).start()?;
    if sut.kind == Kind::Postgres {
        if let Err(e) = wait_for_listener(floor).await {
            worker.shutdown().await;
            return Err(e);
        }
    } else {
        // The check's connection opens on the worker's first idle wait.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let child = spawn_enqueuer(sut, s, false, system_clock)?;
    let ok = sut.stats.wait_for(s.samples as u64, notify_budget(s)).await;
    reap(child, ok).await?;
    worker.shutdown().await;
    if !ok {
        return Err("NOTIFY pickup (taskrow): not every probe ran in time".into());
    }
    Ok(sut.stats.latencies())
}

/// Pickup from another process through LISTEN/NOTIFY, floor: one connection here listens on
/// taskrow's channel; each notification (or 1 s without one: the same poll) starts claims of
/// up to C with plain SQL until fewer come back; another process inserts with plain SQL (the
/// table's trigger notifies at its commit).
async fn notify_floor(sut: &Sut, floor: &Floor, s: &Settings) -> BoxResult<Vec<u64>> {
    sut.stats.reset();
    let mut listener = floor.listen().await?;
    let stop = Arc::new(Notify::new());
    let claimer = {
        let (floor, stats, stop) = (floor.clone(), sut.stats.clone(), stop.clone());
        let c = s.concurrency;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.notified() => return BoxResult::Ok(()),
                    r = tokio::time::timeout(DEFAULT_POLL, listener.recv()) => {
                        if let Ok(r) = r {
                            r?;
                        }
                    }
                }
                loop {
                    let rows = floor.claim(c, "floor-listener", LEASE).await?;
                    for r in &rows {
                        stats.picked_up(probe_sent_us(&r.payload).unwrap_or_default());
                    }
                    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                    floor.delete(&ids).await?;
                    if rows.len() < c {
                        break;
                    }
                }
            }
        })
    };
    let child = spawn_enqueuer(sut, s, true, false)?;
    let ok = sut.stats.wait_for(s.samples as u64, notify_budget(s)).await;
    reap(child, ok).await?;
    stop.notify_one();
    claimer.await??;
    if !ok {
        return Err("NOTIFY pickup (floor): not every probe ran in time".into());
    }
    Ok(sut.stats.latencies())
}

/// Same-process pickup, taskrow: enqueue here, a worker here (woken by the enqueue) runs it.
async fn same_process_taskrow(sut: &Sut, s: &Settings) -> BoxResult<Vec<u64>> {
    sut.stats.reset();
    let client = sut.client();
    let worker = client.worker().concurrency(s.concurrency).start()?;
    for i in 1..=s.samples as u64 {
        let sent_us = wall_us();
        client
            .enqueue(&Probe { sent_us }, EnqueueOptions::new())
            .await?;
        if !sut.stats.wait_for(i, Duration::from_secs(30)).await {
            worker.shutdown().await;
            return Err("same-process pickup (taskrow): a probe did not run".into());
        }
        tokio::time::sleep(SAMPLE_GAP).await;
    }
    worker.shutdown().await;
    Ok(sut.stats.latencies())
}

/// Same-process pickup, floor: insert, signal a claimer task, which claims with plain SQL.
async fn same_process_floor(sut: &Sut, floor: &Floor, s: &Settings) -> BoxResult<Vec<u64>> {
    sut.stats.reset();
    let wake = Arc::new(Notify::new());
    let stop = Arc::new(AtomicBool::new(false));
    let claimer = {
        let (floor, stats, wake, stop) =
            (floor.clone(), sut.stats.clone(), wake.clone(), stop.clone());
        let c = s.concurrency;
        tokio::spawn(async move {
            loop {
                wake.notified().await;
                if stop.load(Ordering::SeqCst) {
                    return BoxResult::Ok(());
                }
                loop {
                    let rows = floor.claim(c, "floor-claimer", LEASE).await?;
                    for r in &rows {
                        stats.picked_up(probe_sent_us(&r.payload).unwrap_or_default());
                    }
                    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                    floor.delete(&ids).await?;
                    if rows.len() < c {
                        break;
                    }
                }
            }
        })
    };
    let mut failed = false;
    for i in 1..=s.samples as u64 {
        let sent_us = wall_us();
        let row = row_of(&Probe { sent_us }, &EnqueueOptions::new())?;
        floor.insert_one(&row).await?;
        wake.notify_one();
        if !sut.stats.wait_for(i, Duration::from_secs(30)).await {
            failed = true;
            break;
        }
        tokio::time::sleep(SAMPLE_GAP).await;
    }
    stop.store(true, Ordering::SeqCst);
    wake.notify_one();
    claimer.await??;
    if failed {
        return Err("same-process pickup (floor): a probe did not run".into());
    }
    Ok(sut.stats.latencies())
}

/// Immediate dispatch on a SQL store: begin, enqueue, commit, dispatch (awaited).
async fn dispatch_sql<D: Dialect>(
    store: &SqlStore<D>,
    client: &Client,
    stats: &Stats,
    samples: usize,
) -> BoxResult<()> {
    for i in 1..=samples as u64 {
        let sent_us = wall_us();
        let mut tx = store.begin_with_tasks(client).await?;
        tx.enqueue(&Probe { sent_us }, EnqueueOptions::new())
            .await?;
        let committed = tx.commit().await?;
        for d in committed.dispatch().await {
            match d {
                Dispatched::Ran(_) => {}
                Dispatched::NotRun { error, .. } => return Err(error.into()),
                _ => return Err("immediate dispatch found the task taken".into()),
            }
        }
        if stats.done() != i {
            return Err("immediate dispatch did not run the probe".into());
        }
        tokio::time::sleep(SAMPLE_GAP).await;
    }
    Ok(())
}

/// Immediate dispatch, taskrow: from the start of the transaction to the handler's start.
async fn dispatch_taskrow(sut: &Sut, s: &Settings) -> BoxResult<Vec<u64>> {
    sut.stats.reset();
    let client = sut.client();
    match &sut.concrete {
        Concrete::Sqlite(store) => dispatch_sql(store, &client, &sut.stats, s.samples).await?,
        Concrete::Mysql(store) => dispatch_sql(store, &client, &sut.stats, s.samples).await?,
        Concrete::Postgres(store) => dispatch_sql(store, &client, &sut.stats, s.samples).await?,
        Concrete::Memory(_) => {
            // No transactions in memory: enqueue (delayed, as dispatch does) and run it now.
            for i in 1..=s.samples as u64 {
                let sent_us = wall_us();
                let rec = client
                    .enqueue(
                        &Probe { sent_us },
                        EnqueueOptions::new()
                            .delay(DISPATCH_DELAY)
                            .dispatch(Dispatch::ImmediateAwaited),
                    )
                    .await?;
                client
                    .run_committed(rec.id)
                    .await?
                    .ok_or("immediate dispatch found the task taken")?;
                if sut.stats.done() != i {
                    return Err("immediate dispatch did not run the probe".into());
                }
                tokio::time::sleep(SAMPLE_GAP).await;
            }
        }
    }
    Ok(sut.stats.latencies())
}

/// Immediate dispatch, floor: `BEGIN; INSERT; COMMIT`, then claim that row by id with one
/// conditional `UPDATE`, run, delete.
async fn dispatch_floor(sut: &Sut, floor: &Floor, s: &Settings) -> BoxResult<Vec<u64>> {
    sut.stats.reset();
    for _ in 0..s.samples {
        let sent_us = wall_us();
        let row = row_of(
            &Probe { sent_us },
            &EnqueueOptions::new()
                .delay(DISPATCH_DELAY)
                .dispatch(Dispatch::ImmediateAwaited),
        )?;
        let id = floor.insert_in_transaction(&row).await?;
        if !floor.claim_by_id(id, "floor-dispatch", LEASE).await? {
            return Err("floor dispatch: the row was not pending".into());
        }
        sut.stats.picked_up(sent_us);
        floor.delete(&[id]).await?;
        tokio::time::sleep(SAMPLE_GAP).await;
    }
    Ok(sut.stats.latencies())
}

async fn latency(sut: &mut Sut, s: &Settings, lines: &mut Vec<Line>) -> BoxResult<()> {
    let poll = format!(
        "poller every {} ms, another process enqueues",
        s.poll.as_millis()
    );
    if let Some(floor) = sut.floor.clone() {
        sut.reset().await?;
        let t = poller_taskrow(sut, s).await?;
        sut.reset().await?;
        let f = poller_floor(sut, &floor, s).await?;
        let what = if sut.kind == Kind::Postgres {
            format!("{poll} (wake-ups off)")
        } else {
            poll
        };
        latency_lines(sut, lines, &what, t, Some(f.clone()), None);
        if sut.kind != Kind::Postgres {
            // The store's check of the database (SQLite's data_version, MySQL's newest id
            // and earliest pending time, every 10 ms), against the floor's poll.
            sut.reset().await?;
            let t = notify_taskrow(sut, &floor, s, true).await?;
            latency_lines(
                sut,
                lines,
                "pickup, another process enqueues, woken by the store's 10 ms check (poll 1 s)",
                t,
                Some(f),
                Some(Target::MicrosAtMost(20_000.0)),
            );
        }
        if sut.kind == Kind::Postgres {
            sut.reset().await?;
            let t = notify_taskrow(sut, &floor, s, false).await?;
            sut.reset().await?;
            let f = notify_floor(sut, &floor, s).await?;
            sut.reset().await?;
            let t_system = notify_taskrow(sut, &floor, s, true).await?;
            let what = "pickup, another process enqueues, woken by NOTIFY (poll 1 s)";
            latency_lines(
                sut,
                lines,
                what,
                t,
                Some(f.clone()),
                Some(Target::MicrosAtMost(3000.0)),
            );
            latency_lines(
                sut,
                lines,
                &format!("{what}, both clients on the system clock"),
                t_system,
                Some(f),
                None,
            );
        }
    } else {
        lines.push(Line::new(sut.label, poll).note("n/a: one process only"));
    }

    sut.reset().await?;
    let t = same_process_taskrow(sut, s).await?;
    let f = match sut.floor.clone() {
        Some(floor) => {
            sut.reset().await?;
            Some(same_process_floor(sut, &floor, s).await?)
        }
        None => None,
    };
    // Issue 17: same-process pickup and dispatch after commit at most the floor's
    // same-process pickup (p50); the memory store, without a floor, under 1 ms.
    let floor_pickup = f.clone().map(|f| p50_p99(f).0);
    let target = match floor_pickup {
        Some(_) => Some(Target::TimesFloorAtMost(1.0)),
        None => Some(Target::MicrosBelow(1000.0)),
    };
    latency_lines(sut, lines, "pickup, same-process enqueue", t, f, target);

    sut.reset().await?;
    let t = dispatch_taskrow(sut, s).await?;
    let f = match sut.floor.clone() {
        Some(floor) => {
            sut.reset().await?;
            Some(dispatch_floor(sut, &floor, s).await?)
        }
        None => None,
    };
    latency_lines(
        sut,
        lines,
        "immediate dispatch after commit",
        t,
        f,
        Some(floor_pickup.map_or(Target::MicrosBelow(1000.0), Target::MicrosAtMost)),
    );
    sut.reset().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scale

/// Adds filler rows `from..to`: pending, due at `at` (the future), high, normal and low in
/// turn, inserted with plain multi-row `INSERT`s (through `insert_many` on memory).
async fn add_filler(sut: &Sut, from: usize, to: usize, at: DateTime<Utc>) -> BoxResult<()> {
    const TXN_ROWS: usize = 20_000;
    let options = EnqueueOptions::new().run_at(at);
    let template = options.build(&Noop { i: 0 }, Utc::now())?;
    let mut start = from;
    while start < to {
        let end = (start + TXN_ROWS).min(to);
        match &sut.floor {
            Some(floor) => {
                let mut row = FloorRow::of(&template);
                let rows: Vec<FloorRow> = (start..end)
                    .map(|i| {
                        row.code = format!("filler-{i:09}");
                        row.priority = mixed(i).code();
                        row.clone()
                    })
                    .collect();
                floor.insert_batch(&rows).await?;
            }
            None => {
                let rows: Vec<NewTask> = (start..end)
                    .map(|i| {
                        let mut t = template.clone();
                        t.code = format!("filler-{i:09}");
                        t.priority = mixed(i);
                        t
                    })
                    .collect();
                sut.store().insert_many(rows).await?;
            }
        }
        start = end;
    }
    Ok(())
}

/// Removes everything but the filler (SQL); nothing on memory, where claimed rows stay
/// running under their lease (not due, so they only add to the filler).
async fn clear_but_filler(sut: &Sut, filler_at: DateTime<Utc>) -> BoxResult<()> {
    if let Some(f) = &sut.floor {
        f.clear_all_but_filler(filler_at).await?;
    }
    Ok(())
}

/// `k` claims of `c` due tasks each, timed one by one: taskrow's `TaskStore::claim`, and the
/// floor's claim statement alternating with it, so that both meet the same table.
async fn claim_latencies(
    sut: &Sut,
    floor: Option<&Floor>,
    k: usize,
    c: usize,
) -> BoxResult<(Vec<u64>, Option<Vec<u64>>)> {
    let store = sut.store();
    let mut t = Vec::with_capacity(k);
    let mut f = Vec::with_capacity(k);
    for _ in 0..k {
        let req = ClaimRequest::new("bench-claimer", c, LEASE, Utc::now());
        let t0 = Instant::now();
        let got = store.claim(&req).await?;
        t.push(t0.elapsed().as_micros() as u64);
        if got.len() != c {
            return Err(format!("taskrow claim got {} of {c}", got.len()).into());
        }
        if let Some(floor) = floor {
            let t0 = Instant::now();
            let got = floor.claim(c, "floor-claimer", LEASE).await?;
            f.push(t0.elapsed().as_micros() as u64);
            if got.len() != c {
                return Err(format!("floor claim got {} of {c}", got.len()).into());
            }
        }
    }
    Ok((t, floor.map(|_| f)))
}

async fn scale(sut: &mut Sut, s: &Settings, lines: &mut Vec<Line>) -> BoxResult<()> {
    let (n, c, k) = (s.n, s.concurrency, s.claim_samples);
    let mut sizes = s.scale_rows.clone();
    sizes.sort_unstable();
    sizes.dedup();
    if sizes.is_empty() {
        return Ok(());
    }
    sut.reset().await?;
    let filler_at = Utc::now() + chrono::Duration::days(1);
    let mut filled = 0;
    // (size, taskrow claim p50, floor claim p50)
    let mut claims: Vec<(usize, f64, Option<f64>)> = Vec::new();
    for &size in &sizes {
        let t0 = Instant::now();
        add_filler(sut, filled, size, filler_at).await?;
        if sut.kind == Kind::Postgres
            && let Some(f) = &sut.floor
        {
            // What autovacuum does after this many inserts, done now, so that the planner's
            // statistics do not change in the middle of the measurement.
            f.exec("ANALYZE taskrow_task").await?;
        }
        filled = size;
        log(
            sut,
            &format!("filler up to {size} rows"),
            format!("{:.1} s", t0.elapsed().as_secs_f64()),
        );
        let at = format!("{} not-due rows in the table", thousands(size));

        let floor = sut.floor.clone();
        fill_due_at(sut, if floor.is_some() { 2 * k * c } else { k * c }, mixed).await?;
        let (t, f) = claim_latencies(sut, floor.as_ref(), k, c).await?;
        clear_but_filler(sut, filler_at).await?;
        let (t50, t99) = p50_p99(t);
        let f5099 = f.map(p50_p99);
        log(
            sut,
            &format!("claim of {c}, {at}, taskrow p50/p99"),
            format!("{t50:.0}/{t99:.0} µs"),
        );
        if let Some((f50, f99)) = f5099 {
            log(
                sut,
                &format!("claim of {c}, {at}, floor p50/p99"),
                format!("{f50:.0}/{f99:.0} µs"),
            );
        }
        claims.push((size, t50, f5099.map(|f| f.0)));
        lines.push(
            Line::new(sut.label, format!("claim of {c} due tasks, p50, {at}"))
                .taskrow(Value::Micros(t50))
                .floor(f5099.map(|f| Value::Micros(f.0))),
        );
        lines.push(
            Line::new(sut.label, format!("claim of {c} due tasks, p99, {at}"))
                .taskrow(Value::Micros(t99))
                .floor(f5099.map(|f| Value::Micros(f.1))),
        );
        if !s.phases.scale {
            // `--phases scale-claims`: the claims only.
            continue;
        }

        fill_due(sut, n).await?;
        let t = drain_taskrow(sut, n, c).await?;
        clear_but_filler(sut, filler_at).await?;
        log(sut, &format!("drain, {at}, taskrow"), format!("{t:.0}/s"));
        let f = match sut.floor.clone() {
            Some(floor) => {
                fill_due(sut, n).await?;
                let f = drain_floor(&floor, &sut.stats, n, c, s.floor_batch, false).await?;
                clear_but_filler(sut, filler_at).await?;
                log(sut, &format!("drain, {at}, floor"), format!("{f:.0}/s"));
                Some(Value::Rate(f))
            }
            None => None,
        };
        lines.push(
            Line::new(sut.label, format!("drain, concurrency {c}, {at}"))
                .taskrow(Value::Rate(t))
                .floor(f),
        );
    }
    if let (Some(first), Some(last)) = (claims.first(), claims.last())
        && claims.len() > 1
    {
        let floor = match (first.2, last.2) {
            (Some(a), Some(b)) => Some(Value::Factor(b / a)),
            _ => None,
        };
        lines.push(
            Line::new(
                sut.label,
                format!(
                    "claim p50 at {} rows ÷ at {} rows",
                    thousands(last.0),
                    thousands(first.0)
                ),
            )
            .taskrow(Value::Factor(last.1 / first.1))
            .floor(floor)
            .target(Target::FactorAtMost(1.5)),
        );
    }
    sut.reset().await?;
    Ok(())
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The child process

/// Enqueues `count` probes into the store at `url`, spaced so that their arrival is spread
/// over the parent's poll interval. `floor`: with plain SQL instead of taskrow.
pub async fn child_enqueue(
    kind: Kind,
    url: &str,
    count: usize,
    poll: Duration,
    floor: bool,
    system_clock: bool,
) -> BoxResult<()> {
    // A small deterministic generator: gaps of 3 ms plus 0..poll, not a multiple of the poll.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let poll_ms = poll.as_millis().max(1) as u64;
    let mut gap = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        Duration::from_millis(3 + x % poll_ms) + Duration::from_micros(x % 997)
    };
    if floor {
        let f = match kind {
            Kind::Sqlite => Floor::sqlite(url).await?,
            Kind::Mysql => Floor::mysql(url).await?,
            Kind::Postgres => Floor::postgres(url).await?,
            Kind::Memory => return Err("no floor for memory".into()),
        };
        for _ in 0..count {
            tokio::time::sleep(gap()).await;
            let sent_us = wall_us();
            let row = row_of(&Probe { sent_us }, &EnqueueOptions::new())?;
            f.insert_one(&row).await?;
        }
        f.close().await;
    } else {
        let store: Arc<dyn TaskStore> = match kind {
            Kind::Sqlite => Arc::new(SqliteStore::connect(url).await?),
            Kind::Mysql => Arc::new(MysqlStore::connect(url).await?),
            Kind::Postgres => Arc::new(PostgresStore::connect(url).await?),
            Kind::Memory => return Err("the memory store is not shared between processes".into()),
        };
        let mut client = Client::builder(store);
        if system_clock {
            client = client.clock(taskrow::SystemClock);
        }
        let client = client.build().unwrap();
        for _ in 0..count {
            tokio::time::sleep(gap()).await;
            let sent_us = wall_us();
            client
                .enqueue(&Probe { sent_us }, EnqueueOptions::new())
                .await?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// One workload alone, for profilers

/// What `profile` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Only the set-up (`n` due rows): the baseline to subtract.
    None,
    /// Drain `n` due tasks with concurrency `c`.
    Drain,
    /// `n` enqueues, one per transaction.
    EnqueueSingle,
    /// `n` enqueues in batches of 500.
    EnqueueBatch,
    /// `n` claims of `c` due tasks, timed one by one.
    Claim,
    /// `n` immediate dispatches after commit, one after another.
    Dispatch,
    /// `n` round trips of `SELECT 1` (sqlx directly with --floor, else through SeaORM), and
    /// `n` empty write transactions (`BEGIN IMMEDIATE; COMMIT` on SQLite).
    Ping,
}

/// Runs one workload on one side, on a fresh store, and prints its rate. The set-up (due rows
/// for a drain) is the same plain-SQL insert for both sides, so that instruction counts of
/// `--workload none` can be subtracted.
pub async fn profile(
    sut: &mut Sut,
    workload: Workload,
    floor_side: bool,
    n: usize,
    c: usize,
    floor_batch: usize,
    count: bool,
) -> BoxResult<()> {
    sut.reset().await?;
    if count {
        sut.counting = Some(Arc::new(crate::counting::Counting::new(sut.bare_store())));
    }
    let floor = sut.floor.clone();
    let r = match (workload, floor_side, &floor) {
        (Workload::None, _, _) => {
            fill_due(sut, n).await?;
            0.0
        }
        (Workload::Drain, false, _) => {
            fill_due(sut, n).await?;
            drain_taskrow(sut, n, c).await?
        }
        (Workload::Drain, true, Some(f)) => {
            fill_due(sut, n).await?;
            drain_floor(f, &sut.stats, n, c, floor_batch, false).await?
        }
        (Workload::EnqueueSingle, false, _) => {
            let client = sut.client();
            let t0 = Instant::now();
            for i in 0..n {
                client
                    .enqueue(&Noop { i: i as u64 }, EnqueueOptions::new())
                    .await?;
            }
            rate(n, t0.elapsed())
        }
        (Workload::EnqueueSingle, true, Some(f)) => {
            let t0 = Instant::now();
            for i in 0..n {
                f.insert_one(&row_of(&Noop { i: i as u64 }, &EnqueueOptions::new())?)
                    .await?;
            }
            rate(n, t0.elapsed())
        }
        (Workload::EnqueueBatch, false, _) => {
            let client = sut.client();
            let tasks: Vec<Noop> = (0..n as u64).map(|i| Noop { i }).collect();
            let t0 = Instant::now();
            for chunk in tasks.chunks(500) {
                client
                    .enqueue_batch(
                        chunk
                            .iter()
                            .map(|t| (t as &dyn Task, EnqueueOptions::new())),
                    )
                    .await?;
            }
            rate(n, t0.elapsed())
        }
        (Workload::EnqueueBatch, true, Some(f)) => {
            let tasks: Vec<Noop> = (0..n as u64).map(|i| Noop { i }).collect();
            let t0 = Instant::now();
            for chunk in tasks.chunks(500) {
                let rows = chunk
                    .iter()
                    .map(|t| row_of(t, &EnqueueOptions::new()))
                    .collect::<BoxResult<Vec<_>>>()?;
                f.insert_batch(&rows).await?;
            }
            rate(n, t0.elapsed())
        }
        (Workload::Claim, side, _) => {
            fill_due(sut, n * c).await?;
            let f = floor.as_ref().filter(|_| side);
            let store = sut.store();
            let t0 = Instant::now();
            let mut lat = Vec::with_capacity(n);
            for _ in 0..n {
                let t1 = Instant::now();
                match f {
                    Some(f) => {
                        f.claim(c, "floor-claimer", LEASE).await?;
                    }
                    None => {
                        let req = ClaimRequest::new("bench-claimer", c, LEASE, Utc::now());
                        store.claim(&req).await?;
                    }
                }
                lat.push(t1.elapsed().as_micros() as u64);
            }
            let (p50, p99) = p50_p99(lat);
            println!("claim p50 {p50:.0} µs, p99 {p99:.0} µs");
            rate(n * c, t0.elapsed())
        }
        (Workload::Dispatch, side, _) => {
            let settings = crate::Settings::for_profile(n, c, floor_batch);
            let t0 = Instant::now();
            let lat = match (&floor, side) {
                (Some(f), true) => dispatch_floor(sut, f, &settings).await?,
                _ => dispatch_taskrow(sut, &settings).await?,
            };
            let (p50, p99) = p50_p99(lat);
            println!("dispatch p50 {p50:.0} µs, p99 {p99:.0} µs");
            rate(n, t0.elapsed())
        }
        (Workload::Ping, true, Some(f)) => {
            let t0 = Instant::now();
            for _ in 0..n {
                f.exec("SELECT 1").await?;
            }
            let us = t0.elapsed().as_secs_f64() * 1e6 / n as f64;
            let t0 = Instant::now();
            for _ in 0..n {
                f.empty_transaction().await?;
            }
            let tx = t0.elapsed().as_secs_f64() * 1e6 / n as f64;
            println!("sqlx: SELECT 1 {us:.1} µs, empty write transaction {tx:.1} µs");
            rate(n, t0.elapsed())
        }
        (Workload::Ping, false, _) => {
            let (select, transaction) = match &sut.concrete {
                Concrete::Sqlite(st) => ping_sea_orm(st, n).await?,
                Concrete::Mysql(st) => ping_sea_orm(st, n).await?,
                Concrete::Postgres(st) => ping_sea_orm(st, n).await?,
                Concrete::Memory(_) => return Err("no SQL on memory".into()),
            };
            println!(
                "SeaORM: SELECT 1 {select:.1} µs, empty write transaction (the dialect's \
                 begin_write, commit) {transaction:.1} µs"
            );
            1e6 / transaction
        }
        (_, true, None) => return Err("the memory store has no floor".into()),
    };
    println!(
        "{} {workload:?} {}: {r:.0}/s",
        sut.label,
        if floor_side { "floor" } else { "taskrow" }
    );
    if let Some(c) = &sut.counting {
        println!("  {}", c.summary());
    }
    Ok(())
}

/// Mean µs of `SELECT 1` through SeaORM, and of an empty write transaction begun as the store
/// begins its own.
async fn ping_sea_orm<D: Dialect>(store: &SqlStore<D>, n: usize) -> BoxResult<(f64, f64)> {
    use taskrow_sql::sea_orm::ConnectionTrait;
    let db = store.connection();
    let t0 = Instant::now();
    for _ in 0..n {
        db.execute_unprepared("SELECT 1").await?;
    }
    let select = t0.elapsed().as_secs_f64() * 1e6 / n as f64;
    let t0 = Instant::now();
    for _ in 0..n {
        store.dialect().begin_write(db).await?.commit().await?;
    }
    Ok((select, t0.elapsed().as_secs_f64() * 1e6 / n as f64))
}
