//! `GET /health` and the overview's workers section, on the router nested in an application
//! (no browser): 200 or 503 with JSON, the worker registry judged by the client's clock,
//! every value a worker row carries escaped.

#[allow(dead_code)]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskrow::chrono::{TimeDelta, Utc};
use taskrow::{Client, TaskStore, WorkerBeat};
use taskrow_sqlite::SqliteStore;
use taskrow_sqlite::sea_orm::ConnectionTrait;
use tokio::sync::oneshot;

use support::webdriver::http;

struct App {
    addr: SocketAddr,
    client: Client,
    store: SqliteStore,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn app() -> App {
    let (store, dir) = taskrow_sqlite::testing::temp_store().await;
    let client = Client::builder(Arc::new(store.clone()))
        .heartbeat(Some(Duration::from_millis(200)))
        .build()
        .unwrap();
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
        store,
        _stop: stop,
        _dir: dir,
    }
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// The status and JSON body of `/health` with `query`.
async fn health(addr: SocketAddr, query: &str) -> (u16, serde_json::Value) {
    let (status, body) = get(addr, &format!("/admin/taskrow/health{query}")).await;
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_route_answers_200_or_503_with_json() {
    let app = app().await;
    let (status, json) = health(app.addr, "").await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["healthy"], true);
    assert_eq!(json["workers_alive"], 0);
    assert_eq!(
        json["reason"],
        "ok: database and schema fine; 0 worker(s) alive"
    );

    let (status, json) = health(app.addr, "?max_age=30").await;
    assert_eq!(status, 503, "{json}");
    assert_eq!(json["reason"], "no worker beat within the last 30.0 s");
    let (status, json) = health(app.addr, "?max_age=soon").await;
    assert_eq!(status, 400, "{json}");
    // Too large for a duration, negative, not a number: refused, never a panic.
    for bad in ["1e30", "-1", "NaN", "inf"] {
        let (status, json) = health(app.addr, &format!("?max_age={bad}")).await;
        assert_eq!(status, 400, "{bad}: {json}");
    }

    let worker = app
        .client
        .worker()
        .id("web-worker")
        .queue("emails", 2)
        .start()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while health(app.addr, "?worker=web-worker").await.0 != 200 {
        assert!(Instant::now() < deadline, "the worker never became healthy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, json) = health(app.addr, "?worker=web-worker&max_age=30").await;
    assert_eq!(json["healthy"], true, "{json}");
    assert_eq!(json["worker"]["id"], "web-worker");
    assert_eq!(json["worker"]["queues"], serde_json::json!(["emails"]));
    assert_eq!(json["workers_alive"], 1);

    let (status, json) = health(app.addr, "?worker=nobody").await;
    assert_eq!(status, 503);
    assert!(
        json["reason"]
            .as_str()
            .unwrap()
            .contains("`nobody` is not in the registry"),
        "{json}"
    );

    worker.shutdown().await;
    let (status, json) = health(app.addr, "?worker=web-worker").await;
    assert_eq!(status, 503, "{json}");

    // A schema this version does not know: unhealthy, naming the migration to run.
    app.store
        .connection()
        .execute_unprepared(
            "DELETE FROM taskrow_seaql_migrations \
             WHERE version = 'm20261128_000006_taskrow_workers'",
        )
        .await
        .unwrap();
    let (status, json) = health(app.addr, "").await;
    assert_eq!(status, 503, "{json}");
    let reason = json["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("database: ") && reason.contains("m20261128_000006_taskrow_workers"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_shows_workers_alive_and_gone_escaped() {
    let app = app().await;
    let (status, page) = get(app.addr, "/admin/taskrow").await;
    assert_eq!(status, 200);
    assert!(page.contains("<h2>Workers</h2>"), "{page}");
    assert!(page.contains("No workers"), "{page}");

    let worker = app
        .client
        .worker()
        .id("overview-worker")
        .concurrency(3)
        .start()
        .unwrap();
    let hour_ago = Utc::now() - TimeDelta::hours(1);
    app.store
        .beat_worker(
            &WorkerBeat::new(
                "dead\"><img src=x onerror=alert(1)>",
                hour_ago,
                hour_ago,
                Duration::from_secs(10),
            )
            .host("<script>alert(1)</script>")
            .queues(["q<b>"]),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        let (_, page) = get(app.addr, "/admin/taskrow").await;
        if page.contains("overview-worker") {
            break page;
        }
        assert!(Instant::now() < deadline, "the worker never showed: {page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let table = &page[page.find("<table id=\"workers\">").expect(&page)..];
    let table = &table[..table.find("</table>").unwrap()];
    for col in [
        "Worker",
        "Host",
        "Queues",
        "Concurrency",
        "Running",
        "Last beat",
        "State",
    ] {
        assert!(table.contains(&format!(">{col}</th>")), "{table}");
    }
    let live = table
        .split("<tr>")
        .find(|r| r.contains("overview-worker"))
        .unwrap();
    assert!(live.contains("badge alive"), "{live}");
    assert!(live.contains(">3</td>"), "{live}");
    let dead = table.split("<tr>").find(|r| r.contains("dead")).unwrap();
    assert!(dead.contains("badge gone"), "{dead}");
    assert!(
        !table.contains("<script>") && !table.contains("<img"),
        "{table}"
    );
    assert!(
        table.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{table}"
    );
    assert!(table.contains("q&lt;b&gt;"), "{table}");

    // The live region alone carries the section too.
    let (_, fragment) = http(
        app.addr,
        &format!(
            "GET /admin/taskrow HTTP/1.1\r\nHost: {}\r\nX-Taskrow-Fragment: live\r\nConnection: close\r\n\r\n",
            app.addr
        ),
    )
    .await;
    assert!(fragment.contains("overview-worker"), "{fragment}");
    worker.shutdown().await;
    let (_, page) = get(app.addr, "/admin/taskrow").await;
    assert!(!page.contains("overview-worker"), "gone at shutdown");
}
