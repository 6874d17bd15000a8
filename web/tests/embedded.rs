//! The router nested in an application (no browser): links follow the prefix, "run now" runs
//! in process, the live region comes alone, keyset paging walks every task once, actions are
//! POST only.

#[allow(dead_code)]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use taskrow::typetag;
use taskrow::{Client, EnqueueOptions, Task, TaskContext, TaskError};
use tokio::sync::oneshot;

use support::webdriver::http;

#[derive(Debug, Serialize, Deserialize)]
struct Ping {
    n: u32,
}

#[typetag::serde(name = "embedded.ping")]
#[taskrow::async_trait]
impl Task for Ping {
    async fn run(&self, _ctx: &TaskContext) -> Result<(), TaskError> {
        Ok(())
    }
}

struct App {
    addr: SocketAddr,
    client: Client,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn app() -> App {
    let (store, dir) = taskrow_sqlite::testing::temp_store().await;
    let client = Client::new(Arc::new(store));
    let router = axum::Router::new().nest("/admin/taskrow", taskrow_web::router(client.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    App {
        addr,
        client,
        _stop: stop,
        _dir: dir,
    }
}

async fn get(addr: SocketAddr, path: &str, extra: &str) -> (u16, String) {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"),
    )
    .await
}

async fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    http(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
}

fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[at..at + 32].to_owned()
}

#[tokio::test]
async fn links_follow_the_prefix_it_is_nested_under() {
    let app = app().await;
    for path in [
        "/admin/taskrow",
        "/admin/taskrow/tasks/1",
        "/admin/taskrow/failures",
    ] {
        let (_, page) = get(app.addr, path, "").await;
        assert!(page.contains("href=\"/admin/taskrow\""), "{page}");
        assert!(page.contains("href=\"/admin/taskrow/tasks\""), "{page}");
        assert!(page.contains("href=\"/admin/taskrow/failures\""), "{page}");
        assert!(
            page.contains("src=\"/admin/taskrow/assets/app.js\""),
            "{page}"
        );
        assert!(
            page.contains("href=\"/admin/taskrow/assets/app.css\""),
            "{page}"
        );
    }
    let (status, _) = get(app.addr, "/admin/taskrow", "").await;
    assert_eq!(status, 200);
    let (status, js) = get(app.addr, "/admin/taskrow/assets/app.js", "").await;
    assert_eq!(status, 200);
    assert!(js.contains("X-Taskrow-Fragment"));
    let (status, _) = get(app.addr, "/admin/taskrow/nowhere", "").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_live_region_comes_alone_when_asked() {
    let app = app().await;
    let (status, frag) = get(app.addr, "/admin/taskrow", "X-Taskrow-Fragment: live\r\n").await;
    assert_eq!(status, 200);
    assert!(!frag.contains("<html"), "{frag}");
    assert!(frag.contains("id=\"count-pending\""), "{frag}");
}

#[tokio::test]
async fn run_now_runs_in_process_when_nested() {
    let app = app().await;
    let t = app
        .client
        .enqueue(&Ping { n: 1 }, EnqueueOptions::new().code("ping-1"))
        .await
        .unwrap();
    let path = format!("/admin/taskrow/tasks/{}", t.id);
    let (_, page) = get(app.addr, &path, "").await;
    let body = format!("csrf={}&scope=one&id={}", csrf(&page), t.id);
    let (status, confirm) = post(app.addr, "/admin/taskrow/actions/run_now", &body).await;
    assert_eq!(status, 200);
    assert!(
        confirm.contains("Runs the task once now in this process"),
        "{confirm}"
    );
    assert!(
        app.client.logs(t.id).await.unwrap().is_empty(),
        "nothing ran before confirming"
    );
    let (status, done) = post(
        app.addr,
        "/admin/taskrow/actions/run_now",
        &format!("{body}&confirm=yes"),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert!(
        done.contains("Ran the task now in this process: attempt 1, succeeded"),
        "{done}"
    );
    assert_eq!(app.client.logs("ping-1").await.unwrap().len(), 1);
}

#[tokio::test]
async fn actions_are_post_only_and_name_their_refusals() {
    let app = app().await;
    let (status, _) = get(app.addr, "/admin/taskrow/actions/reset", "").await;
    assert_eq!(status, 405);
    let t = app
        .client
        .enqueue(&Ping { n: 2 }, EnqueueOptions::new())
        .await
        .unwrap();
    let (_, page) = get(app.addr, "/admin/taskrow/tasks", "").await;
    let token = csrf(&page);
    // Reset of a pending task is allowed; of a missing one, a 404 with the store's words.
    let (status, text) = post(
        app.addr,
        "/admin/taskrow/actions/reset",
        &format!("csrf={token}&scope=one&id=999999&confirm=yes"),
    )
    .await;
    assert_eq!(status, 404, "{text}");
    let (status, text) = post(
        app.addr,
        "/admin/taskrow/actions/launch",
        &format!("csrf={token}&scope=one&id={}", t.id),
    )
    .await;
    assert_eq!(status, 404);
    assert!(text.contains("There is no action"), "{text}");
    let (status, text) = post(
        app.addr,
        "/admin/taskrow/actions/run_now",
        &format!("csrf={token}&scope=filter&state=failed"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(text.contains("run now acts on one task"), "{text}");
}

#[tokio::test]
async fn keyset_paging_walks_every_task_once() {
    let app = app().await;
    let tasks: Vec<Ping> = (0..120).map(|n| Ping { n }).collect();
    app.client
        .enqueue_batch(
            tasks
                .iter()
                .map(|t| (t as &dyn Task, EnqueueOptions::new())),
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut path = "/admin/taskrow/tasks?type=embedded.ping".to_owned();
    loop {
        let (status, page) = get(app.addr, &path, "").await;
        assert_eq!(status, 200);
        let ids: Vec<i64> = page
            .split("<tr data-id=\"")
            .skip(1)
            .map(|s| s[..s.find('"').unwrap()].parse().unwrap())
            .collect();
        assert!(ids.len() <= 50);
        seen.extend(ids);
        match page.split("id=\"next-page\" href=\"").nth(1) {
            Some(rest) => path = rest[..rest.find('"').unwrap()].replace("&amp;", "&"),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(seen, sorted, "in id order, none twice");
    assert_eq!(seen.len(), 120);
}

/// Puts `id` under a live lease held by another worker.
async fn claim_elsewhere(client: &Client, id: i64) {
    client
        .store()
        .claim_one(
            &taskrow::TaskRef::Id(id),
            &taskrow::ClaimOne::new(
                "another-host",
                std::time::Duration::from_secs(600),
                client.clock().now(),
            ),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn cancel_of_a_running_task_asks_its_worker_to_stop_it() {
    let app = app().await;
    let t = app
        .client
        .enqueue(&Ping { n: 3 }, EnqueueOptions::new().code("busy"))
        .await
        .unwrap();
    claim_elsewhere(&app.client, t.id).await;
    let (_, page) = get(app.addr, "/admin/taskrow/tasks", "").await;
    let (status, text) = post(
        app.addr,
        "/admin/taskrow/actions/cancel",
        &format!("csrf={}&scope=one&id={}&confirm=yes", csrf(&page), t.id),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("Cancel requested"), "{text}");
    let after = app.client.get(t.id).await.unwrap();
    assert_eq!(after.state, taskrow::TaskState::Running);
    assert!(after.cancel_requested_at.is_some());
    // Delete stays refused while it runs.
    let expected = app.client.delete(t.id).await.unwrap_err().to_string();
    assert!(
        expected.contains("running under a live lease"),
        "{expected}"
    );
}

#[tokio::test]
async fn bulk_actions_count_only_the_tasks_they_can_touch() {
    let app = app().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let t = app
            .client
            .enqueue(&Ping { n }, EnqueueOptions::new().code(format!("bulk-{n}")))
            .await
            .unwrap();
        ids.push(t.id);
    }
    claim_elsewhere(&app.client, ids[0]).await;
    let (_, page) = get(app.addr, "/admin/taskrow/tasks", "").await;
    let body = format!("csrf={}&scope=filter&prefix=bulk-", csrf(&page));
    let (status, confirm) = post(app.addr, "/admin/taskrow/actions/cancel", &body).await;
    assert_eq!(status, 200);
    // The running one is asked to stop; the others are cancelled.
    assert!(
        confirm.contains("This touches <strong>3 tasks</strong>: code starting with `bulk-`"),
        "{confirm}"
    );
    let (status, done) = post(
        app.addr,
        "/admin/taskrow/actions/cancel",
        &format!("{body}&confirm=yes"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(done.contains("Cancelled 3 tasks"), "{done}");
    let states: Vec<_> = states_of(&app.client, &ids).await;
    assert_eq!(
        states,
        [
            taskrow::TaskState::Running,
            taskrow::TaskState::Cancelled,
            taskrow::TaskState::Cancelled
        ]
    );
    // Delete by the same filter: the running one stays.
    let (_, confirm) = post(app.addr, "/admin/taskrow/actions/delete", &body).await;
    assert!(confirm.contains("<strong>2 tasks</strong>"), "{confirm}");
    let (_, done) = post(
        app.addr,
        "/admin/taskrow/actions/delete",
        &format!("{body}&confirm=yes"),
    )
    .await;
    assert!(done.contains("Deleted 2 tasks"), "{done}");
    assert!(app.client.get(ids[0]).await.is_ok());
    assert!(app.client.get(ids[1]).await.is_err());
}

async fn states_of(client: &Client, ids: &[i64]) -> Vec<taskrow::TaskState> {
    let mut out = Vec::new();
    for id in ids {
        out.push(client.get(*id).await.unwrap().state);
    }
    out
}

/// The queues page shows each queue with its counts and pending tasks by priority, and the
/// schedules; pausing and resuming a queue asks first (saying how many pending tasks it holds),
/// then does it; the task list filters by queue.
#[tokio::test]
async fn queues_show_and_pause_and_resume() {
    use taskrow::Priority;
    use taskrow::schedule::Schedule;
    let app = app().await;
    for (n, queue, priority) in [
        (1, "emails", Priority::High),
        (2, "emails", Priority::Low),
        (3, "emails", Priority::Low),
        (4, "default", Priority::Normal),
    ] {
        app.client
            .enqueue(
                &Ping { n },
                EnqueueOptions::new().queue(queue).priority(priority),
            )
            .await
            .unwrap();
    }
    // A worker registers its schedule on its first pass.
    app.client
        .worker()
        .queue("nothing-here", 1)
        .schedule(
            Schedule::every("heartbeat-mail", std::time::Duration::from_secs(3600))
                .unwrap()
                .task(Ping { n: 0 }),
        )
        .build()
        .unwrap()
        .run_until_idle()
        .await
        .unwrap();

    let (status, page) = get(app.addr, "/admin/taskrow/queues", "").await;
    assert_eq!(status, 200, "{page}");
    let emails = row_of(&page, "data-queue=\"emails\"");
    assert!(emails.contains("running"), "{emails}");
    assert!(emails.contains("high 1 · low 2"), "{emails}");
    assert!(
        emails.contains("/admin/taskrow/tasks?queue=emails"),
        "{emails}"
    );
    let schedule = row_of(&page, "data-schedule=\"heartbeat-mail\"");
    assert!(schedule.contains("every 3600s"), "{schedule}");
    assert!(schedule.contains("embedded.ping"), "{schedule}");

    // Pause: a confirmation first, nothing paused yet.
    let token = csrf(&page);
    let (status, confirm) = post(
        app.addr,
        "/admin/taskrow/actions/queue",
        &format!("csrf={token}&queue=emails&op=pause"),
    )
    .await;
    assert_eq!(status, 200, "{confirm}");
    assert!(confirm.contains("Its 3 pending task(s) wait"), "{confirm}");
    assert!(!paused(&app.client, "emails").await);
    let (status, done) = post(
        app.addr,
        "/admin/taskrow/actions/queue",
        &format!("csrf={token}&queue=emails&op=pause&confirm=yes"),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("is paused"), "{done}");
    assert!(paused(&app.client, "emails").await);
    let (_, page) = get(app.addr, "/admin/taskrow/queues", "").await;
    assert!(row_of(&page, "data-queue=\"emails\"").contains("paused"));
    assert!(row_of(&page, "data-queue=\"emails\"").contains("Resume…"));

    // Resume.
    let (status, done) = post(
        app.addr,
        "/admin/taskrow/actions/queue",
        &format!("csrf={token}&queue=emails&op=resume&confirm=yes"),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert!(!paused(&app.client, "emails").await);

    // Refused: no token, a bad op.
    let (status, _) = post(
        app.addr,
        "/admin/taskrow/actions/queue",
        "csrf=nope&queue=emails&op=pause&confirm=yes",
    )
    .await;
    assert_eq!(status, 403);
    assert!(!paused(&app.client, "emails").await);
    let (status, page) = post(
        app.addr,
        "/admin/taskrow/actions/queue",
        &format!("csrf={token}&queue=emails&op=stop"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(page.contains("`op` must be `pause` or `resume`"), "{page}");

    // The task list filters by queue and shows queue and priority.
    let (_, list) = get(app.addr, "/admin/taskrow/tasks?queue=emails", "").await;
    assert_eq!(
        list.matches("<td class=\"queue\">emails</td>").count(),
        3,
        "{list}"
    );
    assert!(!list.contains("<td class=\"queue\">default</td>"), "{list}");
    assert!(list.contains("<td class=\"priority\">high</td>"), "{list}");
}

/// The `<tr …>` row of `page` that carries `marker`.
fn row_of<'a>(page: &'a str, marker: &str) -> &'a str {
    let at = page
        .find(marker)
        .unwrap_or_else(|| panic!("`{marker}` in {page}"));
    let end = page[at..].find("</tr>").map_or(page.len(), |e| at + e);
    &page[at..end]
}

async fn paused(client: &Client, queue: &str) -> bool {
    client
        .queues()
        .await
        .unwrap()
        .iter()
        .any(|q| q.name == queue && q.paused)
}

/// A row this version cannot read (state 9, written by hand) shows in the task list in its
/// place, marked corrupt with the reason and how to remove it, instead of failing the page.
#[tokio::test]
async fn a_corrupt_row_shows_in_the_list() {
    use taskrow_sqlite::sea_orm::ConnectionTrait;
    let (store, _dir) = taskrow_sqlite::testing::temp_store().await;
    let client = Client::new(Arc::new(store.clone()));
    for n in 0..3 {
        client
            .enqueue(&Ping { n }, EnqueueOptions::new().code(format!("row-{n}")))
            .await
            .unwrap();
    }
    store
        .connection()
        .execute_unprepared("UPDATE taskrow_task SET state = 9 WHERE code = 'row-1'")
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = taskrow_web::router(client.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let (status, page) = get(addr, "/tasks", "").await;
    assert_eq!(status, 200, "{page}");
    let corrupt = row_of(&page, "class=\"corrupt\"");
    assert!(
        corrupt.contains("row-1") && corrupt.contains("state 9"),
        "{corrupt}"
    );
    assert!(corrupt.contains("taskrow delete"), "{corrupt}");
    assert!(page.contains("row-0") && page.contains("row-2"), "{page}");
}
