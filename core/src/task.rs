//! The [`Task`] trait: what users implement.

use std::time::Duration;

use async_trait::async_trait;

use crate::context::TaskContext;
use crate::error::{Error, TaskError};
use crate::retry::RetryPolicy;

/// A unit of work kept as a row: a serde struct whose fields are stored as JSON, restored as a
/// `Box<dyn Task>` by [`typetag`] from the type name stored beside them.
///
/// ```
/// use taskrow::{async_trait, serde::{Deserialize, Serialize}, Task, TaskContext, TaskError};
/// use taskrow::typetag; // the attribute expands to `typetag::…` paths
///
/// #[derive(Serialize, Deserialize)]
/// #[serde(crate = "taskrow::serde")]
/// struct SyncOrder { order_id: i64, operator: String }
///
/// #[typetag::serde(name = "order.sync")] // the stored name: keep it stable
/// #[async_trait]
/// impl Task for SyncOrder {
///     async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
///         println!("sync order {} by {} (attempt {})", self.order_id, self.operator, ctx.attempt());
///         Ok(())
///     }
/// }
/// ```
///
/// - Give every impl a stable `name`: without it the stored name is the bare type name, and a
///   rename breaks stored rows. Two impls with one name compile but fail to load.
/// - An impl in a library crate that the final binary never references is dropped by the
///   linker and cannot be loaded: reference the crate (`use my_tasks as _;`).
/// - Handlers run on the tokio runtime: blocking code belongs in `tokio::task::spawn_blocking`,
///   or it stalls the worker and defeats the timeout (which can only interrupt an `.await`).
/// - A task runs at least once, possibly more: make handlers idempotent; the context gives the
///   attempt number and the task's code to help.
#[typetag::serde]
#[async_trait]
pub trait Task: Send + Sync + 'static {
    /// Runs the task once. `Ok` finishes it; an error is retried per the retry policy unless
    /// it is [`TaskError::permanent`].
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError>;

    /// This type's defaults (retry policy, max attempts, timeout, …); each enqueue can
    /// override them.
    fn defaults(&self) -> TaskDefaults {
        TaskDefaults::default()
    }
}

/// Defaults a task type carries. `None` leaves the library default in place.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct TaskDefaults {
    /// Most runs, the first included: `Some(Some(n))`; `Some(None)` runs until success.
    pub max_attempts: Option<Option<u32>>,
    /// Retry policy.
    pub retry: Option<RetryPolicy>,
    /// Longest one run may take.
    pub timeout: Option<Duration>,
    /// Business type.
    pub biz_type: Option<String>,
    /// Human-readable name.
    pub name: Option<String>,
    /// What success does with the row.
    pub on_success: Option<crate::OnSuccess>,
    /// The queue tasks of this type go to.
    pub queue: Option<String>,
    /// The priority tasks of this type get.
    pub priority: Option<crate::Priority>,
}

impl TaskDefaults {
    /// No defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// At most `n` runs, the first included.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(Some(n));
        self
    }
    /// Runs until success.
    pub fn unlimited_attempts(mut self) -> Self {
        self.max_attempts = Some(None);
        self
    }
    /// This retry policy.
    pub fn retry(mut self, p: RetryPolicy) -> Self {
        self.retry = Some(p);
        self
    }
    /// This timeout per run.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
    /// This biz type.
    pub fn biz_type(mut self, b: impl Into<String>) -> Self {
        self.biz_type = Some(b.into());
        self
    }
    /// This name.
    pub fn name(mut self, n: impl Into<String>) -> Self {
        self.name = Some(n.into());
        self
    }
    /// Keep the row as succeeded instead of deleting it.
    pub fn keep_on_success(mut self) -> Self {
        self.on_success = Some(crate::OnSuccess::Keep);
        self
    }
    /// Tasks of this type go to this queue.
    pub fn queue(mut self, q: impl Into<String>) -> Self {
        self.queue = Some(q.into());
        self
    }
    /// Tasks of this type get this priority.
    pub fn priority(mut self, p: crate::Priority) -> Self {
        self.priority = Some(p);
        self
    }
}

/// Splits a task into its stored type name and JSON payload.
pub fn to_row(task: &dyn Task) -> Result<(String, String), Error> {
    let name = task.typetag_name().to_owned();
    // typetag's external tagging writes `{"<name>": <payload>}`.
    let value = serde_json::to_value(task).map_err(|source| Error::Serialize {
        task_type: name.clone(),
        source,
    })?;
    let payload = match value {
        serde_json::Value::Object(mut map) if map.len() == 1 => {
            map.remove(&name).ok_or_else(|| {
                Error::InvalidInput(format!("task `{name}` serialized under another name"))
            })?
        }
        other => {
            return Err(Error::InvalidInput(format!(
                "task `{name}` serialized to {other}, not a tagged object"
            )));
        }
    };
    Ok((name, payload.to_string()))
}

/// Why a stored row could not be turned back into a task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// No registered `Task` impl has this name in this binary.
    #[error(
        "task type `{0}` is not registered in this binary: deploy a build that implements it (with #[typetag::serde(name = \"{0}\")], its crate linked by `use the_crate as _;`), or cancel the task"
    )]
    UnknownType(String),
    /// The payload does not fit the type's fields any more.
    #[error(
        "the payload of task type `{task_type}` does not deserialize: {reason}; fix the row's payload or make the type accept it (e.g. #[serde(default)]), then reset the task"
    )]
    BadPayload {
        /// The type name.
        task_type: String,
        /// What serde said.
        reason: String,
    },
}

/// Turns a stored type name and payload back into a task.
pub fn from_row(task_type: &str, payload: &str) -> Result<Box<dyn Task>, LoadError> {
    let payload: serde_json::Value =
        serde_json::from_str(payload).map_err(|e| LoadError::BadPayload {
            task_type: task_type.to_owned(),
            reason: format!("not JSON: {e}"),
        })?;
    let mut map = serde_json::Map::with_capacity(1);
    map.insert(task_type.to_owned(), payload);
    serde_json::from_value::<Box<dyn Task>>(serde_json::Value::Object(map)).map_err(|e| {
        let reason = e.to_string();
        if reason.starts_with("unknown variant") || reason.starts_with("non-unique tag") {
            LoadError::UnknownType(task_type.to_owned())
        } else {
            LoadError::BadPayload {
                task_type: task_type.to_owned(),
                reason,
            }
        }
    })
}
