//! One task: every field, the payload as pretty JSON, every attempt from the log, actions.

#[allow(clippy::wildcard_imports)]
use super::*;

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
