//! A [`TaskStore`] wrapper that counts claims and result writes, and the rows in them, to show
//! how a worker batches its work (`profile --count`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use taskrow::chrono::{DateTime, Utc};
use taskrow::registry::{WorkerBeat, WorkerRecord};
use taskrow::schedule::{AdvanceStatus, NewSchedule, ScheduleAdvance, ScheduleRecord};
use taskrow::{
    ClaimOne, ClaimRequest, Finish, FinishStatus, Lease, LogFilter, NewTask, Page, Purge,
    PurgeReport, ResetTarget, Result, StateCount, TaskFilter, TaskLog, TaskRecord, TaskRef,
    TaskStore, async_trait,
};

/// Forwards every call to the wrapped store, counting claims and finishes.
#[derive(Debug)]
pub struct Counting {
    inner: Arc<dyn TaskStore>,
    claims: AtomicU64,
    claimed: AtomicU64,
    finishes: AtomicU64,
    finished: AtomicU64,
}

impl Counting {
    pub fn new(inner: Arc<dyn TaskStore>) -> Self {
        Self {
            inner,
            claims: AtomicU64::new(0),
            claimed: AtomicU64::new(0),
            finishes: AtomicU64::new(0),
            finished: AtomicU64::new(0),
        }
    }

    /// `claims (rows), finish calls (results)` so far.
    pub fn summary(&self) -> String {
        let (c, cr) = (
            self.claims.load(Ordering::Relaxed),
            self.claimed.load(Ordering::Relaxed),
        );
        let (f, fr) = (
            self.finishes.load(Ordering::Relaxed),
            self.finished.load(Ordering::Relaxed),
        );
        format!(
            "{c} claims taking {cr} tasks ({:.1} per claim); {f} result writes of {fr} results ({:.1} per write)",
            cr as f64 / c.max(1) as f64,
            fr as f64 / f.max(1) as f64
        )
    }
}

#[async_trait]
impl TaskStore for Counting {
    async fn insert(&self, task: NewTask) -> Result<TaskRecord> {
        self.inner.insert(task).await
    }
    async fn insert_many(&self, tasks: Vec<NewTask>) -> Result<u64> {
        self.inner.insert_many(tasks).await
    }
    async fn insert_if_absent(&self, task: NewTask) -> Result<(TaskRecord, bool)> {
        self.inner.insert_if_absent(task).await
    }
    async fn claim(&self, req: &ClaimRequest) -> Result<Vec<TaskRecord>> {
        let r = self.inner.claim(req).await?;
        self.claims.fetch_add(1, Ordering::Relaxed);
        self.claimed.fetch_add(r.len() as u64, Ordering::Relaxed);
        Ok(r)
    }
    async fn claim_one(&self, target: &TaskRef, req: &ClaimOne) -> Result<TaskRecord> {
        self.inner.claim_one(target, req).await
    }
    async fn finish(&self, batch: Vec<Finish>, now: DateTime<Utc>) -> Result<Vec<FinishStatus>> {
        self.finishes.fetch_add(1, Ordering::Relaxed);
        self.finished
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.inner.finish(batch, now).await
    }
    async fn release(&self, leases: &[Lease], now: DateTime<Utc>) -> Result<Vec<FinishStatus>> {
        self.inner.release(leases, now).await
    }
    async fn extend_lease(
        &self,
        lease: Lease,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<taskrow::ExtendStatus> {
        self.inner.extend_lease(lease, until, now).await
    }
    async fn check_schema(&self) -> Result<()> {
        self.inner.check_schema().await
    }
    fn has_database_time(&self) -> bool {
        self.inner.has_database_time()
    }
    async fn database_time(&self) -> Result<Option<DateTime<Utc>>> {
        self.inner.database_time().await
    }
    fn wakeups(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.inner.wakeups()
    }
    async fn register_schedule(&self, schedule: &NewSchedule) -> Result<ScheduleRecord> {
        self.inner.register_schedule(schedule).await
    }
    async fn advance_schedule(&self, advance: &ScheduleAdvance) -> Result<AdvanceStatus> {
        self.inner.advance_schedule(advance).await
    }
    async fn schedules(&self) -> Result<Vec<ScheduleRecord>> {
        self.inner.schedules().await
    }
    async fn remove_schedule(&self, name: &str) -> Result<ScheduleRecord> {
        self.inner.remove_schedule(name).await
    }
    async fn beat_worker(&self, beat: &WorkerBeat) -> Result<()> {
        self.inner.beat_worker(beat).await
    }
    async fn workers(&self, now: DateTime<Utc>) -> Result<Vec<WorkerRecord>> {
        self.inner.workers(now).await
    }
    async fn remove_worker(&self, id: &str) -> Result<bool> {
        self.inner.remove_worker(id).await
    }
    async fn prune_workers(&self, gone_before: DateTime<Utc>, limit: u64) -> Result<u64> {
        self.inner.prune_workers(gone_before, limit).await
    }
    async fn get(&self, target: &TaskRef) -> Result<TaskRecord> {
        self.inner.get(target).await
    }
    async fn list(&self, filter: &TaskFilter, page: &Page) -> Result<Vec<TaskRecord>> {
        self.inner.list(filter, page).await
    }
    async fn list_rows(&self, filter: &TaskFilter, page: &Page) -> Result<Vec<taskrow::ListedRow>> {
        self.inner.list_rows(filter, page).await
    }
    async fn unreadable(&self, page: &Page) -> Result<Vec<taskrow::UnreadableRow>> {
        self.inner.unreadable(page).await
    }
    async fn logs(&self, filter: &LogFilter) -> Result<Vec<TaskLog>> {
        self.inner.logs(filter).await
    }
    async fn counts(&self) -> Result<Vec<StateCount>> {
        self.inner.counts().await
    }
    async fn set_queue_paused(&self, queue: &str, paused: bool, now: DateTime<Utc>) -> Result<()> {
        self.inner.set_queue_paused(queue, paused, now).await
    }
    async fn queues(&self) -> Result<Vec<taskrow::QueueInfo>> {
        self.inner.queues().await
    }
    async fn reset(&self, target: &ResetTarget, now: DateTime<Utc>) -> Result<u64> {
        self.inner.reset(target, now).await
    }
    async fn cancel(&self, target: &TaskRef, now: DateTime<Utc>) -> Result<TaskRecord> {
        self.inner.cancel(target, now).await
    }
    async fn delete(&self, target: &TaskRef, now: DateTime<Utc>) -> Result<TaskRecord> {
        self.inner.delete(target, now).await
    }
    async fn delete_unreadable(&self, target: &TaskRef) -> Result<taskrow::UnreadableRow> {
        self.inner.delete_unreadable(target).await
    }
    async fn purge(&self, purge: &Purge) -> Result<PurgeReport> {
        self.inner.purge(purge).await
    }
}
