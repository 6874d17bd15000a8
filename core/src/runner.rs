//! One execution of one claimed task: load, run with timeout and panic capture, heartbeat,
//! and the finish that records it. Shared by the worker, run-now and immediate dispatch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{Instrument, debug, error, info_span, warn};

use crate::clock::{Clock, add};
use crate::context::{Data, Shutdown, TaskContext};
use crate::error::TaskErrorKind;
use crate::policy::failure_result;
use crate::record::{Outcome, TaskRecord};
use crate::retry::Jitter;
use crate::store::{Finish, FinishResult, FinishStatus, TaskStore};
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

async fn fired(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Runs a claimed task once and returns the finish to write. Never panics because of the
/// handler, never waits past the timeout, never holds the task while sleeping for a retry.
pub(crate) async fn execute(env: &Env, task: &TaskRecord, stops: &Stops) -> Finish {
    let span = info_span!("taskrow.execute", id = task.id, code = %task.code, task_type = %task.task_type, attempt = task.attempts);
    execute_inner(env, task, stops).instrument(span).await
}

async fn execute_inner(env: &Env, task: &TaskRecord, stops: &Stops) -> Finish {
    let started_at = env.clock.now();
    let started = Instant::now();
    // The lease this run holds; heartbeats replace it (each extension bumps the version).
    let mut lease = task.lease();

    let result: Result<(), (TaskErrorKind, String)> = match from_row(&task.task_type, &task.payload)
    {
        Err(e) => Err((TaskErrorKind::Retry, e.to_string())),
        Ok(handler) => {
            let ctx = TaskContext {
                id: task.id,
                code: task.code.clone(),
                task_type: task.task_type.clone(),
                biz_type: task.biz_type.clone(),
                attempt: task.attempts,
                max_attempts: task.max_attempts,
                worker: env.worker.clone(),
                shutdown: Shutdown::new(stops.shutdown.clone()),
                data: env.data.clone(),
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
            tokio::pin!(deadline, hard_stop);
            // Heartbeats run in this loop, between the handler's progress, rather than in a
            // task of their own: the lease stays a local value and no run spawns twice.
            let beat = env.heartbeat.unwrap_or(Duration::MAX);
            let mut next_beat = tokio::time::Instant::now().checked_add(beat);
            let mut beating = env.heartbeat.is_some();
            loop {
                let heartbeat = async {
                    match next_beat {
                        Some(t) if beating => tokio::time::sleep_until(t).await,
                        _ => std::future::pending().await,
                    }
                };
                tokio::select! {
                    joined = &mut run => break match joined {
                        Ok(r) => r,
                        Err(e) if e.is_panic() => Err((TaskErrorKind::Retry, format!("the handler panicked: {}", panic_message(e.into_panic())))),
                        Err(e) => Err((TaskErrorKind::Retry, format!("the handler was cancelled: {e}"))),
                    },
                    _ = &mut deadline => {
                        run.abort();
                        break Err((TaskErrorKind::Retry, format!(
                            "timed out after {} ms: the handler did not complete (blocking code belongs in tokio::task::spawn_blocking; raise the task's timeout if it is merely slow)",
                            timeout.as_millis()
                        )));
                    }
                    _ = &mut hard_stop => {
                        run.abort();
                        break Err((TaskErrorKind::RetryAfter(Duration::ZERO), "interrupted: the worker shut down before the handler finished; it will run again".to_owned()));
                    }
                    _ = heartbeat => {
                        next_beat = tokio::time::Instant::now().checked_add(beat);
                        let now = env.clock.now();
                        match env.store.extend_lease(lease, add(now, env.lease), now).await {
                            Ok(new) => lease = new,
                            Err(crate::Error::LeaseLost { .. }) => {
                                warn!(id = lease.id, "lease lost while the task runs: another worker may run it");
                                beating = false;
                            }
                            Err(e) => warn!(id = lease.id, error = %e, "heartbeat failed; will try again"),
                        }
                    }
                }
            }
        }
    };

    let now = env.clock.now();
    let duration_ms = started.elapsed().as_millis() as i64;
    let finish_result = match result {
        Ok(()) => FinishResult::Succeeded,
        Err((kind, message)) => failure_result(task, kind, &message, now, &env.jitter),
    };
    match &finish_result {
        FinishResult::Succeeded => debug!(duration_ms, "task succeeded"),
        FinishResult::Retry { at, error } => {
            warn!(duration_ms, next_run_at = %at, error = %error, "task failed; retry scheduled")
        }
        FinishResult::Failed { error } => {
            error!(duration_ms, error = %error, "task failed for good")
        }
    }
    Finish::new(
        task,
        lease,
        env.worker.clone(),
        started_at,
        duration_ms,
        finish_result,
    )
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

/// Runs `task` and writes its finish at once (run-now, dispatch, drains in tests).
pub(crate) async fn execute_and_finish(
    env: &Env,
    task: &TaskRecord,
    stops: &Stops,
) -> crate::Result<RunReport> {
    let finish = execute(env, task, stops).await;
    let status = finish_with_retry(env, vec![finish.clone()]).await?;
    Ok(RunReport::new(task, &finish, status[0]))
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
