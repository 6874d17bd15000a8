//! The worker registry ([`taskrow::registry`]): the store's beat, listing (alive or gone at a
//! given `now`), removal and bounded prune; and started workers keeping their row.

use std::sync::Arc;
use std::time::Duration;

use taskrow::chrono::{DateTime, TimeDelta, Utc};
use taskrow::registry::{GONE_KEPT, WorkerBeat, WorkerRecord};
use taskrow::{
    Client, Clock, EnqueueOptions, Error, HealthCheck, ManualClock, TaskState, TaskStore,
    WorkerHealth,
};

use super::worker::{Probe, UntilShutdown, eventually};
use super::{secs, t0};
use crate::wrappers::{Op, ReplyLost};

/// A beat of `id` at `now` whose row goes stale 30 s later.
fn beat(id: &str, now: DateTime<Utc>) -> WorkerBeat {
    WorkerBeat::new(id, t0(), now, Duration::from_secs(10))
}

async fn list(store: &dyn TaskStore, now: DateTime<Utc>) -> Vec<WorkerRecord> {
    store.workers(now).await.expect("workers succeeds")
}

async fn ids(store: &dyn TaskStore, now: DateTime<Utc>) -> Vec<String> {
    list(store, now).await.into_iter().map(|w| w.id).collect()
}

/// A first beat inserts the row with every field of the beat (microseconds and queue names
/// kept exactly); a later beat of the same id replaces it whole.
pub async fn beat_inserts_then_replaces(store: Arc<dyn TaskStore>) {
    let started = t0() + TimeDelta::microseconds(123_457);
    let mut first = WorkerBeat::new("w1", started, secs(1), Duration::from_secs(5))
        .host("host-a")
        .pid(4242)
        .queues(["emails", "a,b", "default"])
        .concurrency(12)
        .running(3);
    first.now += TimeDelta::microseconds(7);
    store.beat_worker(&first).await.unwrap();
    let rows = list(&*store, secs(2)).await;
    assert_eq!(rows, vec![WorkerRecord::from_beat(&first, secs(2))]);
    let w = &rows[0];
    assert_eq!(
        (w.host.as_str(), w.pid, w.concurrency, w.running),
        ("host-a", 4242, 12, 3)
    );
    assert_eq!(w.queues, ["emails", "a,b", "default"]);
    assert_eq!(w.started_at, started);
    assert_eq!(w.last_beat, secs(1) + TimeDelta::microseconds(7));
    assert_eq!(w.stale_at, secs(16), "three beats of 5 s after the beat");
    assert!(w.alive);

    // A restart under the same id (another host, another start): the row is the new one's.
    let second = WorkerBeat::new("w1", secs(40), secs(41), Duration::from_secs(5))
        .host("host-b")
        .pid(7)
        .concurrency(1);
    store.beat_worker(&second).await.unwrap();
    let rows = list(&*store, secs(42)).await;
    assert_eq!(rows, vec![WorkerRecord::from_beat(&second, secs(42))]);
    assert!(rows[0].queues.is_empty(), "no queue named: every queue");
}

/// A row is alive while its stale time is after the `now` given, gone from that time on, and
/// listed either way.
pub async fn alive_until_stale(store: Arc<dyn TaskStore>) {
    store.beat_worker(&beat("w", secs(0))).await.unwrap();
    let at = |n: i64| {
        let store = store.clone();
        async move { list(&*store, secs(n)).await[0].alive }
    };
    assert!(at(0).await);
    assert!(at(29).await);
    assert!(
        store
            .workers(secs(30) - TimeDelta::microseconds(1))
            .await
            .unwrap()[0]
            .alive,
        "alive up to its stale time"
    );
    assert!(!at(30).await, "gone at its stale time");
    assert!(!at(3600).await, "gone rows are still listed");
    // A beat brings it back.
    store.beat_worker(&beat("w", secs(3600))).await.unwrap();
    assert!(at(3601).await);
}

/// Rows are listed by id; an empty registry is an empty list.
pub async fn lists_by_id(store: Arc<dyn TaskStore>) {
    assert!(list(&*store, secs(0)).await.is_empty());
    for id in ["b", "c", "a"] {
        store.beat_worker(&beat(id, secs(0))).await.unwrap();
    }
    assert_eq!(ids(&*store, secs(1)).await, ["a", "b", "c"]);
}

/// Removal answers whether there was a row, and leaves the others.
pub async fn remove_answers_whether_there_was_a_row(store: Arc<dyn TaskStore>) {
    store.beat_worker(&beat("a", secs(0))).await.unwrap();
    store.beat_worker(&beat("b", secs(0))).await.unwrap();
    assert!(store.remove_worker("a").await.unwrap());
    assert!(!store.remove_worker("a").await.unwrap());
    assert!(!store.remove_worker("never").await.unwrap());
    assert_eq!(ids(&*store, secs(1)).await, ["b"]);
}

/// A prune removes at most `limit` rows gone before the time given, the longest gone first;
/// alive rows and rows gone since then stay.
pub async fn prune_is_bounded_and_oldest_first(store: Arc<dyn TaskStore>) {
    // Stale at 30, 40, 50, 60, 70 s; one alive (stale at 1030 s).
    for (i, id) in ["e", "d", "c", "b", "a"].into_iter().enumerate() {
        store
            .beat_worker(&beat(id, secs(10 * i as i64)))
            .await
            .unwrap();
    }
    store.beat_worker(&beat("alive", secs(1000))).await.unwrap();
    assert_eq!(store.prune_workers(secs(65), 2).await.unwrap(), 2);
    assert_eq!(ids(&*store, secs(1000)).await, ["a", "alive", "b", "c"]);
    assert_eq!(store.prune_workers(secs(65), 100).await.unwrap(), 2);
    assert_eq!(ids(&*store, secs(1000)).await, ["a", "alive"]);
    assert_eq!(
        store.prune_workers(secs(70), 100).await.unwrap(),
        0,
        "stale at 70 s is not gone before 70 s"
    );
    assert_eq!(store.prune_workers(secs(2000), 0).await.unwrap(), 0);
    assert_eq!(ids(&*store, secs(1000)).await, ["a", "alive"]);
}

/// A row beaten again is no longer gone: a prune that races with the beat keeps it, and
/// pruners racing each other remove each row once.
pub async fn prune_keeps_rows_beaten_again(store: Arc<dyn TaskStore>) {
    for i in 0..20 {
        store
            .beat_worker(&beat(&format!("w{i:02}"), secs(0)))
            .await
            .unwrap();
    }
    // w00 comes back before the prune.
    store.beat_worker(&beat("w00", secs(100))).await.unwrap();
    let pruners = (0..4).map(|_| {
        let store = store.clone();
        async move { store.prune_workers(secs(60), 100).await.unwrap() }
    });
    let removed: u64 = futures::future::join_all(pruners).await.into_iter().sum();
    assert_eq!(removed, 19, "each gone row removed once among the pruners");
    assert_eq!(ids(&*store, secs(101)).await, ["w00"]);
}

/// Concurrent beats of one id leave one row; of many ids, one row each.
pub async fn concurrent_beats_leave_one_row_each(store: Arc<dyn TaskStore>) {
    let beats = (0..16).map(|i| {
        let store = store.clone();
        async move {
            let id = format!("w{}", i % 4);
            store
                .beat_worker(&beat(&id, secs(i)).running(i as u32))
                .await
                .unwrap();
        }
    });
    futures::future::join_all(beats).await;
    assert_eq!(ids(&*store, secs(20)).await, ["w0", "w1", "w2", "w3"]);
}

/// Beats the contract refuses change nothing: an empty or too long id, a queue name with a
/// space, a stale time not after the beat.
pub async fn bad_beats_are_refused(store: Arc<dyn TaskStore>) {
    let long = "x".repeat(taskrow::record::MAX_CODE_CHARS + 1);
    let mut not_after = beat("w", secs(5));
    not_after.stale_at = secs(5);
    for bad in [
        beat("", secs(0)),
        beat(&long, secs(0)),
        beat("w", secs(0)).queues(["two words"]),
        not_after,
    ] {
        let r = store.beat_worker(&bad).await;
        assert!(
            matches!(r, Err(Error::InvalidInput(_))),
            "{bad:?} refused, got {r:?}"
        );
    }
    assert!(list(&*store, secs(0)).await.is_empty());
    // The longest id fits (the lease owner column's length).
    let longest = "y".repeat(taskrow::record::MAX_CODE_CHARS);
    store.beat_worker(&beat(&longest, secs(0))).await.unwrap();
    assert_eq!(ids(&*store, secs(1)).await, [longest]);
}

fn client(store: Arc<dyn TaskStore>, probe: &Arc<Probe>, clock: &ManualClock) -> Client {
    Client::builder(store)
        .data_arc(probe.clone())
        .clock(clock.clone())
        .heartbeat(Some(Duration::from_millis(100)))
        .build()
        .unwrap()
}

/// A started worker has one row however many queue lanes it runs (its queues, their slots
/// summed, its runs counted), beats while it runs, and removes the row at shutdown.
pub async fn started_worker_appears_and_leaves_at_shutdown(store: Arc<dyn TaskStore>) {
    let probe = Arc::new(Probe::default());
    let clock = ManualClock::new(t0());
    let c = client(store.clone(), &probe, &clock);
    c.enqueue(
        &UntilShutdown {},
        EnqueueOptions::new().code("long").queue("emails"),
    )
    .await
    .unwrap();
    let w = c
        .worker()
        .id("registry-worker")
        .queue("emails", 2)
        .queue("default", 3)
        .poll_interval(Duration::from_millis(10))
        .start()
        .unwrap();
    eventually(
        "the worker's row with its run",
        Duration::from_secs(10),
        || {
            let c = c.clone();
            async move {
                c.workers()
                    .await
                    .unwrap()
                    .first()
                    .is_some_and(|w| w.running == 1)
            }
        },
    )
    .await;
    let rows = c.workers().await.unwrap();
    assert_eq!(rows.len(), 1, "one row for both lanes: {rows:?}");
    let row = &rows[0];
    assert_eq!(row.id, "registry-worker");
    assert_eq!(row.queues, ["emails", "default"]);
    assert_eq!(row.concurrency, 5);
    assert_eq!(row.pid, std::process::id());
    assert_eq!(row.version, env!("CARGO_PKG_VERSION"));
    assert!(row.alive);
    assert_eq!(row.started_at, t0());
    // It keeps beating: with the clock moved, the next beats carry the new time.
    clock.advance(Duration::from_secs(60));
    eventually("a beat at the moved clock", Duration::from_secs(10), || {
        let c = c.clone();
        async move { c.workers().await.unwrap()[0].last_beat == secs(60) }
    })
    .await;
    let health = c
        .health(&HealthCheck::new().worker("registry-worker"))
        .await;
    assert!(health.healthy, "{health:?}");
    let report = w.shutdown().await;
    assert_eq!(report.finished, 1);
    assert!(
        c.workers().await.unwrap().is_empty(),
        "the row leaves at shutdown"
    );
    let health = c
        .health(&HealthCheck::new().worker("registry-worker"))
        .await;
    assert!(!health.healthy);
    assert!(
        health.reason.contains("not in the registry"),
        "{}",
        health.reason
    );
}

/// A worker whose beats fail (every reply lost) runs its tasks all the same and stays
/// healthy in its own eyes; once beats get through again its row is fresh.
pub async fn failed_beats_never_stop_the_runs(store: Arc<dyn TaskStore>) {
    let lossy = Arc::new(ReplyLost::new(store.clone()));
    lossy.arm(Op::BeatWorker, 1_000_000);
    let probe = Arc::new(Probe::default());
    let clock = ManualClock::new(t0());
    let c = client(lossy.clone(), &probe, &clock);
    let w = c
        .worker()
        .poll_interval(Duration::from_millis(10))
        .start()
        .unwrap();
    eventually("a lost beat", Duration::from_secs(10), || {
        let l = lossy.clone();
        async move { l.lost(Op::BeatWorker) >= 2 }
    })
    .await;
    for i in 0..3 {
        c.enqueue(
            &crate::tasks::Noop {},
            EnqueueOptions::new().code(format!("n{i}")),
        )
        .await
        .unwrap();
    }
    eventually("the tasks run", Duration::from_secs(10), || {
        let s = store.clone();
        async move {
            s.counts()
                .await
                .unwrap()
                .iter()
                .all(|n| n.state != TaskState::Pending && n.state != TaskState::Running)
        }
    })
    .await;
    assert_eq!(w.health(), WorkerHealth::Running);
    lossy.disarm(Op::BeatWorker);
    let seen = lossy.lost(Op::BeatWorker);
    clock.advance(Duration::from_secs(5));
    eventually("a beat that gets through", Duration::from_secs(10), || {
        let c = c.clone();
        async move {
            c.workers()
                .await
                .unwrap()
                .first()
                .is_some_and(|w| w.last_beat == secs(5))
        }
    })
    .await;
    assert_eq!(lossy.lost(Op::BeatWorker), seen);
    w.shutdown().await;
    assert!(c.workers().await.unwrap().is_empty());
}

/// A starting worker prunes rows gone for longer than [`GONE_KEPT`]; rows gone since less
/// stay visible as gone.
pub async fn started_worker_prunes_rows_long_gone(store: Arc<dyn TaskStore>) {
    let gone_kept = TimeDelta::from_std(GONE_KEPT).unwrap();
    let long_gone = WorkerBeat::new("long-gone", t0(), t0(), Duration::from_secs(1));
    let lately_gone = WorkerBeat::new("lately-gone", t0(), t0(), Duration::from_secs(1));
    store.beat_worker(&long_gone).await.unwrap();
    store.beat_worker(&lately_gone).await.unwrap();
    // Lately gone: its beats stopped shortly before the worker starts.
    let mut lately = lately_gone.clone();
    lately.now = t0() + gone_kept - TimeDelta::seconds(10);
    lately.stale_at = lately.now + TimeDelta::seconds(3);
    store.beat_worker(&lately).await.unwrap();
    let probe = Arc::new(Probe::default());
    let clock = ManualClock::new(t0() + gone_kept + TimeDelta::seconds(10));
    let c = client(store.clone(), &probe, &clock);
    let w = c
        .worker()
        .id("pruner")
        .poll_interval(Duration::from_millis(10))
        .start()
        .unwrap();
    eventually("the long-gone row pruned", Duration::from_secs(10), || {
        let s = store.clone();
        let now = clock.now();
        async move {
            let ids: Vec<String> = s
                .workers(now)
                .await
                .unwrap()
                .into_iter()
                .map(|w| w.id)
                .collect();
            ids == ["lately-gone", "pruner"]
        }
    })
    .await;
    let rows = c.workers().await.unwrap();
    assert!(!rows[0].alive && rows[1].alive, "{rows:?}");
    w.shutdown().await;
}
