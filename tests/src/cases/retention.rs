//! Retention: running workers purge old finished tasks and old log rows themselves, in
//! bounded batches; failed tasks stay.

use std::sync::Arc;
use std::time::Duration;

use taskrow::{
    Client, EnqueueOptions, Error, Jitter, LogFilter, ManualClock, Retention, TaskFilter,
    TaskState, TaskStore,
};

use crate::cases::worker::{Probe, Work, eventually};
use crate::cases::{list_codes, t0};

const DAY: Duration = Duration::from_secs(24 * 3600);

async fn codes(store: &Arc<dyn TaskStore>) -> Vec<String> {
    list_codes(store.as_ref(), &TaskFilter::all()).await
}

async fn only_tasks(store: &Arc<dyn TaskStore>, want: &[&str]) -> bool {
    codes(store).await == want
}

async fn only_logs_of(store: &Arc<dyn TaskStore>, code: &str) -> bool {
    let logs = store.logs(&LogFilter::default()).await.unwrap();
    logs.iter().all(|l| l.code == code)
}

async fn log_count(store: &Arc<dyn TaskStore>) -> usize {
    store.logs(&LogFilter::default()).await.unwrap().len()
}

/// Kept succeeded and cancelled tasks go once older than the task age, log rows once older
/// than the log age (batches of one row, so each round takes several), a failed task never;
/// nothing younger goes.
pub async fn workers_purge_old_rows(store: Arc<dyn TaskStore>) {
    let clock = ManualClock::new(t0());
    let c = Client::builder(store.clone())
        .data(Probe::default())
        .clock(clock.clone())
        .jitter(Jitter::fixed(0.0))
        .build()
        .unwrap();
    let ok = Work::default();
    let bad = Work {
        permanent: true,
        ..Work::default()
    };
    for i in 0..3 {
        c.enqueue(
            &ok,
            EnqueueOptions::new()
                .code(format!("kept-{i}"))
                .keep_on_success(),
        )
        .await
        .unwrap();
    }
    c.enqueue(&bad, EnqueueOptions::new().code("failed"))
        .await
        .unwrap();
    c.enqueue(&ok, EnqueueOptions::new().code("cancelled").delay(DAY * 10))
        .await
        .unwrap();
    c.worker().build().unwrap().run_until_idle().await.unwrap();
    c.cancel("cancelled").await.unwrap();
    assert_eq!(log_count(&store).await, 4);

    let w = c
        .worker()
        .retention(
            Retention::new()
                .tasks_after(Some(DAY))
                .logs_after(Some(DAY * 2))
                .every(Duration::from_millis(20))
                .batch(1),
        )
        .poll_interval(Duration::from_millis(20))
        .start()
        .unwrap();
    // A young task, enqueued now: it stays through both cuts.
    clock.advance(DAY + Duration::from_secs(1));
    c.enqueue(&ok, EnqueueOptions::new().code("young").keep_on_success())
        .await
        .unwrap();
    eventually("old finished tasks to go", Duration::from_secs(30), || {
        only_tasks(&store, &["failed", "young"])
    })
    .await;
    let old_logs = store.logs(&LogFilter::default()).await.unwrap();
    assert_eq!(
        old_logs.iter().filter(|l| l.code != "young").count(),
        4,
        "log rows are younger than their age"
    );
    clock.advance(DAY);
    eventually("old log rows to go", Duration::from_secs(30), || {
        only_logs_of(&store, "young")
    })
    .await;
    w.shutdown().await;
    let failed = store.get(&"failed".into()).await.unwrap();
    assert_eq!(
        failed.state,
        TaskState::Failed,
        "failed tasks wait for a person"
    );
}

/// A zero interval or an empty batch is refused when the worker is built.
pub async fn bad_retention_settings_fail_at_build(store: Arc<dyn TaskStore>) {
    let c = Client::new(store);
    for r in [
        Retention::new().every(Duration::ZERO),
        Retention::new().batch(0),
    ] {
        match c.worker().retention(r).build() {
            Err(Error::Config(m)) => assert!(m.contains("retention"), "{m}"),
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }
    assert!(
        c.worker()
            .retention(Retention::off().every(Duration::ZERO))
            .build()
            .is_ok()
    );
}
