//! The task list: filters, keyset paging, bulk actions, and the forms the actions share.

#[allow(clippy::wildcard_imports)]
use super::*;

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
