//! The dashboard in a real browser: headless Chromium driven through chromedriver, against the
//! standalone server on SQLite (a WAL file), MariaDB/MySQL and PostgreSQL. Screenshots of every
//! page land in `target/web-screenshots/`.
//!
//! Without Chromium the tests print `skipped: …`; under `CI=true` that fails. The MySQL and
//! PostgreSQL tests skip (or fail under CI) like the conformance suite when their server is
//! not configured (`TASKROW_MYSQL_URL`, `TASKROW_POSTGRES_URL`).

mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use taskrow::typetag;
use taskrow::{Client, EnqueueOptions, ManualClock, Task, TaskContext, TaskError, TaskStore};
use taskrow_web::standalone::{Config, Server};
use tokio::sync::oneshot;

use support::webdriver::{Browser, http, in_ci};

/// Fails every run, with its note in the error text.
#[derive(Debug, Serialize, Deserialize)]
struct Flaky {
    note: String,
}

#[typetag::serde(name = "web.flaky")]
#[taskrow::async_trait]
impl Task for Flaky {
    async fn run(&self, _ctx: &TaskContext) -> Result<(), TaskError> {
        Err(TaskError::msg(format!("upstream refused: {}", self.note)))
    }
}

/// Succeeds.
#[derive(Debug, Serialize, Deserialize)]
struct Mail {
    to: String,
}

#[typetag::serde(name = "web.mail")]
#[taskrow::async_trait]
impl Task for Mail {
    async fn run(&self, _ctx: &TaskContext) -> Result<(), TaskError> {
        Ok(())
    }
}

/// What a [`Patient`] run saw: that it started, and that it stopped for its cancel.
#[derive(Debug, Default)]
struct CancelProbe {
    started: AtomicBool,
    stopped: AtomicBool,
}

/// Runs until it is cancelled ([`TaskContext::cancelled`]), then stops.
#[derive(Debug, Serialize, Deserialize)]
struct Patient {}

#[typetag::serde(name = "web.patient")]
#[taskrow::async_trait]
impl Task for Patient {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        let probe = ctx.data::<CancelProbe>()?;
        probe.started.store(true, Ordering::SeqCst);
        ctx.cancelled().await;
        probe.stopped.store(true, Ordering::SeqCst);
        Err(TaskError::msg("stopped: cancelled from the dashboard"))
    }
}

const XSS_SCRIPT: &str = "<script>window.__xss=1</script>";
const XSS_IMG: &str = "\"><img src=x onerror=\"window.__xss=2\">";

/// What the scenario set up.
struct Seeded {
    failing: i64,
    xss: i64,
}

/// Minutes ago at which the history ran (some with a failure), for the chart.
const HISTORY: [(i64, bool); 8] = [
    (48, false),
    (41, true),
    (33, false),
    (26, false),
    (19, true),
    (12, false),
    (7, true),
    (3, false),
];

/// Runs of the last hour, by a client whose clock is set back: succeeded mails (deleted on
/// success, their log rows stay) and failures whose tasks are then deleted.
async fn seed_history(client: &Client) {
    let now = chrono::Utc::now();
    let clock = Arc::new(ManualClock::new(now));
    let past = Client::builder(client.store().clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    for (ago, fails) in HISTORY {
        clock.set(now - chrono::TimeDelta::minutes(ago));
        for i in 0..(1 + ago % 4) {
            let t = past
                .enqueue(
                    &Mail {
                        to: format!("old{ago}.{i}@example.com"),
                    },
                    EnqueueOptions::new().code(format!("old-mail-{ago}-{i}")),
                )
                .await
                .unwrap();
            past.run_now(t.id).await.unwrap();
        }
        if fails {
            let t = past
                .enqueue(
                    &Flaky {
                        note: "payment gateway timed out".into(),
                    },
                    EnqueueOptions::new()
                        .code(format!("old-charge-{ago}"))
                        .max_attempts(1),
                )
                .await
                .unwrap();
            past.run_now(t.id).await.unwrap();
            past.delete(t.id).await.unwrap();
        }
    }
}

async fn seed(client: &Client) -> Seeded {
    seed_history(client).await;
    for i in 0..3 {
        client
            .enqueue(
                &Mail {
                    to: format!("user{i}@example.com"),
                },
                EnqueueOptions::new()
                    .code(format!("mail-{i}"))
                    .biz_type("mail"),
            )
            .await
            .unwrap();
    }
    let mut ids = Vec::new();
    for i in 0..2 {
        let t = client
            .enqueue(
                &Flaky {
                    note: format!("order {i} locked"),
                },
                EnqueueOptions::new()
                    .code(format!("sync-order-{i}"))
                    .biz_type("order")
                    .max_attempts(1),
            )
            .await
            .unwrap();
        client.run_now(t.id).await.unwrap();
        ids.push(t.id);
    }
    let xss = client
        .enqueue(
            &Flaky {
                note: format!("{XSS_SCRIPT}{XSS_IMG}"),
            },
            EnqueueOptions::new()
                .code(format!("{XSS_SCRIPT}{XSS_IMG}"))
                .biz_type(XSS_IMG)
                .max_attempts(1),
        )
        .await
        .unwrap();
    client.run_now(xss.id).await.unwrap();
    Seeded {
        failing: ids[0],
        xss: xss.id,
    }
}

/// A running standalone server; stops when dropped.
struct Running {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn start(client: Client, config: Config) -> Running {
    let server = Server::bind(client, config).await.expect("bind");
    let addr = server.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    Running { addr, _stop: stop }
}

fn loopback() -> Config {
    Config::new(SocketAddr::from(([127, 0, 0, 1], 0)))
}

fn shots_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/web-screenshots")
}

/// Checks that nothing injected ran or became an element on the current page.
async fn assert_no_injection(b: &Browser, page: &str) {
    let flag = b
        .exec("return window.__xss === undefined ? null : window.__xss;")
        .await;
    assert_eq!(flag, Value::Null, "injected script ran on {page}");
    let imgs = b
        .exec("return document.querySelectorAll('img').length;")
        .await;
    assert_eq!(imgs, 0, "an injected <img> became an element on {page}");
    let scripts = b
        .exec("return Array.from(document.scripts).map(s => s.src).filter(s => !s.endsWith('/assets/app.js')).length;")
        .await;
    assert_eq!(
        scripts, 0,
        "an injected <script> became an element on {page}"
    );
}

/// Every scenario on one store, in one browser.
async fn scenario(store: Arc<dyn TaskStore>, name: &str) {
    let Some(b) = Browser::start(&shots_dir()).await else {
        return;
    };
    let client = Client::new(store);
    let seeded = seed(&client).await;
    let server = start(client.clone(), loopback()).await;
    let base = format!("http://{}", server.addr);

    // Overview: counts by state and type, the chart, the lag.
    b.goto(&format!("{base}/")).await;
    assert_eq!(b.text_css("#count-failed").await, "3");
    assert_eq!(b.text_css("#count-pending").await, "3");
    // One bar per minute with runs: the history's and the seed's (which may straddle a minute).
    let bars = b.find_all("#chart rect:not(.fail)").await.len();
    assert!(
        (HISTORY.len() + 1..=HISTORY.len() + 2).contains(&bars),
        "{bars} run bars"
    );
    let fail_bars = b.find_all("#chart rect.fail").await.len();
    let failing_minutes = HISTORY.iter().filter(|(_, f)| *f).count();
    assert!(
        (failing_minutes + 1..=failing_minutes + 2).contains(&fail_bars),
        "{fail_bars} failure bars"
    );
    let counts = b.text_css("#counts").await;
    assert!(
        counts.contains("web.flaky") && counts.contains("web.mail"),
        "{counts}"
    );
    b.screenshot(&format!("{name}-overview")).await;

    // Live refresh: a new task shows without reloading the page.
    b.exec("window.__marker = 42; return null;").await;
    client
        .enqueue(
            &Mail {
                to: "late@example.com".into(),
            },
            EnqueueOptions::new().code("mail-late"),
        )
        .await
        .unwrap();
    b.wait_for(
        "return document.getElementById('count-pending').textContent === '4';",
        15,
        "the live region to show the new task",
    )
    .await;
    assert_eq!(
        b.exec("return window.__marker;").await,
        42,
        "the page was reloaded"
    );

    // Tasks: filter to failed ones.
    b.goto(&format!("{base}/tasks")).await;
    for opt in b.find_all("#f-state option").await {
        if b.text(&opt).await == "failed" {
            b.click(&opt).await;
        }
    }
    b.click_to_page("#f-apply").await;
    b.wait_for(
        "return window.location.search.includes('state=failed');",
        10,
        "the filtered list",
    )
    .await;
    let states = b.find_all("#tasks td.state").await;
    assert_eq!(states.len(), 3);
    for st in &states {
        assert_eq!(b.text(st).await, "failed");
    }
    assert_no_injection(&b, "the task list").await;
    let list_text = b.text_css("#tasks").await;
    assert!(
        list_text.contains(XSS_SCRIPT),
        "the code shows as text: {list_text}"
    );
    b.screenshot(&format!("{name}-tasks-failed")).await;

    // One task: fields, payload, attempts.
    b.click_to_page(&format!("tr[data-id=\"{}\"] a.task-link", seeded.failing))
        .await;
    assert!(
        b.url()
            .await
            .ends_with(&format!("/tasks/{}", seeded.failing))
    );
    assert!(b.text_css("#state").await.contains("failed"));
    assert!(
        b.text_css("#payload")
            .await
            .contains("\"note\": \"order 0 locked\"")
    );
    let attempts = b.text_css("#attempts").await;
    assert!(
        attempts.contains("failed") && attempts.contains("upstream refused: order 0 locked"),
        "{attempts}"
    );
    b.screenshot(&format!("{name}-task")).await;

    // Reset it: a confirmation that counts, then pending.
    b.click_to_page("#action-reset").await;
    assert!(b.text_css("#confirm-count").await.contains("1 task"));
    b.screenshot(&format!("{name}-confirm")).await;
    b.click_to_page("#confirm").await;
    assert!(b.text_css(".notice.ok").await.starts_with("Reset"));
    b.click_to_page("#back").await;
    assert!(
        b.text_css("#state").await.contains("pending"),
        "{}",
        b.text_css("#state").await
    );

    // Queues: pause the default queue (a confirmation that counts), see it paused, resume.
    b.goto(&format!("{base}/queues")).await;
    assert!(
        b.text_css("tr[data-queue=\"default\"] td.status")
            .await
            .contains("running")
    );
    b.click_to_page("#queue-pause-default").await;
    assert!(
        b.text_css(".notice.warn")
            .await
            .contains("pending task(s) wait"),
        "{}",
        b.text_css(".notice.warn").await
    );
    b.click_to_page("#confirm-pause-default").await;
    assert!(b.text_css(".notice.ok").await.contains("is paused"));
    b.click_to_page("#back-to-queues").await;
    assert!(
        b.text_css("tr[data-queue=\"default\"] td.status")
            .await
            .contains("paused")
    );
    b.screenshot(&format!("{name}-queues")).await;
    b.click_to_page("#queue-resume-default").await;
    b.click_to_page("#confirm-resume-default").await;
    assert!(b.text_css(".notice.ok").await.contains("running again"));

    // The XSS task: code, payload, error and biz type show as text, nothing runs.
    b.goto(&format!("{base}/tasks/{}", seeded.xss)).await;
    assert_no_injection(&b, "the task page").await;
    let fields = b.text_css("#fields").await;
    assert!(
        fields.contains(XSS_SCRIPT) && fields.contains(XSS_IMG),
        "{fields}"
    );
    assert!(b.text_css("#payload").await.contains("<script>"));
    assert!(b.text_css("#last-error").await.contains(XSS_IMG));
    b.screenshot(&format!("{name}-task-xss")).await;
    // After a live refresh (innerHTML) too.
    b.exec("document.getElementById('live').firstChild.remove(); return null;")
        .await;
    b.wait_for(
        "return document.getElementById('fields') !== null;",
        15,
        "the live region to refresh",
    )
    .await;
    assert_no_injection(&b, "the refreshed task page").await;
    b.goto(&format!("{base}/failures")).await;
    assert_no_injection(&b, "the failures page").await;
    let failures = b.text_css("#failures").await;
    assert!(
        failures.contains("upstream refused: order 1 locked"),
        "{failures}"
    );
    assert!(failures.contains(XSS_SCRIPT), "{failures}");
    b.screenshot(&format!("{name}-failures")).await;
    b.goto(&format!("{base}/")).await;
    assert_no_injection(&b, "the overview").await;

    // Bulk: reset every failed task by the filter, counted first.
    b.goto(&format!("{base}/tasks?state=failed")).await;
    b.click_to_page("#action-reset").await;
    assert!(b.text_css("#confirm-count").await.contains("2 tasks"));
    b.click_to_page("#confirm").await;
    assert!(b.text_css(".notice.ok").await.contains("Reset 2 tasks"));

    // Run now from the standalone server: reset and wake, said plainly.
    client.cancel(seeded.failing).await.unwrap();
    b.goto(&format!("{base}/tasks/{}", seeded.failing)).await;
    b.click_to_page("#action-run_now").await;
    b.click_to_page("#confirm").await;
    let done = b.text_css(".notice.ok").await;
    assert!(
        done.contains("no task types compiled in") && done.contains("reset"),
        "{done}"
    );

    // CSRF: a forged token and a missing one are refused; nothing changes.
    b.goto(&format!("{base}/tasks/{}", seeded.failing)).await;
    b.exec("document.querySelectorAll('input[name=csrf]').forEach(i => i.value = 'forged'); return null;")
        .await;
    b.click_to_page("#action-delete").await;
    assert!(b.text_css(".notice.error").await.contains("CSRF"));
    b.goto(&format!("{base}/tasks/{}", seeded.failing)).await;
    b.exec("document.querySelectorAll('input[name=csrf]').forEach(i => i.remove()); return null;")
        .await;
    b.click_to_page("#action-delete").await;
    assert!(b.text_css(".notice.error").await.contains("CSRF"));
    client
        .get(seeded.failing)
        .await
        .expect("the task is still there");
    // From another origin, even with the right token (read from the page).
    let csrf = page_csrf(server.addr, &format!("/tasks/{}", seeded.failing)).await;
    let body = format!("csrf={csrf}&scope=one&id={}&confirm=yes", seeded.failing);
    let (status, text) = post(
        server.addr,
        "/actions/delete",
        &body,
        Some("http://evil.example"),
    )
    .await;
    assert_eq!(status, 403, "{text}");
    let (status, _) = post(server.addr, "/actions/delete", &body, None).await;
    assert_eq!(
        status, 200,
        "the same POST from the dashboard's own origin passes"
    );
    assert!(client.get(seeded.failing).await.is_err(), "deleted");

    // Host check (DNS rebinding).
    let get = |host: &str| format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    assert_eq!(http(server.addr, &get("evil.example")).await.0, 421);
    assert_eq!(
        http(
            server.addr,
            &get(&format!("evil.example:{}", server.addr.port()))
        )
        .await
        .0,
        421
    );
    assert_eq!(
        http(server.addr, &get(&server.addr.to_string())).await.0,
        200
    );
    assert_eq!(
        http(
            server.addr,
            &get(&format!("localhost:{}", server.addr.port()))
        )
        .await
        .0,
        200
    );

    // Read-only: no action anywhere, POSTs refused.
    let ro = start(client.clone(), loopback().read_only(true)).await;
    b.goto(&format!("http://{}/tasks/{}", ro.addr, seeded.xss))
        .await;
    assert_eq!(b.find_all("form[method=post]").await.len(), 0);
    assert_eq!(b.find_all("#read-only").await.len(), 1);
    b.goto(&format!("http://{}/tasks", ro.addr)).await;
    assert_eq!(b.find_all("form[method=post]").await.len(), 0);
    assert!(b.find_all("#tasks tbody tr").await.len() > 3);
    b.screenshot(&format!("{name}-read-only")).await;
    let body = format!("csrf={csrf}&scope=one&id={}&confirm=yes", seeded.xss);
    let (status, text) = post(ro.addr, "/actions/delete", &body, None).await;
    assert_eq!(status, 403);
    assert!(text.contains("read-only"));

    // A token: refused without it, let in by ?token= (then a cookie).
    let token = "0123456789abcdef0123456789abcdef";
    let guarded = start(client.clone(), loopback().token(token)).await;
    let (status, _) = http(guarded.addr, &get(&guarded.addr.to_string())).await;
    assert_eq!(status, 401);
    b.goto(&format!("http://{}/tasks?token=wrong", guarded.addr))
        .await;
    assert!(
        b.exec("return document.body.innerText;")
            .await
            .as_str()
            .unwrap_or("")
            .contains("needs its token")
    );
    b.goto(&format!("http://{}/tasks?token={token}", guarded.addr))
        .await;
    assert!(
        !b.url().await.contains("token="),
        "the token leaves the address bar"
    );
    assert_eq!(b.find_all("#tasks").await.len(), 1);
    b.goto(&format!("http://{}/failures", guarded.addr)).await;
    assert_eq!(
        b.find_all("#failures").await.len(),
        1,
        "the cookie keeps it"
    );

    // Cancel a running task from the page: its worker tells the handler at its next
    // heartbeat, the handler stops, and the task shows cancelled.
    let probe = Arc::new(CancelProbe::default());
    let runner = Client::builder(client.store().clone())
        .data_arc(probe.clone())
        .build()
        .unwrap();
    let worker = runner
        .worker()
        .task_types(["web.patient"])
        .lease(Duration::from_secs(3))
        .heartbeat(Some(Duration::from_millis(200)))
        .cancel_grace(Duration::from_secs(5))
        .poll_interval(Duration::from_millis(50))
        .start()
        .unwrap();
    let patient = runner
        .enqueue(&Patient {}, EnqueueOptions::new().code("patient-1"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !probe.started.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the patient task never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.goto(&format!("{base}/tasks/{}", patient.id)).await;
    assert!(b.text_css("#state").await.contains("running"));
    b.click_to_page("#action-cancel").await;
    assert!(b.text_css("#confirm-count").await.contains("1 task"));
    b.click_to_page("#confirm").await;
    let done = b.text_css(".notice.ok").await;
    assert!(done.starts_with("Cancel requested"), "{done}");
    b.click_to_page("#back").await;
    b.wait_for(
        "return document.getElementById('state').textContent.includes('cancelled');",
        15,
        "the running task to show cancelled",
    )
    .await;
    assert!(
        probe.stopped.load(Ordering::SeqCst),
        "the handler stopped for its cancel"
    );
    b.wait_for(
        "return document.getElementById('attempts').textContent.includes('cancelled');",
        15,
        "the run logged as cancelled",
    )
    .await;
    let attempts = b.text_css("#attempts").await;
    assert!(
        attempts.contains("stopped: cancelled from the dashboard"),
        "{attempts}"
    );
    b.screenshot(&format!("{name}-task-cancelled")).await;
    worker.shutdown().await;

    b.quit().await;
}

/// The CSRF token in a page's forms.
async fn page_csrf(addr: SocketAddr, path: &str) -> String {
    let (_, body) = http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    let at = body
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    body[at..at + 32].to_owned()
}

async fn post(addr: SocketAddr, path: &str, body: &str, origin: Option<&str>) -> (u16, String) {
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    http(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{origin}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
}

/// Runs `scenario` on a store from `setup`, or says why it skips (failing under `CI=true`).
async fn on<F, Fut>(name: &str, setup: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<
        Output = Result<
            (
                Arc<dyn TaskStore>,
                Box<dyn FnOnce() -> futures_drop::Cleanup>,
            ),
            String,
        >,
    >,
{
    match setup().await {
        Err(why) => {
            assert!(!in_ci(), "{name} skipped under CI=true: {why}");
            println!("skipped: {why}");
        }
        Ok((store, cleanup)) => {
            scenario(store, name).await;
            cleanup().await;
        }
    }
}

mod futures_drop {
    /// What a test does after passing (drops its database).
    pub type Cleanup = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

/// Runs `test` on a runtime whose threads have room for the scenario's deep, debug-built
/// futures (the default 2 MiB test thread overflows).
fn with_big_stack<Fut: Future<Output = ()> + 'static>(test: impl FnOnce() -> Fut + Send + 'static) {
    const STACK: usize = 32 * 1024 * 1024;
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(STACK)
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(test())
        })
        .expect("test thread")
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

#[test]
fn sqlite_dashboard() {
    with_big_stack(|| {
        on("sqlite", || async {
            let (store, dir) = taskrow_sqlite::testing::temp_store().await;
            let cleanup: Box<dyn FnOnce() -> futures_drop::Cleanup> =
                Box::new(move || Box::pin(async move { drop(dir) }));
            Ok((Arc::new(store) as Arc<dyn TaskStore>, cleanup))
        })
    });
}

#[test]
fn mysql_dashboard() {
    with_big_stack(|| {
        on("mysql", || async {
            let (store, db) = taskrow_mysql::testing::fresh_store()
                .await
                .ok_or("TASKROW_MYSQL_URL not set")?;
            let cleanup: Box<dyn FnOnce() -> futures_drop::Cleanup> =
                Box::new(move || Box::pin(db.drop_database()));
            Ok((Arc::new(store) as Arc<dyn TaskStore>, cleanup))
        })
    });
}

#[test]
fn postgres_dashboard() {
    with_big_stack(|| {
        on("postgres", || async {
            let (store, db) = taskrow_postgres::testing::fresh_store()
                .await
                .ok_or("TASKROW_POSTGRES_URL not set")?;
            let cleanup: Box<dyn FnOnce() -> futures_drop::Cleanup> =
                Box::new(move || Box::pin(db.drop_database()));
            Ok((Arc::new(store) as Arc<dyn TaskStore>, cleanup))
        })
    });
}
