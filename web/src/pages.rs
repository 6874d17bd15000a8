//! The pages: overview, tasks, one task, failures (the queues page is in `queues.rs`). Each page has one live region that the
//! embedded script refreshes by asking for the same URL with `X-Taskrow-Fragment: live`.

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

// ------------------------------------------------------------------------------------------
// Overview
// ------------------------------------------------------------------------------------------

/// Counts by state × type, runs and failures per minute over the last hour, the oldest due
/// task's lag, the workers in the registry.
pub(crate) async fn overview(State(s): State<Shared>, base: Base, headers: HeaderMap) -> Response {
    let now = now(&s).await;
    let counts = match s.client.counts().await {
        Ok(c) => c,
        Err(e) => return error_page(&s, &base, &e),
    };
    let since = now - TimeDelta::hours(1);
    let runs = match s
        .client
        .logs_matching(&LogFilter::default().since(since).limit(CHART_SCAN_LIMIT))
        .await
    {
        Ok(r) => r,
        Err(e) => return error_page(&s, &base, &e),
    };
    let due = match oldest_due(&s, now).await {
        Ok(d) => d,
        Err(e) => return error_page(&s, &base, &e),
    };

    let mut live = Html::new();
    summary_cards(&mut live, &base, &counts, &runs, &due, now);
    live.raw("<h2>Runs per minute, last hour</h2><div class=\"card\">");
    chart(&mut live, &runs, now);
    if runs.len() as u64 >= CHART_SCAN_LIMIT {
        live.raw("<p class=\"muted\">The chart shows the first ")
            .text(CHART_SCAN_LIMIT)
            .raw(" runs of the hour only.</p>");
    }
    live.raw("</div><h2>Tasks by type and state</h2>");
    counts_table(&mut live, &base, &counts);
    // Queues, priorities and schedules (issue 16's other branch) and the worker registry go
    // here, each as a section of the live region like the two above.
    live.raw("<h2>Workers</h2>");
    match s.client.workers().await {
        Ok(rows) => workers_table(&mut live, &rows, now),
        Err(e) => notice(
            &mut live,
            "error",
            &format!("The worker registry cannot be read: {e}"),
        ),
    }
    respond(
        &s,
        &base,
        &headers,
        Nav::Overview,
        "Overview",
        [live, Html::new(), Html::new()],
    )
}

/// The oldest due task (pending and due, or running under an expired lease), how many due
/// tasks were read, and whether the scan stopped at its limit.
struct Due {
    oldest: Option<(DateTime<Utc>, TaskRecord)>,
    read: u64,
    truncated: bool,
}

async fn oldest_due(s: &Shared, now: DateTime<Utc>) -> taskrow::Result<Due> {
    let filter = TaskFilter::all()
        .states([TaskState::Pending, TaskState::Running])
        .due_before(now);
    let mut page = Page::first(SCAN_PAGE.min(DUE_SCAN_LIMIT));
    let mut due = Due {
        oldest: None,
        read: 0,
        truncated: false,
    };
    loop {
        let rows = s.client.list(&filter, &page).await?;
        let n = rows.len() as u64;
        let last = rows.last().map(|r| r.id);
        for t in rows {
            if let Some(at) = t.next_run_at.or(t.lease_expires_at)
                && due.oldest.as_ref().is_none_or(|(o, _)| at < *o)
            {
                due.oldest = Some((at, t));
            }
        }
        due.read += n;
        match last {
            Some(id) if n == SCAN_PAGE => {
                if due.read >= DUE_SCAN_LIMIT {
                    due.truncated = true;
                    return Ok(due);
                }
                page = Page::after(id, SCAN_PAGE);
            }
            _ => return Ok(due),
        }
    }
}

fn summary_cards(
    h: &mut Html,
    base: &Base,
    counts: &[StateCount],
    runs: &[TaskLog],
    due: &Due,
    now: DateTime<Utc>,
) {
    let total = |st: TaskState| -> u64 {
        counts
            .iter()
            .filter(|c| c.state == st)
            .map(|c| c.count)
            .sum()
    };
    let failed_runs = runs.iter().filter(|l| is_failure(l.outcome)).count();
    h.raw("<div class=\"cards\">");
    for (st, label) in [
        (TaskState::Pending, "Pending"),
        (TaskState::Running, "Running"),
        (TaskState::Failed, "Failed"),
    ] {
        h.raw("<div class=\"card\"><div class=\"muted\">")
            .text(label)
            .raw("</div><div class=\"stat\"><a href=\"")
            .text(base.at(&format!("/tasks?state={}", st.as_str())))
            .raw("\" id=\"count-")
            .raw(st.as_str())
            .raw("\">")
            .text(total(st))
            .raw("</a></div></div>");
    }
    h.raw("<div class=\"card\"><div class=\"muted\">Runs, last hour</div><div class=\"stat\">")
        .text(runs.len())
        .raw("</div><div class=\"muted\">")
        .text(failed_runs)
        .raw(" failed</div></div>");
    h.raw("<div class=\"card\"><div class=\"muted\">Oldest due task waits</div>");
    match &due.oldest {
        None => {
            h.raw("<div class=\"stat\" id=\"lag\">0s</div><div class=\"muted\">nothing due</div>");
        }
        Some((at, t)) => {
            h.raw("<div class=\"stat\" id=\"lag\">")
                .text(span(now - *at))
                .raw("</div><div class=\"muted\"><a href=\"")
                .text(base.at(&format!("/tasks/{}", t.id)))
                .raw("\">")
                .text(clip(&t.code, 40))
                .raw("</a> · ")
                .text(due.read)
                .raw(" due");
            if due.truncated {
                h.raw(" (oldest of the first ")
                    .text(DUE_SCAN_LIMIT)
                    .raw(" by id)");
            }
            h.raw("</div>");
        }
    }
    h.raw("</div></div>");
}

/// Outcomes that count as a failed attempt.
fn is_failure(o: Outcome) -> bool {
    matches!(o, Outcome::Failed | Outcome::Retrying | Outcome::WorkerLost)
}

/// Runs and failed runs per minute over the hour before `now`, as an inline SVG bar chart.
fn chart(h: &mut Html, runs: &[TaskLog], now: DateTime<Utc>) {
    const W: i64 = 1200;
    const H: i64 = 200;
    const LEFT: i64 = 40;
    const BOTTOM: i64 = 22;
    const TOP: i64 = 10;
    let mut all = [0u64; 60];
    let mut failed = [0u64; 60];
    for l in runs {
        let ago = (now - l.started_at).num_seconds();
        if !(0..3600).contains(&ago) {
            continue;
        }
        let slot = 59 - usize::try_from(ago / 60).unwrap_or(0).min(59);
        all[slot] += 1;
        if is_failure(l.outcome) {
            failed[slot] += 1;
        }
    }
    let max = all.iter().copied().max().unwrap_or(0).max(1);
    let plot_h = H - BOTTOM - TOP;
    let bar_w = (W - LEFT - 4) / 60;
    let y_of = |v: u64| -> i64 { H - BOTTOM - (v as i64 * plot_h) / max as i64 };
    h.raw("<svg class=\"chart\" id=\"chart\" viewBox=\"0 0 ")
        .text(W)
        .raw(" ")
        .text(H)
        .raw("\" role=\"img\" aria-label=\"Runs and failed runs per minute over the last hour\">");
    // Axis and the top grid line with its value.
    h.raw("<line x1=\"")
        .text(LEFT)
        .raw("\" y1=\"")
        .text(H - BOTTOM)
        .raw("\" x2=\"")
        .text(W)
        .raw("\" y2=\"")
        .text(H - BOTTOM)
        .raw("\" stroke=\"#b9c1ce\"/>");
    h.raw("<line x1=\"")
        .text(LEFT)
        .raw("\" y1=\"")
        .text(TOP)
        .raw("\" x2=\"")
        .text(W)
        .raw("\" y2=\"")
        .text(TOP)
        .raw("\" stroke=\"#e6e9ef\" stroke-dasharray=\"4 4\"/>");
    h.raw("<text x=\"")
        .text(LEFT - 6)
        .raw("\" y=\"")
        .text(TOP + 4)
        .raw("\" text-anchor=\"end\" font-size=\"11\" fill=\"#5b6678\">")
        .text(max)
        .raw("</text>");
    h.raw("<text x=\"")
        .text(LEFT - 6)
        .raw("\" y=\"")
        .text(H - BOTTOM)
        .raw("\" text-anchor=\"end\" font-size=\"11\" fill=\"#5b6678\">0</text>");
    for i in 0..60usize {
        let x = LEFT + 2 + i as i64 * bar_w;
        let minute = now - TimeDelta::minutes(59 - i as i64);
        h.raw("<g><title>")
            .text(minute.format("%H:%M"))
            .raw(": ")
            .text(all[i])
            .raw(" runs, ")
            .text(failed[i])
            .raw(" failed</title>");
        if all[i] > 0 {
            let y = y_of(all[i]);
            h.raw("<rect x=\"")
                .text(x)
                .raw("\" y=\"")
                .text(y)
                .raw("\" width=\"")
                .text(bar_w - 2)
                .raw("\" height=\"")
                .text(H - BOTTOM - y)
                .raw("\" fill=\"#8fb0f0\"/>");
        }
        if failed[i] > 0 {
            let y = y_of(failed[i]);
            h.raw("<rect class=\"fail\" x=\"")
                .text(x)
                .raw("\" y=\"")
                .text(y)
                .raw("\" width=\"")
                .text(bar_w - 2)
                .raw("\" height=\"")
                .text(H - BOTTOM - y)
                .raw("\" fill=\"#d64545\"/>");
        }
        h.raw("</g>");
    }
    for (i, label) in [(0i64, "−60 min"), (30, "−30 min"), (59, "now")] {
        let x = LEFT + 2 + i * bar_w;
        h.raw("<text x=\"")
            .text(x)
            .raw("\" y=\"")
            .text(H - 6)
            .raw("\" font-size=\"11\" fill=\"#5b6678\">")
            .text(label)
            .raw("</text>");
    }
    h.raw("</svg><div class=\"legend\"><span><i class=\"runs\"></i>runs</span>")
        .raw("<span><i class=\"fail\"></i>failed attempts (failed, retrying, worker lost)</span></div>");
}

fn counts_table(h: &mut Html, base: &Base, counts: &[StateCount]) {
    let mut by_type: BTreeMap<&str, [u64; 5]> = BTreeMap::new();
    for c in counts {
        let row = by_type.entry(c.task_type.as_str()).or_default();
        row[usize::try_from(c.state.code()).unwrap_or(0).min(4)] += c.count;
    }
    if by_type.is_empty() {
        h.raw("<p class=\"muted\">No tasks.</p>");
        return;
    }
    h.raw("<table id=\"counts\"><thead><tr><th>Type</th>");
    for st in TaskState::ALL {
        h.raw("<th class=\"num\">").text(st.as_str()).raw("</th>");
    }
    h.raw("<th class=\"num\">total</th></tr></thead><tbody>");
    let mut totals = [0u64; 5];
    for (ty, row) in &by_type {
        h.raw("<tr><td class=\"code\"><a href=\"")
            .text(base.at(&format!("/tasks?type={}", url_encode(ty))))
            .raw("\">")
            .text(ty)
            .raw("</a></td>");
        for (i, st) in TaskState::ALL.into_iter().enumerate() {
            totals[i] += row[i];
            h.raw("<td class=\"num\">");
            if row[i] > 0 {
                h.raw("<a href=\"")
                    .text(base.at(&format!(
                        "/tasks?type={}&state={}",
                        url_encode(ty),
                        st.as_str()
                    )))
                    .raw("\">")
                    .text(row[i])
                    .raw("</a>");
            } else {
                h.raw("<span class=\"muted\">0</span>");
            }
            h.raw("</td>");
        }
        h.raw("<td class=\"num\">")
            .text(row.iter().sum::<u64>())
            .raw("</td></tr>");
    }
    h.raw("</tbody><tfoot><tr><th>all types</th>");
    for t in totals {
        h.raw("<th class=\"num\">").text(t).raw("</th>");
    }
    h.raw("<th class=\"num\">")
        .text(totals.iter().sum::<u64>())
        .raw("</th></tr></tfoot></table>");
}

/// The worker registry: one row per worker, alive or gone (three beats missed).
fn workers_table(h: &mut Html, rows: &[taskrow::WorkerRecord], now: DateTime<Utc>) {
    if rows.is_empty() {
        h.raw("<p class=\"muted\">No workers: a started worker registers itself here and leaves at shutdown.</p>");
        return;
    }
    h.raw(
        "<table id=\"workers\"><thead><tr><th>Worker</th><th>Host</th><th class=\"num\">PID</th>",
    )
    .raw("<th>Queues</th><th class=\"num\">Concurrency</th><th class=\"num\">Running</th>")
    .raw("<th>Started</th><th>Last beat</th><th>State</th></tr></thead><tbody>");
    for w in rows {
        h.raw("<tr><td class=\"code\">")
            .text(&w.id)
            .raw("</td><td>")
            .text(&w.host)
            .raw("</td><td class=\"num\">")
            .text(w.pid)
            .raw("</td><td>");
        if w.queues.is_empty() {
            h.raw("<span class=\"muted\">all</span>");
        } else {
            h.text(w.queues.join(", "));
        }
        h.raw("</td><td class=\"num\">")
            .text(w.concurrency)
            .raw("</td><td class=\"num\">")
            .text(w.running)
            .raw("</td><td>")
            .text(time(w.started_at))
            .raw("</td><td title=\"")
            .text(time(w.last_beat))
            .raw("\">")
            .text(span(now - w.last_beat))
            .raw(" ago</td><td>");
        badge(h, if w.alive { "alive" } else { "gone" });
        h.raw("</td></tr>");
    }
    h.raw("</tbody></table>");
}

// ------------------------------------------------------------------------------------------
// Tasks
// ------------------------------------------------------------------------------------------

/// The task list's filters, as they travel in the query string and in bulk action forms.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct FilterQuery {
    #[serde(default)]
    pub state: String,
    #[serde(default, rename = "type")]
    pub task_type: String,
    #[serde(default)]
    pub biz: String,
    #[serde(default)]
    pub queue: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub due: String,
    #[serde(default)]
    pub after: String,
}

impl FilterQuery {
    /// The store filter, or what is wrong with the query.
    pub(crate) fn filter(&self, now: DateTime<Utc>) -> Result<TaskFilter, String> {
        let mut f = TaskFilter::all();
        if !self.state.is_empty() {
            f = f.states([self.state.parse::<TaskState>()?]);
        }
        if !self.task_type.is_empty() {
            f = f.task_types([self.task_type.clone()]);
        }
        if !self.biz.is_empty() {
            f = f.biz_types([self.biz.clone()]);
        }
        if !self.queue.is_empty() {
            f = f.queues([self.queue.clone()]);
        }
        if !self.prefix.is_empty() {
            f = f.code_prefix(self.prefix.clone());
        }
        if !self.due.is_empty() {
            f = f.due_before(now);
        }
        Ok(f)
    }

    fn after_id(&self) -> Result<Option<i64>, String> {
        if self.after.is_empty() {
            return Ok(None);
        }
        self.after
            .parse()
            .map(Some)
            .map_err(|_| format!("`after` must be a task id, not `{}`", self.after))
    }

    /// The filter as a query string (without `after`).
    pub(crate) fn query(&self) -> String {
        let mut q = Vec::new();
        for (k, v) in self.pairs() {
            if !v.is_empty() {
                q.push(format!("{k}={}", url_encode(v)));
            }
        }
        q.join("&")
    }

    /// The filter's fields by name (without `after`).
    pub(crate) fn pairs(&self) -> [(&'static str, &str); 6] {
        [
            ("state", &self.state),
            ("type", &self.task_type),
            ("biz", &self.biz),
            ("queue", &self.queue),
            ("prefix", &self.prefix),
            ("due", &self.due),
        ]
    }

    /// Whether any filter is set.
    pub(crate) fn is_empty(&self) -> bool {
        self.pairs().iter().all(|(_, v)| v.is_empty())
    }

    /// The filter in words.
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.state.is_empty() {
            parts.push(format!("state {}", self.state));
        }
        if !self.task_type.is_empty() {
            parts.push(format!("type {}", self.task_type));
        }
        if !self.biz.is_empty() {
            parts.push(format!("biz type {}", self.biz));
        }
        if !self.queue.is_empty() {
            parts.push(format!("queue {}", self.queue));
        }
        if !self.prefix.is_empty() {
            parts.push(format!("code starting with `{}`", self.prefix));
        }
        if !self.due.is_empty() {
            parts.push("due now".to_owned());
        }
        if parts.is_empty() {
            "every task".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// The task list: filters, one page in id order, keyset paging.
pub(crate) async fn tasks(
    State(s): State<Shared>,
    base: Base,
    headers: HeaderMap,
    Query(q): Query<FilterQuery>,
) -> Response {
    let now = now(&s).await;
    let (filter, after) = match (q.filter(now), q.after_id()) {
        (Ok(f), Ok(a)) => (f, a),
        (Err(m), _) | (_, Err(m)) => {
            return message_page(&s, &base, StatusCode::BAD_REQUEST, "Tasks", "error", &m);
        }
    };
    let page = match after {
        None => Page::first(PAGE_SIZE + 1),
        Some(id) => Page::after(id, PAGE_SIZE + 1),
    };
    // Rows this version cannot read show in their place, marked, rather than failing the page.
    let mut rows = match s.client.store().list_rows(&filter, &page).await {
        Ok(r) => r,
        Err(e) => return error_page(&s, &base, &e),
    };
    let more = rows.len() as u64 > PAGE_SIZE;
    rows.truncate(usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX));
    let mut before = Html::new();
    if !wants_fragment(&headers) {
        // A refresh of the list alone needs no filter form.
        let types = task_types(&s).await;
        filter_form(&mut before, &base, &q, &types);
    }

    let mut live = Html::new();
    task_table(&mut live, &base, &rows, now);
    live.raw("<div class=\"pager\">");
    if after.is_some() {
        let first = q.query();
        live.raw("<a id=\"first-page\" href=\"")
            .text(base.at(&format!("/tasks?{first}")))
            .raw("\">« first page</a>");
    }
    if let (true, Some(last)) = (more, rows.last()) {
        let sep = if q.is_empty() { "" } else { "&" };
        live.raw("<a id=\"next-page\" href=\"")
            .text(base.at(&format!("/tasks?{}{sep}after={}", q.query(), last.id())))
            .raw("\">next page »</a>");
    }
    if !rows.is_empty() {
        live.raw("<span class=\"muted\">")
            .text(rows.len())
            .raw(" shown, in id order</span>");
    }
    live.raw("</div>");

    let mut after_html = Html::new();
    if !s.read_only {
        after_html.raw("<h2>Act on every task matching this filter</h2><div class=\"actions\">");
        let mut fields: Vec<(&'static str, String)> = vec![("scope", "filter".to_owned())];
        for (k, v) in q.pairs() {
            fields.push((k, v.to_owned()));
        }
        for (action, label, class) in [
            ("reset", "Reset failed and cancelled…", "primary"),
            ("cancel", "Cancel…", ""),
            ("delete", "Delete…", "danger"),
        ] {
            action_form(&mut after_html, &s, &base, action, label, class, &fields);
        }
        after_html.raw("</div><h2>Purge old finished tasks</h2>");
        purge_form(&mut after_html, &s, &base);
    }
    respond(
        &s,
        &base,
        &headers,
        Nav::Tasks,
        "Tasks",
        [live, before, after_html],
    )
}

/// The task types for the filter, read from the counts at most once a minute.
async fn task_types(s: &Shared) -> Vec<String> {
    let fresh = |cached: &Option<(std::time::Instant, Vec<String>)>| {
        cached
            .as_ref()
            .filter(|(at, _)| at.elapsed() < TYPES_FRESH_FOR)
            .map(|(_, t)| t.clone())
    };
    if let Some(types) = fresh(&s.task_types.lock().unwrap_or_else(|e| e.into_inner())) {
        return types;
    }
    let types: BTreeSet<String> = s
        .client
        .counts()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.task_type)
        .collect();
    let types: Vec<String> = types.into_iter().collect();
    *s.task_types.lock().unwrap_or_else(|e| e.into_inner()) =
        Some((std::time::Instant::now(), types.clone()));
    types
}

fn filter_form(h: &mut Html, base: &Base, q: &FilterQuery, types: &[String]) {
    h.raw("<form class=\"filters\" method=\"get\" id=\"filters\" action=\"")
        .text(base.at("/tasks"))
        .raw(
            "\"><label>State<select name=\"state\" id=\"f-state\"><option value=\"\">any</option>",
        );
    for st in TaskState::ALL {
        h.raw("<option");
        if q.state == st.as_str() {
            h.raw(" selected");
        }
        h.raw(">").text(st.as_str()).raw("</option>");
    }
    h.raw("</select></label><label>Type<select name=\"type\" id=\"f-type\"><option value=\"\">any</option>");
    for t in types {
        h.raw("<option");
        if q.task_type == *t {
            h.raw(" selected");
        }
        h.raw(">").text(t).raw("</option>");
    }
    if !q.task_type.is_empty() && !types.contains(&q.task_type) {
        h.raw("<option selected>")
            .text(&q.task_type)
            .raw("</option>");
    }
    h.raw("</select></label><label>Biz type<input name=\"biz\" id=\"f-biz\" value=\"")
        .text(&q.biz)
        .raw("\"></label><label>Queue<input name=\"queue\" id=\"f-queue\" value=\"")
        .text(&q.queue)
        .raw("\"></label><label>Code prefix<input name=\"prefix\" id=\"f-prefix\" value=\"")
        .text(&q.prefix)
        .raw("\"></label><label>Due now<select name=\"due\" id=\"f-due\"><option value=\"\">any</option><option value=\"1\"");
    if !q.due.is_empty() {
        h.raw(" selected");
    }
    h.raw(">due</option></select></label><button type=\"submit\" class=\"primary\" id=\"f-apply\">Filter</button> <a href=\"")
        .text(base.at("/tasks"))
        .raw("\">clear</a></form>");
}

fn task_table(h: &mut Html, base: &Base, rows: &[ListedRow], now: DateTime<Utc>) {
    if rows.is_empty() {
        h.raw("<p class=\"muted\" id=\"no-tasks\">No task matches.</p>");
        return;
    }
    h.raw("<table id=\"tasks\"><thead><tr><th class=\"num\">id</th><th>code</th><th>type</th>")
        .raw("<th>biz type</th><th>queue</th><th>priority</th><th>state</th>")
        .raw("<th class=\"num\">attempts</th><th>next run</th>")
        .raw("<th>last error</th><th>updated</th></tr></thead><tbody>");
    for row in rows {
        let t = match row {
            ListedRow::Task(t) => t,
            ListedRow::Unreadable(u) => {
                unreadable_row(h, u);
                continue;
            }
        };
        let link = base.at(&format!("/tasks/{}", t.id));
        h.raw("<tr data-id=\"")
            .text(t.id)
            .raw("\"><td class=\"num\"><a href=\"")
            .text(&link)
            .raw("\">")
            .text(t.id)
            .raw("</a></td><td class=\"code\"><a class=\"task-link\" href=\"")
            .text(&link)
            .raw("\">")
            .text(clip(&t.code, 60))
            .raw("</a></td>")
            .el("<td class=\"code type\">", &t.task_type, "</td>")
            .el("<td>", &t.biz_type, "</td>")
            .el("<td class=\"queue\">", &t.queue, "</td>")
            .el("<td class=\"priority\">", t.priority.as_str(), "</td>")
            .raw("<td class=\"state\">");
        state_badge(h, t.state);
        h.raw("</td><td class=\"num\">").text(t.attempts);
        if let Some(m) = t.max_attempts {
            h.raw(" / ").text(m);
        }
        h.raw("</td><td>");
        match t.next_run_at {
            Some(at) if at <= now => {
                h.raw("due ").text(span(now - at)).raw(" ago");
            }
            Some(at) => {
                h.text(span(now - at));
            }
            None => {
                h.raw("—");
            }
        }
        h.raw("</td>")
            .el(
                "<td class=\"err\">",
                clip(t.last_error.as_deref().unwrap_or(""), 120),
                "</td>",
            )
            .el("<td>", time(t.updated_at), "</td></tr>");
    }
    h.raw("</tbody></table>");
}

/// A row this version cannot read: its id, code and type as stored, and why (the CLI's
/// `taskrow delete <id>` removes it).
fn unreadable_row(h: &mut Html, u: &UnreadableRow) {
    h.raw("<tr class=\"corrupt\" data-id=\"")
        .text(u.id)
        .raw("\"><td class=\"num\">")
        .text(u.id)
        .raw("</td>")
        .el("<td class=\"code\">", clip(&u.code, 60), "</td>")
        .el("<td class=\"code type\">", &u.task_type, "</td>")
        .raw("<td></td><td></td><td></td><td class=\"state\"><span class=\"badge failed\">corrupt</span></td>")
        .raw("<td></td><td></td>")
        .el(
            "<td class=\"err\">",
            clip(&format!("cannot be read: {} (taskrow delete {})", u.reason, u.id), 200),
            "</td>",
        )
        .raw("<td></td></tr>");
}

/// A POST form to `/actions/{action}` with the CSRF token and `fields` hidden.
pub(crate) fn action_form(
    h: &mut Html,
    s: &Shared,
    base: &Base,
    action: &'static str,
    label: &'static str,
    class: &'static str,
    fields: &[(&'static str, String)],
) {
    h.raw("<form method=\"post\" action=\"")
        .text(base.at(&format!("/actions/{action}")))
        .raw("\"><input type=\"hidden\" name=\"csrf\" value=\"")
        .text(&s.csrf)
        .raw("\">");
    for (k, v) in fields {
        h.raw("<input type=\"hidden\" name=\"")
            .raw(k)
            .raw("\" value=\"")
            .text(v)
            .raw("\">");
    }
    h.raw("<button type=\"submit\" class=\"")
        .raw(class)
        .raw("\" id=\"action-")
        .raw(action)
        .raw("\">")
        .raw(label)
        .raw("</button></form>");
}

fn purge_form(h: &mut Html, s: &Shared, base: &Base) {
    h.raw("<form method=\"post\" class=\"filters\" action=\"")
        .text(base.at("/actions/purge"))
        .raw("\"><input type=\"hidden\" name=\"csrf\" value=\"")
        .text(&s.csrf)
        .raw("\"><label>Finished more than (days) ago<input name=\"days\" id=\"purge-days\" value=\"30\" size=\"4\"></label>")
        .raw("<label>States<select name=\"states\" id=\"purge-states\">")
        .raw("<option value=\"succeeded,cancelled\">succeeded and cancelled</option>")
        .raw("<option value=\"succeeded,cancelled,failed\">succeeded, cancelled and failed</option>")
        .raw("</select></label><button type=\"submit\" class=\"danger\" id=\"action-purge\">Purge…</button></form>");
}

// ------------------------------------------------------------------------------------------
// One task
// ------------------------------------------------------------------------------------------

/// One task: every field, the payload as pretty JSON, every attempt from the log, actions.
pub(crate) async fn task(
    State(s): State<Shared>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return message_page(
            &s,
            &base,
            StatusCode::BAD_REQUEST,
            "Task",
            "error",
            &format!("`{id}` is not a task id: task pages are /tasks/<id>, e.g. /tasks/42"),
        );
    };
    let t = match s.client.get(TaskRef::Id(id)).await {
        Ok(t) => t,
        Err(e) => return error_page(&s, &base, &e),
    };
    let logs = match s.client.logs(TaskRef::Id(id)).await {
        Ok(l) => l,
        Err(e) => return error_page(&s, &base, &e),
    };
    let now = now(&s).await;
    let mut live = Html::new();
    fields(&mut live, &t, now);
    live.raw("<h2>Payload</h2><pre id=\"payload\">")
        .text(pretty_json(&t.payload))
        .raw("</pre>");
    if let Some(err) = &t.last_error {
        live.raw("<h2>Last error</h2><pre id=\"last-error\">")
            .text(err)
            .raw("</pre>");
    }
    live.raw("<h2>Attempts</h2>");
    log_table(&mut live, &logs);

    let mut before = Html::new();
    if !s.read_only {
        before.raw("<div class=\"actions\">");
        let fields = [("scope", "one".to_owned()), ("id", t.id.to_string())];
        for (action, label, class) in [
            ("run_now", "Run now…", "primary"),
            ("reset", "Reset…", ""),
            ("cancel", "Cancel…", ""),
            ("delete", "Delete…", "danger"),
        ] {
            action_form(&mut before, &s, &base, action, label, class, &fields);
        }
        before.raw("</div>");
    }
    let title = format!("Task {} · {}", t.id, clip(&t.code, 60));
    respond(
        &s,
        &base,
        &headers,
        Nav::Tasks,
        &title,
        [live, before, Html::new()],
    )
}

/// A retry policy in words.
fn retry_policy(p: &taskrow::RetryPolicy) -> String {
    match p {
        taskrow::RetryPolicy::Fixed { interval_ms } => {
            format!("fixed: every {}", ms(*interval_ms))
        }
        taskrow::RetryPolicy::Exponential {
            initial_ms,
            factor,
            max_ms,
            jitter,
        } => format!(
            "exponential: from {} ×{factor} up to {}, jitter {:.0} %",
            ms(*initial_ms),
            ms(*max_ms),
            jitter * 100.0
        ),
        other => format!("{other:?}"),
    }
}

/// Milliseconds, in the largest unit that keeps them whole.
fn ms(n: u64) -> String {
    match n {
        n if n >= 3_600_000 && n % 3_600_000 == 0 => format!("{} h", n / 3_600_000),
        n if n >= 60_000 && n % 60_000 == 0 => format!("{} min", n / 60_000),
        n if n >= 1000 && n % 1000 == 0 => format!("{} s", n / 1000),
        n => format!("{n} ms"),
    }
}

/// The payload indented, or as stored when it is not JSON.
fn pretty_json(payload: &str) -> String {
    serde_json::from_str::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| payload.to_owned())
}

fn fields(h: &mut Html, t: &TaskRecord, now: DateTime<Utc>) {
    h.raw("<div class=\"card\"><dl class=\"fields\" id=\"fields\">");
    let row = |h: &mut Html, name: &'static str, value: String| {
        h.raw("<dt>")
            .raw(name)
            .raw("</dt><dd>")
            .text(value)
            .raw("</dd>");
    };
    row(h, "id", t.id.to_string());
    row(h, "code", t.code.clone());
    row(h, "type", t.task_type.clone());
    h.raw("<dt>state</dt><dd id=\"state\">");
    state_badge(h, t.state);
    if t.lease_live_at(now) {
        h.raw(" <span class=\"muted\">lease live for ")
            .text(span(t.lease_expires_at.unwrap_or(now) - now))
            .raw("</span>");
    } else if t.lease_expired_at(now) {
        h.raw(" <span class=\"muted\">lease expired: its worker is presumed lost</span>");
    }
    h.raw("</dd>");
    row(h, "name", t.name.clone());
    row(
        h,
        "description",
        t.description.clone().unwrap_or_else(|| "—".into()),
    );
    row(h, "biz type", t.biz_type.clone());
    row(h, "queue", t.queue.clone());
    row(h, "priority", t.priority.as_str().to_owned());
    row(
        h,
        "attempts",
        match t.max_attempts {
            Some(m) => format!("{} of {m}", t.attempts),
            None => format!("{} (no limit)", t.attempts),
        },
    );
    row(h, "interruptions", t.interruptions.to_string());
    row(h, "retry policy", retry_policy(&t.retry));
    row(
        h,
        "timeout",
        t.timeout
            .map_or_else(|| "worker default".into(), |d| format!("{d:?}")),
    );
    row(h, "on success", format!("{:?}", t.on_success));
    row(h, "dispatch", format!("{:?}", t.dispatch));
    row(h, "next run", opt_time(t.next_run_at));
    row(h, "lease expires", opt_time(t.lease_expires_at));
    row(h, "cancel requested", opt_time(t.cancel_requested_at));
    row(
        h,
        "lease owner",
        t.lease_owner.clone().unwrap_or_else(|| "—".into()),
    );
    row(h, "last claimed", opt_time(t.claimed_at));
    row(h, "due at (last claim)", opt_time(t.due_at));
    row(
        h,
        "claim token",
        t.claim_token.map_or_else(|| "—".into(), |k| k.to_string()),
    );
    row(h, "version", t.version.to_string());
    row(h, "created", time(t.created_at));
    row(h, "updated", time(t.updated_at));
    h.raw("</dl></div>");
}

fn log_table(h: &mut Html, logs: &[TaskLog]) {
    if logs.is_empty() {
        h.raw("<p class=\"muted\" id=\"no-attempts\">No attempt yet.</p>");
        return;
    }
    h.raw("<table id=\"attempts\"><thead><tr><th class=\"num\">attempt</th><th>started</th>")
        .raw("<th class=\"num\">duration</th><th>outcome</th><th>worker</th><th>error</th>")
        .raw("</tr></thead><tbody>");
    for l in logs {
        h.raw("<tr><td class=\"num\">")
            .text(l.attempt)
            .raw("</td>")
            .el("<td>", time(l.started_at), "</td>")
            .el(
                "<td class=\"num\">",
                format!("{} ms", l.duration_ms),
                "</td>",
            )
            .raw("<td>");
        outcome_badge(h, l.outcome);
        h.raw("</td>")
            .el("<td class=\"code\">", &l.worker, "</td>")
            .el(
                "<td class=\"err\">",
                l.error.as_deref().unwrap_or(""),
                "</td></tr>",
            );
    }
    h.raw("</tbody></table>");
}

// ------------------------------------------------------------------------------------------
// Failures
// ------------------------------------------------------------------------------------------

/// The failures page's period.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct FailureQuery {
    #[serde(default)]
    hours: String,
}

/// Recent failed attempts grouped by error text.
pub(crate) async fn failures(
    State(s): State<Shared>,
    base: Base,
    headers: HeaderMap,
    Query(q): Query<FailureQuery>,
) -> Response {
    let hours: i64 = match q.hours.as_str() {
        "" => 24,
        h => match h.parse() {
            Ok(n) if (1..=24 * 90).contains(&n) => n,
            _ => {
                return message_page(
                    &s,
                    &base,
                    StatusCode::BAD_REQUEST,
                    "Failures",
                    "error",
                    &format!("`hours` must be a number of hours from 1 to 2160, not `{h}`"),
                );
            }
        },
    };
    let now = now(&s).await;
    let filter = LogFilter::default()
        .outcomes([Outcome::Failed, Outcome::Retrying, Outcome::WorkerLost])
        .since(now - TimeDelta::hours(hours))
        .limit(FAILURE_SCAN_LIMIT);
    let logs = match s.client.logs_matching(&filter).await {
        Ok(l) => l,
        Err(e) => return error_page(&s, &base, &e),
    };
    struct Group<'a> {
        count: u64,
        types: BTreeSet<&'a str>,
        tasks: BTreeSet<i64>,
        last: &'a TaskLog,
    }
    let mut groups: HashMap<&str, Group<'_>> = HashMap::new();
    for l in &logs {
        let key = l.error.as_deref().unwrap_or("(no error text)");
        let g = groups.entry(key).or_insert_with(|| Group {
            count: 0,
            types: BTreeSet::new(),
            tasks: BTreeSet::new(),
            last: l,
        });
        g.count += 1;
        g.types.insert(&l.task_type);
        g.tasks.insert(l.task_id);
        if l.started_at >= g.last.started_at {
            g.last = l;
        }
    }
    let mut groups: Vec<(&str, Group<'_>)> = groups.into_iter().collect();
    groups.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));

    let mut before = Html::new();
    before.raw("<p>Period: ");
    for (n, label) in [
        (1, "last hour"),
        (24, "last 24 hours"),
        (168, "last 7 days"),
    ] {
        if n == hours {
            before.raw("<strong>").text(label).raw("</strong> ");
        } else {
            before
                .raw("<a href=\"")
                .text(base.at(&format!("/failures?hours={n}")))
                .raw("\">")
                .text(label)
                .raw("</a> ");
        }
    }
    before.raw("</p>");

    let mut live = Html::new();
    live.raw("<p class=\"muted\">")
        .text(logs.len())
        .raw(" failed attempts (failed, retrying, worker lost) in ")
        .text(groups.len())
        .raw(" groups by error text.");
    if logs.len() as u64 >= FAILURE_SCAN_LIMIT {
        live.raw(" Only the first ")
            .text(FAILURE_SCAN_LIMIT)
            .raw(" of the period were read.");
    }
    live.raw("</p>");
    if groups.is_empty() {
        live.raw("<p class=\"muted\" id=\"no-failures\">No failed attempt in this period.</p>");
    } else {
        live.raw("<table id=\"failures\"><thead><tr><th class=\"num\">attempts</th>")
            .raw("<th class=\"num\">tasks</th><th>error</th><th>types</th><th>last seen</th>")
            .raw("</tr></thead><tbody>");
        for (error, g) in &groups {
            live.raw("<tr><td class=\"num\">")
                .text(g.count)
                .raw("</td><td class=\"num\">")
                .text(g.tasks.len())
                .raw("</td><td class=\"err\"><pre>")
                .text(clip(error, 600))
                .raw("</pre></td><td class=\"code\">")
                .text(g.types.iter().copied().collect::<Vec<_>>().join(", "))
                .raw("</td><td>")
                .text(time(g.last.started_at))
                .raw("<br><a href=\"")
                .text(base.at(&format!("/tasks/{}", g.last.task_id)))
                .raw("\">")
                .text(clip(&g.last.code, 40))
                .raw("</a> ");
            outcome_badge(&mut live, g.last.outcome);
            live.raw("</td></tr>");
        }
        live.raw("</tbody></table>");
    }
    respond(
        &s,
        &base,
        &headers,
        Nav::Failures,
        "Failures",
        [live, before, Html::new()],
    )
}
