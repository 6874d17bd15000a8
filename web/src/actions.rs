//! The actions: run now, reset, cancel, delete (one task, or every task matching the list's
//! filter) and purge. Each is a POST that carries the CSRF token; the first POST answers with
//! a confirmation page saying how many tasks it touches, whose button sends it again with
//! `confirm=yes`.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html as HtmlResponse, IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use taskrow::{CancelAction, Page, Purge, TaskFilter, TaskRecord, TaskRef, TaskState};

use crate::html::Html;
use crate::pages::{
    Base, FilterQuery, Nav, SCAN_PAGE, error_page, message_page, notice, now, page, time,
};
use crate::security::{cross_site, same_secret};
use crate::{RunNow, Shared};

/// What an action form sends.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    csrf: String,
    /// `one` (with `id`) or `filter` (with the list's filter fields).
    #[serde(default)]
    scope: String,
    #[serde(default)]
    id: String,
    #[serde(flatten)]
    filter: FilterQuery,
    /// `yes` once the operator confirmed.
    #[serde(default)]
    confirm: String,
    /// Purge: finished more than this many days ago.
    #[serde(default)]
    days: String,
    /// Purge: which finished states (`succeeded,cancelled[,failed]`).
    #[serde(default)]
    states: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    RunNow,
    Reset,
    Cancel,
    Delete,
    Purge,
}

impl Action {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "run_now" => Self::RunNow,
            "reset" => Self::Reset,
            "cancel" => Self::Cancel,
            "delete" => Self::Delete,
            "purge" => Self::Purge,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            Self::RunNow => "run_now",
            Self::Reset => "reset",
            Self::Cancel => "cancel",
            Self::Delete => "delete",
            Self::Purge => "purge",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Self::RunNow => "Run now",
            Self::Reset => "Reset",
            Self::Cancel => "Cancel",
            Self::Delete => "Delete",
            Self::Purge => "Purge",
        }
    }
    /// Whether the action applies to `t` at `now` (bulk actions skip the others).
    fn applies(self, t: &TaskRecord, now: DateTime<Utc>) -> bool {
        match self {
            Self::Reset => matches!(t.state, TaskState::Failed | TaskState::Cancelled),
            Self::Cancel => matches!(
                t.check_cancel(now),
                Ok(CancelAction::Cancel | CancelAction::Mark)
            ),
            Self::Delete => t.check_delete(now).is_ok(),
            Self::RunNow | Self::Purge => false,
        }
    }
    /// What the action does, in one sentence.
    fn explain(self, run_now: RunNow) -> &'static str {
        match (self, run_now) {
            (Self::RunNow, RunNow::InProcess) => {
                "Runs the task once now in this process, due or not, and waits for its result."
            }
            (Self::RunNow, _) => {
                "This server has no task types compiled in, so it cannot run the task itself: it \
                 resets the task (pending, due now, attempts back to 0) and wakes its workers; a \
                 worker that has the task's type runs it at its next poll."
            }
            (Self::Reset, _) => {
                "Reset makes a task run again from scratch: pending, due now, attempts back to 0, \
                 last error cleared. Bulk reset touches failed and cancelled tasks only."
            }
            (Self::Cancel, _) => {
                "Cancel keeps the task in the table but never runs it until it is reset. A task \
                 running now is asked to stop: its worker tells the handler at its next heartbeat \
                 and stops it after a grace period; the run is logged as cancelled."
            }
            (Self::Delete, _) => {
                "Delete removes the task row; its log rows stay. A task running under a live \
                 lease is refused."
            }
            (Self::Purge, _) => {
                "Purge removes finished tasks last changed before the cut-off, and log rows of \
                 runs started before it."
            }
        }
    }
}

/// `POST /actions/{action}`.
pub(crate) async fn action(
    State(s): State<Shared>,
    base: Base,
    headers: HeaderMap,
    Path(action): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    let forbidden = |m: &str| message_page(&s, &base, StatusCode::FORBIDDEN, "Refused", "error", m);
    if s.read_only {
        return forbidden("This dashboard is read-only: actions are turned off.");
    }
    if let Some(why) = cross_site(&headers) {
        return forbidden(&format!("Refused: {why}."));
    }
    if !same_secret(&form.csrf, &s.csrf) {
        return forbidden(
            "Refused: the form's CSRF token is missing or stale (the server may have restarted). \
             Reload the page and try again.",
        );
    }
    let Some(action) = Action::parse(&action) else {
        return message_page(
            &s,
            &base,
            StatusCode::NOT_FOUND,
            "Unknown action",
            "error",
            &format!("There is no action `{action}`: use run_now, reset, cancel, delete or purge."),
        );
    };
    let bad = |m: String| {
        message_page(
            &s,
            &base,
            StatusCode::BAD_REQUEST,
            action.label(),
            "error",
            &m,
        )
    };
    let now = now(&s).await;
    let target = match plan(action, &form, now) {
        Ok(t) => t,
        Err(m) => return bad(m),
    };
    if form.confirm != "yes" {
        return confirm(&s, &base, action, &form, &target, now).await;
    }
    perform(&s, &base, action, &target, now).await
}

/// What an action acts on.
enum Target {
    One(i64),
    Matching(Box<(FilterQuery, TaskFilter)>),
    Purge(Purge, i64),
}

fn plan(action: Action, form: &ActionForm, now: DateTime<Utc>) -> Result<Target, String> {
    if action == Action::Purge {
        let days: i64 =
            form.days.trim().parse().map_err(|_| {
                format!("`days` must be a whole number of days, not `{}`", form.days)
            })?;
        if !(0..=36_500).contains(&days) {
            return Err(format!("`days` must be from 0 to 36500, not {days}"));
        }
        let states = if form.states.is_empty() {
            vec![TaskState::Succeeded, TaskState::Cancelled]
        } else {
            form.states
                .split(',')
                .map(|st| st.trim().parse::<TaskState>())
                .collect::<Result<Vec<_>, _>>()?
        };
        if let Some(st) = states.iter().find(|st| {
            !matches!(
                st,
                TaskState::Succeeded | TaskState::Cancelled | TaskState::Failed
            )
        }) {
            return Err(format!(
                "purge removes finished tasks only (succeeded, cancelled, failed), not {st} ones"
            ));
        }
        let before = now - TimeDelta::days(days);
        return Ok(Target::Purge(Purge::before(before).states(states), days));
    }
    match form.scope.as_str() {
        "one" => form
            .id
            .parse()
            .map(Target::One)
            .map_err(|_| format!("`id` must be a task id, not `{}`", form.id)),
        "filter" if action == Action::RunNow => Err(
            "run now acts on one task; to run every matching failed task again, reset them"
                .to_owned(),
        ),
        "filter" => Ok(Target::Matching(Box::new((
            form.filter.clone(),
            form.filter.filter(now)?,
        )))),
        other => Err(format!("`scope` must be `one` or `filter`, not `{other}`")),
    }
}

/// The ids of the tasks matching `filter` that `action` applies to, walked page by page in
/// id order.
async fn applicable(
    s: &Shared,
    action: Action,
    filter: &TaskFilter,
    now: DateTime<Utc>,
) -> taskrow::Result<Vec<i64>> {
    let mut page = Page::first(SCAN_PAGE);
    let mut ids = Vec::new();
    loop {
        let rows = s.client.list(filter, &page).await?;
        ids.extend(rows.iter().filter(|t| action.applies(t, now)).map(|t| t.id));
        match rows.last() {
            Some(last) if rows.len() as u64 == SCAN_PAGE => page = Page::after(last.id, SCAN_PAGE),
            _ => return Ok(ids),
        }
    }
}

/// Finished tasks a purge would remove (walks them; the store has no count for it).
async fn purge_count(s: &Shared, purge: &Purge) -> taskrow::Result<u64> {
    let filter = TaskFilter::all().states(purge.states.clone());
    let mut page = Page::first(SCAN_PAGE);
    let mut n = 0;
    loop {
        let rows = s.client.list(&filter, &page).await?;
        n += rows.iter().filter(|t| t.updated_at < purge.before).count() as u64;
        match rows.last() {
            Some(last) if rows.len() as u64 == SCAN_PAGE => page = Page::after(last.id, SCAN_PAGE),
            _ => return Ok(n),
        }
    }
}

/// The confirmation page: what the action does and how many tasks it touches.
async fn confirm(
    s: &Shared,
    base: &Base,
    action: Action,
    form: &ActionForm,
    target: &Target,
    now: DateTime<Utc>,
) -> Response {
    let mut body = Html::new();
    body.raw("<div class=\"card\"><p>")
        .text(action.explain(s.run_now))
        .raw("</p>");
    let (count, back) = match target {
        Target::One(id) => {
            let t = match s.client.get(TaskRef::Id(*id)).await {
                Ok(t) => t,
                Err(e) => return error_page(s, base, &e),
            };
            body.raw("<p id=\"confirm-count\">This touches <strong>1 task</strong>: <span class=\"mono\">")
                .text(&t.code)
                .raw("</span> (id ")
                .text(t.id)
                .raw(", ")
                .text(t.state)
                .raw(").</p>");
            (1, base.at(&format!("/tasks/{id}")))
        }
        Target::Matching(m) => {
            let (q, filter) = (&m.0, &m.1);
            let n = match applicable(s, action, filter, now).await {
                Ok(ids) => ids.len() as u64,
                Err(e) => return error_page(s, base, &e),
            };
            body.raw("<p id=\"confirm-count\">This touches <strong>")
                .text(n)
                .raw(if n == 1 { " task" } else { " tasks" })
                .raw("</strong>: ")
                .text(q.describe())
                .raw(".</p>");
            let query = q.query();
            (n, base.at(&format!("/tasks?{query}")))
        }
        Target::Purge(purge, days) => {
            let n = match purge_count(s, purge).await {
                Ok(n) => n,
                Err(e) => return error_page(s, base, &e),
            };
            let states: Vec<&str> = purge.states.iter().map(|st| st.as_str()).collect();
            body.raw("<p id=\"confirm-count\">This removes <strong>")
                .text(n)
                .raw(if n == 1 { " task" } else { " tasks" })
                .raw("</strong> (")
                .text(states.join(", "))
                .raw(") last changed more than ")
                .text(days)
                .raw(" days ago (before ")
                .text(time(purge.before))
                .raw("), and the log rows of runs started before then.</p>");
            (n, base.at("/tasks"))
        }
    };
    body.raw("</div>");
    if count == 0 {
        notice(&mut body, "warn", "Nothing to do: no task matches.");
        body.raw("<p><a href=\"").text(&back).raw("\">Back</a></p>");
    } else {
        body.raw("<div class=\"actions\"><form method=\"post\" action=\"")
            .text(base.at(&format!("/actions/{}", action.name())))
            .raw("\">");
        let mut hidden = |name: &'static str, value: &str| {
            body.raw("<input type=\"hidden\" name=\"")
                .raw(name)
                .raw("\" value=\"")
                .text(value)
                .raw("\">");
        };
        hidden("csrf", &s.csrf);
        hidden("scope", &form.scope);
        hidden("id", &form.id);
        for (k, v) in form.filter.pairs() {
            hidden(k, v);
        }
        hidden("days", &form.days);
        hidden("states", &form.states);
        hidden("confirm", "yes");
        body.raw("<button type=\"submit\" class=\"danger\" id=\"confirm\">")
            .text(action.label())
            .raw(if count == 1 {
                " 1 task"
            } else {
                " these tasks"
            })
            .raw("</button></form><a href=\"")
            .text(&back)
            .raw("\" id=\"back\">Back, change nothing</a></div>");
    }
    let title = format!("Confirm: {}", action.label().to_lowercase());
    HtmlResponse(page(s, base, Nav::None, &title, None, &body, &Html::new()).into_string())
        .into_response()
}

/// Does it, and says what happened.
async fn perform(
    s: &Shared,
    base: &Base,
    action: Action,
    target: &Target,
    now: DateTime<Utc>,
) -> Response {
    let mut body = Html::new();
    let back = match target {
        Target::One(id) => {
            let id = *id;
            let done =
                match action {
                    Action::RunNow => run_now(s, id).await,
                    Action::Reset => s.client.reset(TaskRef::Id(id)).await.map(|()| {
                        "Reset: the task is pending and due now, with its attempts back to 0."
                            .to_owned()
                    }),
                    Action::Cancel => s.client.cancel(TaskRef::Id(id)).await.map(|t| {
                        if t.state == TaskState::Running {
                            "Cancel requested: the task is running, so its worker tells the \
                             handler at its next heartbeat and stops it after a grace period; \
                             the run is then logged as cancelled."
                                .to_owned()
                        } else {
                            "Cancelled: the task stays in the table and does not run until reset."
                                .to_owned()
                        }
                    }),
                    Action::Delete => s.client.delete(TaskRef::Id(id)).await.map(|t| {
                        format!("Deleted task {} (id {}); its log rows stay.", t.code, t.id)
                    }),
                    Action::Purge => unreachable_purge(),
                };
            match done {
                Ok(m) => notice(&mut body, "ok", &m),
                Err(e) => return error_page(s, base, &e),
            }
            if action == Action::Delete {
                base.at("/tasks")
            } else {
                base.at(&format!("/tasks/{id}"))
            }
        }
        Target::Matching(m) => {
            let (q, filter) = (&m.0, &m.1);
            // Running tasks a bulk cancel asked to stop (they end at their next heartbeat).
            let mut marked = 0u64;
            let result = match action {
                Action::Reset => s
                    .client
                    .reset_matching(filter)
                    .await
                    .map(|n| (n, Vec::new())),
                _ => {
                    let mut refused = Vec::new();
                    let mut done = 0u64;
                    let walked = applicable(s, action, filter, now).await;
                    for id in walked.as_deref().unwrap_or_default() {
                        let r = if action == Action::Cancel {
                            s.client
                                .cancel(TaskRef::Id(*id))
                                .await
                                .map(|t| marked += u64::from(t.state == TaskState::Running))
                        } else {
                            s.client.delete(TaskRef::Id(*id)).await.map(drop)
                        };
                        match r {
                            Ok(()) => done += 1,
                            Err(e) => refused.push(e.to_string()),
                        }
                    }
                    walked.map(|_| (done, refused))
                }
            };
            match result {
                Ok((n, refused)) => {
                    let verb = match action {
                        Action::Reset => "Reset",
                        Action::Cancel => "Cancelled",
                        _ => "Deleted",
                    };
                    notice(
                        &mut body,
                        "ok",
                        &format!(
                            "{verb} {n} {} ({}).",
                            if n == 1 { "task" } else { "tasks" },
                            q.describe()
                        ),
                    );
                    if marked > 0 {
                        notice(
                            &mut body,
                            "ok",
                            &format!(
                                "{marked} of them {} running: {} asked to stop at {} worker's \
                                 next heartbeat.",
                                if marked == 1 { "is" } else { "are" },
                                if marked == 1 { "it is" } else { "they are" },
                                if marked == 1 { "its" } else { "each" },
                            ),
                        );
                    }
                    if let Some(first) = refused.first() {
                        notice(
                            &mut body,
                            "warn",
                            &format!("{} refused; the first: {first}", refused.len()),
                        );
                    }
                }
                Err(e) => return error_page(s, base, &e),
            }
            let query = q.query();
            base.at(&format!("/tasks?{query}"))
        }
        Target::Purge(purge, _) => {
            match s.client.purge(purge).await {
                Ok(r) => notice(
                    &mut body,
                    "ok",
                    &format!("Purged {} tasks and {} log rows.", r.tasks, r.logs),
                ),
                Err(e) => return error_page(s, base, &e),
            }
            base.at("/tasks")
        }
    };
    body.raw("<p><a id=\"back\" href=\"")
        .text(&back)
        .raw("\">Back</a></p>");
    let title = format!("Done: {}", action.label().to_lowercase());
    HtmlResponse(page(s, base, Nav::None, &title, None, &body, &Html::new()).into_string())
        .into_response()
}

/// Purge never targets one task (see [`plan`]).
fn unreachable_purge() -> taskrow::Result<String> {
    Err(taskrow::Error::InvalidInput(
        "purge acts on old finished tasks, not on one task".into(),
    ))
}

/// Run now, in this process or by reset, with the sentence that says which.
async fn run_now(s: &Shared, id: i64) -> taskrow::Result<String> {
    match s.run_now {
        RunNow::InProcess => {
            let r = s.client.run_now(TaskRef::Id(id)).await?;
            let mut m = format!(
                "Ran the task now in this process: attempt {}, {} after {} ms",
                r.attempt,
                r.outcome.as_str(),
                r.duration_ms
            );
            if let Some(e) = &r.error {
                m.push_str(&format!(": {e}"));
            }
            if let Some(at) = r.next_run_at {
                m.push_str(&format!("; next try at {}", time(at)));
            }
            m.push('.');
            Ok(m)
        }
        RunNow::ResetAndWake => {
            s.client.reset(TaskRef::Id(id)).await?;
            s.client.wake_workers();
            Ok(
                "This server has no task types compiled in, so it did not run the task itself: \
                it reset it (pending, due now, attempts back to 0) and woke its workers. A \
                worker that has the task's type runs it at its next poll."
                    .to_owned(),
            )
        }
    }
}
