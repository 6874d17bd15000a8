//! Schedules (periodic tasks): the store's registration and conditional advance of ticks, and
//! workers ticking them with a manual clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use taskrow::chrono::{DateTime, TimeDelta, Utc};
use taskrow::schedule::{AdvanceStatus, MissedTicks, Schedule, ScheduleRecord};
use taskrow::{
    Client, EnqueueOptions, Error, LogFilter, ManualClock, Outcome, TaskRef, TaskState, TaskStore,
    Worker,
};

use super::{get, insert_with, list_codes, opts, secs, t0};
use crate::tasks::Noop;
use crate::wrappers::{Op, ReplyLost};

fn minutes(n: i64) -> DateTime<Utc> {
    t0() + TimeDelta::minutes(n)
}

/// `every` seconds, enqueuing a [`Noop`].
fn every(name: &str, every: u64) -> Schedule {
    Schedule::every(name, Duration::from_secs(every))
        .expect("a valid interval")
        .task(Noop {})
}

async fn row(store: &dyn TaskStore, name: &str) -> ScheduleRecord {
    store
        .schedules()
        .await
        .expect("schedules succeeds")
        .into_iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("schedule `{name}` has a row"))
}

async fn advance(
    store: &dyn TaskStore,
    s: &Schedule,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> AdvanceStatus {
    store
        .advance_schedule(&s.advance(from, to, true, now).expect("a valid advance"))
        .await
        .expect("advance_schedule succeeds")
}

/// A first registration inserts the row with its definition and `last_tick = now`; a second
/// one of the same definition only records when it was registered.
pub async fn registers_once_per_name(store: Arc<dyn TaskStore>) {
    let s = every("reg", 10);
    let first = store
        .register_schedule(&s.registration(secs(3)).unwrap())
        .await
        .unwrap();
    assert_eq!(first.name, "reg");
    assert_eq!(first.spec, "every 10s");
    assert_eq!(first.time_zone, "UTC");
    assert_eq!(first.task_type, "conformance.noop");
    assert_eq!(first.fingerprint, s.check().unwrap());
    assert_eq!(first.last_tick, secs(3));
    assert_eq!(first.next_tick, Some(secs(10)));
    assert_eq!(
        (first.created_at, first.registered_at, first.updated_at),
        (secs(3), secs(3), secs(3))
    );
    let again = store
        .register_schedule(&s.registration(secs(7)).unwrap())
        .await
        .unwrap();
    assert_eq!(
        again,
        ScheduleRecord {
            registered_at: secs(7),
            ..first.clone()
        }
    );
    assert_eq!(store.schedules().await.unwrap(), vec![again]);
}

/// Concurrent registrations of one new name leave one row.
pub async fn concurrent_registrations_leave_one_row(store: Arc<dyn TaskStore>) {
    let s = every("race", 10);
    let regs = (0..8).map(|_| {
        let store = store.clone();
        let r = s.registration(t0()).unwrap();
        tokio::spawn(async move { store.register_schedule(&r).await })
    });
    let ids: Vec<i64> = futures::future::join_all(regs)
        .await
        .into_iter()
        .map(|r| r.unwrap().expect("register succeeds").id)
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one row: {ids:?}");
    assert_eq!(store.schedules().await.unwrap().len(), 1);
}

/// An advance from the row's last tick moves it and inserts the tick's task, due at the tick,
/// under the tick's code.
pub async fn advance_moves_tick_and_inserts_task(store: Arc<dyn TaskStore>) {
    let s = every("adv", 10).options(EnqueueOptions::new().biz_type("reports"));
    store
        .register_schedule(&s.registration(t0()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        advance(&*store, &s, t0(), secs(10), secs(11)).await,
        AdvanceStatus::Advanced
    );
    let r = row(&*store, "adv").await;
    assert_eq!((r.last_tick, r.next_tick), (secs(10), Some(secs(20))));
    assert_eq!(r.updated_at, secs(11));
    let task = get(&*store, "adv@2026-01-01T00:00:10Z").await;
    assert_eq!(task.state, TaskState::Pending);
    assert_eq!(task.next_run_at, Some(secs(10)));
    assert_eq!(task.created_at, secs(11));
    assert_eq!(task.biz_type, "reports");
    assert_eq!(task.task_type, "conformance.noop");
}

/// Of two advances from the same tick, the second is lost and changes nothing; also when many
/// race at once, exactly one moves the row and one task is inserted.
pub async fn second_contender_loses(store: Arc<dyn TaskStore>) {
    let s = every("duel", 10);
    store
        .register_schedule(&s.registration(t0()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        advance(&*store, &s, t0(), secs(10), secs(10)).await,
        AdvanceStatus::Advanced
    );
    assert_eq!(
        advance(&*store, &s, t0(), secs(10), secs(10)).await,
        AdvanceStatus::Lost
    );
    assert_eq!(row(&*store, "duel").await.last_tick, secs(10));

    let racers = (0..8).map(|_| {
        let store = store.clone();
        let a = s.advance(secs(10), secs(20), true, secs(20)).unwrap();
        tokio::spawn(async move { store.advance_schedule(&a).await })
    });
    let won = futures::future::join_all(racers)
        .await
        .into_iter()
        .filter(|r| {
            *r.as_ref().unwrap().as_ref().expect("advance succeeds") == AdvanceStatus::Advanced
        })
        .count();
    assert_eq!(won, 1, "exactly one contender moves a tick");
    assert_eq!(
        list_codes(&*store, &taskrow::TaskFilter::all()).await,
        ["duel@2026-01-01T00:00:10Z", "duel@2026-01-01T00:00:20Z"]
    );
}

/// A tick whose task already succeeded and was deleted is not enqueued again by a contender
/// that read the old tick: the row, not the task, says the tick is done.
pub async fn deleted_tick_task_is_not_enqueued_again(store: Arc<dyn TaskStore>) {
    let s = every("gone", 10);
    store
        .register_schedule(&s.registration(t0()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        advance(&*store, &s, t0(), secs(10), secs(10)).await,
        AdvanceStatus::Advanced
    );
    let code = "gone@2026-01-01T00:00:10Z";
    store.delete(&TaskRef::from(code), secs(11)).await.unwrap();
    assert_eq!(
        advance(&*store, &s, t0(), secs(10), secs(12)).await,
        AdvanceStatus::Lost
    );
    assert!(matches!(
        store.get(&TaskRef::from(code)).await,
        Err(Error::NotFound(_))
    ));
}

/// A task that exists under the tick's code (whatever its state) is left as it is: the tick is
/// enqueued if absent.
pub async fn existing_tick_task_is_kept(store: Arc<dyn TaskStore>) {
    let s = every("kept", 10);
    store
        .register_schedule(&s.registration(t0()).unwrap())
        .await
        .unwrap();
    let code = "kept@2026-01-01T00:00:10Z";
    let before = insert_with(&*store, opts(code).biz_type("by-hand"), secs(1)).await;
    assert_eq!(
        advance(&*store, &s, t0(), secs(10), secs(10)).await,
        AdvanceStatus::Advanced
    );
    assert_eq!(get(&*store, code).await, before);
    assert_eq!(row(&*store, "kept").await.last_tick, secs(10));
}

/// A skipped (missed) tick moves the row without a task.
pub async fn advance_without_task(store: Arc<dyn TaskStore>) {
    let s = every("skip", 10);
    store
        .register_schedule(&s.registration(t0()).unwrap())
        .await
        .unwrap();
    let a = s.advance(t0(), secs(50), false, secs(55)).unwrap();
    assert_eq!(
        store.advance_schedule(&a).await.unwrap(),
        AdvanceStatus::Advanced
    );
    assert_eq!(row(&*store, "skip").await.last_tick, secs(50));
    assert!(
        list_codes(&*store, &taskrow::TaskFilter::all())
            .await
            .is_empty()
    );
}

/// An advance that does not move forward is invalid input and changes nothing.
pub async fn advance_refuses_backward(store: Arc<dyn TaskStore>) {
    let s = every("back", 10);
    store
        .register_schedule(&s.registration(secs(20)).unwrap())
        .await
        .unwrap();
    let a = s.advance(secs(20), secs(20), true, secs(30)).unwrap();
    assert!(matches!(
        store.advance_schedule(&a).await,
        Err(Error::InvalidInput(_))
    ));
    let a = s.advance(secs(20), secs(10), true, secs(30)).unwrap();
    assert!(matches!(
        store.advance_schedule(&a).await,
        Err(Error::InvalidInput(_))
    ));
    assert_eq!(row(&*store, "back").await.last_tick, secs(20));
}

/// Registering a changed definition replaces the row's definition and starts its ticks after
/// the change; the old definition's advances are lost from then on.
pub async fn changed_definition_replaces_row(store: Arc<dyn TaskStore>) {
    let old = every("chg", 10);
    store
        .register_schedule(&old.registration(t0()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        advance(&*store, &old, t0(), secs(10), secs(10)).await,
        AdvanceStatus::Advanced
    );
    let new = Schedule::cron("chg", "*/15 * * * * *")
        .unwrap()
        .task(Noop {})
        .options(EnqueueOptions::new().biz_type("v2"));
    let r = store
        .register_schedule(&new.registration(secs(12)).unwrap())
        .await
        .unwrap();
    assert_eq!(r.spec, "*/15 * * * * *");
    assert_eq!(r.fingerprint, new.check().unwrap());
    assert_ne!(r.fingerprint, old.check().unwrap());
    assert_eq!(
        r.last_tick,
        secs(12),
        "the new definition ticks after the change"
    );
    assert_eq!(r.next_tick, Some(secs(15)));
    assert_eq!((r.registered_at, r.updated_at), (secs(12), secs(12)));
    assert_eq!(r.created_at, t0());
    // The old definition's instance read `last_tick` 00:12 and tries 00:20: refused.
    assert_eq!(
        advance(&*store, &old, secs(12), secs(20), secs(20)).await,
        AdvanceStatus::Lost
    );
    assert_eq!(
        advance(&*store, &new, secs(12), secs(15), secs(15)).await,
        AdvanceStatus::Advanced
    );
    assert_eq!(
        get(&*store, "chg@2026-01-01T00:00:15Z").await.biz_type,
        "v2"
    );
}

/// Removing a schedule deletes its row (its tasks stay); a second removal is
/// [`Error::ScheduleNotFound`]; advances are lost; a new registration starts afresh.
pub async fn removed_schedule(store: Arc<dyn TaskStore>) {
    let s = every("rm", 10);
    store
        .register_schedule(&s.registration(t0()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        advance(&*store, &s, t0(), secs(10), secs(10)).await,
        AdvanceStatus::Advanced
    );
    let removed = store.remove_schedule("rm").await.unwrap();
    assert_eq!((removed.name.as_str(), removed.last_tick), ("rm", secs(10)));
    assert!(store.schedules().await.unwrap().is_empty());
    assert!(matches!(
        store.remove_schedule("rm").await,
        Err(Error::ScheduleNotFound(n)) if n == "rm"
    ));
    assert_eq!(
        advance(&*store, &s, secs(10), secs(20), secs(20)).await,
        AdvanceStatus::Lost
    );
    get(&*store, "rm@2026-01-01T00:00:10Z").await;
    let again = store
        .register_schedule(&s.registration(secs(25)).unwrap())
        .await
        .unwrap();
    assert_eq!(again.last_tick, secs(25));
}

/// Schedules are listed by name.
pub async fn lists_by_name(store: Arc<dyn TaskStore>) {
    for name in ["b", "c", "a"] {
        store
            .register_schedule(&every(name, 10).registration(t0()).unwrap())
            .await
            .unwrap();
    }
    let names: Vec<String> = store
        .schedules()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
}

fn worker_with(
    store: &Arc<dyn TaskStore>,
    clock: &ManualClock,
    id: &str,
    s: &[Schedule],
) -> Worker {
    let client = Client::builder(store.clone())
        .clock(clock.clone())
        .id(id)
        .build()
        .unwrap();
    let mut b = client.worker();
    for s in s {
        b = b.schedule(s.clone());
    }
    b.build().unwrap()
}

/// The codes of every log row, with how many rows each has.
async fn runs_by_code(store: &dyn TaskStore) -> HashMap<String, Vec<Outcome>> {
    let mut m: HashMap<String, Vec<Outcome>> = HashMap::new();
    for l in store.logs(&LogFilter::default()).await.unwrap() {
        m.entry(l.code).or_default().push(l.outcome);
    }
    m
}

/// Three workers registering the same schedule, driven tick by tick for 100 ticks (each
/// tick's task runs and is deleted on success before the next): every tick is enqueued and run
/// exactly once.
pub async fn three_workers_hundred_ticks(store: Arc<dyn TaskStore>) {
    let clock = ManualClock::new(t0());
    let s = every("beat", 10);
    let workers: Vec<Worker> = (0..3)
        .map(|i| worker_with(&store, &clock, &format!("w{i}"), std::slice::from_ref(&s)))
        .collect();
    let mut scheduled = 0;
    for step in 0..=100 {
        if step > 0 {
            clock.advance(Duration::from_secs(10));
        }
        let reports = futures::future::join_all(workers.iter().map(|w| w.run_until_idle())).await;
        for r in reports {
            scheduled += r.expect("run_until_idle succeeds").scheduled;
        }
    }
    assert_eq!(scheduled, 100);
    let runs = runs_by_code(&*store).await;
    assert_eq!(runs.len(), 100, "100 ticks, 100 tasks: {runs:?}");
    for k in 1..=100 {
        let code = s.tick_code(secs(10 * k));
        assert_eq!(
            runs.get(&code).map(Vec::as_slice),
            Some(&[Outcome::Succeeded][..]),
            "tick {code} ran once"
        );
    }
    assert!(
        store.counts().await.unwrap().is_empty(),
        "every task was deleted on success"
    );
    assert_eq!(row(&*store, "beat").await.last_tick, secs(1000));
}

/// Policy skip: a late tick within the grace is enqueued; ticks missed while every worker was
/// down are dropped, and the schedule goes on with the next tick.
pub async fn missed_ticks_skip(store: Arc<dyn TaskStore>) {
    let clock = ManualClock::new(t0());
    let s = every("skipper", 600);
    let w = worker_with(&store, &clock, "w", std::slice::from_ref(&s));
    assert_eq!(w.run_until_idle().await.unwrap().scheduled, 0);
    clock.set(minutes(10) + TimeDelta::seconds(30));
    assert_eq!(
        w.run_until_idle().await.unwrap().scheduled,
        1,
        "30 s late: on time"
    );
    drop(w);
    // Every worker down from 00:11 to 00:45: 00:20, 00:30 and 00:40 are missed.
    clock.set(minutes(45));
    let w = worker_with(&store, &clock, "w2", std::slice::from_ref(&s));
    assert_eq!(w.run_until_idle().await.unwrap().scheduled, 0);
    assert_eq!(row(&*store, "skipper").await.last_tick, minutes(40));
    clock.set(minutes(50));
    assert_eq!(w.run_until_idle().await.unwrap().scheduled, 1);
    let codes: Vec<String> = runs_by_code(&*store).await.into_keys().collect();
    let mut codes = codes;
    codes.sort();
    assert_eq!(
        codes,
        [
            "skipper@2026-01-01T00:10:00Z",
            "skipper@2026-01-01T00:50:00Z"
        ]
    );
}

/// Policy run-latest: ticks missed while every worker was down collapse into one run of the
/// latest of them; then the schedule goes on.
pub async fn missed_ticks_run_latest(store: Arc<dyn TaskStore>) {
    let clock = ManualClock::new(t0());
    let s = every("catcher", 600).missed(MissedTicks::RunLatest);
    let w = worker_with(&store, &clock, "w", std::slice::from_ref(&s));
    w.run_until_idle().await.unwrap();
    drop(w);
    clock.set(minutes(45));
    let w = worker_with(&store, &clock, "w2", std::slice::from_ref(&s));
    assert_eq!(w.run_until_idle().await.unwrap().scheduled, 1);
    clock.set(minutes(50));
    assert_eq!(w.run_until_idle().await.unwrap().scheduled, 1);
    let mut codes: Vec<String> = runs_by_code(&*store).await.into_keys().collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            "catcher@2026-01-01T00:40:00Z",
            "catcher@2026-01-01T00:50:00Z"
        ]
    );
}

/// A changed schedule is taken up by the worker that registers it at its start; workers with
/// the other definition stop ticking it (and do not overwrite it) until one of them starts
/// again: the definition of the instance that started last is the one ticked.
pub async fn changed_schedule_is_taken_up_on_start(store: Arc<dyn TaskStore>) {
    let clock = ManualClock::new(t0());
    let v1 = every("job", 600).options(EnqueueOptions::new().biz_type("v1"));
    let v2 = every("job", 300).options(EnqueueOptions::new().biz_type("v2"));
    let old = worker_with(&store, &clock, "old", std::slice::from_ref(&v1));
    old.run_until_idle().await.unwrap();
    clock.set(minutes(10));
    assert_eq!(old.run_until_idle().await.unwrap().scheduled, 1);

    clock.set(minutes(12));
    let new = worker_with(&store, &clock, "new", std::slice::from_ref(&v2));
    new.run_until_idle().await.unwrap();
    assert_eq!(row(&*store, "job").await.spec, "every 300s");
    clock.set(minutes(15));
    assert_eq!(old.run_until_idle().await.unwrap().scheduled, 0);
    assert_eq!(new.run_until_idle().await.unwrap().scheduled, 1);
    clock.set(minutes(20));
    assert_eq!(
        old.run_until_idle().await.unwrap().scheduled,
        0,
        "old definition paused"
    );
    assert_eq!(new.run_until_idle().await.unwrap().scheduled, 1);

    // An instance of the old version starts again (a rollback): its definition wins.
    clock.set(minutes(21));
    let old_again = worker_with(&store, &clock, "old2", std::slice::from_ref(&v1));
    old_again.run_until_idle().await.unwrap();
    clock.set(minutes(30));
    assert_eq!(new.run_until_idle().await.unwrap().scheduled, 0);
    assert_eq!(old_again.run_until_idle().await.unwrap().scheduled, 1);
    assert_eq!(
        old.run_until_idle().await.unwrap().scheduled,
        0,
        "already enqueued"
    );

    let runs = runs_by_code(&*store).await;
    assert!(
        runs.values().all(|r| r == &[Outcome::Succeeded]),
        "{runs:?}"
    );
    let mut codes: Vec<String> = runs.into_keys().collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            "job@2026-01-01T00:10:00Z",
            "job@2026-01-01T00:15:00Z",
            "job@2026-01-01T00:20:00Z",
            "job@2026-01-01T00:30:00Z",
        ]
    );
}

/// A schedule no running worker registers any more keeps its row but is no longer ticked;
/// `remove_schedule` deletes the row, and a worker still registering it stops ticking it until
/// it starts again.
pub async fn removed_schedule_stops_ticking(store: Arc<dyn TaskStore>) {
    let clock = ManualClock::new(t0());
    let keep = every("keep", 600);
    let drop_me = every("dropped", 600);
    let old = worker_with(&store, &clock, "old", &[keep.clone(), drop_me.clone()]);
    old.run_until_idle().await.unwrap();
    let new = worker_with(&store, &clock, "new", std::slice::from_ref(&keep));
    new.run_until_idle().await.unwrap();
    clock.set(minutes(10));
    let ticked = old.run_until_idle().await.unwrap().scheduled
        + new.run_until_idle().await.unwrap().scheduled;
    assert_eq!(
        ticked, 2,
        "both schedules ticked while the old version runs"
    );
    drop(old);
    clock.set(minutes(20));
    assert_eq!(
        new.run_until_idle().await.unwrap().scheduled,
        1,
        "only `keep`"
    );
    let client = Client::new(store.clone());
    let listed = client.schedules().await.unwrap();
    assert_eq!(listed.len(), 2);
    let listed = listed.into_iter().find(|r| r.name == "dropped").unwrap();
    assert_eq!(listed.last_tick, minutes(10), "listed with its last tick");
    assert_eq!(client.remove_schedule("dropped").await.unwrap(), listed);

    // A worker of the old version still running when the row is removed stops ticking it.
    let stale = worker_with(&store, &clock, "stale", &[keep.clone(), drop_me.clone()]);
    stale.run_until_idle().await.unwrap(); // registers both again (a start)
    store.remove_schedule("dropped").await.unwrap();
    clock.set(minutes(30));
    assert_eq!(
        stale.run_until_idle().await.unwrap().scheduled,
        1,
        "only `keep`"
    );
    assert!(
        store
            .schedules()
            .await
            .unwrap()
            .iter()
            .all(|r| r.name != "dropped")
    );
    let mut codes: Vec<String> = runs_by_code(&*store).await.into_keys().collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            "dropped@2026-01-01T00:10:00Z",
            "keep@2026-01-01T00:10:00Z",
            "keep@2026-01-01T00:20:00Z",
            "keep@2026-01-01T00:30:00Z",
        ]
    );
}

/// A started worker ticks by itself as the clock moves (waking at its poll interval or the
/// next tick), and its tick's task runs.
pub async fn started_worker_ticks(store: Arc<dyn TaskStore>) {
    let clock = ManualClock::new(t0());
    let client = Client::builder(store.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    let handle = client
        .worker()
        .poll_interval(Duration::from_millis(20))
        .schedule(every("live", 10))
        .start()
        .unwrap();
    super::worker::eventually("the schedule's row", Duration::from_secs(10), || async {
        !store.schedules().await.unwrap().is_empty()
    })
    .await;
    clock.advance(Duration::from_secs(10));
    super::worker::eventually("the tick's task ran", Duration::from_secs(10), || async {
        !store
            .logs(&LogFilter::code("live@2026-01-01T00:00:10Z"))
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    handle.shutdown().await;
}

/// A started worker on `store` (an hour's poll) ticking the schedule `name` every second.
fn ticking_every_second(store: Arc<dyn TaskStore>, name: &str) -> taskrow::WorkerHandle {
    Client::new(store)
        .worker()
        .poll_interval(Duration::from_secs(3600))
        .schedule(every(name, 1))
        .start()
        .unwrap()
}

/// The codes of the schedule `name`'s tasks that ran and succeeded, sorted.
async fn succeeded_ticks(store: &dyn TaskStore, name: &str) -> Vec<String> {
    let prefix = format!("{name}@");
    let mut codes: Vec<String> = store
        .logs(&LogFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.code.starts_with(&prefix) && l.outcome == Outcome::Succeeded)
        .map(|l| l.code)
        .collect();
    codes.sort();
    codes
}

/// A started worker sleeps until the next tick, not its poll interval: with an hour's poll
/// and the store's default clock (real time), a schedule ticking every second enqueues within
/// seconds.
pub async fn started_worker_wakes_at_the_next_tick(store: Arc<dyn TaskStore>) {
    let handle = ticking_every_second(store.clone(), "wake");
    // A generous deadline: the whole suite loads the servers; an hour's sleep would still fail.
    super::worker::eventually("a tick's task ran", Duration::from_secs(60), || async {
        !succeeded_ticks(&*store, "wake").await.is_empty()
    })
    .await;
    handle.shutdown().await;
}

/// A ticker pass that takes longer than the time left to the next tick (a loaded database
/// answering the schedules read slowly) still wakes at that tick, already past when the pass
/// ends: it must not fall back to the poll interval (an hour here).
pub async fn slow_pass_still_wakes_at_the_next_tick(store: Arc<dyn TaskStore>) {
    let slow = Arc::new(ReplyLost::new(store.clone()));
    slow.delay_schedules(Duration::from_millis(1500));
    let handle = ticking_every_second(slow, "slow");
    super::worker::eventually("a tick's task ran", Duration::from_secs(30), || async {
        !succeeded_ticks(&*store, "slow").await.is_empty()
    })
    .await;
    handle.shutdown().await;
}

/// An advance whose reply is lost after COMMIT (the tick's task stored, the row moved, the
/// ticker told of an error) enqueues that tick once: the pass that follows finds the row
/// moved and does not enqueue the tick again; the task runs without waiting for the poll
/// interval, and the ticks after it follow.
pub async fn lost_advance_reply_enqueues_the_tick_once(store: Arc<dyn TaskStore>) {
    let lossy = Arc::new(ReplyLost::new(store.clone()));
    lossy.arm(Op::AdvanceSchedule, 1);
    let handle = ticking_every_second(lossy.clone(), "lossy");
    super::worker::eventually(
        "three ticks' tasks ran",
        Duration::from_secs(30),
        || async { succeeded_ticks(&*store, "lossy").await.len() >= 3 },
    )
    .await;
    handle.shutdown().await;
    assert_eq!(lossy.lost(Op::AdvanceSchedule), 1, "the fault was injected");
    let codes = succeeded_ticks(&*store, "lossy").await;
    let mut unique = codes.clone();
    unique.dedup();
    assert_eq!(codes, unique, "every tick ran once: {codes:?}");
}

/// Bad definitions fail when the schedule or the worker is built, saying why.
pub async fn bad_definitions_fail_at_build(store: Arc<dyn TaskStore>) {
    let config = |r: taskrow::Result<Schedule>, what: &str| match r {
        Err(Error::Config(m)) => assert!(m.contains(what), "`{m}` mentions `{what}`"),
        other => panic!("expected a config error about {what}, got {other:?}"),
    };
    config(Schedule::cron("x", "61 * * * *"), "not a cron expression");
    config(Schedule::cron("x", ""), "not a cron expression");
    config(Schedule::cron(" ", "* * * * *"), "needs a name");
    config(Schedule::every("", Duration::from_secs(5)), "needs a name");
    config(Schedule::every("x", Duration::from_millis(500)), "shorter");
    config(
        Schedule::cron("x", "* * * * *")
            .unwrap()
            .time_zone("Mars/Olympus"),
        "not a time zone",
    );
    config(
        Schedule::every("x", Duration::from_secs(5))
            .unwrap()
            .time_zone("UTC"),
        "no time zone",
    );
    config(
        Schedule::every("x".repeat(201), Duration::from_secs(5)),
        "at most 200",
    );

    let client = Client::new(store.clone());
    let build = |s: Vec<Schedule>| {
        let mut b = client.worker();
        for s in s {
            b = b.schedule(s);
        }
        b.build()
    };
    let fails = |r: taskrow::Result<Worker>, what: &str| match r {
        Err(Error::Config(m)) => assert!(m.contains(what), "`{m}` mentions `{what}`"),
        other => panic!("expected a config error about {what}, got {other:?}"),
    };
    let no_task = Schedule::every("x", Duration::from_secs(5)).unwrap();
    fails(build(vec![no_task]), "has no task");
    fails(
        build(vec![
            every("x", 5).options(EnqueueOptions::new().code("fixed")),
        ]),
        "set a code",
    );
    fails(
        build(vec![
            every("x", 5).options(EnqueueOptions::new().run_at(t0())),
        ]),
        "a fixed start time",
    );
    fails(build(vec![every("x", 5), every("x", 6)]), "two schedules");
    assert!(build(vec![every("x", 5), every("y", 6)]).is_ok());
    assert!(
        store.schedules().await.unwrap().is_empty(),
        "building registers nothing"
    );
}
