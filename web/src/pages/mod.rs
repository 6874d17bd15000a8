//! The pages' shared parts (the page around a live region, errors, times, badges), and the
//! pages, one file each: overview, tasks, one task, failures (the queues page is `queues.rs`).
//! Each page has one live region that the embedded script refreshes by asking for the same URL
//! with `X-Taskrow-Fragment: live`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;

use axum::extract::{FromRequestParts, OriginalUri, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html as HtmlResponse, IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use taskrow::{
    Error, ListedRow, LogFilter, Outcome, Page, StateCount, TaskFilter, TaskLog, TaskRecord,
    TaskRef, TaskState, UnreadableRow,
};

use crate::Shared;
use crate::html::{Html, url_encode};

mod failures;
mod overview;
mod task;
mod tasks;

pub(crate) use failures::failures;
pub(crate) use overview::overview;
pub(crate) use task::task;
pub(crate) use tasks::{FilterQuery, action_form, tasks};

/// Rows per page of the task list.
pub(crate) const PAGE_SIZE: u64 = 50;
/// Most log rows the overview's chart reads (the oldest first, from an hour ago).
const CHART_SCAN_LIMIT: u64 = 200_000;
/// Most due tasks read (in id order) to find the oldest one: one page, as the store offers no
/// order by due time.
const DUE_SCAN_LIMIT: u64 = 1_000;
/// How long the list's task type choices are reused.
const TYPES_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(60);
/// Most failed attempts the failures page groups.
const FAILURE_SCAN_LIMIT: u64 = 50_000;
/// Page size when the dashboard walks matching tasks.
pub(crate) const SCAN_PAGE: u64 = 1_000;
/// Seconds between two refreshes of a live region.
const LIVE_SECONDS: u32 = 5;

/// The prefix the router is nested under (empty when served at the root), so that links work
/// wherever an application nests the dashboard.
#[derive(Debug, Clone)]
pub(crate) struct Base(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Base {
    type Rejection = Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let inner = parts.uri.path().to_owned();
        let outer = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| inner.clone(), |o| o.path().to_owned());
        let base = if inner == "/" {
            outer.trim_end_matches('/').to_owned()
        } else {
            outer
                .strip_suffix(inner.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        Ok(Base(base))
    }
}

impl Base {
    /// `base + path` (path starts with `/`). The overview is the prefix itself when nested:
    /// axum's `nest` routes `/prefix`, not `/prefix/`.
    pub(crate) fn at(&self, path: &str) -> String {
        if path == "/" && !self.0.is_empty() {
            return self.0.clone();
        }
        format!("{}{path}", self.0)
    }
}

/// Which page the navigation marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Tasks,
    Failures,
    Queues,
    None,
}

/// Whether the request asks for the live region alone.
pub(crate) fn wants_fragment(headers: &HeaderMap) -> bool {
    headers.contains_key("x-taskrow-fragment")
}

/// A whole page around `body`; `live` goes in the refreshed region.
pub(crate) fn page(
    s: &Shared,
    base: &Base,
    nav: Nav,
    title: &str,
    live: Option<&Html>,
    before: &Html,
    after: &Html,
) -> Html {
    let mut h = Html::new();
    h.raw("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
        .raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
        .raw("<title>")
        .text(title)
        .raw(" · taskrow</title><link rel=\"stylesheet\" href=\"")
        .text(base.at("/assets/app.css"))
        .raw("\"><script src=\"")
        .text(base.at("/assets/app.js"))
        .raw("\" defer></script></head><body><header><span class=\"brand\">taskrow</span><nav>");
    for (which, path, label) in [
        (Nav::Overview, "/", "Overview"),
        (Nav::Tasks, "/tasks", "Tasks"),
        (Nav::Failures, "/failures", "Failures"),
        (Nav::Queues, "/queues", "Queues"),
    ] {
        h.raw("<a href=\"").text(base.at(path)).raw("\"");
        if which == nav {
            h.raw(" class=\"here\"");
        }
        h.raw(">").text(label).raw("</a>");
    }
    h.raw("</nav>");
    if s.read_only {
        h.raw("<span class=\"mode\" id=\"read-only\">read-only</span>");
    }
    if live.is_some() {
        h.raw("<span class=\"live\"><span id=\"live-status\">live</span> ")
            .raw("<button type=\"button\" id=\"live-toggle\">pause</button></span>");
    }
    h.raw("</header><main><h1>").text(title).raw("</h1>");
    h.push(before);
    if let Some(live) = live {
        h.raw("<div id=\"live\" data-live=\"")
            .text(LIVE_SECONDS)
            .raw("\">")
            .push(live)
            .raw("</div>");
    }
    h.push(after);
    h.raw("</main></body></html>\n");
    h
}

/// The response for a page: the live region alone when the script asks for it.
pub(crate) fn respond(
    s: &Shared,
    base: &Base,
    headers: &HeaderMap,
    nav: Nav,
    title: &str,
    [live, before, after]: [Html; 3],
) -> Response {
    if wants_fragment(headers) {
        return HtmlResponse(live.into_string()).into_response();
    }
    HtmlResponse(page(s, base, nav, title, Some(&live), &before, &after).into_string())
        .into_response()
}

/// An error page with the store's message, and the status that fits it.
pub(crate) fn error_page(s: &Shared, base: &Base, e: &Error) -> Response {
    let status = match e {
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Running { .. }
        | Error::Succeeded(_)
        | Error::Cancelled(_)
        | Error::WrongState { .. } => StatusCode::CONFLICT,
        Error::InvalidInput(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    message_page(s, base, status, "Error", "error", &e.to_string())
}

/// A page that says one thing.
pub(crate) fn message_page(
    s: &Shared,
    base: &Base,
    status: StatusCode,
    title: &str,
    kind: &'static str,
    message: &str,
) -> Response {
    let mut body = Html::new();
    notice(&mut body, kind, message);
    body.raw("<p><a href=\"")
        .text(base.at("/"))
        .raw("\">Overview</a> · <a href=\"")
        .text(base.at("/tasks"))
        .raw("\">Tasks</a></p>");
    let html = page(s, base, Nav::None, title, None, &body, &Html::new());
    (status, HtmlResponse(html.into_string())).into_response()
}

/// A coloured box with a message (`kind`: ok, warn, error).
pub(crate) fn notice(h: &mut Html, kind: &'static str, message: &str) {
    h.raw("<div class=\"notice ")
        .raw(kind)
        .raw("\" role=\"status\">")
        .text(message)
        .raw("</div>");
}

/// Any other path.
pub(crate) async fn not_found(State(s): State<Shared>, base: Base) -> Response {
    message_page(
        &s,
        &base,
        StatusCode::NOT_FOUND,
        "Not found",
        "warn",
        "There is no dashboard page here.",
    )
}

/// The client's time, after giving a clock that follows the database a chance to read it.
pub(crate) async fn now(s: &Shared) -> DateTime<Utc> {
    let _ = s.client.clock().ready().await;
    s.client.clock().now()
}

pub(crate) fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn opt_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "—".to_owned(), time)
}

/// `3m 20s` for a span.
pub(crate) fn span(d: TimeDelta) -> String {
    let secs = d.num_seconds();
    let (neg, secs) = (secs < 0, secs.unsigned_abs());
    let text = if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m {}s", secs / 60, secs % 60)
    } else if secs < 86_400 {
        format!("{}h {}m", secs / 3600, (secs % 3600) / 60)
    } else {
        format!("{}d {}h", secs / 86_400, (secs % 86_400) / 3600)
    };
    if neg { format!("in {text}") } else { text }
}

fn badge(h: &mut Html, name: &'static str) {
    h.raw("<span class=\"badge ")
        .raw(name)
        .raw("\">")
        .raw(name)
        .raw("</span>");
}

fn state_badge(h: &mut Html, st: TaskState) {
    badge(h, st.as_str());
}

fn outcome_badge(h: &mut Html, o: Outcome) {
    badge(h, o.as_str());
}

/// The first `n` characters of `s`, with an ellipsis when cut.
fn clip(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        None => s.to_owned(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}
