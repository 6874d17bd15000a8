//! The taskrow dashboard: an [axum] [`Router`] that shows the tasks of a taskrow database and
//! acts on them (run now, reset, cancel, delete, purge).
//!
//! Two ways to run it:
//!
//! - **Nested** in your application, behind its own authentication:
//!   `app.nest("/tasks", taskrow_web::router(client))`. It runs "run now" in your process,
//!   where the task types are compiled in.
//! - **Standalone**: `taskrow serve --database-url …` (the CLI), built on [`standalone`]:
//!   loopback by default, a token required on any other address, the `Host` header checked.
//!
//! Every page is plain HTML with its values escaped ([`escape`]); the one script and the style
//! sheet are embedded and served by the router itself (no other host is contacted), under a
//! Content-Security-Policy that allows nothing else. Every action is a POST carrying this
//! process's CSRF token and is refused from another site (`Origin`, `Sec-Fetch-Site`); each
//! asks for a confirmation that says how many tasks it touches. In [`Dashboard::read_only`]
//! mode no action is shown and every POST is refused.

#![deny(missing_docs)]

mod actions;
mod health;
mod html;
mod pages;
mod queues;
mod security;
pub mod standalone;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use taskrow::Client;

pub use html::{escape, url_encode};

/// How "run now" runs a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunNow {
    /// In this process, with [`Client::run_now`]: the task types and their data must be
    /// registered here (an application nesting the router).
    InProcess,
    /// By reset: the task becomes pending and due now (attempts back to 0), and this
    /// process's workers are woken; a worker that has the task's type runs it. For a server
    /// with no task types compiled in (`taskrow serve`).
    ResetAndWake,
}

/// Builds the dashboard's [`Router`].
///
/// ```
/// # fn demo(client: taskrow::Client) {
/// let dashboard = taskrow_web::Dashboard::new(client).read_only(true).router();
/// let app: axum::Router = axum::Router::new().nest("/tasks", dashboard);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Dashboard {
    client: Client,
    read_only: bool,
    run_now: RunNow,
}

impl Dashboard {
    /// A dashboard on `client`'s store: actions shown, run now in this process.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            read_only: false,
            run_now: RunNow::InProcess,
        }
    }

    /// Read-only: no action is shown, and every POST is refused with 403.
    pub fn read_only(mut self, yes: bool) -> Self {
        self.read_only = yes;
        self
    }

    /// How "run now" runs a task (default [`RunNow::InProcess`]).
    pub fn run_now(mut self, mode: RunNow) -> Self {
        self.run_now = mode;
        self
    }

    /// The router: pages at `/`, `/tasks`, `/tasks/{id}`, `/failures`; actions as POSTs to
    /// `/actions/{action}`; the script and style sheet under `/assets/`; a health check for
    /// orchestrators at `/health` (200 or 503 with JSON: see [`taskrow::Client::health`];
    /// `?worker=ID` and `?max_age=SECS` ask more of the worker registry). Nest it anywhere:
    /// its links follow the prefix it is nested under.
    pub fn router(self) -> Router {
        let state = Arc::new(State {
            client: self.client,
            read_only: self.read_only,
            run_now: self.run_now,
            csrf: security::new_token(),
            task_types: std::sync::Mutex::new(None),
        });
        Router::new()
            .route("/", get(pages::overview))
            .route("/tasks", get(pages::tasks))
            .route("/tasks/{id}", get(pages::task))
            .route("/failures", get(pages::failures))
            .route("/queues", get(queues::queues))
            .route("/actions/queue", post(queues::queue_action))
            .route("/health", get(health::health))
            .route("/actions/{action}", post(actions::action))
            .route("/assets/app.js", get(security::script))
            .route("/assets/app.css", get(security::style))
            .fallback(pages::not_found)
            .layer(axum::middleware::from_fn(security::headers))
            .with_state(state)
    }
}

/// The dashboard on `client` with the defaults ([`Dashboard::new`]): actions shown, run now
/// in this process. Nest it under your application's authentication.
pub fn router(client: Client) -> Router {
    Dashboard::new(client).router()
}

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct State {
    pub client: Client,
    pub read_only: bool,
    pub run_now: RunNow,
    /// This process's CSRF token, in a hidden field of every action form.
    pub csrf: String,
    /// The task types for the list's filter, and when they were read (counting every row on
    /// each list page would cost more than the page).
    pub task_types: std::sync::Mutex<Option<(std::time::Instant, Vec<String>)>>,
}

pub(crate) type Shared = Arc<State>;

/// The README's example, compiled as a doc-test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
