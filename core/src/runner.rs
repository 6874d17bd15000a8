//! One execution of one claimed task: load, run with timeout and panic capture, keep its
//! lease, and the finish that records it. Shared by the worker, run-now and immediate dispatch.
//!
//! # The run's deadline
//!
//! A run never outlives its lease. The runner knows, on the monotonic clock, when the lease it
//! last confirmed ends: the send time of the claim (or of the last confirmed extension) plus
//! the lease. Heartbeats extend it; each heartbeat call is bounded by that deadline, and a
//! failed one is tried again quickly. When the lease comes within a safety margin
//! ([`lease_margin`]) of its end unconfirmed, the handler is told through
//! [`TaskContext::shutdown`]; at half the margin it is aborted, and the run is finished as
//! interrupted. A heartbeat answered `LeaseLost` (another claim holds the task) stops the run
//! at once. With heartbeats off, the lease is a hard limit on the run.
//!
//! # Cancel on request
//!
//! A heartbeat answered [`ExtendStatus::CancelRequested`] (an operator cancelled the running
//! task) tells the handler through [`TaskContext::cancelled`] and gives it the cancel grace to
//! return; then it is aborted. Either way the run finishes [`FinishResult::Cancelled`],
//! whatever the handler returned after the signal. Heartbeats go on meanwhile, so the lease
//! outlives the grace.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::clock::{Clock, add};
use crate::context::{Data, Shutdown, TaskContext};
use crate::error::TaskErrorKind;
use crate::policy::{failure_result, interruption_result};
use crate::record::{Outcome, TaskRecord};
use crate::retry::Jitter;
use crate::store::{ExtendStatus, Finish, FinishResult, FinishStatus, TaskStore};
use crate::task::from_row;

/// What one execution needs from its worker.
#[derive(Debug, Clone)]
pub(crate) struct Env {
    pub store: Arc<dyn TaskStore>,
    pub clock: Arc<dyn Clock>,
    pub data: Arc<Data>,
    pub jitter: Arc<Jitter>,
    pub worker: String,
    pub lease: Duration,
    pub heartbeat: Option<Duration>,
    pub default_timeout: Duration,
    pub cancel_grace: Duration,
}

/// Signals for a running execution: graceful shutdown (seen by the handler) and the hard
/// stop after the shutdown deadline (the handler is dropped).
#[derive(Debug, Clone)]
pub(crate) struct Stops {
    pub shutdown: watch::Receiver<bool>,
    pub hard_stop: watch::Receiver<bool>,
}

impl Stops {
    pub fn never() -> Self {
        // With the senders dropped, the signals keep reading `false` and never fire.
        let (_, shutdown) = watch::channel(false);
        let (_, hard_stop) = watch::channel(false);
        Self {
            shutdown,
            hard_stop,
        }
    }
}

/// A task as claimed, with the monotonic time the claim was sent: the lease it holds ends no
/// earlier than `sent + lease` by the database's reckoning, so the run counts from there.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub task: TaskRecord,
    pub sent: Instant,
}

/// The safety margin before a lease's end: the handler is told to stop when this much of the
/// lease is left unconfirmed, and aborted at half of it. A fifth of the lease, at most 10 s.
pub(crate) fn lease_margin(lease: Duration) -> Duration {
    (lease / 5).min(Duration::from_secs(10))
}

/// How long after a confirmation the next heartbeat is sent: the heartbeat setting, but early
/// enough that a beat (and a retry or two) fits before the handler would be told to stop.
pub(crate) fn beat_interval(heartbeat: Duration, lease: Duration) -> Duration {
    heartbeat.min((lease - lease_margin(lease)) / 2)
}

/// How soon a failed heartbeat is tried again.
fn beat_retry(heartbeat: Duration) -> Duration {
    (heartbeat / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

async fn fired(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Why a run ended without the handler's own result.
enum Stopped {
    /// The handler's result, or its failure.
    Ran(Result<(), (TaskErrorKind, String)>),
    /// Stopped from outside: shutdown past its deadline (`lease: false`), or a lease that
    /// could not be kept (`lease: true`).
    Interrupted { why: String, lease: bool },
    /// A cancel was requested and the handler did not return within the grace.
    CancelAborted,
    /// A cancel was requested and the run ended (how, in the text).
    Cancelled(String),
}

/// A finished run: its finish, and whether it was stopped for want of its lease (the worker
/// then leaves the task to others for a while).
#[derive(Debug)]
pub(crate) struct Ran {
    pub finish: Finish,
    pub lease_trouble: bool,
}

/// Runs a claimed task once and returns the finish to write. Never panics because of the
/// handler, never waits past the timeout or the lease, never holds the task while sleeping for
/// a retry.
pub(crate) async fn execute(env: &Env, claimed: &Claimed, stops: &Stops) -> Ran {
    let task = &claimed.task;
    let span = info_span!("taskrow.execute", id = task.id, code = %task.code, task_type = %task.task_type, attempt = task.attempts);
    execute_inner(env, claimed, stops).instrument(span).await
}

async fn execute_inner(env: &Env, claimed: &Claimed, stops: &Stops) -> Ran {
    let task = &claimed.task;
    let _running = crate::metrics::started(task);
    let started_at = env.clock.now();
    let started = Instant::now();
    let lease = task.lease();

    let ended = match from_row(&task.task_type, &task.payload) {
        Err(e) => Stopped::Ran(Err((TaskErrorKind::Retry, e.to_string()))),
        Ok(handler) => {
            // The handler's stop signal: the worker's shutdown, or a lease that can no longer
            // be confirmed.
            let (stop_tx, stop_rx) = watch::channel(false);
            // The cancel signal: a heartbeat found a cancel requested.
            let (cancel_tx, cancel_rx) = watch::channel(false);
            let ctx = TaskContext {
                id: task.id,
                code: task.code.clone(),
                task_type: task.task_type.clone(),
                biz_type: task.biz_type.clone(),
                queue: task.queue.clone(),
                attempt: task.attempts,
                max_attempts: task.max_attempts,
                worker: env.worker.clone(),
                shutdown: Shutdown::new(stop_rx),
                cancel: Shutdown::new(cancel_rx),
                data: env.data.clone(),
                lease,
                started_at,
                started,
                clock: env.clock.clone(),
            };
            let timeout = task.timeout.unwrap_or(env.default_timeout);
            // Spawned so that a panic is caught as a JoinError and the handler can be aborted.
            let mut run = tokio::spawn(
                async move {
                    handler
                        .run(&ctx)
                        .await
                        .map_err(|e| (e.kind(), e.full_message()))
                }
                .in_current_span(),
            );
            let deadline = tokio::time::sleep(timeout);
            let hard_stop = fired(stops.hard_stop.clone());
            let shutdown = fired(stops.shutdown.clone());
            tokio::pin!(deadline, hard_stop, shutdown);
            let margin = lease_margin(env.lease);
            // The end of the lease last confirmed, on the monotonic clock.
            let mut lease_end = claimed.sent + env.lease;
            let mut signalled = false;
            let mut shutdown_seen = false;
            let mut last_beat_error: Option<String> = None;
            // Heartbeats run in this loop, between the handler's progress, rather than in a
            // task of their own: no run spawns twice, and every beat is bounded by the lease.
            let every = env.heartbeat.map(|h| beat_interval(h, env.lease));
            let mut next_beat = every.map(|h| claimed.sent + h);
            let mut hard_stopped = false;
            // When a run told to stop for a cancel is aborted (set once a heartbeat saw it).
            let mut cancel_at: Option<Instant> = None;
            let stopped = loop {
                let signal_at = lease_end - margin;
                let abort_at = lease_end - margin / 2;
                let beat = async {
                    match next_beat {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    // A handler that finished wins over every deadline ready at the same time.
                    biased;
                    joined = &mut run => break (true, Stopped::Ran(match joined {
                        Ok(r) => r,
                        Err(e) if e.is_panic() => Err((TaskErrorKind::Retry, format!("the handler panicked: {}", panic_message(e.into_panic())))),
                        Err(e) => Err((TaskErrorKind::Retry, format!("the handler was cancelled: {e}"))),
                    })),
                    _ = &mut deadline => {
                        break (false, Stopped::Ran(Err((TaskErrorKind::Retry, format!(
                            "timed out after {} ms: the handler did not complete (blocking code belongs in tokio::task::spawn_blocking; raise the task's timeout if it is merely slow)",
                            timeout.as_millis()
                        )))));
                    }
                    _ = &mut hard_stop => {
                        hard_stopped = true;
                        break (false, Stopped::Interrupted { why: "the worker shut down before the handler finished".to_owned(), lease: false });
                    }
                    _ = async { tokio::time::sleep_until(cancel_at.expect("guarded")).await }, if cancel_at.is_some() => {
                        warn!(id = lease.id, code = %task.code, task_type = %task.task_type, grace_ms = env.cancel_grace.as_millis() as u64, "the handler did not stop within the cancel grace: aborting it");
                        break (false, Stopped::CancelAborted);
                    }
                    _ = &mut shutdown, if !shutdown_seen => {
                        shutdown_seen = true;
                        let _ = stop_tx.send(true);
                    }
                    _ = tokio::time::sleep_until(signal_at), if !signalled => {
                        signalled = true;
                        warn!(id = lease.id, code = %task.code, task_type = %task.task_type, "the lease could not be confirmed and is about to end: telling the handler to stop");
                        let _ = stop_tx.send(true);
                    }
                    _ = tokio::time::sleep_until(abort_at) => {
                        let why = match &last_beat_error {
                            Some(e) => format!("its lease could not be confirmed before it ended (last heartbeat error: {e}), so it was stopped to keep another worker from running it at the same time"),
                            None if env.heartbeat.is_none() => format!("it ran as long as its lease ({} ms) allows with heartbeats off, so it was stopped; enable heartbeats or lengthen the lease", env.lease.as_millis()),
                            None => "its lease could not be confirmed before it ended, so it was stopped".to_owned(),
                        };
                        warn!(id = lease.id, code = %task.code, task_type = %task.task_type, "{why}");
                        break (false, Stopped::Interrupted { why, lease: true });
                    }
                    _ = beat => {
                        let heartbeat = every.expect("beats only with a heartbeat");
                        let sent = Instant::now();
                        let now = env.clock.now();
                        let call = env.store.extend_lease(lease, add(now, env.lease), now);
                        // Bounded by the lease: a beat that answers after the run must be
                        // aborted is worth nothing.
                        // Bounded by the next deadline of the run: the handler is told to stop
                        // (and then aborted) on time even while a beat waits for the database.
                        let bound = if signalled { abort_at } else { signal_at };
                        let bounded = tokio::time::timeout_at(bound.max(sent + Duration::from_millis(1)), call);
                        // The hard stop does not wait for a beat (a pool timeout, say).
                        let answer = tokio::select! {
                            a = bounded => a,
                            _ = &mut hard_stop => {
                                hard_stopped = true;
                                break (false, Stopped::Interrupted { why: "the worker shut down before the handler finished".to_owned(), lease: false });
                            }
                        };
                        match answer {
                            Ok(Ok(status)) => {
                                lease_end = sent + env.lease;
                                last_beat_error = None;
                                next_beat = Some(sent + heartbeat);
                                if status == ExtendStatus::CancelRequested && cancel_at.is_none() {
                                    info!(id = lease.id, code = %task.code, task_type = %task.task_type, "a cancel was requested: telling the handler to stop");
                                    cancel_at = Some(Instant::now() + env.cancel_grace);
                                    let _ = cancel_tx.send(true);
                                }
                            }
                            Ok(Err(crate::Error::LeaseLost { .. })) => {
                                // Another claim holds the task: stop at once.
                                let _ = stop_tx.send(true);
                                warn!(id = lease.id, code = %task.code, task_type = %task.task_type, "lease lost while the task runs: stopped");
                                break (false, Stopped::Interrupted { why: "its lease was lost to another claim while it ran, so it was stopped".to_owned(), lease: true });
                            }
                            Ok(Err(e)) => {
                                warn!(id = lease.id, code = %task.code, task_type = %task.task_type, error = %e, "heartbeat failed; trying again");
                                last_beat_error = Some(e.to_string());
                                next_beat = Some(Instant::now() + beat_retry(heartbeat));
                            }
                            Err(_) => {
                                warn!(id = lease.id, code = %task.code, task_type = %task.task_type, "heartbeat timed out; trying again");
                                last_beat_error = Some("the store did not answer in time".to_owned());
                                next_beat = Some(Instant::now() + beat_retry(heartbeat));
                            }
                        }
                    }
                }
            };
            let (joined, mut stopped) = stopped;
            if !joined {
                // Stopped from here: abort the handler and wait until it is really gone before
                // the result makes the task runnable elsewhere. An abort takes effect only when
                // the handler next yields, so wait — but no longer than the lease (or, at a
                // hard stop, its grace).
                let _ = stop_tx.send(true);
                run.abort();
                let by = if hard_stopped {
                    lease_end.min(Instant::now() + Duration::from_secs(1))
                } else {
                    lease_end
                };
                let gone = tokio::time::timeout_at(by, &mut run).await;
                if let Ok(Ok(result)) = gone {
                    // It had finished before the abort took effect: its own result stands (the
                    // finish is still guarded by the claim's token).
                    stopped = Stopped::Ran(result);
                } else if gone.is_err() {
                    let note = "; the handler did not stop when aborted (code that never reaches an `.await`?)";
                    warn!(id = lease.id, code = %task.code, task_type = %task.task_type, "the handler did not stop when aborted");
                    match &mut stopped {
                        Stopped::Ran(Err((_, m)))
                        | Stopped::Interrupted { why: m, .. }
                        | Stopped::Cancelled(m) => m.push_str(note),
                        Stopped::Ran(Ok(())) | Stopped::CancelAborted => {}
                    }
                }
            }
            if cancel_at.is_some() {
                // Told to stop for a cancel: the run ends cancelled, whatever came back.
                let grace = env.cancel_grace.as_millis();
                let how = match &stopped {
                    Stopped::Ran(Ok(())) => "the handler returned after it was told".to_owned(),
                    Stopped::Ran(Err((_, e))) => {
                        format!("the handler stopped after it was told ({e})")
                    }
                    Stopped::Interrupted { why, .. } => format!("the run was stopped: {why}"),
                    Stopped::CancelAborted => format!(
                        "the handler did not stop within the {grace} ms cancel grace, so it was aborted"
                    ),
                    Stopped::Cancelled(why) => why.clone(),
                };
                Stopped::Cancelled(format!("cancelled on request: {how}"))
            } else {
                stopped
            }
        }
    };

    let now = env.clock.now();
    let duration_ms = started.elapsed().as_millis() as i64;
    let lease_trouble = matches!(ended, Stopped::Interrupted { lease: true, .. });
    let finish_result = match ended {
        Stopped::Ran(Ok(())) => FinishResult::Succeeded,
        Stopped::Ran(Err((kind, message))) => {
            failure_result(task, kind, &message, now, &env.jitter)
        }
        Stopped::Interrupted { why, .. } => interruption_result(task, &why, now, &env.jitter),
        Stopped::Cancelled(why) => FinishResult::Cancelled { error: why },
        Stopped::CancelAborted => FinishResult::Cancelled {
            error: "cancelled on request".to_owned(),
        },
    };
    match &finish_result {
        FinishResult::Succeeded => debug!(duration_ms, "task succeeded"),
        FinishResult::Retry { at, error } => {
            warn!(id = task.id, code = %task.code, task_type = %task.task_type, duration_ms, next_run_at = %at, error = %error, "task failed; retry scheduled")
        }
        FinishResult::Failed { error } => {
            error!(id = task.id, code = %task.code, task_type = %task.task_type, duration_ms, error = %error, "task failed for good")
        }
        FinishResult::Interrupted { error, .. } => {
            warn!(id = task.id, code = %task.code, task_type = %task.task_type, duration_ms, error = %error, "run interrupted")
        }
        FinishResult::Cancelled { error } => {
            info!(id = task.id, code = %task.code, task_type = %task.task_type, duration_ms, error = %error, "run cancelled on request")
        }
    }
    Ran {
        finish: Finish::new(
            task,
            lease,
            env.worker.clone(),
            started_at,
            duration_ms,
            finish_result,
        ),
        lease_trouble,
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a non-string panic payload)".to_owned()
    }
}

/// How one run ended, as run-now and immediate dispatch report it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunReport {
    /// Row id.
    pub id: i64,
    /// Code.
    pub code: String,
    /// Attempt number of this run.
    pub attempt: u32,
    /// How it ended (as logged).
    pub outcome: Outcome,
    /// The error, when it failed.
    pub error: Option<String>,
    /// Next run time, when a retry was scheduled.
    pub next_run_at: Option<chrono::DateTime<chrono::Utc>>,
    /// How long it ran, in milliseconds.
    pub duration_ms: i64,
}

impl RunReport {
    pub(crate) fn new(task: &TaskRecord, finish: &Finish, status: FinishStatus) -> Self {
        let outcome = match status {
            FinishStatus::Applied => finish.outcome(),
            FinishStatus::LeaseLost => Outcome::LeaseLost,
        };
        Self {
            id: task.id,
            code: task.code.clone(),
            attempt: finish.attempt,
            outcome,
            error: finish.error().map(str::to_owned),
            next_run_at: match (&finish.result, status) {
                (FinishResult::Retry { at, .. }, FinishStatus::Applied) => Some(*at),
                _ => None,
            },
            duration_ms: finish.duration_ms,
        }
    }

    /// Whether the run succeeded and its result was applied.
    pub fn succeeded(&self) -> bool {
        self.outcome == Outcome::Succeeded
    }
}

/// Runs `claimed` and writes its finish at once (run-now, dispatch, drains in tests).
pub(crate) async fn execute_and_finish(
    env: &Env,
    claimed: &Claimed,
    stops: &Stops,
) -> crate::Result<RunReport> {
    let finish = execute(env, claimed, stops).await.finish;
    let status = finish_with_retry(env, vec![finish.clone()]).await?;
    crate::metrics::finished(&finish, status[0]);
    Ok(RunReport::new(&claimed.task, &finish, status[0]))
}

/// Writes finishes, retrying transient errors a few times.
pub(crate) async fn finish_with_retry(
    env: &Env,
    batch: Vec<Finish>,
) -> crate::Result<Vec<FinishStatus>> {
    let mut delay = Duration::from_millis(50);
    let mut tries = 0;
    loop {
        match env.store.finish(batch.clone(), env.clock.now()).await {
            Ok(s) => return Ok(s),
            Err(e) if e.is_transient() && tries < 8 => {
                warn!(error = %e, "writing task results failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
