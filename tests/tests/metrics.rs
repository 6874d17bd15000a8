//! The metrics a known run records, read back from a recorder installed for this test
//! process alone (its own binary, so the global recorder is this test's).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use taskrow::schedule::Schedule;
use taskrow::{Client, EnqueueOptions, Jitter, ManualClock, RetryPolicy};
use taskrow_memory::MemoryStore;
use taskrow_tests::cases::t0;
use taskrow_tests::cases::worker::{Probe, Work};

/// Samples of one histogram.
#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

/// Every counter, gauge and histogram by `name{label=value,…}`.
#[derive(Default)]
struct Recorded {
    counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    gauges: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<BTreeMap<String, Arc<Samples>>>,
}

fn name_of(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for &'static Recorded {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let c = self
            .counters
            .lock()
            .unwrap()
            .entry(name_of(key))
            .or_default()
            .clone();
        Counter::from_arc(c)
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let g = self
            .gauges
            .lock()
            .unwrap()
            .entry(name_of(key))
            .or_default()
            .clone();
        Gauge::from_arc(g)
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let h = self
            .histograms
            .lock()
            .unwrap()
            .entry(name_of(key))
            .or_default()
            .clone();
        Histogram::from_arc(h)
    }
}

impl Recorded {
    fn counter(&self, name: &str) -> u64 {
        self.counters
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }
    fn gauge(&self, name: &str) -> f64 {
        self.gauges
            .lock()
            .unwrap()
            .get(name)
            .map_or(0.0, |g| f64::from_bits(g.load(Ordering::SeqCst)))
    }
    fn samples(&self, name: &str) -> Vec<f64> {
        self.histograms
            .lock()
            .unwrap()
            .get(name)
            .map_or_else(Vec::new, |h| h.0.lock().unwrap().clone())
    }
}

/// Three tasks in the default queue: one succeeds, one fails once and succeeds on its retry 5 s
/// later, one fails for good; and one in `emails` that succeeds. Counted by queue: 3 and 1
/// enqueued; runs 2 succeeded, 1 retrying, 1 failed, and 1 succeeded in `emails`, each with its
/// duration; 4 pickup lags in the default queue, the retry's 2 s late by the manual clock; none
/// running after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_run_is_counted() {
    let recorded: &'static Recorded = Box::leak(Box::default());
    metrics::set_global_recorder(recorded).expect("the only recorder of this process");

    let clock = ManualClock::new(t0());
    let c = Client::builder(MemoryStore::new())
        .data(Probe::default())
        .clock(clock.clone())
        .jitter(Jitter::fixed(0.0))
        .build()
        .unwrap();
    let ok = Work::default();
    let flaky = Work {
        fail_times: 1,
        ..Work::default()
    };
    let bad = Work {
        permanent: true,
        ..Work::default()
    };
    c.enqueue(&ok, EnqueueOptions::new().code("ok"))
        .await
        .unwrap();
    c.enqueue(
        &flaky,
        EnqueueOptions::new()
            .code("flaky")
            .retry(RetryPolicy::fixed(Duration::from_secs(5))),
    )
    .await
    .unwrap();
    c.enqueue(&bad, EnqueueOptions::new().code("bad"))
        .await
        .unwrap();
    c.enqueue(&ok, EnqueueOptions::new().code("mail").queue("emails"))
        .await
        .unwrap();
    let w = c.worker().build().unwrap();
    w.run_until_idle().await.unwrap();
    clock.advance(Duration::from_secs(7));
    w.run_until_idle().await.unwrap();

    let ty = "conformance.worker.work";
    let runs = |outcome: &str| {
        recorded.counter(&format!(
            "taskrow_runs_total{{outcome={outcome},queue=default,task_type={ty}}}"
        ))
    };
    assert_eq!(
        recorded.counter(&format!(
            "taskrow_enqueued_total{{queue=default,task_type={ty}}}"
        )),
        3
    );
    assert_eq!(
        (
            runs("succeeded"),
            runs("retrying"),
            runs("failed"),
            runs("lease_lost")
        ),
        (2, 1, 1, 0)
    );
    assert_eq!(
        recorded.counter(&format!(
            "taskrow_enqueued_total{{queue=emails,task_type={ty}}}"
        )),
        1
    );
    assert_eq!(
        recorded.counter(&format!(
            "taskrow_runs_total{{outcome=succeeded,queue=emails,task_type={ty}}}"
        )),
        1
    );
    assert_eq!(recorded.gauge("taskrow_running{queue=emails}"), 0.0);
    for (outcome, n) in [("succeeded", 2), ("retrying", 1), ("failed", 1)] {
        let d = recorded.samples(&format!(
            "taskrow_run_duration_seconds{{outcome={outcome},queue=default,task_type={ty}}}"
        ));
        assert_eq!(d.len(), n, "one duration per {outcome} run");
        assert!(d.iter().all(|s| (0.0..60.0).contains(s)), "{d:?}");
    }
    let mut lags = recorded.samples(&format!(
        "taskrow_pickup_lag_seconds{{queue=default,task_type={ty}}}"
    ));
    lags.sort_by(f64::total_cmp);
    assert_eq!(
        lags,
        [0.0, 0.0, 0.0, 2.0],
        "the retry, due at t0+5 s, ran at t0+7 s"
    );
    assert_eq!(recorded.gauge("taskrow_running{queue=default}"), 0.0);

    // A schedule's tick is an enqueue too, counted in its queue.
    let ticking = c
        .worker()
        .queue("ticks", 1)
        .schedule(
            Schedule::every("beat", Duration::from_secs(5))
                .unwrap()
                .task(ok.clone())
                .options(EnqueueOptions::new().queue("ticks")),
        )
        .build()
        .unwrap();
    ticking.run_until_idle().await.unwrap();
    clock.advance(Duration::from_secs(5));
    let report = ticking.run_until_idle().await.unwrap();
    assert_eq!(report.scheduled, 1, "{report:?}");
    assert_eq!(
        recorded.counter(&format!(
            "taskrow_enqueued_total{{queue=ticks,task_type={ty}}}"
        )),
        1
    );
}
