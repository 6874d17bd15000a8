//! Store wrappers that inject faults at the [`TaskStore`] boundary, so that the conformance
//! cases can show what every store does under them.
//!
//! - [`ReplyLost`]: a write that commits, and whose reply never reaches the caller (the
//!   connection dropped after COMMIT); and a read of the schedules that takes longer than a
//!   tick ([`ReplyLost::delay_schedules`], a loaded database).

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskrow::chrono::{DateTime, Utc};
use taskrow::registry::{WorkerBeat, WorkerRecord};
use taskrow::schedule::{AdvanceStatus, NewSchedule, ScheduleAdvance, ScheduleRecord};
use taskrow::{
    ClaimOne, ClaimRequest, Error, Finish, FinishStatus, Lease, LogFilter, NewTask, Page, Purge,
    PurgeReport, ResetTarget, Result, StateCount, TaskFilter, TaskLog, TaskRecord, TaskRef,
    TaskStore, async_trait,
};

/// The error [`ReplyLost`] answers instead of a committed call's result.
pub const REPLY_LOST: &str = "connection lost after COMMIT (injected)";

/// An operation whose reply [`ReplyLost`] can lose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`TaskStore::claim`].
    Claim,
    /// [`TaskStore::claim_one`].
    ClaimOne,
    /// [`TaskStore::finish`].
    Finish,
    /// [`TaskStore::release`].
    Release,
    /// [`TaskStore::extend_lease`].
    ExtendLease,
    /// [`TaskStore::advance_schedule`].
    AdvanceSchedule,
    /// [`TaskStore::beat_worker`].
    BeatWorker,
}

impl Op {
    /// Every operation, in declaration order.
    pub const ALL: [Op; 7] = [
        Op::Claim,
        Op::ClaimOne,
        Op::Finish,
        Op::Release,
        Op::ExtendLease,
        Op::AdvanceSchedule,
        Op::BeatWorker,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// A [`TaskStore`] whose calls can commit and then lose their reply, as when the connection
/// drops after the database ran COMMIT but before its answer arrived.
///
/// Arm it for an operation with a count ([`ReplyLost::arm`]): each of the next `count` calls
/// of that operation is performed on the inner store, in full, and then answers
/// `Error::backend(true, REPLY_LOST)` (a transient backend error, as a dropped connection
/// is) instead of its result. The caller cannot tell that the write took effect; what a
/// store must do about the retry that follows is the contract's *Idempotent finish*. A call
/// that the inner store itself refuses with an error committed nothing: its error is passed
/// on and does not use up the count. Unarmed operations, and every other method, pass
/// straight through.
///
/// ```
/// # use std::sync::Arc;
/// # use taskrow_tests::wrappers::{Op, ReplyLost};
/// let store = ReplyLost::new(Arc::new(taskrow_memory::MemoryStore::new()));
/// store.arm(Op::Finish, 1); // the next finish commits, and its caller sees an error
/// assert_eq!(store.armed(Op::Finish), 1);
/// ```
pub struct ReplyLost {
    inner: Arc<dyn TaskStore>,
    armed: [AtomicU32; 7],
    lost: [AtomicU32; 7],
    calls: [AtomicU32; 7],
    /// Milliseconds each read of the schedules waits before it answers.
    schedules_delay_ms: AtomicU64,
    /// Milliseconds each claim waits before it claims.
    claims_delay_ms: AtomicU64,
    /// Claims going on now, and the most seen at once.
    claims_now: AtomicU32,
    claims_most: AtomicU32,
    /// The limit of every claim so far, in call order.
    claim_limits: Mutex<Vec<usize>>,
}

impl ReplyLost {
    /// A wrapper around `inner`, armed for nothing.
    pub fn new(inner: Arc<dyn TaskStore>) -> Self {
        Self {
            inner,
            armed: Default::default(),
            lost: Default::default(),
            calls: Default::default(),
            schedules_delay_ms: AtomicU64::new(0),
            claims_delay_ms: AtomicU64::new(0),
            claims_now: AtomicU32::new(0),
            claims_most: AtomicU32::new(0),
            claim_limits: Mutex::new(Vec::new()),
        }
    }

    /// Makes every later [`TaskStore::schedules`] call wait `delay` before it reads (a loaded
    /// database answering slowly); `Duration::ZERO` stops it.
    pub fn delay_schedules(&self, delay: Duration) {
        self.schedules_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Makes every later [`TaskStore::claim`] wait `delay` before it claims (a database that
    /// answers claims slower than the tasks run); `Duration::ZERO` stops it.
    pub fn delay_claims(&self, delay: Duration) {
        self.claims_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// The most claims that were in flight at once.
    pub fn most_claims_at_once(&self) -> u32 {
        self.claims_most.load(Ordering::SeqCst)
    }

    /// How many tasks each claim so far asked for, in call order.
    pub fn claim_limits(&self) -> Vec<usize> {
        self.claim_limits.lock().unwrap().clone()
    }

    /// Makes the next `count` successful calls of `op` lose their reply (added to what is
    /// armed already).
    pub fn arm(&self, op: Op, count: u32) {
        self.armed[op.index()].fetch_add(count, Ordering::SeqCst);
    }

    /// Disarms `op`.
    pub fn disarm(&self, op: Op) {
        self.armed[op.index()].store(0, Ordering::SeqCst);
    }

    /// How many calls of `op` will still lose their reply.
    pub fn armed(&self, op: Op) -> u32 {
        self.armed[op.index()].load(Ordering::SeqCst)
    }

    /// How many replies of `op` were lost so far.
    pub fn lost(&self, op: Op) -> u32 {
        self.lost[op.index()].load(Ordering::SeqCst)
    }

    /// How many calls of `op` were answered so far (lost replies included).
    pub fn calls(&self, op: Op) -> u32 {
        self.calls[op.index()].load(Ordering::SeqCst)
    }

    /// The store underneath, which answers truthfully.
    pub fn inner(&self) -> &Arc<dyn TaskStore> {
        &self.inner
    }

    /// `result` of a call of `op` as the caller sees it: lost when `op` is armed and the call
    /// succeeded.
    fn reply<T>(&self, op: Op, result: Result<T>) -> Result<T> {
        self.calls[op.index()].fetch_add(1, Ordering::SeqCst);
        let value = result?;
        let take = self.armed[op.index()]
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if take.is_ok() {
            self.lost[op.index()].fetch_add(1, Ordering::SeqCst);
            return Err(Error::backend(true, REPLY_LOST));
        }
        Ok(value)
    }
}

impl fmt::Debug for ReplyLost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let armed: Vec<(Op, u32)> = Op::ALL
            .into_iter()
            .map(|op| (op, self.armed(op)))
            .filter(|(_, n)| *n > 0)
            .collect();
        f.debug_struct("ReplyLost")
            .field("inner", &self.inner)
            .field("armed", &armed)
            .finish()
    }
}

/// Whether `e` is the error [`ReplyLost`] injects.
pub fn is_reply_lost(e: &Error) -> bool {
    e.is_transient() && e.to_string().contains(REPLY_LOST)
}

#[async_trait]
impl TaskStore for ReplyLost {
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
        self.claim_limits.lock().unwrap().push(req.limit);
        let now = self.claims_now.fetch_add(1, Ordering::SeqCst) + 1;
        self.claims_most.fetch_max(now, Ordering::SeqCst);
        let delay = self.claims_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let found = self.inner.claim(req).await;
        self.claims_now.fetch_sub(1, Ordering::SeqCst);
        self.reply(Op::Claim, found)
    }
    async fn claim_one(&self, target: &TaskRef, req: &ClaimOne) -> Result<TaskRecord> {
        self.reply(Op::ClaimOne, self.inner.claim_one(target, req).await)
    }
    async fn finish(&self, batch: Vec<Finish>, now: DateTime<Utc>) -> Result<Vec<FinishStatus>> {
        self.reply(Op::Finish, self.inner.finish(batch, now).await)
    }
    async fn release(&self, leases: &[Lease], now: DateTime<Utc>) -> Result<Vec<FinishStatus>> {
        self.reply(Op::Release, self.inner.release(leases, now).await)
    }
    async fn extend_lease(
        &self,
        lease: Lease,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<taskrow::ExtendStatus> {
        self.reply(
            Op::ExtendLease,
            self.inner.extend_lease(lease, until, now).await,
        )
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
        self.reply(
            Op::AdvanceSchedule,
            self.inner.advance_schedule(advance).await,
        )
    }
    async fn schedules(&self) -> Result<Vec<ScheduleRecord>> {
        let delay = self.schedules_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        self.inner.schedules().await
    }
    async fn remove_schedule(&self, name: &str) -> Result<ScheduleRecord> {
        self.inner.remove_schedule(name).await
    }
    async fn beat_worker(&self, beat: &WorkerBeat) -> Result<()> {
        let r = self.inner.beat_worker(beat).await;
        self.reply(Op::BeatWorker, r)
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
}
