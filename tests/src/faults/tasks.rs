//! The fault suite's task types. Each records its own runs through the [`Recorder`] registered
//! as worker data. Their typetag names (`faults.*`) are what the rows keep.

use std::time::Duration;

use taskrow::typetag;
use taskrow::{Task, TaskContext, TaskError, async_trait};

use super::records::Recorder;

/// Sleeps `millis`, then succeeds: the task of every drain.
#[derive(Debug, Clone, Default, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct Drain {
    /// How long the handler runs.
    pub millis: u64,
}

impl Drain {
    /// The stored type name.
    pub const TYPE: &'static str = "faults.drain";
}

#[typetag::serde(name = "faults.drain")]
#[async_trait]
impl Task for Drain {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        let rec = ctx.data::<Recorder>()?;
        let mark = rec.start(ctx);
        if self.millis > 0 {
            tokio::time::sleep(Duration::from_millis(self.millis)).await;
        }
        rec.end(ctx, mark);
        Ok(())
    }
}

/// Carries a large payload and checks that all of it arrived.
#[derive(Debug, Clone, Default, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct Blob {
    /// The length `data` must have.
    pub bytes: usize,
    /// The payload.
    pub data: String,
}

impl Blob {
    /// The stored type name.
    pub const TYPE: &'static str = "faults.blob";
}

#[typetag::serde(name = "faults.blob")]
#[async_trait]
impl Task for Blob {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        let rec = ctx.data::<Recorder>()?;
        let mark = rec.start(ctx);
        rec.end(ctx, mark);
        if self.data.len() == self.bytes {
            Ok(())
        } else {
            Err(TaskError::msg(format!(
                "the payload arrived with {} bytes of data, not {}",
                self.data.len(),
                self.bytes
            ))
            .into_permanent())
        }
    }
}

/// How one scripted run ends.
#[derive(Debug, Clone, PartialEq, Eq, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde", rename_all = "snake_case")]
pub enum Then {
    /// Succeed.
    Ok,
    /// Fail; retry per the policy.
    Retry(String),
    /// Fail for good.
    Fail(String),
}

/// One run of a [`Scripted`] task.
#[derive(Debug, Clone, PartialEq, Eq, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct Step {
    /// How long the run takes.
    pub millis: u64,
    /// How it ends.
    pub then: Then,
}

/// Runs `steps[attempt - 1]` (the last step for later attempts). It ignores the shutdown
/// signal, and its run's end is recorded however it ends: returned, or stopped from outside
/// (its future dropped by a lease it could not keep, a hard stop, a timeout).
#[derive(Debug, Clone, Default, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct Scripted {
    /// One step per attempt.
    pub steps: Vec<Step>,
}

impl Scripted {
    /// The stored type name.
    pub const TYPE: &'static str = "faults.scripted";
}

#[typetag::serde(name = "faults.scripted")]
#[async_trait]
impl Task for Scripted {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        let rec = ctx.data::<Recorder>()?;
        let i = usize::try_from(ctx.attempt().saturating_sub(1)).unwrap_or(usize::MAX);
        let Some(step) = self.steps.get(i).or(self.steps.last()) else {
            return Ok(());
        };
        let run = rec.guard(ctx);
        tokio::time::sleep(Duration::from_millis(step.millis)).await;
        drop(run);
        match &step.then {
            Then::Ok => Ok(()),
            Then::Retry(m) => Err(TaskError::msg(m)),
            Then::Fail(m) => Err(TaskError::msg(m).into_permanent()),
        }
    }
}

/// Panics.
#[derive(Debug, Clone, Default, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct Panics {}

impl Panics {
    /// What it panics with.
    pub const MESSAGE: &'static str = "a fault-suite handler panicked on purpose";
}

#[typetag::serde(name = "faults.panics")]
#[async_trait]
impl Task for Panics {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        let _mark = ctx.data::<Recorder>()?.start(ctx);
        panic!("{}", Self::MESSAGE)
    }
}

/// Aborts its process (`std::process::abort()`) on every run, after recording the start: a
/// handler that kills its worker (an FFI crash, an OOM kill). It aborts only where
/// [`AbortAllowed`] is registered as worker data (`taskrow-test-worker` does); elsewhere (the
/// suite's own process) it fails for good instead.
#[derive(Debug, Clone, Default, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct Aborts {}

impl Aborts {
    /// The stored type name.
    pub const TYPE: &'static str = "faults.aborts";
}

#[typetag::serde(name = "faults.aborts")]
#[async_trait]
impl Task for Aborts {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        if ctx.data::<AbortAllowed>().is_err() {
            return Err(
                TaskError::msg("faults.aborts runs only in taskrow-test-worker processes")
                    .into_permanent(),
            );
        }
        let _mark = ctx.data::<Recorder>()?.start(ctx);
        std::process::abort()
    }
}

/// Worker data that lets [`Aborts`] abort this process.
#[derive(Debug, Clone, Copy, Default)]
pub struct AbortAllowed;

/// Never completes: an await that never wakes.
#[derive(Debug, Clone, Default, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct Hangs {}

#[typetag::serde(name = "faults.hangs")]
#[async_trait]
impl Task for Hangs {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        let _mark = ctx.data::<Recorder>()?.start(ctx);
        std::future::pending::<()>().await;
        Ok(())
    }
}

/// Fails for good with an error message of `bytes` bytes.
#[derive(Debug, Clone, Default, taskrow::serde::Serialize, taskrow::serde::Deserialize)]
#[serde(crate = "taskrow::serde")]
pub struct HugeError {
    /// The message's length.
    pub bytes: usize,
}

impl HugeError {
    /// How the message starts.
    pub const PREFIX: &'static str = "huge error: ";
}

#[typetag::serde(name = "faults.huge_error")]
#[async_trait]
impl Task for HugeError {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        let rec = ctx.data::<Recorder>()?;
        let mark = rec.start(ctx);
        let mut m = String::with_capacity(self.bytes);
        m.push_str(Self::PREFIX);
        while m.len() < self.bytes {
            m.push_str("0123456789abcdef");
        }
        m.truncate(self.bytes);
        rec.end(ctx, mark);
        Err(TaskError::msg(m).into_permanent())
    }
}
