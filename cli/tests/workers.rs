//! `taskrow workers` and `taskrow health` driven as an operator or an orchestrator would,
//! against a SQLite file, MariaDB (`TASKROW_MYSQL_URL`) and PostgreSQL
//! (`TASKROW_POSTGRES_URL`), with a real worker started in this process. Each server test
//! makes its own database and drops it when it passes; without the variable it prints
//! `skipped: …`, and fails under `CI=true`.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskrow::chrono::{TimeDelta, Utc};
use taskrow::{Client, TaskStore, WorkerBeat};
use tempfile::TempDir;

/// A database for one test.
struct Db {
    url: String,
    _dir: Option<TempDir>,
    mysql: Option<taskrow_mysql::testing::FreshDatabase>,
    postgres: Option<taskrow_postgres::testing::FreshDatabase>,
}

impl Db {
    fn sqlite() -> Self {
        let (url, dir) = taskrow_sqlite::testing::temp_url();
        Db {
            url,
            _dir: Some(dir),
            mysql: None,
            postgres: None,
        }
    }

    async fn mysql() -> Option<Self> {
        let fresh = taskrow_mysql::testing::fresh_database().await?;
        Some(Db {
            url: fresh.url.clone(),
            _dir: None,
            mysql: Some(fresh),
            postgres: None,
        })
    }

    async fn postgres() -> Option<Self> {
        let fresh = taskrow_postgres::testing::fresh_database().await?;
        Some(Db {
            url: fresh.url.clone(),
            _dir: None,
            mysql: None,
            postgres: Some(fresh),
        })
    }

    async fn done(self) {
        if let Some(m) = self.mysql {
            m.drop_database().await;
        }
        if let Some(p) = self.postgres {
            p.drop_database().await;
        }
    }
}

/// What one run of the binary printed, and its exit code.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    #[track_caller]
    fn ok(self) -> String {
        assert_eq!(self.code, Some(0), "expected success: {self:#?}");
        self.stdout
    }

    /// The one line of an unhealthy answer: exit status 1, one line on stdout.
    #[track_caller]
    fn unhealthy(self) -> String {
        assert_eq!(self.code, Some(1), "expected exit status 1: {self:#?}");
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "expected one line: {self:#?}");
        assert!(lines[0].starts_with("unhealthy: "), "{self:#?}");
        assert!(self.stderr.is_empty(), "nothing on stderr: {self:#?}");
        lines[0].to_owned()
    }
}

fn taskrow(url: &str, args: &[&str]) -> Out {
    let o = Command::new(env!("CARGO_BIN_EXE_taskrow"))
        .env_remove("TASKROW_DATABASE_URL")
        .arg("--database-url")
        .arg(url)
        .args(args)
        .output()
        .expect("cannot start the taskrow binary");
    Out {
        code: o.status.code(),
        stdout: String::from_utf8(o.stdout).unwrap(),
        stderr: String::from_utf8(o.stderr).unwrap(),
    }
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn session(db: &Db) {
    let url = db.url.as_str();
    taskrow(url, &["migrate", "up"]).ok();
    let out = taskrow(url, &["workers"]).ok();
    assert!(out.starts_with("no workers"), "{out}");
    let out = taskrow(url, &["health"]).ok();
    assert_eq!(
        out.trim(),
        "healthy: ok: database and schema fine; 0 worker(s) alive"
    );
    let line = taskrow(url, &["health", "--max-age", "30"]).unhealthy();
    assert_eq!(line, "unhealthy: no worker beat within the last 30.0 s");

    // A worker of this process, two queue lanes: one row.
    let store: Arc<dyn TaskStore> = taskrow_cli::connect(url).await.unwrap();
    let client = Client::builder(store.clone())
        .heartbeat(Some(Duration::from_millis(200)))
        .build()
        .unwrap();
    let worker = client
        .worker()
        .id("cli-worker")
        .queue("emails", 2)
        .queue("default", 1)
        .start()
        .unwrap();
    wait_until("the worker's row", || {
        let c = client.clone();
        async move { c.workers().await.unwrap().iter().any(|w| w.alive) }
    })
    .await;
    // And a row whose worker died an hour ago (never removed).
    let hour_ago = Utc::now() - TimeDelta::hours(1);
    store
        .beat_worker(
            &WorkerBeat::new("dead-worker", hour_ago, hour_ago, Duration::from_secs(10))
                .host("elsewhere")
                .pid(99),
        )
        .await
        .unwrap();

    let out = taskrow(url, &["workers"]).ok();
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    for col in [
        "ID",
        "HOST",
        "PID",
        "QUEUES",
        "CONCURRENCY",
        "RUNNING",
        "LAST BEAT",
        "STATE",
    ] {
        assert!(header.contains(col), "{out}");
    }
    let live = lines.find(|l| l.starts_with("cli-worker")).expect(&out);
    let cells: Vec<&str> = live.split_whitespace().collect();
    assert_eq!(cells[2], std::process::id().to_string(), "{out}");
    assert_eq!(&cells[3..6], ["emails,default", "3", "0"], "{out}");
    assert_eq!(cells.last(), Some(&"alive"), "{out}");
    let dead = out
        .lines()
        .find(|l| l.starts_with("dead-worker"))
        .expect(&out);
    assert!(
        dead.contains("elsewhere") && dead.ends_with("gone"),
        "{out}"
    );
    assert!(out.contains("1 alive, 1 gone"), "{out}");

    let json: serde_json::Value =
        serde_json::from_str(&taskrow(url, &["workers", "--json"]).ok()).unwrap();
    assert_eq!(json[0]["id"], "cli-worker");
    assert_eq!(json[0]["alive"], true);
    assert_eq!(json[0]["concurrency"], 3);
    assert_eq!(json[0]["queues"], serde_json::json!(["emails", "default"]));
    assert_eq!(json[1]["id"], "dead-worker");
    assert_eq!(json[1]["alive"], false);

    let out = taskrow(
        url,
        &["health", "--worker", "cli-worker", "--max-age", "30"],
    )
    .ok();
    assert!(
        out.starts_with("healthy: ok: database and schema fine; worker `cli-worker` alive"),
        "{out}"
    );
    let out = taskrow(url, &["health", "--max-age", "30s"]).ok();
    assert!(
        out.contains("1 worker(s) beat within the last 30.0 s"),
        "{out}"
    );
    let line = taskrow(url, &["health", "--worker", "dead-worker"]).unhealthy();
    assert!(line.contains("worker `dead-worker` is gone"), "{line}");
    let line = taskrow(url, &["health", "--worker", "nobody"]).unhealthy();
    assert!(line.contains("`nobody` is not in the registry"), "{line}");
    let json: serde_json::Value =
        serde_json::from_str(&taskrow(url, &["health", "--worker", "cli-worker", "--json"]).ok())
            .unwrap();
    assert_eq!(json["healthy"], true);
    assert_eq!(json["worker"]["id"], "cli-worker");

    worker.shutdown().await;
    let line = taskrow(url, &["health", "--worker", "cli-worker"]).unhealthy();
    assert!(line.contains("not in the registry"), "{line}");

    // A schema behind this version: unhealthy, naming the migration (the newest).
    taskrow(url, &["migrate", "down", "--steps", "1", "--yes"]).ok();
    let line = taskrow(url, &["health"]).unhealthy();
    let newest = taskrow_migration::migrations()
        .last()
        .map(|m| m.name().to_owned())
        .expect("migrations");
    assert!(
        line.starts_with("unhealthy: database: ") && line.contains(&newest),
        "{line}"
    );
    taskrow(url, &["migrate", "up"]).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_workers_and_health() {
    let db = Db::sqlite();
    session(&db).await;
    db.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_workers_and_health() {
    let Some(db) = Db::mysql().await else {
        return;
    };
    session(&db).await;
    db.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_workers_and_health() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    session(&db).await;
    db.done().await;
}

/// A database that cannot be reached is an unhealthy answer, not a command-line error.
#[test]
fn unreachable_database_is_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("sqlite://{}/missing.db", dir.path().display());
    let line = taskrow(&missing, &["health"]).unhealthy();
    assert!(line.starts_with("unhealthy: database: "), "{line}");
    let o = taskrow(
        "mysql://nobody@127.0.0.1:1/none",
        &["health", "--worker", "w"],
    );
    let line = o.unhealthy();
    assert!(line.starts_with("unhealthy: database: "), "{line}");
}
