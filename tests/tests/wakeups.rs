//! Wake-ups from other processes know nothing of a worker's queues: a worker whose queue is
//! quiet, beside another process flooding another queue, must not claim at every wake-up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use taskrow::{Client, EnqueueOptions, LogFilter, TaskStore};
use taskrow_sqlite::SqliteStore;
use taskrow_tests::tasks::Noop;
use taskrow_tests::wrappers::{Op, ReplyLost};

/// Another store on the same SQLite file (as another process) enqueues into `theirs` every
/// 5 ms for 3 s; a worker running only `mine`, poll 1 s, is woken by each of those commits.
/// It claims a few times and then waits longer between claims (not ~300 claims), and a task
/// in `mine` still runs within its poll interval and a little.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_elsewhere_does_not_make_an_idle_worker_claim_at_every_wakeup() {
    let (store, dir) = taskrow_sqlite::testing::temp_store().await;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("tasks.db").display()
    );
    let other = Client::new(SqliteStore::connect(&url).await.unwrap());
    let counted = Arc::new(ReplyLost::new(Arc::new(store.clone())));
    assert!(counted.wakeups().is_some(), "a SQLite file has wake-ups");
    let client = Client::new(counted.clone());
    let worker = client
        .worker()
        .queue("mine", 2)
        .poll_interval(Duration::from_secs(1))
        .start()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let before = counted.calls(Op::Claim);
    let flood_for = Duration::from_secs(3);
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < flood_for {
        other
            .enqueue(&Noop {}, EnqueueOptions::new().queue("theirs"))
            .await
            .unwrap();
        n += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let claims = counted.calls(Op::Claim) - before;
    println!("{n} enqueues elsewhere in {flood_for:?}: {claims} claims by the idle worker");
    // Without the pause: a claim at nearly every wake-up (79 claims for 127 enqueues, measured).
    assert!(claims <= 30, "{claims} claims for {n} others' enqueues");

    // Its own work still runs: a task in `mine`, enqueued elsewhere, within the poll and a
    // little, with the flood going on.
    let code = "mine-1";
    other
        .enqueue(&Noop {}, EnqueueOptions::new().queue("mine").code(code))
        .await
        .unwrap();
    let sent = Instant::now();
    loop {
        other
            .enqueue(&Noop {}, EnqueueOptions::new().queue("theirs"))
            .await
            .unwrap();
        if !store.logs(&LogFilter::code(code)).await.unwrap().is_empty() {
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(3),
            "its own task waited more than 3 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("its own task ran after {:?}", sent.elapsed());
    worker.shutdown().await;
}
