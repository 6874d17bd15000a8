//! [`MemoryStore`]: the whole [`TaskStore`] contract, kept in a map behind a mutex, with a
//! due index beside it so that a claim costs what it takes, not the size of the table.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use taskrow::clock::{add, truncate_micros};
use taskrow::options::{validate, validate_queue, validate_worker_id};
use taskrow::record::new_claim_token;
use taskrow::registry::{WorkerBeat, WorkerRecord};
use taskrow::schedule::{AdvanceStatus, NewSchedule, ScheduleAdvance, ScheduleRecord};
use taskrow::{
    CancelAction, ClaimOne, ClaimRequest, Error, ExtendStatus, Finish, FinishResult, FinishStatus,
    Lease, ListedRow, LogFilter, NewTask, OnSuccess, Outcome, Page, Priority, Purge, PurgeReport,
    QueueInfo, ResetTarget, Result, StateCount, TaskFilter, TaskLog, TaskRecord, TaskRef,
    TaskState, TaskStore, UnreadableRow,
};

use self::table::Table;

mod table;

/// A [`TaskStore`] that keeps tasks and logs in memory.
///
/// It keeps the same contract, with the same errors, as the SQL stores, so task handlers and
/// workers can be tested against it without a database. Clones share one store; every call
/// takes one lock, so each call is atomic as a transaction would be.
///
/// Times are kept at microsecond precision, as the SQL stores keep them.
///
/// ```
/// use taskrow_memory::MemoryStore;
///
/// let store = MemoryStore::new();
/// let same = store.clone(); // shares the tasks
/// # let _ = same;
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    tasks: Table,
    codes: HashMap<String, i64>,
    logs: Vec<TaskLog>,
    next_task_id: i64,
    next_log_id: i64,
    /// Queues ever paused or resumed: whether paused, and since when.
    queues: BTreeMap<String, (bool, DateTime<Utc>)>,
    schedules: BTreeMap<String, ScheduleRecord>,
    next_schedule_id: i64,
    /// The worker registry: each worker's last beat, by id.
    workers: BTreeMap<String, WorkerBeat>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            tasks: Table::default(),
            codes: HashMap::new(),
            logs: Vec::new(),
            next_task_id: 1,
            next_log_id: 1,
            queues: BTreeMap::new(),
            schedules: BTreeMap::new(),
            next_schedule_id: 1,
            workers: BTreeMap::new(),
        }
    }
}

impl MemoryStore {
    /// An empty store. Task and log ids start at 1.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Only this module locks, and no call panics half-way through a change, so the data
        // behind a poisoned lock is still whole.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("MemoryStore");
        match self.inner.try_lock() {
            Ok(inner) => d
                .field("tasks", &inner.tasks.len())
                .field("logs", &inner.logs.len()),
            Err(_) => d.field("tasks", &"<locked>"),
        };
        d.finish()
    }
}

/// Makes `r` running under a new lease for `worker`, with a new claim token (the claim
/// itself).
fn take(r: &mut TaskRecord, worker: &str, lease: std::time::Duration, now: DateTime<Utc>) {
    r.state = TaskState::Running;
    r.attempts = r.attempts.saturating_add(1);
    r.version += 1;
    r.claim_token = Some(new_claim_token());
    r.claimed_at = Some(now);
    r.due_at = r.next_run_at.or(r.lease_expires_at);
    r.lease_owner = Some(worker.to_owned());
    r.lease_expires_at = Some(truncate_micros(add(now, lease)));
    r.next_run_at = None;
    r.cancel_requested_at = None;
    r.updated_at = now;
}

/// Makes `r`, found running under an expired lease with a cancel requested, cancelled: its
/// worker was lost before it stopped the run ([`TaskLog::worker_lost_cancelled_error`]).
fn cancel_lost(r: &mut TaskRecord, now: DateTime<Utc>) {
    r.last_error = Some(TaskLog::worker_lost_cancelled_error(r));
    r.state = TaskState::Cancelled;
    r.lease_expires_at = None;
    r.next_run_at = None;
    r.version += 1;
    r.updated_at = now;
}

/// Makes `r`, found running under an expired lease at its last attempt, failed: its worker
/// was lost during that attempt ([`TaskLog::worker_lost_failure`]).
fn fail_lost(r: &mut TaskRecord, now: DateTime<Utc>) {
    r.last_error = Some(TaskLog::worker_lost_failure(r));
    r.state = TaskState::Failed;
    r.lease_expires_at = None;
    r.next_run_at = None;
    r.version += 1;
    r.updated_at = now;
}

/// Whether a guarded write naming `lease` may change `r`: it still runs under the lease's
/// claim token.
fn holds(r: &TaskRecord, lease: &Lease) -> bool {
    r.state == TaskState::Running && r.claim_token == Some(lease.token)
}

/// What a claim does with one due task it meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Claim it (a pending task).
    Take,
    /// Log its lost run, then claim it again (running under an expired lease, attempts left).
    Retake,
    /// Log its lost run and fail it (running under an expired lease, at its last attempt).
    Fail,
    /// Log its lost run and cancel it (running under an expired lease, a cancel requested).
    Cancel,
}

impl Inner {
    fn id_of(&self, target: &TaskRef) -> Result<i64> {
        let id = match target {
            TaskRef::Id(id) => self.tasks.contains(*id).then_some(*id),
            TaskRef::Code(code) => self.codes.get(code).copied(),
        };
        id.ok_or_else(|| Error::NotFound(target.clone()))
    }

    fn get(&self, id: i64) -> &TaskRecord {
        self.tasks.get(id).expect("the caller found the row")
    }

    /// Changes the task with `f` if `lease` still holds it; `None` (nothing changed) if not.
    fn guarded<T>(&mut self, lease: &Lease, f: impl FnOnce(&mut TaskRecord) -> T) -> Option<T> {
        self.tasks.get(lease.id).filter(|r| holds(r, lease))?;
        Some(self.tasks.update(lease.id, f))
    }

    /// Inserts a validated task whose code is known to be free.
    fn insert_unchecked(&mut self, new: NewTask) -> TaskRecord {
        let id = self.next_task_id;
        self.next_task_id += 1;
        let record = TaskRecord::inserted(id, new);
        self.codes.insert(record.code.clone(), id);
        self.tasks.insert(record.clone());
        record
    }

    fn remove(&mut self, id: i64) -> Option<TaskRecord> {
        let r = self.tasks.remove(id)?;
        self.codes.remove(&r.code);
        Some(r)
    }

    fn next_log_id(&mut self) -> i64 {
        let id = self.next_log_id;
        self.next_log_id += 1;
        id
    }

    fn push_log(&mut self, f: &Finish, applied: bool) {
        let id = self.next_log_id();
        self.logs.push(TaskLog::of_finish(id, f, applied));
    }

    /// Logs the lost run of task `id`, found running under a lease expired by `now`; `last`
    /// when this settlement fails the task (its last attempt).
    fn log_worker_lost(&mut self, id: i64, now: DateTime<Utc>, last: bool) {
        let log_id = self.next_log_id();
        let row = TaskLog::worker_lost(log_id, self.get(id), now, last);
        self.logs.push(row);
    }

    /// Logs the lost run of task `id` if it is running under a lease expired by `now` (reset,
    /// cancel and delete settle it that way before they change the task).
    fn settle_expired(&mut self, id: i64, now: DateTime<Utc>) {
        if self.get(id).lease_expired_at(now) {
            self.log_worker_lost(id, now, false);
        }
    }

    /// The index in `logs` of the row of the run `f` reports (its task and claim token), if
    /// one is there: there is at most one per run. Walks the log only for finishes that are
    /// not applied (rare).
    fn logged_run(&self, f: &Finish) -> Option<usize> {
        self.logs
            .iter()
            .rposition(|l| l.task_id == f.lease.id && l.claim_token == Some(f.lease.token))
    }

    /// Answers a finish that is not applied now (the task no longer runs under its token),
    /// logging it as the contract says.
    fn refuse(&mut self, f: &Finish) -> FinishStatus {
        let Some(i) = self.logged_run(f) else {
            self.push_log(f, false);
            return FinishStatus::LeaseLost;
        };
        let outcome = self.logs[i].outcome;
        // A run that ended without success on a task with a cancel requested was logged
        // cancelled ([`FinishResult::when_cancel_requested`]).
        let as_cancelled =
            outcome == Outcome::Cancelled && f.result.when_cancel_requested().is_some();
        if outcome == f.outcome() || as_cancelled {
            // An earlier try of this finish was applied and its reply lost.
            FinishStatus::Applied
        } else if outcome == Outcome::WorkerLost {
            // The run was settled as lost; its result arrived after all: one row per run.
            self.logs[i] = TaskLog::of_finish(self.logs[i].id, f, false);
            FinishStatus::LeaseLost
        } else {
            // Refused before, or logged with another result: the run has its one row.
            FinishStatus::LeaseLost
        }
    }
}

#[async_trait]
impl TaskStore for MemoryStore {
    async fn insert(&self, task: NewTask) -> Result<TaskRecord> {
        validate(&task)?;
        let mut inner = self.lock();
        if inner.codes.contains_key(&task.code) {
            return Err(Error::DuplicateCode(task.code));
        }
        Ok(inner.insert_unchecked(task))
    }

    async fn insert_many(&self, tasks: Vec<NewTask>) -> Result<u64> {
        for t in &tasks {
            validate(t)?;
        }
        let mut inner = self.lock();
        let mut seen = HashSet::with_capacity(tasks.len());
        for t in &tasks {
            if inner.codes.contains_key(&t.code) || !seen.insert(t.code.as_str()) {
                return Err(Error::DuplicateCode(t.code.clone()));
            }
        }
        let n = tasks.len() as u64;
        for t in tasks {
            inner.insert_unchecked(t);
        }
        Ok(n)
    }

    async fn insert_if_absent(&self, task: NewTask) -> Result<(TaskRecord, bool)> {
        validate(&task)?;
        let mut inner = self.lock();
        if let Some(id) = inner.codes.get(&task.code) {
            return Ok((inner.get(*id).clone(), false));
        }
        Ok((inner.insert_unchecked(task), true))
    }

    async fn claim(&self, req: &ClaimRequest) -> Result<Vec<TaskRecord>> {
        validate_worker_id(&req.worker)?;
        let now = truncate_micros(req.now);
        let mut inner = self.lock();
        // The due index yields the due tasks oldest first, so the walk stops after `limit`
        // tasks to claim: its cost is what it takes plus the due tasks the filters skip and the
        // lost ones it fails on the way (which do not count against the limit).
        let mut plan: Vec<(i64, Step)> = Vec::new();
        let mut taking = 0;
        let paused = |q: &String| inner.queues.get(q).is_some_and(|(p, _)| *p);
        for r in inner.tasks.due_by(now).filter(|r| {
            (req.biz_types.is_empty() || req.biz_types.contains(&r.biz_type))
                && (req.task_types.is_empty() || req.task_types.contains(&r.task_type))
                && (req.queues.is_empty() || req.queues.contains(&r.queue))
                && !paused(&r.queue)
                && !req.exclude_ids.contains(&r.id)
        }) {
            if taking >= req.limit {
                break;
            }
            let step = if !r.lease_expired_at(now) {
                Step::Take
            } else if r.cancel_requested_at.is_some() {
                Step::Cancel
            } else if r.attempts_exhausted() {
                Step::Fail
            } else {
                Step::Retake
            };
            if step == Step::Take || step == Step::Retake {
                taking += 1;
            }
            plan.push((r.id, step));
        }
        let mut claimed = Vec::with_capacity(taking);
        for (id, step) in plan {
            match step {
                Step::Take => {}
                Step::Retake | Step::Fail => inner.log_worker_lost(id, now, step == Step::Fail),
                Step::Cancel => {
                    let log_id = inner.next_log_id();
                    let row = TaskLog::worker_lost_cancelled(log_id, inner.get(id), now);
                    inner.logs.push(row);
                    inner.tasks.update(id, |r| cancel_lost(r, now));
                    continue;
                }
            }
            if step == Step::Fail {
                inner.tasks.update(id, |r| fail_lost(r, now));
                continue;
            }
            claimed.push(inner.tasks.update(id, |r| {
                take(r, &req.worker, req.lease, now);
                r.clone()
            }));
        }
        Ok(claimed)
    }

    async fn claim_one(&self, target: &TaskRef, req: &ClaimOne) -> Result<TaskRecord> {
        validate_worker_id(&req.worker)?;
        let now = truncate_micros(req.now);
        let mut inner = self.lock();
        let id = inner.id_of(target)?;
        let found = inner.get(id);
        found.check_claim_one(req.only_pending, now)?;
        if found.lease_expired_at(now) {
            // Run-now (an operator's decision) runs it again even past its last attempt;
            // immediate dispatch (`only_pending`) fails it as a claim would.
            let fails = req.only_pending && found.attempts_exhausted();
            inner.log_worker_lost(id, now, fails);
            if fails {
                let r = inner.tasks.update(id, |r| {
                    fail_lost(r, now);
                    r.clone()
                });
                return Err(Error::WrongState {
                    code: r.code,
                    state: r.state,
                    what: "its worker was lost during its last attempt, so it failed and is not \
                           dispatched; run it now by hand, or reset it to let the scheduler run it"
                        .into(),
                });
            }
        }
        Ok(inner.tasks.update(id, |r| {
            take(r, &req.worker, req.lease, now);
            r.clone()
        }))
    }

    async fn finish(&self, batch: Vec<Finish>, now: DateTime<Utc>) -> Result<Vec<FinishStatus>> {
        let now = truncate_micros(now);
        // Read every result before changing anything, so the batch stays all-or-nothing.
        let ends = batch
            .iter()
            .map(|f| f.result.normalized())
            .collect::<Vec<_>>();
        let mut inner = self.lock();
        let mut answers = Vec::with_capacity(batch.len());
        for (f, end) in batch.iter().zip(ends) {
            // A run of a task with a cancel requested ends it cancelled unless it succeeded.
            let asked = inner
                .tasks
                .get(f.lease.id)
                .is_some_and(|r| holds(r, &f.lease) && r.cancel_requested_at.is_some());
            let changed = asked.then(|| end.when_cancel_requested()).flatten();
            let applied_finish;
            let (f, end) = match changed {
                Some(c) => {
                    let mut g = f.clone();
                    g.result = c.clone();
                    applied_finish = g;
                    (&applied_finish, c)
                }
                None => (f, end),
            };
            let applied = inner.guarded(&f.lease, |r| {
                r.version += 1;
                r.updated_at = now;
                r.lease_expires_at = None;
                r.next_run_at = None;
                match end {
                    FinishResult::Succeeded => {
                        r.state = TaskState::Succeeded;
                        r.on_success == OnSuccess::Delete
                    }
                    FinishResult::Retry { at, error } => {
                        r.state = TaskState::Pending;
                        r.next_run_at = Some(at);
                        r.last_error = Some(error);
                        false
                    }
                    FinishResult::Failed { error } => {
                        r.state = TaskState::Failed;
                        r.last_error = Some(error);
                        false
                    }
                    FinishResult::Interrupted { at, error } => {
                        r.state = TaskState::Pending;
                        r.next_run_at = Some(at);
                        r.last_error = Some(error);
                        r.attempts = r.attempts.saturating_sub(1);
                        r.interruptions = r.interruptions.saturating_add(1);
                        false
                    }
                    FinishResult::Cancelled { error } => {
                        r.state = TaskState::Cancelled;
                        r.last_error = Some(error);
                        false
                    }
                }
            });
            let Some(delete) = applied else {
                let answer = inner.refuse(f);
                answers.push(answer);
                continue;
            };
            if delete {
                inner.remove(f.lease.id);
            }
            inner.push_log(f, true);
            answers.push(FinishStatus::Applied);
        }
        Ok(answers)
    }

    async fn release(&self, leases: &[Lease], now: DateTime<Utc>) -> Result<Vec<FinishStatus>> {
        let now = truncate_micros(now);
        let mut inner = self.lock();
        let answers = leases
            .iter()
            .map(|lease| {
                let released = inner.guarded(lease, |r| {
                    if r.cancel_requested_at.is_some() {
                        // Never started, and cancelled meanwhile: nothing to run again.
                        r.state = TaskState::Cancelled;
                        r.next_run_at = None;
                    } else {
                        r.state = TaskState::Pending;
                        r.next_run_at = Some(now);
                    }
                    r.attempts = r.attempts.saturating_sub(1);
                    r.lease_expires_at = None;
                    r.version += 1;
                    r.updated_at = now;
                });
                match released {
                    Some(()) => FinishStatus::Applied,
                    None => FinishStatus::LeaseLost,
                }
            })
            .collect();
        Ok(answers)
    }

    async fn extend_lease(
        &self,
        lease: Lease,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ExtendStatus> {
        let mut inner = self.lock();
        inner
            .guarded(&lease, |r| {
                r.lease_expires_at = Some(truncate_micros(until));
                r.version += 1;
                r.updated_at = truncate_micros(now);
                if r.cancel_requested_at.is_some() {
                    ExtendStatus::CancelRequested
                } else {
                    ExtendStatus::Extended
                }
            })
            .ok_or(Error::LeaseLost { id: lease.id })
    }

    async fn get(&self, target: &TaskRef) -> Result<TaskRecord> {
        let inner = self.lock();
        let id = inner.id_of(target)?;
        Ok(inner.get(id).clone())
    }

    async fn list(&self, filter: &TaskFilter, page: &Page) -> Result<Vec<TaskRecord>> {
        let inner = self.lock();
        let from = page.after_id.map_or(i64::MIN, |id| id.saturating_add(1));
        Ok(inner
            .tasks
            .starting_at(from)
            .filter(|r| filter.matches(r))
            .take(usize::try_from(page.limit).unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    /// Every row of the memory store is a [`TaskRecord`]: [`TaskStore::list`]'s rows, each a
    /// [`ListedRow::Task`].
    async fn list_rows(&self, filter: &TaskFilter, page: &Page) -> Result<Vec<ListedRow>> {
        Ok(self
            .list(filter, page)
            .await?
            .into_iter()
            .map(|t| ListedRow::Task(Box::new(t)))
            .collect())
    }

    /// The memory store holds typed records only: none is unreadable.
    async fn unreadable(&self, _page: &Page) -> Result<Vec<UnreadableRow>> {
        Ok(Vec::new())
    }

    async fn logs(&self, filter: &LogFilter) -> Result<Vec<TaskLog>> {
        let inner = self.lock();
        let limit = filter
            .limit
            .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let matching = inner.logs.iter().filter(|l| filter.matches(l));
        if filter.newest {
            let mut tail: Vec<TaskLog> = matching.rev().take(limit).cloned().collect();
            tail.reverse();
            return Ok(tail);
        }
        Ok(matching.take(limit).cloned().collect())
    }

    async fn counts(&self) -> Result<Vec<StateCount>> {
        let inner = self.lock();
        let mut counts: BTreeMap<(&str, &str, Priority, TaskState), u64> = BTreeMap::new();
        for r in inner.tasks.values() {
            *counts
                .entry((r.task_type.as_str(), r.queue.as_str(), r.priority, r.state))
                .or_default() += 1;
        }
        Ok(counts
            .into_iter()
            .map(|((task_type, queue, priority, state), count)| StateCount {
                task_type: task_type.to_owned(),
                queue: queue.to_owned(),
                priority,
                state,
                count,
            })
            .collect())
    }

    async fn set_queue_paused(&self, queue: &str, paused: bool, now: DateTime<Utc>) -> Result<()> {
        validate_queue(queue)?;
        let now = truncate_micros(now);
        let mut inner = self.lock();
        let entry = inner
            .queues
            .entry(queue.to_owned())
            .or_insert((paused, now));
        if entry.0 != paused {
            *entry = (paused, now);
        }
        Ok(())
    }

    async fn queues(&self) -> Result<Vec<QueueInfo>> {
        let inner = self.lock();
        let mut counts: BTreeMap<&str, BTreeMap<TaskState, u64>> = inner
            .queues
            .keys()
            .map(|q| (q.as_str(), BTreeMap::new()))
            .collect();
        for r in inner.tasks.values() {
            *counts
                .entry(r.queue.as_str())
                .or_default()
                .entry(r.state)
                .or_default() += 1;
        }
        Ok(counts
            .into_iter()
            .map(|(name, states)| {
                let (paused, at) = match inner.queues.get(name) {
                    Some((p, at)) => (*p, Some(*at)),
                    None => (false, None),
                };
                QueueInfo::new(name, paused, at, states.into_iter().collect())
            })
            .collect())
    }

    async fn reset(&self, target: &ResetTarget, now: DateTime<Utc>) -> Result<u64> {
        let now = truncate_micros(now);
        let mut inner = self.lock();
        let rerun = |r: &mut TaskRecord| {
            r.state = TaskState::Pending;
            r.attempts = 0;
            r.interruptions = 0;
            r.next_run_at = Some(now);
            r.last_error = None;
            r.lease_expires_at = None;
            r.cancel_requested_at = None;
            r.version += 1;
            r.updated_at = now;
        };
        match target {
            ResetTarget::One(t) => {
                let id = inner.id_of(t)?;
                inner.get(id).check_reset(now)?;
                inner.settle_expired(id, now);
                inner.tasks.update(id, rerun);
                Ok(1)
            }
            ResetTarget::Matching(filter) => Ok(inner.tasks.update_matching(
                |r| {
                    matches!(r.state, TaskState::Failed | TaskState::Cancelled) && filter.matches(r)
                },
                rerun,
            )),
            other => Err(Error::InvalidInput(format!(
                "taskrow-memory cannot reset {other:?}: update taskrow-memory"
            ))),
        }
    }

    async fn cancel(&self, target: &TaskRef, now: DateTime<Utc>) -> Result<TaskRecord> {
        let now = truncate_micros(now);
        let mut inner = self.lock();
        let id = inner.id_of(target)?;
        match inner.get(id).check_cancel(now)? {
            CancelAction::Cancel => {}
            CancelAction::Mark => {
                // Running under a live lease: its worker stops it at its next heartbeat.
                return Ok(inner.tasks.update(id, |r| {
                    r.cancel_requested_at = Some(now);
                    r.version += 1;
                    r.updated_at = now;
                    r.clone()
                }));
            }
            _ => return Ok(inner.get(id).clone()),
        }
        inner.settle_expired(id, now);
        Ok(inner.tasks.update(id, |r| {
            r.state = TaskState::Cancelled;
            r.next_run_at = None;
            r.lease_expires_at = None;
            r.version += 1;
            r.updated_at = now;
            r.clone()
        }))
    }

    async fn delete(&self, target: &TaskRef, now: DateTime<Utc>) -> Result<TaskRecord> {
        let now = truncate_micros(now);
        let mut inner = self.lock();
        let id = inner.id_of(target)?;
        inner.get(id).check_delete(now)?;
        inner.settle_expired(id, now);
        Ok(inner.remove(id).expect("id_of found it"))
    }

    /// Every row here can be read: a task is refused as readable, a missing one is not found.
    async fn delete_unreadable(&self, target: &TaskRef) -> Result<UnreadableRow> {
        let inner = self.lock();
        let id = inner.id_of(target)?;
        Err(UnreadableRow::readable(id, &inner.get(id).code))
    }

    async fn purge(&self, purge: &Purge) -> Result<PurgeReport> {
        if let Some(s) = purge.states.iter().find(|s| {
            !matches!(
                s,
                TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled
            )
        }) {
            return Err(Error::InvalidInput(format!(
                "purge removes finished tasks only (succeeded, failed, cancelled), not {s} ones: \
                 cancel or delete those instead"
            )));
        }
        let before = purge.before;
        let mut inner = self.lock();
        let limit = purge
            .limit
            .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let mut doomed: Vec<i64> = inner
            .tasks
            .values()
            .filter(|r| purge.states.contains(&r.state) && r.updated_at < before)
            .map(|r| r.id)
            .collect();
        doomed.sort_unstable();
        doomed.truncate(limit);
        if !purge.dry_run {
            for &id in &doomed {
                inner.remove(id);
            }
        }
        let mut logs = 0;
        if purge.logs {
            let mut old: Vec<i64> = inner
                .logs
                .iter()
                .filter(|l| l.started_at < before)
                .map(|l| l.id)
                .collect();
            old.sort_unstable();
            old.truncate(limit);
            let old: std::collections::HashSet<i64> = old.into_iter().collect();
            if !purge.dry_run {
                inner.logs.retain(|l| !old.contains(&l.id));
            }
            logs = old.len() as u64;
        }
        Ok(PurgeReport {
            tasks: doomed.len() as u64,
            logs,
        })
    }

    /// The memory store has no schema: always `Ok`.
    async fn check_schema(&self) -> Result<()> {
        Ok(())
    }

    /// The memory store keeps no time of its own.
    fn has_database_time(&self) -> bool {
        false
    }

    /// The memory store keeps no time of its own: `None`.
    async fn database_time(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(None)
    }

    async fn register_schedule(&self, schedule: &NewSchedule) -> Result<ScheduleRecord> {
        let now = truncate_micros(schedule.now);
        let mut inner = self.lock();
        let id = inner.next_schedule_id;
        let row = inner
            .schedules
            .entry(schedule.name.clone())
            .and_modify(|row| {
                if row.fingerprint != schedule.fingerprint {
                    row.spec = schedule.spec.clone();
                    row.time_zone = schedule.time_zone.clone();
                    row.task_type = schedule.task_type.clone();
                    row.fingerprint = schedule.fingerprint.clone();
                    row.last_tick = row.last_tick.max(now);
                    row.next_tick = schedule.next_tick.map(truncate_micros);
                    row.updated_at = now;
                }
                row.registered_at = now;
            })
            .or_insert_with(|| ScheduleRecord {
                id,
                name: schedule.name.clone(),
                spec: schedule.spec.clone(),
                time_zone: schedule.time_zone.clone(),
                task_type: schedule.task_type.clone(),
                fingerprint: schedule.fingerprint.clone(),
                last_tick: now,
                next_tick: schedule.next_tick.map(truncate_micros),
                created_at: now,
                registered_at: now,
                updated_at: now,
            })
            .clone();
        if row.id == id {
            inner.next_schedule_id += 1;
        }
        Ok(row)
    }

    async fn advance_schedule(&self, advance: &ScheduleAdvance) -> Result<AdvanceStatus> {
        if advance.to <= advance.from {
            return Err(Error::InvalidInput(format!(
                "schedule `{}`: a tick moves forward ({} is not after {})",
                advance.name, advance.to, advance.from
            )));
        }
        if let Some(task) = &advance.task {
            validate(task)?;
        }
        let mut inner = self.lock();
        let Some(row) = inner.schedules.get_mut(&advance.name).filter(|r| {
            r.last_tick == truncate_micros(advance.from) && r.fingerprint == advance.fingerprint
        }) else {
            return Ok(AdvanceStatus::Lost);
        };
        row.last_tick = truncate_micros(advance.to);
        row.next_tick = advance.next_tick.map(truncate_micros);
        row.updated_at = truncate_micros(advance.now);
        if let Some(task) = &advance.task
            && !inner.codes.contains_key(&task.code)
        {
            inner.insert_unchecked(task.clone());
        }
        Ok(AdvanceStatus::Advanced)
    }

    async fn schedules(&self) -> Result<Vec<ScheduleRecord>> {
        Ok(self.lock().schedules.values().cloned().collect())
    }

    async fn remove_schedule(&self, name: &str) -> Result<ScheduleRecord> {
        self.lock()
            .schedules
            .remove(name)
            .ok_or_else(|| Error::ScheduleNotFound(name.to_owned()))
    }

    async fn beat_worker(&self, beat: &WorkerBeat) -> Result<()> {
        beat.validate()?;
        // As a SQL row keeps it: whole microseconds.
        let mut row = beat.clone();
        row.started_at = truncate_micros(row.started_at);
        row.now = truncate_micros(row.now);
        row.stale_at = truncate_micros(row.stale_at);
        self.lock().workers.insert(row.id.clone(), row);
        Ok(())
    }

    async fn workers(&self, now: DateTime<Utc>) -> Result<Vec<WorkerRecord>> {
        Ok(self
            .lock()
            .workers
            .values()
            .map(|b| WorkerRecord::from_beat(b, now))
            .collect())
    }

    async fn remove_worker(&self, id: &str) -> Result<bool> {
        Ok(self.lock().workers.remove(id).is_some())
    }

    async fn prune_workers(&self, gone_before: DateTime<Utc>, limit: u64) -> Result<u64> {
        let mut inner = self.lock();
        let mut gone: Vec<(DateTime<Utc>, String)> = inner
            .workers
            .values()
            .filter(|b| b.stale_at < gone_before)
            .map(|b| (b.stale_at, b.id.clone()))
            .collect();
        gone.sort();
        gone.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        for (_, id) in &gone {
            inner.workers.remove(id);
        }
        Ok(gone.len() as u64)
    }

    /// One process by nature: its enqueues wake its workers through the client.
    fn wakeups(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

#[cfg(test)]
mod tests;
