//! Failures: recent failed attempts grouped by error text.

#[allow(clippy::wildcard_imports)]
use super::*;

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
