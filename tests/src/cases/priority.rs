//! Priorities: how [`TaskStore::claim`] orders due tasks (level, then due time, then id), and
//! how a task's level is chosen and kept.

use std::sync::Arc;

use taskrow::chrono::{DateTime, Utc};
use taskrow::typetag;
use taskrow::{
    ClaimRequest, DEFAULT_QUEUE, EnqueueOptions, FinishResult, Priority, StateCount, Task,
    TaskContext, TaskDefaults, TaskError, TaskState, TaskStore, async_trait,
};

use super::{
    LEASE, build_task, claim, claim_req, finish_of, finish_one, insert_with, opts, secs, t0,
};

/// A type whose defaults put it in queue `urgent` at high priority.
#[derive(Debug, Clone, Default, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct Urgent {}

#[typetag::serde(name = "conformance.priority.urgent")]
#[async_trait]
impl Task for Urgent {
    async fn run(&self, _ctx: &TaskContext) -> Result<(), TaskError> {
        Ok(())
    }
    fn defaults(&self) -> TaskDefaults {
        TaskDefaults::new().queue("urgent").priority(Priority::High)
    }
}

/// Inserts a noop with this code and level, due at `at`.
async fn due(store: &dyn TaskStore, code: &str, p: Priority, at: DateTime<Utc>) {
    insert_with(store, opts(code).priority(p).run_at(at), t0()).await;
}

fn codes(claimed: &[taskrow::TaskRecord]) -> Vec<&str> {
    claimed.iter().map(|r| r.code.as_str()).collect()
}

/// A younger task of a higher level is claimed before an older one of a lower level: one at a
/// time, and in one batch in that order.
pub async fn higher_level_beats_age(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    due(s, "low-at-1", Priority::Low, secs(1)).await;
    due(s, "normal-at-2", Priority::Normal, secs(2)).await;
    due(s, "high-at-3", Priority::High, secs(3)).await;
    due(s, "low-at-0", Priority::Low, secs(0)).await;
    for expected in ["high-at-3", "normal-at-2", "low-at-0", "low-at-1"] {
        let got = claim(s, "w", 1, secs(10)).await;
        assert_eq!(codes(&got), [expected]);
    }
    assert!(claim(s, "w", 1, secs(10)).await.is_empty());

    due(s, "b-low", Priority::Low, secs(20)).await;
    due(s, "b-high", Priority::High, secs(22)).await;
    due(s, "b-normal", Priority::Normal, secs(21)).await;
    let batch = claim(s, "w", 10, secs(30)).await;
    assert_eq!(codes(&batch), ["b-high", "b-normal", "b-low"]);
    let levels: Vec<Priority> = batch.iter().map(|r| r.priority).collect();
    assert_eq!(levels, [Priority::High, Priority::Normal, Priority::Low]);
}

/// Within one level: the oldest due first, ties by id; a higher-level task that is not due yet
/// does not hold lower ones back.
pub async fn same_level_oldest_due_first(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    due(s, "h-3", Priority::High, secs(3)).await;
    due(s, "h-1", Priority::High, secs(1)).await;
    due(s, "h-2a", Priority::High, secs(2)).await;
    due(s, "h-2b", Priority::High, secs(2)).await;
    due(s, "h-later", Priority::High, secs(20)).await;
    due(s, "n-0", Priority::Normal, secs(0)).await;
    let batch = claim(s, "w", 10, secs(10)).await;
    assert_eq!(codes(&batch), ["h-1", "h-2a", "h-2b", "h-3", "n-0"]);
    // At 20 s (the leases above last until 40 s) the later one is due at last.
    assert_eq!(codes(&claim(s, "w", 10, secs(20)).await), ["h-later"]);
}

/// A task retried keeps its level and is claimed by it again; so is a lost run reclaimed.
pub async fn retried_task_keeps_its_level(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    due(s, "high", Priority::High, t0()).await;
    due(s, "normal", Priority::Normal, t0()).await;
    let first = claim(s, "w", 1, t0()).await;
    assert_eq!(codes(&first), ["high"]);
    let retry = FinishResult::Retry {
        at: secs(5),
        error: "again".into(),
    };
    finish_one(s, finish_of(&first[0], t0(), retry), secs(1)).await;
    // At 5 s both are due, the normal one since t0: the high one goes first all the same.
    let batch = claim(s, "w", 10, secs(5)).await;
    assert_eq!(codes(&batch), ["high", "normal"]);
    assert_eq!(batch[0].priority, Priority::High);
    // Both leases expire: the lost runs are reclaimed in level order too.
    let after = secs(5) + LEASE;
    let again = claim(s, "w2", 10, after).await;
    assert_eq!(codes(&again), ["high", "normal"]);
}

/// The level and queue come from the options, else the type's defaults, else normal and
/// `default`; the record keeps them, and the biz-type and type filters still apply among the
/// levels.
pub async fn levels_come_from_options_then_type(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    let plain = insert_with(s, opts("plain"), t0()).await;
    assert_eq!(
        (plain.priority, plain.queue.as_str()),
        (Priority::Normal, DEFAULT_QUEUE)
    );
    let typed = s
        .insert(build_task(opts("typed"), &Urgent {}, t0()))
        .await
        .unwrap();
    assert_eq!(
        (typed.priority, typed.queue.as_str()),
        (Priority::High, "urgent")
    );
    let overridden = s
        .insert(build_task(
            EnqueueOptions::new()
                .code("overridden")
                .priority(Priority::Low)
                .queue("slow"),
            &Urgent {},
            t0(),
        ))
        .await
        .unwrap();
    assert_eq!(
        (overridden.priority, overridden.queue.as_str()),
        (Priority::Low, "slow")
    );
    let got = s.get(&"typed".into()).await.unwrap();
    assert_eq!(
        (got.priority, got.queue.as_str()),
        (Priority::High, "urgent")
    );

    // A type filter picks the lower level when the higher one is of another type.
    let req = ClaimRequest::new("w", 10, LEASE, t0()).task_types([crate::tasks::Noop::TYPE]);
    let batch = claim_req(s, &req).await;
    assert_eq!(codes(&batch), ["plain"]);
}

/// Counts are per type, queue, level and state.
pub async fn counts_by_queue_and_level(store: Arc<dyn TaskStore>) {
    let s = store.as_ref();
    due(s, "a", Priority::High, t0()).await;
    due(s, "b", Priority::High, t0()).await;
    due(s, "c", Priority::Low, t0()).await;
    insert_with(s, opts("d").queue("mail"), t0()).await;
    let mut counts = s.counts().await.unwrap();
    counts.sort_by(|a, b| (&a.queue, a.priority, a.state).cmp(&(&b.queue, b.priority, b.state)));
    let c = |queue: &str, priority, count| StateCount {
        task_type: crate::tasks::Noop::TYPE.to_owned(),
        queue: queue.to_owned(),
        priority,
        state: TaskState::Pending,
        count,
    };
    assert_eq!(
        counts,
        [
            c(DEFAULT_QUEUE, Priority::High, 2),
            c(DEFAULT_QUEUE, Priority::Low, 1),
            c("mail", Priority::Normal, 1),
        ]
    );
}
