//! The queues page: each queue's counts by state and priority, paused or not, with pause and
//! resume; and the schedules (periodic tasks) with their last and next tick.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html as HtmlResponse, IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use taskrow::{Priority, QueueInfo, ScheduleRecord, StateCount, TaskState};

use crate::Shared;
use crate::html::{Html, url_encode};
use crate::pages::{Base, Nav, error_page, message_page, notice, now, page, respond, span, time};
use crate::security::{cross_site, same_secret};

/// Queues with their counts and pause state, then the schedules.
pub(crate) async fn queues(State(s): State<Shared>, base: Base, headers: HeaderMap) -> Response {
    let now = now(&s).await;
    let (queues, counts, schedules) =
        match tokio::try_join!(s.client.queues(), s.client.counts(), s.client.schedules()) {
            Ok(all) => all,
            Err(e) => return error_page(&s, &base, &e),
        };
    let mut live = Html::new();
    live.raw("<h2>Queues</h2>");
    queue_table(&mut live, &s, &base, &queues, &counts);
    live.raw("<h2>Schedules</h2>");
    schedule_table(&mut live, &base, &schedules, now);
    let mut before = Html::new();
    before.raw(
        "<p class=\"muted\">A paused queue keeps its tasks: workers claim none of them until it \
         is resumed, and runs already started finish. Among due tasks a claim takes the highest \
         priority first; a flood of high-priority tasks can starve lower ones, so give work \
         that needs reserved capacity a queue of its own.</p>",
    );
    respond(
        &s,
        &base,
        &headers,
        Nav::Queues,
        "Queues and schedules",
        [live, before, Html::new()],
    )
}

/// One row per queue: paused or running, counts by state, pending by priority, and its
/// pause or resume button.
fn queue_table(h: &mut Html, s: &Shared, base: &Base, queues: &[QueueInfo], counts: &[StateCount]) {
    if queues.is_empty() {
        h.raw("<p class=\"muted\" id=\"no-queues\">No queue has tasks yet.</p>");
        return;
    }
    // Pending tasks by queue and priority, from the counts.
    let mut pending: BTreeMap<&str, [u64; 3]> = BTreeMap::new();
    for c in counts.iter().filter(|c| c.state == TaskState::Pending) {
        let row = pending.entry(c.queue.as_str()).or_default();
        row[usize::try_from(c.priority.code()).unwrap_or(1).min(2)] += c.count;
    }
    h.raw("<table id=\"queues\"><thead><tr><th>queue</th><th>status</th>");
    for st in TaskState::ALL {
        h.raw("<th class=\"num\">").text(st.as_str()).raw("</th>");
    }
    h.raw("<th>pending by priority</th>");
    if !s.read_only {
        h.raw("<th></th>");
    }
    h.raw("</tr></thead><tbody>");
    for q in queues {
        let count = |st: TaskState| {
            q.counts
                .iter()
                .filter(|(s, _)| *s == st)
                .map(|(_, n)| *n)
                .sum::<u64>()
        };
        h.raw("<tr data-queue=\"")
            .text(&q.name)
            .raw("\"><td class=\"code\"><a href=\"")
            .text(base.at(&format!("/tasks?queue={}", url_encode(&q.name))))
            .raw("\">")
            .text(&q.name)
            .raw("</a></td><td class=\"status\">");
        if q.paused {
            h.raw("<span class=\"badge failed\">paused</span>");
            if let Some(at) = q.changed_at {
                h.raw(" <span class=\"muted\">since ")
                    .text(time(at))
                    .raw("</span>");
            }
        } else {
            h.raw("<span class=\"badge succeeded\">running</span>");
        }
        h.raw("</td>");
        for st in TaskState::ALL {
            let n = count(st);
            h.raw("<td class=\"num\">");
            if n > 0 {
                h.raw("<a href=\"")
                    .text(base.at(&format!(
                        "/tasks?queue={}&state={}",
                        url_encode(&q.name),
                        st.as_str()
                    )))
                    .raw("\">")
                    .text(n)
                    .raw("</a>");
            } else {
                h.raw("<span class=\"muted\">0</span>");
            }
            h.raw("</td>");
        }
        h.raw("<td>");
        let by = pending.get(q.name.as_str()).copied().unwrap_or_default();
        let parts: Vec<String> = [Priority::High, Priority::Normal, Priority::Low]
            .into_iter()
            .filter(|p| by[usize::try_from(p.code()).unwrap_or(1)] > 0)
            .map(|p| {
                format!(
                    "{} {}",
                    p.as_str(),
                    by[usize::try_from(p.code()).unwrap_or(1)]
                )
            })
            .collect();
        if parts.is_empty() {
            h.raw("<span class=\"muted\">—</span>");
        } else {
            h.text(parts.join(" · "));
        }
        h.raw("</td>");
        if !s.read_only {
            h.raw("<td>");
            let (op, label, class) = if q.paused {
                ("resume", "Resume…", "primary")
            } else {
                ("pause", "Pause…", "")
            };
            queue_form(h, s, base, &q.name, op, label, class, false);
            h.raw("</td>");
        }
        h.raw("</tr>");
    }
    h.raw("</tbody></table>");
}

/// A POST form that pauses or resumes `queue` (`confirmed`: the confirmation page's button).
#[allow(clippy::too_many_arguments)]
fn queue_form(
    h: &mut Html,
    s: &Shared,
    base: &Base,
    queue: &str,
    op: &'static str,
    label: &'static str,
    class: &'static str,
    confirmed: bool,
) {
    h.raw("<form method=\"post\" action=\"")
        .text(base.at("/actions/queue"))
        .raw("\"><input type=\"hidden\" name=\"csrf\" value=\"")
        .text(&s.csrf)
        .raw("\"><input type=\"hidden\" name=\"queue\" value=\"")
        .text(queue)
        .raw("\"><input type=\"hidden\" name=\"op\" value=\"")
        .raw(op)
        .raw("\">");
    if confirmed {
        h.raw("<input type=\"hidden\" name=\"confirm\" value=\"yes\">");
    }
    h.raw("<button type=\"submit\" class=\"")
        .raw(class)
        .raw("\" id=\"")
        .raw(if confirmed { "confirm-" } else { "queue-" })
        .raw(op)
        .raw("-")
        .text(queue)
        .raw("\">")
        .raw(label)
        .raw("</button></form>");
}

fn schedule_table(h: &mut Html, base: &Base, rows: &[ScheduleRecord], now: DateTime<Utc>) {
    if rows.is_empty() {
        h.raw(
            "<p class=\"muted\" id=\"no-schedules\">No schedule is registered: a worker \
             registers its schedules when it starts.</p>",
        );
        return;
    }
    h.raw("<table id=\"schedules\"><thead><tr><th>name</th><th>spec</th><th>time zone</th>")
        .raw("<th>task type</th><th>last tick</th><th>next tick</th><th>registered</th>")
        .raw("</tr></thead><tbody>");
    for r in rows {
        h.raw("<tr data-schedule=\"")
            .text(&r.name)
            .raw("\"><td class=\"code\"><a href=\"")
            .text(base.at(&format!(
                "/tasks?prefix={}",
                url_encode(&format!("{}@", r.name))
            )))
            .raw("\" title=\"its tasks (codes start with the name and @)\">")
            .text(&r.name)
            .raw("</a></td>")
            .el("<td class=\"code\">", &r.spec, "</td>")
            .el("<td>", &r.time_zone, "</td>")
            .el("<td class=\"code\">", &r.task_type, "</td>")
            .el("<td>", time(r.last_tick), "</td>")
            .raw("<td>");
        match r.next_tick {
            Some(at) => {
                h.text(time(at)).raw(" <span class=\"muted\">(");
                h.text(span(now - at)).raw(")</span>");
            }
            None => {
                h.raw("never");
            }
        }
        h.raw("</td>")
            .el("<td>", time(r.registered_at), "</td></tr>");
    }
    h.raw("</tbody></table>");
}

/// What the pause and resume forms send.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct QueueForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    queue: String,
    /// `pause` or `resume`.
    #[serde(default)]
    op: String,
    /// `yes` once the operator confirmed.
    #[serde(default)]
    confirm: String,
}

/// `POST /actions/queue`: pause or resume a queue, after a confirmation that says how many
/// pending tasks it holds.
pub(crate) async fn queue_action(
    State(s): State<Shared>,
    base: Base,
    headers: HeaderMap,
    Form(form): Form<QueueForm>,
) -> Response {
    let refuse =
        |status: StatusCode, m: &str| message_page(&s, &base, status, "Refused", "error", m);
    if s.read_only {
        return refuse(
            StatusCode::FORBIDDEN,
            "This dashboard is read-only: actions are turned off.",
        );
    }
    if let Some(why) = cross_site(&headers) {
        return refuse(StatusCode::FORBIDDEN, &format!("Refused: {why}."));
    }
    if !same_secret(&form.csrf, &s.csrf) {
        return refuse(
            StatusCode::FORBIDDEN,
            "Refused: the form's CSRF token is missing or stale (the server may have restarted). \
             Reload the page and try again.",
        );
    }
    let pause = match form.op.as_str() {
        "pause" => true,
        "resume" => false,
        other => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("`op` must be `pause` or `resume`, not `{other}`"),
            );
        }
    };
    if form.queue.trim().is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "`queue` names no queue: choose one on the queues page.",
        );
    }
    let (verb, title) = if pause {
        ("pause", "Pause a queue")
    } else {
        ("resume", "Resume a queue")
    };
    if form.confirm != "yes" {
        let queues = match s.client.queues().await {
            Ok(q) => q,
            Err(e) => return error_page(&s, &base, &e),
        };
        let pending = queues.iter().find(|q| q.name == form.queue).map_or(0, |q| {
            q.counts
                .iter()
                .filter(|(st, _)| *st == TaskState::Pending)
                .map(|(_, n)| n)
                .sum::<u64>()
        });
        let mut body = Html::new();
        let message = if pause {
            format!(
                "Pause queue `{}`? Its {pending} pending task(s) wait, and workers claim none \
                 of its tasks until it is resumed; runs already started finish.",
                form.queue
            )
        } else {
            format!(
                "Resume queue `{}`? Workers claim its {pending} pending task(s) again as they \
                 fall due.",
                form.queue
            )
        };
        notice(&mut body, "warn", &message);
        body.raw("<div class=\"actions\">");
        let label = if pause { "Pause it" } else { "Resume it" };
        queue_form(
            &mut body,
            &s,
            &base,
            &form.queue,
            verb,
            label,
            "primary",
            true,
        );
        body.raw("<a href=\"")
            .text(base.at("/queues"))
            .raw("\">back to the queues</a></div>");
        let html = page(&s, &base, Nav::Queues, title, None, &body, &Html::new());
        return HtmlResponse(html.into_string()).into_response();
    }
    let done = if pause {
        s.client.pause_queue(&form.queue).await
    } else {
        s.client.resume_queue(&form.queue).await
    };
    if let Err(e) = done {
        return error_page(&s, &base, &e);
    }
    if !pause {
        // This process's workers (an embedded dashboard) look at once; others at their poll.
        s.client.wake_workers();
    }
    let mut body = Html::new();
    notice(
        &mut body,
        "ok",
        &format!(
            "Queue `{}` is {}.",
            form.queue,
            if pause { "paused" } else { "running again" }
        ),
    );
    body.raw("<p><a href=\"")
        .text(base.at("/queues"))
        .raw("\" id=\"back-to-queues\">back to the queues</a></p>");
    let html = page(&s, &base, Nav::Queues, title, None, &body, &Html::new());
    HtmlResponse(html.into_string()).into_response()
}
