//! Scenarios with worker processes (`taskrow-test-worker`): the multi-instance drain, crashed
//! workers, graceful shutdown under load, a database outage and a held SQLite write lock.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use taskrow::{Client, Error, Task, TaskFilter, TaskRef, TaskState};
use taskrow_tests::faults::WorkerProcess;
use taskrow_tests::faults::process::LockHolder;
use taskrow_tests::faults::tasks::Drain;

use super::common::{
    Backend, Db, Drained, Row, Scratch, between, connect_store, drain_options, enqueue_drains, rng,
    sum_field, tail, wait_all_exit, wait_for, worker_bin,
};
use super::proxy::{Proxy, through, upstream_of};

/// Waits until the log holds at least `n` rows.
async fn logged_at_least(db: &Db, n: usize, limit: Duration) {
    wait_for(
        &format!("{n} log rows"),
        limit,
        Duration::from_millis(100),
        || async { db.log_count().await >= n as i64 },
    )
    .await;
}

/// Issue 4's proof: 4 worker processes drain 5,000 tasks from one database; every task runs
/// exactly once (the handlers' records and the log agree) and none is left.
pub async fn multi_instance(backend: Backend, _seed: u64) -> Option<Row> {
    const N: usize = 5000;
    const PROCESSES: usize = 4;
    let db = Db::open(backend).await?;
    let mut scratch = Scratch::new("multi");
    let client = db.client(scratch.recorder());
    let codes = enqueue_drains(&client, "multi", N, 1).await;

    let mut cfg = scratch.config(&db.url);
    cfg.exit_when_idle = true;
    // The proof is about claims, not expiry: a lease no load on 2 cores outlasts.
    cfg.lease = Duration::from_secs(30);
    cfg.heartbeat = Some(Duration::from_secs(10));
    let started = Instant::now();
    let mut procs: Vec<WorkerProcess> = (0..PROCESSES).map(|_| scratch.spawn(&cfg)).collect();
    wait_all_exit(&mut procs, Duration::from_secs(100)).await;
    let secs = started.elapsed().as_secs_f64();

    let d = Drained::check(&db, &scratch, &codes, &HashMap::new()).await;
    d.assert_complete("multi-instance drain");
    assert_eq!(d.runs, N, "handler runs: each task exactly once");
    assert_eq!(d.rerun, 0, "no task ran twice");
    let logs = db.logs().await;
    assert_eq!(logs.len(), N, "one log row per task");
    assert!(
        logs.iter()
            .all(|l| l.outcome == taskrow::Outcome::Succeeded && l.attempt == 1),
        "every log row: succeeded at the first attempt"
    );
    let distinct: HashSet<&str> = logs.iter().map(|l| l.code.as_str()).collect();
    assert_eq!(distinct.len(), N);
    let per: Vec<usize> = d.per_pid.values().copied().collect();
    println!("{N} tasks in {secs:.1} s; runs per process: {per:?}");
    assert!(
        per.len() >= 2,
        "the processes shared the work: runs per process {per:?}"
    );
    db.done().await;
    Some(Row {
        tasks: N,
        faults: format!("none: {PROCESSES} processes on one database"),
        lost: d.lost.len(),
        twice_at_once: d.twice_at_once(),
        final_states: format!(
            "{N} succeeded exactly once (log and handler records), 0 left; runs per process {per:?}"
        ),
    })
}

/// kill -9 worker processes at random moments mid-drain, several times; their tasks come
/// back after the lease expires and finish; no two runs of a task overlap; nothing is lost.
pub async fn crashed_workers(backend: Backend, seed: u64) -> Option<Row> {
    // 3,000 tasks of 25 ms on 16 slots: at least 4.7 s of work, against kills within 2.7 s.
    const N: usize = 3000;
    const KILLS: usize = 3;
    let db = Db::open(backend).await?;
    let mut scratch = Scratch::new("crash");
    let client = db.client(scratch.recorder());
    let codes = enqueue_drains(&client, "crash", N, 25).await;

    let mut cfg = scratch.config(&db.url);
    cfg.exit_when_idle = true;
    cfg.concurrency = 4;
    let r = rng(seed, &format!("crashed_workers::{}", backend.name()));
    let started = Instant::now();
    let mut live: Vec<WorkerProcess> = (0..4).map(|_| scratch.spawn(&cfg)).collect();
    let mut dead: Vec<WorkerProcess> = Vec::new();
    let mut killed: HashMap<u32, i64> = HashMap::new();
    let mut moments = Vec::new();
    for _ in 0..KILLS {
        tokio::time::sleep(between(&r, 300, 900)).await;
        for p in &mut live {
            assert!(
                p.is_running(),
                "worker {} exited before the drain ended:\n{}",
                p.pid(),
                tail(&p.log(), 20)
            );
        }
        let i = ((r.next_f64() * live.len() as f64) as usize).min(live.len() - 1);
        let mut victim = live.swap_remove(i);
        let at = victim.kill9();
        let done = db.log_count().await;
        let ms = started.elapsed().as_millis();
        println!(
            "kill -9 {} at +{ms} ms ({done} of {N} logged)",
            victim.pid()
        );
        assert!(
            (done as usize) < N,
            "the drain ended before kill {}: make it longer",
            moments.len() + 1
        );
        moments.push(ms);
        killed.insert(victim.pid(), at);
        dead.push(victim);
        live.push(scratch.spawn(&cfg));
    }
    wait_all_exit(&mut live, Duration::from_secs(90)).await;
    let secs = started.elapsed().as_secs_f64();

    let d = Drained::check(&db, &scratch, &codes, &killed).await;
    d.assert_complete("crashed workers");
    assert!(
        d.interrupted > 0,
        "the kills cut no run short: they came at idle moments"
    );
    println!(
        "drained in {secs:.1} s; {} runs cut short by the kills; {} tasks ran again; log outcomes {:?}",
        d.interrupted, d.rerun, d.outcomes
    );
    db.done().await;
    Some(Row {
        tasks: N,
        faults: format!(
            "{KILLS} × kill -9 at +{moments:?} ms, {} runs cut short",
            d.interrupted
        ),
        lost: d.lost.len(),
        twice_at_once: d.twice_at_once(),
        final_states: d.final_states(),
    })
}

/// SIGTERM to every worker in the middle of a drain: each finishes what it runs, writes the
/// results and hands back what it claimed but had not started; nothing stays leased. Workers
/// started afterwards drain the rest, and every task ran exactly once.
pub async fn graceful_shutdown(backend: Backend, _seed: u64) -> Option<Row> {
    const N: usize = 2000;
    let db = Db::open(backend).await?;
    let mut scratch = Scratch::new("graceful");
    let client = db.client(scratch.recorder());
    let codes = enqueue_drains(&client, "graceful", N, 30).await;

    let mut cfg = scratch.config(&db.url);
    // Long leases, so a task left leased would still show as running afterwards.
    cfg.lease = Duration::from_secs(30);
    cfg.heartbeat = Some(Duration::from_secs(10));
    cfg.shutdown_timeout = Duration::from_secs(10);
    let mut procs: Vec<WorkerProcess> = (0..4).map(|_| scratch.spawn(&cfg)).collect();
    logged_at_least(&db, N / 4, Duration::from_secs(60)).await;
    for p in &procs {
        p.terminate();
    }
    wait_all_exit(&mut procs, Duration::from_secs(30)).await;

    let running = db
        .rows(&TaskFilter::all().states([TaskState::Running]))
        .await;
    assert!(
        running.is_empty(),
        "tasks left running after a graceful shutdown: {:?}",
        running.iter().map(|r| &r.code).take(5).collect::<Vec<_>>()
    );
    let pending = db
        .rows(&TaskFilter::all().states([TaskState::Pending]))
        .await;
    assert!(
        pending
            .iter()
            .all(|r| r.attempts == 0 && r.lease_expires_at.is_none()),
        "a pending task with an attempt used or a lease: {:?}",
        pending.iter().find(|r| r.attempts > 0)
    );
    let runs = scratch.runs();
    assert!(
        runs.iter().all(|r| r.end_us.is_some()),
        "a run did not end before its worker exited"
    );
    let ran: HashSet<&str> = runs.iter().map(|r| r.code.as_str()).collect();
    let logs = db.logs().await;
    let logged: HashSet<&str> = logs.iter().map(|l| l.code.as_str()).collect();
    assert_eq!(
        ran, logged,
        "every run that ended has its log row, and no other run is logged"
    );
    assert_eq!(ran.len() + pending.len(), N, "ran + pending = all");
    let text: String = procs.iter().map(WorkerProcess::log).collect();
    let released = sum_field(&text, "taskrow-test-worker stopped", "released");
    let finished_at_stop = sum_field(&text, "taskrow-test-worker stopped", "finished");
    println!(
        "after SIGTERM: {} ran, {} pending (0 attempts), 0 running; the workers reported {finished_at_stop} finished, {released} released",
        ran.len(),
        pending.len()
    );

    // Restart: the rest runs, and no task ran twice in all.
    let mut cfg2 = scratch.config(&db.url);
    cfg2.exit_when_idle = true;
    let mut again: Vec<WorkerProcess> = (0..2).map(|_| scratch.spawn(&cfg2)).collect();
    wait_all_exit(&mut again, Duration::from_secs(60)).await;
    let d = Drained::check(&db, &scratch, &codes, &HashMap::new()).await;
    d.assert_complete("graceful shutdown");
    assert_eq!(d.rerun, 0, "no task ran twice across the shutdown");
    assert_eq!(d.runs, N);
    db.done().await;
    Some(Row {
        tasks: N,
        faults: format!(
            "SIGTERM to 4 workers after {} tasks: {released} claimed-not-started released",
            ran.len()
        ),
        lost: d.lost.len(),
        twice_at_once: d.twice_at_once(),
        final_states: format!(
            "after shutdown 0 running, {} pending with 0 attempts; after restart {N} succeeded exactly once",
            pending.len()
        ),
    })
}

/// The server (MariaDB, PostgreSQL) disappears mid-drain (a TCP proxy between the workers and
/// the server is cut) and
/// comes back: workers log, back off, reconnect and finish everything; enqueues during the
/// outage fail with a transient error and write nothing; a batch in flight at the cut is
/// all-or-nothing.
pub async fn database_outage(backend: Backend, _seed: u64) -> Option<Row> {
    const N: usize = 1500;
    const IN_FLIGHT: usize = 3000;
    let db = Db::open(backend).await?;
    let mut scratch = Scratch::new("outage");
    let client = db.client(scratch.recorder());
    let mut codes = enqueue_drains(&client, "outage", N, 20).await;

    let proxy = Proxy::start(upstream_of(&db.url)).await;
    let url = through(&db.url, proxy.port);
    let mut cfg = scratch.config(&url);
    cfg.exit_when_idle = true;
    cfg.concurrency = 4;
    let mut procs: Vec<WorkerProcess> = (0..2).map(|_| scratch.spawn(&cfg)).collect();
    let via = connect_store(&url)
        .await
        .expect("connect through the proxy");
    let via = Client::builder(via).build().unwrap();
    logged_at_least(&db, N / 5, Duration::from_secs(60)).await;

    // A large batch enqueue in flight when the connections are cut.
    let in_flight = {
        let via = via.clone();
        tokio::spawn(async move {
            let task = Drain { millis: 0 };
            let batch: Vec<(&dyn Task, _)> = (0..IN_FLIGHT)
                .map(|i| {
                    (
                        &task as &dyn Task,
                        drain_options(&format!("inflight-{i:05}")),
                    )
                })
                .collect();
            via.enqueue_batch(batch).await
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    proxy.cut();
    let cut = Instant::now();
    let done_at_cut = db.log_count().await;
    println!("connections cut with {done_at_cut} of {N} logged");

    // Enqueues during the outage: a clear transient error each.
    let task = Drain { millis: 0 };
    let single = via.enqueue(&task, drain_options("during-single"));
    let batch_codes: Vec<String> = (0..100).map(|i| format!("during-batch-{i:03}")).collect();
    let batch = via.enqueue_batch(
        batch_codes
            .iter()
            .map(|c| (&task as &dyn Task, drain_options(c))),
    );
    let (single, batch) = tokio::join!(single, batch);
    let failed_after = cut.elapsed();
    for (what, e) in [("enqueue", single.err()), ("enqueue_batch", batch.err())] {
        let e = e.unwrap_or_else(|| panic!("{what} during the outage succeeded"));
        println!("{what} during the outage, after {failed_after:.1?}: {e}");
        assert!(e.is_transient(), "{what}: not a transient error: {e:?}");
    }
    let in_flight = in_flight.await.expect("the in-flight batch task");
    match &in_flight {
        Ok(n) => println!("the batch in flight at the cut committed first ({n} tasks)"),
        Err(e) => {
            println!("the batch in flight at the cut failed: {e}");
            assert!(e.is_transient(), "in-flight batch: not transient: {e:?}");
        }
    }
    // Keep the database away for two leases at least, so leases expire during the outage.
    let outage = Duration::from_secs(4);
    if let Some(rest) = outage.checked_sub(cut.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    for p in &mut procs {
        assert!(
            p.is_running(),
            "worker {} gave up during the outage:\n{}",
            p.pid(),
            tail(&p.log(), 20)
        );
    }
    let outage_secs = cut.elapsed().as_secs_f64();
    proxy.restore();
    println!("restored after {outage_secs:.1} s");

    // Nothing half-written: the failed enqueues left no row, and the in-flight batch is all
    // or nothing.
    assert!(matches!(
        db.store.get(&TaskRef::from("during-single")).await,
        Err(Error::NotFound(_))
    ));
    let during = db.rows(&TaskFilter::all().code_prefix("during-")).await;
    assert!(
        during.is_empty(),
        "rows from failed enqueues: {}",
        during.len()
    );
    let inflight_rows = db
        .scalar(
            "SELECT COUNT(*) FROM taskrow_task WHERE code LIKE 'inflight-%'",
            vec![],
        )
        .await as usize;
    let inflight_logged = db
        .scalar(
            "SELECT COUNT(DISTINCT code) FROM taskrow_task_log WHERE code LIKE 'inflight-%'",
            vec![],
        )
        .await as usize;
    let inflight_total = inflight_rows + inflight_logged;
    assert!(
        inflight_total == 0 || inflight_rows == IN_FLIGHT,
        "the in-flight batch is half-written: {inflight_rows} rows, {inflight_logged} run"
    );
    if in_flight.is_ok() {
        assert_eq!(inflight_total, IN_FLIGHT);
    }
    let inflight_outcome = match (&in_flight, inflight_total) {
        (Ok(_), _) => "committed before the cut",
        (Err(_), 0) => "rolled back: 0 rows",
        (Err(_), _) => "committed, answer lost in the cut (all rows)",
    };
    if inflight_total > 0 {
        codes.extend((0..IN_FLIGHT).map(|i| format!("inflight-{i:05}")));
    }

    wait_all_exit(&mut procs, Duration::from_secs(90)).await;
    let warnings: Vec<String> = procs[0]
        .log()
        .lines()
        .filter(|l| l.contains(" WARN "))
        .map(|l| l.chars().take(300).collect())
        .collect();
    println!(
        "worker {} logged {} warnings, the first ones:\n  {}",
        procs[0].pid(),
        warnings.len(),
        warnings[..warnings.len().min(4)].join("\n  ")
    );
    for p in &procs {
        let log = p.log();
        assert!(
            log.contains(" WARN ") && log.contains("failed"),
            "worker {} logged no failure during the outage:\n{}",
            p.pid(),
            tail(&log, 20)
        );
    }
    let d = Drained::check(&db, &scratch, &codes, &HashMap::new()).await;
    d.assert_complete("database outage");
    println!(
        "log outcomes {:?}; {} tasks ran again after the outage; proxy accepted {} connections",
        d.outcomes,
        d.rerun,
        proxy.accepted()
    );
    drop(proxy);
    db.done().await;
    Some(Row {
        tasks: codes.len(),
        faults: format!(
            "all connections cut for {outage_secs:.1} s mid-drain; 2 enqueues during it: transient errors after {:.1} s, nothing written; batch of {IN_FLIGHT} in flight at the cut: {inflight_outcome}",
            failed_after.as_secs_f64()
        ),
        lost: d.lost.len(),
        twice_at_once: d.twice_at_once(),
        final_states: d.final_states(),
    })
}

/// Another process holds the SQLite database's write lock for a few seconds mid-drain:
/// workers and an enqueue wait for it; nothing fails and nothing is logged as failing.
pub async fn write_lock_held(backend: Backend, _seed: u64) -> Option<Row> {
    const N: usize = 1000;
    const HOLD_MS: u64 = 3000;
    let db = Db::open(backend).await?;
    let mut scratch = Scratch::new("lock");
    let client = db.client(scratch.recorder());
    let mut codes = enqueue_drains(&client, "lock", N, 10).await;

    let mut cfg = scratch.config(&db.url);
    cfg.exit_when_idle = true;
    cfg.concurrency = 4;
    // A lease shorter than a lock wait would let tasks be claimed twice: leases must be long
    // next to the stalls a deployment expects.
    cfg.lease = Duration::from_secs(10);
    cfg.heartbeat = Some(Duration::from_secs(3));
    let mut procs: Vec<WorkerProcess> = (0..2).map(|_| scratch.spawn(&cfg)).collect();
    logged_at_least(&db, N / 5, Duration::from_secs(60)).await;

    let holder = LockHolder::start(worker_bin(), &db.url, HOLD_MS).await;
    let before = db.log_count().await;
    let t = Instant::now();
    let enqueue = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .enqueue(&Drain { millis: 0 }, drain_options("during-lock"))
                .await
        })
    };
    // Halfway through the hold, no result has been written: the workers are waiting.
    tokio::time::sleep(Duration::from_millis(HOLD_MS / 2)).await;
    let halfway = db.log_count().await;
    enqueue
        .await
        .expect("the enqueue task")
        .expect("an enqueue waits for the lock, then succeeds");
    let waited = t.elapsed();
    codes.push("during-lock".to_owned());
    holder.wait(Duration::from_secs(20)).await;
    println!(
        "{before} results written when the lock was taken, {halfway} halfway through the hold; the enqueue waited {waited:.1?}"
    );
    assert_eq!(
        before, halfway,
        "a result was written while another process held the lock"
    );
    assert!(
        waited >= Duration::from_millis(HOLD_MS / 2),
        "the enqueue did not wait for the lock ({waited:?})"
    );

    wait_all_exit(&mut procs, Duration::from_secs(60)).await;
    for p in &procs {
        let log = p.log();
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains("ERROR"))
            .collect();
        assert!(
            bad.is_empty(),
            "worker {} logged failures while waiting for the lock: {:?}",
            p.pid(),
            &bad[..bad.len().min(5)]
        );
    }
    let d = Drained::check(&db, &scratch, &codes, &HashMap::new()).await;
    d.assert_complete("write lock held");
    assert_eq!(d.rerun, 0, "no task ran twice");
    db.done().await;
    Some(Row {
        tasks: codes.len(),
        faults: format!(
            "write lock held {:.1} s by another process mid-drain; an enqueue waited {:.1} s",
            HOLD_MS as f64 / 1000.0,
            waited.as_secs_f64()
        ),
        lost: d.lost.len(),
        twice_at_once: d.twice_at_once(),
        final_states: format!("{}; 0 errors logged", d.final_states()),
    })
}

/// Issue 15's proof: 3 worker processes register the same schedule (every second) and run for
/// about five seconds; every tick from the first to the last is enqueued exactly once (one task
/// code per tick, no gap, no code run or logged twice), though each tick's task is deleted on
/// success long before the next tick.
pub async fn periodic_ticks(backend: Backend, _seed: u64) -> Option<Row> {
    use taskrow_tests::faults::process::SCHEDULE_NAME;
    const PROCESSES: usize = 3;
    const TICKS: usize = 5;
    let db = Db::open(backend).await?;
    let mut scratch = Scratch::new("ticks");
    let mut cfg = scratch.config(&db.url);
    cfg.schedule_every = Some(Duration::from_secs(1));
    let mut procs: Vec<WorkerProcess> = (0..PROCESSES).map(|_| scratch.spawn(&cfg)).collect();
    for p in &procs {
        wait_for(
            "every process registered the schedule",
            Duration::from_secs(30),
            Duration::from_millis(50),
            || async { p.log().contains("taskrow schedule registered") },
        )
        .await;
    }
    let prefix = format!("{SCHEDULE_NAME}@");
    let ticked =
        |logs: &[taskrow::TaskLog]| logs.iter().filter(|l| l.code.starts_with(&prefix)).count();
    wait_for(
        &format!("{TICKS} ticks run after every process registered"),
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async { ticked(&db.logs().await) > TICKS },
    )
    .await;
    for p in &procs {
        p.terminate();
    }
    wait_all_exit(&mut procs, Duration::from_secs(30)).await;

    // Every tick's code: logged (ran) or still in the table (enqueued just before shutdown).
    let logs = db.logs().await;
    let mut per_code: HashMap<String, usize> = HashMap::new();
    for l in logs.iter().filter(|l| l.code.starts_with(&prefix)) {
        assert_eq!(l.outcome, taskrow::Outcome::Succeeded, "{l:?}");
        *per_code.entry(l.code.clone()).or_default() += 1;
    }
    let twice: Vec<&String> = per_code
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(c, _)| c)
        .collect();
    assert!(twice.is_empty(), "ticks run twice: {twice:?}");
    let left = db.rows(&TaskFilter::all().code_prefix(&prefix)).await;
    for t in &left {
        assert!(
            !per_code.contains_key(&t.code),
            "{} ran and is still there",
            t.code
        );
    }
    let mut ticks: Vec<taskrow::chrono::DateTime<taskrow::chrono::Utc>> = per_code
        .keys()
        .chain(left.iter().map(|t| &t.code))
        .map(|c| {
            c[prefix.len()..]
                .parse()
                .unwrap_or_else(|e| panic!("tick code {c}: {e}"))
        })
        .collect();
    ticks.sort();
    let first = ticks[0];
    let last = *ticks.last().expect("ticks");
    let span = usize::try_from((last - first).num_seconds()).unwrap() + 1;
    assert_eq!(
        ticks.len(),
        span,
        "one task per second from {first} to {last}, none missing or doubled: {ticks:?}"
    );
    let runs = scratch.runs();
    let mut runs_per_code: HashMap<&str, usize> = HashMap::new();
    let mut pids: HashSet<u32> = HashSet::new();
    for r in runs.iter().filter(|r| r.code.starts_with(&prefix)) {
        *runs_per_code.entry(r.code.as_str()).or_default() += 1;
        pids.insert(r.pid);
    }
    assert!(
        runs_per_code.values().all(|n| *n == 1),
        "handler records: each tick ran once"
    );
    assert_eq!(runs_per_code.len(), per_code.len());
    let row = db
        .store
        .schedules()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.name == SCHEDULE_NAME)
        .expect("the schedule's row");
    assert_eq!(
        row.last_tick, last,
        "the row's last tick is the last task's"
    );
    println!(
        "{} ticks from {first} to {last}, each enqueued once by {PROCESSES} processes; \
         runs by {} processes, {} enqueued just before shutdown",
        ticks.len(),
        pids.len(),
        left.len()
    );
    db.done().await;
    Some(Row {
        tasks: ticks.len(),
        faults: format!("none: {PROCESSES} processes register one schedule (every 1 s)"),
        lost: 0,
        twice_at_once: "0".to_owned(),
        final_states: format!(
            "{} ticks, each enqueued once, no gap; {} run once each, {} pending at shutdown",
            ticks.len(),
            per_code.len(),
            left.len()
        ),
    })
}

/// The registry's time: the database's where it has one (the workers' clock follows it),
/// else this host's.
async fn registry_now(db: &Db) -> taskrow::chrono::DateTime<taskrow::chrono::Utc> {
    db.store
        .database_time()
        .await
        .expect("the database's time can be read")
        .unwrap_or_else(taskrow::chrono::Utc::now)
}

/// The worker registry across processes: two worker processes beat their rows; one is killed
/// (`kill -9`: no shutdown, no removal), the other stopped with SIGTERM. The stopped one's row
/// leaves with it; the killed one's stays, its last beat frozen, and is judged gone once three
/// beats are missed.
pub async fn registry_rows(backend: Backend, _seed: u64) -> Option<Row> {
    let db = Db::open(backend).await?;
    let mut scratch = Scratch::new("registry");
    let mut cfg = scratch.config(&db.url);
    cfg.heartbeat = Some(Duration::from_millis(300));
    let mut killed_cfg = cfg.clone();
    killed_cfg.id = Some("registry-killed".into());
    let mut stopped_cfg = cfg.clone();
    stopped_cfg.id = Some("registry-stopped".into());
    let mut killed = scratch.spawn(&killed_cfg);
    let mut stopped = scratch.spawn(&stopped_cfg);
    let alive = |id: &'static str| {
        let db = &db;
        move || async move {
            let now = registry_now(db).await;
            db.store
                .workers(now)
                .await
                .unwrap()
                .iter()
                .any(|w| w.id == id && w.alive)
        }
    };
    wait_for(
        "both workers alive in the registry",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async { alive("registry-killed")().await && alive("registry-stopped")().await },
    )
    .await;
    let pids: HashMap<String, u32> = db
        .store
        .workers(registry_now(&db).await)
        .await
        .unwrap()
        .into_iter()
        .map(|w| (w.id, w.pid))
        .collect();
    assert_eq!(
        pids["registry-killed"],
        killed.pid(),
        "the row names its process"
    );

    killed.kill9();
    stopped.terminate();
    assert!(
        stopped.wait_exit(Duration::from_secs(30)).await.is_some(),
        "the stopped worker exits"
    );
    wait_for(
        "the killed worker judged gone",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async { !alive("registry-killed")().await },
    )
    .await;
    let rows = db.store.workers(registry_now(&db).await).await.unwrap();
    let ids: Vec<&str> = rows.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(
        ids,
        ["registry-killed"],
        "the stopped worker removed its row; the killed one could not"
    );
    let frozen = rows[0].last_beat;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let later = db.store.workers(registry_now(&db).await).await.unwrap();
    assert_eq!(later[0].last_beat, frozen, "no beat after the kill");
    assert!(!later[0].alive);
    db.done().await;
    Some(Row {
        tasks: 0,
        faults: "kill -9 one worker, SIGTERM another (beats every 300 ms)".into(),
        lost: 0,
        twice_at_once: "-".into(),
        final_states:
            "stopped worker's row removed; killed worker's row kept, gone after 3 missed beats"
                .into(),
    })
}
