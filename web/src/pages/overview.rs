//! The overview: counts by state and type, runs and failures per minute over the last hour,
//! the oldest due task's wait, the workers.

#[allow(clippy::wildcard_imports)]
use super::*;

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
