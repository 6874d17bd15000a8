//! The `taskrow` binary driven as an operator would, against a SQLite file, against MariaDB
//! (the server named by `TASKROW_MYSQL_URL`, e.g. `mysql://root@127.0.0.1:3306`) and against
//! PostgreSQL (`TASKROW_POSTGRES_URL`, e.g. `postgres://postgres@127.0.0.1:5432`). Each server
//! test makes its own `taskrow_test_<uuid>` database and drops it when it passes; without the
//! variable it prints `skipped: …`, and fails under `CI=true`.
//!
//! Tasks are seeded through the library with the `cli.test` type defined here. The stock binary
//! does not link that type, so `run` is tested twice: the binary's refusal, and
//! [`taskrow_cli::run_cli_with_io`] called in this process, where the type is linked.

use std::io::Write;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use taskrow::serde::{Deserialize, Serialize};
use taskrow::typetag;
use taskrow::{
    ClaimOne, Client, Clock, EnqueueOptions, Error, LogFilter, Outcome, Priority, SystemClock,
    Task, TaskContext, TaskError, TaskRef, TaskState, TaskStore, async_trait,
};
use taskrow_mysql::testing::{FreshDatabase, fresh_database};
use taskrow_postgres::testing as postgres;
use tempfile::TempDir;

/// The test task: fails with `boom <n>` when `fail` is set, else counts its runs in the
/// [`Runs`] registered on the client, if any.
#[derive(Serialize, Deserialize)]
#[serde(crate = "taskrow::serde")]
struct CliTest {
    n: i64,
    #[serde(default)]
    fail: bool,
}

/// Runs of [`CliTest`], registered as data by the library test.
#[derive(Default)]
struct Runs(AtomicU32);

#[typetag::serde(name = "cli.test")]
#[async_trait]
impl Task for CliTest {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        if self.fail {
            return Err(TaskError::msg(format!("boom {}", self.n)));
        }
        if let Ok(runs) = ctx.data::<Runs>() {
            runs.0.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Databases

/// A database for one test: a SQLite file in a temporary directory, a MariaDB database or a
/// PostgreSQL database.
struct Db {
    url: String,
    _dir: Option<TempDir>,
    mysql: Option<FreshDatabase>,
    postgres: Option<postgres::FreshDatabase>,
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

    /// `None` (after printing `skipped: …`) without `TASKROW_MYSQL_URL`.
    async fn mysql() -> Option<Self> {
        let fresh = fresh_database().await?;
        Some(Db {
            url: fresh.url.clone(),
            _dir: None,
            mysql: Some(fresh),
            postgres: None,
        })
    }

    /// `None` (after printing `skipped: …`) without `TASKROW_POSTGRES_URL`. The URL says
    /// `postgresql://`, the other scheme the CLI opens.
    async fn postgres() -> Option<Self> {
        let fresh = postgres::fresh_database().await?;
        Some(Db {
            url: fresh.url.replacen("postgres://", "postgresql://", 1),
            _dir: None,
            mysql: None,
            postgres: Some(fresh),
        })
    }

    /// Drops the server's database (called when the test passed).
    async fn done(self) {
        if let Some(m) = self.mysql {
            m.drop_database().await;
        }
        if let Some(p) = self.postgres {
            p.drop_database().await;
        }
    }

    /// A store on it, through the CLI's own `connect`.
    async fn store(&self) -> Arc<dyn TaskStore> {
        taskrow_cli::connect(&self.url).await.unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// Running the binary

/// What one run of the binary printed, and its exit code.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    /// Stdout of a successful run.
    #[track_caller]
    fn ok(self) -> String {
        assert_eq!(self.code, Some(0), "expected success: {self:#?}");
        self.stdout
    }

    /// The one error line of a failed run (exit code 1).
    #[track_caller]
    fn error(self) -> String {
        assert_eq!(self.code, Some(1), "expected exit code 1: {self:#?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one error line: {self:#?}");
        assert!(lines[0].starts_with("error: "), "{self:#?}");
        lines[0].to_owned()
    }
}

fn binary() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_taskrow"));
    c.env_remove("TASKROW_DATABASE_URL");
    c
}

/// `taskrow --database-url URL ARGS…`, answering prompts with `input`.
fn taskrow_with_input(url: &str, args: &[&str], input: &str) -> Out {
    let mut child = binary()
        .arg("--database-url")
        .arg(url)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start the taskrow binary");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    Out {
        code: o.status.code(),
        stdout: String::from_utf8(o.stdout).unwrap(),
        stderr: String::from_utf8(o.stderr).unwrap(),
    }
}

/// `taskrow --database-url URL ARGS…` with nothing on stdin.
fn taskrow(url: &str, args: &[&str]) -> Out {
    taskrow_with_input(url, args, "")
}

/// The table rows of a `list` output (without the header and the trailing note), as their
/// codes.
fn codes(list_output: &str) -> Vec<String> {
    let mut lines = list_output.lines();
    let header = lines.next().unwrap_or("");
    assert!(header.contains("CODE"), "not a task table: {list_output}");
    lines
        .take_while(|l| !l.contains("more may follow") && !l.starts_with("dry run"))
        .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Seeding

/// The tasks every session starts with. Returns the client used.
async fn seed(store: Arc<dyn TaskStore>) -> Client {
    let client = Client::builder(store).build().unwrap();
    let enqueue = |code: &str, biz: &str, n: i64, fail: bool| {
        let client = client.clone();
        let opts = EnqueueOptions::new()
            .code(code)
            .biz_type(biz)
            .max_attempts(1);
        async move { client.enqueue(&CliTest { n, fail }, opts).await.unwrap() }
    };
    // Pending and due.
    enqueue("order-1", "order", 1, false).await;
    // Failed for good (one attempt).
    enqueue("order-2", "order", 2, true).await;
    client.run_now("order-2").await.unwrap();
    enqueue("mail-1", "mail", 3, true).await;
    client.run_now("mail-1").await.unwrap();
    enqueue("fail-2", "other", 4, true).await;
    client.run_now("fail-2").await.unwrap();
    // Pending, due in an hour.
    client
        .enqueue(
            &CliTest { n: 5, fail: false },
            EnqueueOptions::new()
                .code("later-1")
                .biz_type("order")
                .delay(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    // Succeeded and kept.
    client
        .enqueue(
            &CliTest { n: 6, fail: false },
            EnqueueOptions::new().code("keep-1").keep_on_success(),
        )
        .await
        .unwrap();
    assert!(client.run_now("keep-1").await.unwrap().succeeded());
    // A code made of digits.
    enqueue("12345", "", 7, false).await;
    client
}

async fn state(store: &dyn TaskStore, code: &str) -> (TaskState, u32) {
    let t = store.get(&TaskRef::from(code)).await.unwrap();
    (t.state, t.attempts)
}

// ---------------------------------------------------------------------------------------------
// The session: every subcommand, in an operator's order

async fn session(db: &Db) {
    let url = db.url.as_str();

    // An empty database: status says pending, other commands say to migrate.
    let status = taskrow(url, &["migrate", "status"]).ok();
    assert!(status.contains("pending"), "{status}");
    assert!(status.contains("taskrow migrate up"), "{status}");
    let e = taskrow(url, &["list"]).error();
    assert!(e.contains("tables are missing"), "{e}");
    assert!(e.contains("`taskrow migrate up`"), "{e}");

    let up = taskrow(url, &["migrate", "up"]).ok();
    assert!(up.starts_with("applied m"), "{up}");
    let again = taskrow(url, &["migrate", "up"]).ok();
    assert!(again.contains("nothing to apply"), "{again}");
    let status = taskrow(url, &["migrate", "status"]).ok();
    assert!(status.contains("applied"), "{status}");
    assert!(status.contains("up to date"), "{status}");
    assert_eq!(taskrow(url, &["list"]).ok(), "no tasks match\n");

    let store = db.store().await;
    seed(store.clone()).await;
    let all = [
        "order-1", "order-2", "mail-1", "fail-2", "later-1", "keep-1", "12345",
    ];

    // list: everything, in id order, then each filter.
    let out = taskrow(url, &["list"]).ok();
    assert_eq!(codes(&out), all, "{out}");
    assert!(out.contains("boom 2"), "last errors show: {out}");
    let failed = taskrow(url, &["list", "--state", "failed"]).ok();
    assert_eq!(codes(&failed), ["order-2", "mail-1", "fail-2"], "{failed}");
    let out = taskrow(url, &["list", "--state", "succeeded,pending"]).ok();
    assert_eq!(
        codes(&out),
        ["order-1", "later-1", "keep-1", "12345"],
        "{out}"
    );
    let out = taskrow(url, &["list", "--biz-type", "order"]).ok();
    assert_eq!(codes(&out), ["order-1", "order-2", "later-1"], "{out}");
    let out = taskrow(url, &["list", "--biz-type", "mail", "--biz-type", "other"]).ok();
    assert_eq!(codes(&out), ["mail-1", "fail-2"], "{out}");
    let out = taskrow(url, &["list", "--type", "cli.test"]).ok();
    assert_eq!(codes(&out).len(), all.len(), "{out}");
    assert_eq!(
        taskrow(url, &["list", "--type", "other.type"]).ok(),
        "no tasks match\n"
    );
    let out = taskrow(url, &["list", "--code-prefix", "order-"]).ok();
    assert_eq!(codes(&out), ["order-1", "order-2"], "{out}");
    let out = taskrow(url, &["list", "--due-before", "now"]).ok();
    assert_eq!(codes(&out), ["order-1", "12345"], "{out}");
    let out = taskrow(url, &["list", "--due-before", "2h"]).ok();
    assert_eq!(codes(&out), ["order-1", "later-1", "12345"], "{out}");
    let in_two_hours = (SystemClock.now() + chrono::TimeDelta::hours(2)).to_rfc3339();
    let out = taskrow(url, &["list", "--due-before", &in_two_hours]).ok();
    assert_eq!(codes(&out), ["order-1", "later-1", "12345"], "{out}");
    assert_eq!(
        taskrow(url, &["list", "--due-before", "-1h"]).ok(),
        "no tasks match\n"
    );
    let e = taskrow(url, &["list", "--due-before", "someday"]);
    assert_eq!(e.code, Some(2), "{e:?}");
    assert!(e.stderr.contains("is not a time"), "{e:?}");

    // Paging.
    let page1 = taskrow(url, &["list", "--limit", "3"]).ok();
    assert_eq!(codes(&page1), ["order-1", "order-2", "mail-1"], "{page1}");
    let mail_id = store.get(&"mail-1".into()).await.unwrap().id.to_string();
    assert!(
        page1.contains(&format!("more may follow: add --after-id {mail_id}")),
        "{page1}"
    );
    let page2 = taskrow(url, &["list", "--limit", "3", "--after-id", &mail_id]).ok();
    assert_eq!(codes(&page2), ["fail-2", "later-1", "keep-1"], "{page2}");

    // JSON.
    let out = taskrow(url, &["list", "--json", "--state", "failed"]).ok();
    assert!(
        out.starts_with("[\n  {\n    \"id\": "),
        "fields in record order: {out}"
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["code"], "order-2");
    assert_eq!(rows[0]["state"], "failed");
    assert_eq!(rows[0]["payload"]["n"], 2);
    assert_eq!(rows[0]["last_error"], "boom 2");

    // show, by code, by id, and a code of digits.
    let out = taskrow(url, &["show", "order-2"]).ok();
    for want in [
        "code         order-2",
        "type         cli.test",
        "biz type     order",
        "state        failed",
        "attempts     1/1",
        "last error\n  boom 2",
        "payload\n  {\n    \"fail\": true,\n    \"n\": 2\n  }",
        "log (1 run)",
        "failed",
    ] {
        assert!(out.contains(want), "`{want}` missing from:\n{out}");
    }
    let order1 = store.get(&"order-1".into()).await.unwrap();
    let out = taskrow(url, &["show", &order1.id.to_string()]).ok();
    assert!(out.contains("code         order-1"), "{out}");
    assert!(out.contains("log: no runs yet"), "{out}");
    let out = taskrow(url, &["show", "code:12345"]).ok();
    assert!(out.contains("code         12345"), "{out}");
    let e = taskrow(url, &["show", "12345"]).error();
    assert!(e.contains("task with id 12345 not found"), "{e}");
    assert!(e.contains("`code:12345`"), "{e}");
    let e = taskrow(url, &["show", "no-such-task"]).error();
    assert!(e.contains("task with code `no-such-task` not found"), "{e}");
    let out = taskrow(url, &["show", "--json", "mail-1"]).ok();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["task"]["code"], "mail-1");
    assert_eq!(v["log"][0]["outcome"], "failed");
    assert_eq!(v["log"][0]["error"], "boom 3");

    // stats.
    let out = taskrow(url, &["stats"]).ok();
    for want in [
        "pending        3",
        "failed         3",
        "succeeded      1",
        "total          7",
        "cli.test",
        "due now: 2; the oldest is `order-1`",
        "failures in the last hour: 3 (3 failed for good, 0 retrying)",
    ] {
        assert!(out.contains(want), "`{want}` missing from:\n{out}");
    }
    let out = taskrow(url, &["stats", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["by_state"]["failed"], 3);
    assert_eq!(v["by_type"]["cli.test"]["pending"], 3);
    assert_eq!(v["oldest_due"]["code"], "order-1");
    assert_eq!(v["failures_last_hour"]["failed"], 3);

    // reset: a dry run changes nothing; then by filter, then one task.
    let out = taskrow(url, &["reset", "--failed", "--dry-run"]).ok();
    assert_eq!(codes(&out), ["order-2", "mail-1", "fail-2"], "{out}");
    assert!(out.contains("would reset 3 failed tasks"), "{out}");
    assert_eq!(state(&*store, "order-2").await, (TaskState::Failed, 1));
    let out = taskrow(
        url,
        &["reset", "--failed", "--biz-type", "mail", "--dry-run"],
    )
    .ok();
    assert_eq!(codes(&out), ["mail-1"], "{out}");
    let out = taskrow(url, &["reset", "--failed", "--biz-type", "mail"]).ok();
    assert!(out.starts_with("reset 1 failed task:"), "{out}");
    assert_eq!(state(&*store, "mail-1").await, (TaskState::Pending, 0));
    assert_eq!(state(&*store, "fail-2").await, (TaskState::Failed, 1));
    let out = taskrow(url, &["reset", "order-2", "--dry-run"]).ok();
    assert!(out.contains("would reset task `order-2`"), "{out}");
    assert_eq!(state(&*store, "order-2").await, (TaskState::Failed, 1));
    let out = taskrow(url, &["reset", "order-2"]).ok();
    assert!(out.contains("`order-2`"), "{out}");
    assert!(out.contains("was failed"), "{out}");
    assert_eq!(state(&*store, "order-2").await, (TaskState::Pending, 0));
    let e = taskrow(url, &["reset", "keep-1"]).error();
    assert!(e.contains("already succeeded"), "{e}");
    let e = taskrow(url, &["reset", "order-2", "--type", "x"]).error();
    assert!(e.contains("do not apply to one named task"), "{e}");
    let usage = taskrow(url, &["reset"]);
    assert_eq!(usage.code, Some(2), "{usage:?}");

    // cancel.
    let out = taskrow(url, &["cancel", "order-1"]).ok();
    assert!(out.starts_with("cancelled task `order-1`"), "{out}");
    assert_eq!(state(&*store, "order-1").await.0, TaskState::Cancelled);
    let e = taskrow(url, &["cancel", "keep-1"]).error();
    assert!(e.contains("already succeeded"), "{e}");

    // run: the stock binary has no task types; it says so and claims nothing.
    let logs_before = store.logs(&LogFilter::default()).await.unwrap().len();
    let e = taskrow(url, &["run", "order-2"]).error();
    assert!(e.contains("no task types compiled in"), "{e}");
    assert!(e.contains("taskrow_cli::run_cli"), "{e}");
    assert!(e.contains("nothing was run"), "{e}");
    assert_eq!(state(&*store, "order-2").await, (TaskState::Pending, 0));
    assert_eq!(
        store.logs(&LogFilter::default()).await.unwrap().len(),
        logs_before
    );

    // A task running elsewhere: refused by delete and reset; cancel marks it for its worker.
    let now = SystemClock.now();
    store
        .claim_one(
            &"later-1".into(),
            &ClaimOne::new("other-host-1", Duration::from_secs(600), now),
        )
        .await
        .unwrap();
    let out = taskrow(url, &["cancel", "later-1"]).ok();
    assert!(
        out.starts_with("cancel requested for task `later-1`"),
        "{out}"
    );
    assert!(out.contains("other-host-1"), "{out}");
    assert!(
        store
            .get(&"later-1".into())
            .await
            .unwrap()
            .cancel_requested_at
            .is_some()
    );
    for args in [
        &["delete", "later-1"][..],
        &["reset", "later-1"],
        &["reset", "later-1", "--dry-run"],
    ] {
        let e = taskrow(url, args).error();
        assert!(e.contains("running under a live lease"), "{args:?}: {e}");
        assert!(e.contains("other-host-1"), "{args:?}: {e}");
    }
    assert_eq!(state(&*store, "later-1").await.0, TaskState::Running);

    // delete: the row goes, its log rows stay and `show` still finds them.
    let out = taskrow(url, &["delete", "mail-1"]).ok();
    assert!(out.starts_with("deleted task `mail-1`"), "{out}");
    assert!(matches!(
        store.get(&"mail-1".into()).await,
        Err(Error::NotFound(_))
    ));
    let out = taskrow(url, &["show", "mail-1"]).ok();
    assert!(out.contains("no longer in the table"), "{out}");
    assert!(out.contains("boom 3"), "{out}");
    let e = taskrow(url, &["delete", "mail-1"]).error();
    assert!(e.contains("not found"), "{e}");

    // purge: nothing is a week old; after a second, the finished rows go.
    let out = taskrow(url, &["purge", "--older-than", "7d"]).ok();
    assert!(
        out.starts_with("purged 0 tasks (succeeded, cancelled) and 0 log rows, older than 7d"),
        "{out}"
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let logs = store.logs(&LogFilter::default()).await.unwrap().len();
    let out = taskrow(url, &["purge", "--older-than", "1s", "--keep-logs"]).ok();
    assert!(
        out.starts_with("purged 2 tasks (succeeded, cancelled) and log rows kept"),
        "{out}"
    );
    assert_eq!(store.logs(&LogFilter::default()).await.unwrap().len(), logs);
    let out = taskrow(url, &["purge", "--older-than", "1s", "--include-failed"]).ok();
    assert!(
        out.starts_with(&format!(
            "purged 1 task (succeeded, cancelled, failed) and {logs} log rows"
        )),
        "{out}"
    );
    let out = taskrow(url, &["list"]).ok();
    assert_eq!(codes(&out), ["order-2", "later-1", "12345"], "{out}");
    let e = taskrow(url, &["purge", "--older-than", "7"]);
    assert_eq!(e.code, Some(2), "{e:?}");

    // migrate down: asks first; `no` keeps everything, `yes` drops the tables.
    let out = taskrow_with_input(url, &["migrate", "down"], "no\n");
    assert!(out.stderr.contains("type `yes` to go on"), "{out:?}");
    assert!(
        out.stderr.contains("aborted: nothing was rolled back"),
        "{out:?}"
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(codes(&taskrow(url, &["list"]).ok()).len(), 3);
    let out = taskrow(url, &["migrate", "down"]);
    assert_eq!(out.code, Some(1), "no answer is no: {out:?}");
    assert!(
        out.stderr.ends_with(
            "error: aborted: nothing was rolled back (pass --yes to skip the question)\n"
        ),
        "{out:?}"
    );
    let out = taskrow_with_input(url, &["migrate", "down"], "yes\n");
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.starts_with("rolled back m"), "{out:?}");
    let e = taskrow(url, &["list"]).error();
    assert!(e.contains("taskrow migrate up"), "{e}");
    taskrow(url, &["migrate", "up"]).ok();
    let out = taskrow(url, &["migrate", "down", "--all", "--yes"]).ok();
    assert!(out.starts_with("rolled back m"), "{out}");
    let out = taskrow(url, &["migrate", "down", "--yes"]).ok();
    assert!(out.contains("nothing to roll back"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_session() {
    let db = Db::sqlite();
    session(&db).await;
    db.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_session() {
    let Some(db) = Db::mysql().await else {
        return;
    };
    session(&db).await;
    db.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_session() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    session(&db).await;
    db.done().await;
}

// ---------------------------------------------------------------------------------------------
// Queues and priorities: `pause`, `resume`, `queues`, and the columns of `list` and `stats`

async fn queues_session(db: &Db) {
    let url = db.url.as_str();
    taskrow(url, &["migrate", "up"]).ok();
    assert!(
        taskrow(url, &["queues"]).ok().starts_with("no queues"),
        "an empty database has none"
    );
    let store = db.store().await;
    let client = Client::builder(store.clone()).build().unwrap();
    for (code, queue, priority) in [
        ("mail-1", "emails", Priority::High),
        ("mail-2", "emails", Priority::Low),
        ("plain-1", "default", Priority::Normal),
    ] {
        client
            .enqueue(
                &CliTest { n: 1, fail: false },
                EnqueueOptions::new()
                    .code(code)
                    .queue(queue)
                    .priority(priority),
            )
            .await
            .unwrap();
    }

    let out = taskrow(url, &["list"]).ok();
    let header = out.lines().next().unwrap();
    assert!(
        header.contains("QUEUE") && header.contains("PRIORITY"),
        "{out}"
    );
    let mail = out.lines().find(|l| l.contains("mail-1")).unwrap();
    assert!(mail.contains("emails") && mail.contains("high"), "{out}");
    let out = taskrow(url, &["list", "--queue", "emails"]).ok();
    assert_eq!(codes(&out), ["mail-1", "mail-2"], "{out}");
    let out = taskrow(url, &["show", "mail-2"]).ok();
    assert!(out.contains("queue") && out.contains("emails"), "{out}");
    assert!(out.contains("priority") && out.contains("low"), "{out}");

    let out = taskrow(url, &["pause", "emails"]).ok();
    assert!(out.starts_with("paused queue `emails`"), "{out}");
    let (paused, _) = store
        .queues()
        .await
        .unwrap()
        .into_iter()
        .map(|q| (q.name.clone(), q.paused))
        .partition::<Vec<_>, _>(|(_, p)| *p);
    assert_eq!(paused, [("emails".to_owned(), true)]);
    let out = taskrow(url, &["queues"]).ok();
    let emails = out.lines().find(|l| l.starts_with("emails")).unwrap();
    assert!(emails.contains("paused"), "{out}");
    assert_eq!(
        emails.split_whitespace().nth(2),
        Some("2"),
        "two pending: {out}"
    );
    let default = out.lines().find(|l| l.starts_with("default")).unwrap();
    assert!(default.contains("running"), "{out}");
    let out = taskrow(url, &["queues", "--json"]).ok();
    assert!(out.contains("\"paused\": true"), "{out}");

    let out = taskrow(url, &["stats"]).ok();
    assert!(out.contains("tasks by queue"), "{out}");
    assert!(out.contains("emails (paused)"), "{out}");
    assert!(out.contains("tasks by priority"), "{out}");
    let high = out
        .lines()
        .find(|l| l.trim_start().starts_with("high"))
        .unwrap();
    assert_eq!(high.split_whitespace().nth(1), Some("1"), "{out}");
    let out = taskrow(url, &["stats", "--json"]).ok();
    assert!(
        out.contains("\"by_queue\"") && out.contains("\"by_priority\""),
        "{out}"
    );

    // A paused queue is not claimed by a worker; resumed, it is.
    let drained = client
        .worker()
        .build()
        .unwrap()
        .run_until_idle()
        .await
        .unwrap();
    assert_eq!(drained.executed, 1, "only the default queue ran");
    let out = taskrow(url, &["resume", "emails"]).ok();
    assert!(out.starts_with("resumed queue `emails`"), "{out}");
    let drained = client
        .worker()
        .build()
        .unwrap()
        .run_until_idle()
        .await
        .unwrap();
    assert_eq!(drained.executed, 2);

    let e = taskrow(url, &["pause", "two words"]).error();
    assert!(e.contains("queue name"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_queues_session() {
    let db = Db::sqlite();
    queues_session(&db).await;
    db.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_queues_session() {
    let Some(db) = Db::mysql().await else {
        return;
    };
    queues_session(&db).await;
    db.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_queues_session() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    queues_session(&db).await;
    db.done().await;
}

// ---------------------------------------------------------------------------------------------
// `run` from a binary that links the task types: the library entry point

/// `run_cli_with_io` in this process (which links `cli.test`), with `Runs` registered.
async fn run_cli(url: &str, args: &[&str], runs: &Arc<Runs>) -> (ExitCode, String, String) {
    let mut argv = vec!["taskrow", "--database-url", url];
    argv.extend_from_slice(args);
    let (mut stdin, mut out, mut err) = (&b""[..], Vec::new(), Vec::new());
    let runs = runs.clone();
    let code = taskrow_cli::run_cli_with_io(
        argv,
        move |client| client.data_arc(runs),
        &mut stdin,
        &mut out,
        &mut err,
    )
    .await;
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

async fn run_with_task_types(db: &Db) {
    let url = db.url.as_str();
    taskrow(url, &["migrate", "up"]).ok();
    let store = db.store().await;
    let client = Client::builder(store.clone()).build().unwrap();
    let runs = Arc::new(Runs::default());
    let opts = |code: &str| EnqueueOptions::new().code(code).max_attempts(2);

    // Success: the row goes (deleted on success), the log keeps the run.
    client
        .enqueue(&CliTest { n: 1, fail: false }, opts("ok-1"))
        .await
        .unwrap();
    let (code, out, err) = run_cli(url, &["run", "ok-1"], &runs).await;
    assert_eq!(code, ExitCode::SUCCESS, "{out}{err}");
    assert!(out.starts_with("ran task `ok-1`"), "{out}");
    assert!(out.contains("attempt 1"), "{out}");
    assert!(out.trim_end().ends_with(": succeeded"), "{out}");
    assert_eq!(runs.0.load(Ordering::SeqCst), 1, "the handler saw its data");
    assert!(matches!(
        store.get(&"ok-1".into()).await,
        Err(Error::NotFound(_))
    ));
    let logs = store.logs(&LogFilter::code("ok-1")).await.unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].outcome, Outcome::Succeeded);

    // Failure: printed with the error and the next run; exit code 1. Then failed for good.
    client
        .enqueue(&CliTest { n: 2, fail: true }, opts("bad-1"))
        .await
        .unwrap();
    let (code, out, _) = run_cli(url, &["run", "bad-1"], &runs).await;
    assert_eq!(code, ExitCode::FAILURE, "{out}");
    assert!(out.contains(": retrying: boom 2; next run at "), "{out}");
    let (code, out, _) = run_cli(url, &["run", "bad-1"], &runs).await;
    assert_eq!(code, ExitCode::FAILURE, "{out}");
    assert!(out.contains("attempt 2"), "{out}");
    assert!(out.contains("failed for good: boom 2"), "{out}");
    assert_eq!(state(&*store, "bad-1").await, (TaskState::Failed, 2));

    // A failed task runs again by hand (the seeds' manual re-run).
    let (code, out, _) = run_cli(url, &["run", "bad-1"], &runs).await;
    assert_eq!(code, ExitCode::FAILURE, "{out}");
    assert!(out.contains("attempt 3"), "{out}");

    // A type this binary does not know, and a payload that no longer fits: refused before
    // the claim, with the loader's message; no attempt used.
    let now = SystemClock.now();
    let mut unknown = opts("unknown-1")
        .build(&CliTest { n: 3, fail: false }, now)
        .unwrap();
    unknown.task_type = "cli.unknown".to_owned();
    store.insert(unknown).await.unwrap();
    let (code, _, err) = run_cli(url, &["run", "unknown-1"], &runs).await;
    assert_eq!(code, ExitCode::FAILURE);
    assert!(
        err.starts_with("error: cannot run task `unknown-1`: task type `cli.unknown` is not registered in this binary"),
        "{err}"
    );
    assert_eq!(state(&*store, "unknown-1").await, (TaskState::Pending, 0));
    let mut bad_payload = opts("payload-1")
        .build(&CliTest { n: 4, fail: false }, now)
        .unwrap();
    bad_payload.payload = r#"{"n":"four"}"#.to_owned();
    store.insert(bad_payload).await.unwrap();
    let (code, _, err) = run_cli(url, &["run", "payload-1"], &runs).await;
    assert_eq!(code, ExitCode::FAILURE);
    assert!(err.contains("does not deserialize"), "{err}");
    assert_eq!(state(&*store, "payload-1").await, (TaskState::Pending, 0));

    // Running elsewhere, cancelled, unknown: one error line each.
    client
        .enqueue(&CliTest { n: 5, fail: false }, opts("busy-1"))
        .await
        .unwrap();
    store
        .claim_one(
            &"busy-1".into(),
            &ClaimOne::new("other-host-2", Duration::from_secs(600), now),
        )
        .await
        .unwrap();
    let (code, _, err) = run_cli(url, &["run", "busy-1"], &runs).await;
    assert_eq!(code, ExitCode::FAILURE);
    assert!(
        err.contains("running under a live lease held by `other-host-2`"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    client
        .enqueue(&CliTest { n: 6, fail: false }, opts("cancelled-1"))
        .await
        .unwrap();
    store
        .cancel(&"cancelled-1".into(), SystemClock.now())
        .await
        .unwrap();
    let (code, _, err) = run_cli(url, &["run", "cancelled-1"], &runs).await;
    assert_eq!(code, ExitCode::FAILURE);
    assert!(err.contains("is cancelled: reset it first"), "{err}");
    let (code, _, err) = run_cli(url, &["run", "nobody"], &runs).await;
    assert_eq!(code, ExitCode::FAILURE);
    assert!(err.contains("task with code `nobody` not found"), "{err}");
    assert_eq!(runs.0.load(Ordering::SeqCst), 1, "nothing else ran");

    // The other commands work through the library entry point too.
    let (code, out, _) = run_cli(url, &["list", "--state", "failed"], &runs).await;
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(codes(&out), ["bad-1"], "{out}");
    let (code, out, _) = run_cli(url, &["--help"], &runs).await;
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(out.contains("Usage: taskrow"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_run_with_task_types() {
    let db = Db::sqlite();
    run_with_task_types(&db).await;
    db.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_run_with_task_types() {
    let Some(db) = Db::mysql().await else {
        return;
    };
    run_with_task_types(&db).await;
    db.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_run_with_task_types() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    run_with_task_types(&db).await;
    db.done().await;
}

// ---------------------------------------------------------------------------------------------
// Connection errors: one line each, exit code 1

#[test]
fn connection_errors_are_one_clear_line() {
    let e = binary().args(["list"]).output().unwrap();
    let out = Out {
        code: e.status.code(),
        stdout: String::from_utf8(e.stdout).unwrap(),
        stderr: String::from_utf8(e.stderr).unwrap(),
    }
    .error();
    assert!(out.contains("no database given"), "{out}");
    assert!(out.contains("TASKROW_DATABASE_URL"), "{out}");

    let e = taskrow("oracle://u:secret@db/app", &["list"]).error();
    assert!(e.contains("unknown scheme `oracle`"), "{e}");
    assert!(e.contains("postgres://"), "the schemes it opens: {e}");
    assert!(!e.contains("secret"), "the password is not printed: {e}");
    let e = taskrow("tasks.db", &["list"]).error();
    assert!(e.contains("bad database URL `tasks.db`: no scheme"), "{e}");

    let e = taskrow("mysql://root:secret@127.0.0.1:1/app", &["list"]).error();
    assert!(e.contains("cannot connect to the database"), "{e}");
    assert!(e.contains("mysql://root:***@127.0.0.1:1/app"), "{e}");
    let e = taskrow("mysql://root@127.0.0.1:3306", &["list"]).error();
    assert!(e.contains("no database named"), "{e}");
    // A refused login, an unknown database and an unreachable server: three causes, three
    // messages (the first two do not say to check that the server runs).
    if let Ok(server) = std::env::var("TASKROW_MYSQL_URL") {
        let server = server.trim_end_matches('/');
        let wrong = server.replacen("://root@", "://root:wrong-password@", 1);
        let e = taskrow(&format!("{wrong}/mysql"), &["list"]).error();
        assert!(e.contains("refused the login"), "{e}");
        assert!(!e.contains("check that the server runs"), "{e}");
        let e = taskrow(&format!("{server}/taskrow_no_such_db"), &["list"]).error();
        assert!(e.contains("no database at"), "{e}");
        assert!(e.contains("CREATE DATABASE"), "{e}");
        assert!(!e.contains("check that the server runs"), "{e}");
    }
    let e = taskrow("postgres://root:secret@127.0.0.1:1/app", &["list"]).error();
    assert!(e.contains("cannot connect to the database"), "{e}");
    assert!(e.contains("postgres://root:***@127.0.0.1:1/app"), "{e}");
    let e = taskrow("postgresql://postgres@127.0.0.1:5432", &["list"]).error();
    assert!(e.contains("no database named"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let missing = format!("sqlite://{}", dir.path().join("missing.db").display());
    let e = taskrow(&missing, &["list"]).error();
    assert!(e.contains("no database at"), "{e}");
    assert!(e.contains("the file does not exist"), "{e}");
    assert!(e.contains("`taskrow migrate up`, which creates it"), "{e}");
    assert!(
        !dir.path().join("missing.db").exists(),
        "only migrate creates"
    );
    // `migrate up` creates the file; the URL can also come from the environment.
    let o = binary()
        .env("TASKROW_DATABASE_URL", &missing)
        .args(["migrate", "up"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let o = binary()
        .env("TASKROW_DATABASE_URL", &missing)
        .args(["list"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "no tasks match\n");

    // A usage error is clap's, with exit code 2.
    let o = taskrow(&missing, &["frobnicate"]);
    assert_eq!(o.code, Some(2), "{o:?}");
}

// ---------------------------------------------------------------------------------------------
// `schedules`: the periodic tasks' rows

async fn schedules_session(db: &Db) {
    let url = db.url.as_str();
    taskrow(url, &["migrate", "up"]).ok();
    let out = taskrow(url, &["schedules"]).ok();
    assert!(out.contains("no schedules"), "{out}");

    let store = db.store().await;
    let nightly = taskrow::Schedule::cron("nightly", "0 0 3 * * *")
        .unwrap()
        .time_zone("Europe/Berlin")
        .unwrap()
        .task(CliTest { n: 1, fail: false });
    let now = SystemClock.now();
    let row = store
        .register_schedule(&nightly.registration(now).unwrap())
        .await
        .unwrap();
    let next = nightly.next_after(now).unwrap();

    let out = taskrow(url, &["schedules"]).ok();
    let header = out.lines().next().unwrap();
    for col in [
        "NAME",
        "SPEC",
        "TZ",
        "TYPE",
        "LAST TICK",
        "NEXT TICK",
        "REGISTERED",
    ] {
        assert!(header.contains(col), "{out}");
    }
    let line = out.lines().nth(1).unwrap();
    assert!(line.starts_with("nightly"), "{out}");
    for cell in ["0 0 3 * * *", "Europe/Berlin", "cli.test"] {
        assert!(line.contains(cell), "{out}");
    }
    // 03:00 in Berlin is 02:00 UTC in winter, 01:00 in summer.
    let next_text = next.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert!(next_text.ends_with("T02:00:00Z") || next_text.ends_with("T01:00:00Z"));
    assert!(line.contains(&next_text), "next tick {next_text}: {out}");
    assert!(out.contains("taskrow schedules remove NAME"), "{out}");

    let json: taskrow::serde_json::Value =
        taskrow::serde_json::from_str(&taskrow(url, &["schedules", "--json"]).ok()).unwrap();
    assert_eq!(json[0]["name"], "nightly");
    assert_eq!(json[0]["time_zone"], "Europe/Berlin");
    assert_eq!(json[0]["fingerprint"], row.fingerprint.as_str());

    let out = taskrow(url, &["schedules", "remove", "nightly"]).ok();
    assert!(out.starts_with("removed schedule `nightly`"), "{out}");
    let e = taskrow(url, &["schedules", "remove", "nightly"]).error();
    assert!(e.contains("schedule `nightly` not found"), "{e}");
    assert!(store.schedules().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_schedules() {
    let db = Db::sqlite();
    schedules_session(&db).await;
    db.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_schedules() {
    let Some(db) = Db::mysql().await else {
        return;
    };
    schedules_session(&db).await;
    db.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_schedules() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    schedules_session(&db).await;
    db.done().await;
}

// ---------------------------------------------------------------------------------------------
// Operator commands: `logs`, bulk `cancel`/`delete`, `purge --dry-run`, `stats --watch`,
// corrupt rows, and a closed pipe

/// Runs `sql` on the database under `url` (to write what taskrow itself never would).
async fn raw_sql(url: &str, sql: &str) {
    use taskrow_sql::sea_orm::{ConnectionTrait, Database};
    let db = Database::connect(url).await.unwrap();
    db.execute_unprepared(sql).await.unwrap();
    db.close().await.unwrap();
}

/// The codes in the CODE column of a `logs` table.
fn log_codes(out: &str) -> Vec<String> {
    let mut lines = out.lines();
    let header = lines.next().unwrap_or("");
    assert!(header.contains("CODE"), "not a log table: {out}");
    lines
        .take_while(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
        .collect()
}

async fn operator_session(db: &Db) {
    let url = db.url.as_str();
    taskrow(url, &["migrate", "up"]).ok();
    let store = db.store().await;
    seed(store.clone()).await;

    // logs: every run, then by code, outcome and time; JSON.
    let out = taskrow(url, &["logs"]).ok();
    assert_eq!(
        log_codes(&out),
        ["order-2", "mail-1", "fail-2", "keep-1"],
        "{out}"
    );
    assert!(out.contains("boom 2") && out.contains("succeeded"), "{out}");
    let out = taskrow(url, &["logs", "--code", "mail-1"]).ok();
    assert_eq!(log_codes(&out), ["mail-1"], "{out}");
    assert!(out.contains("boom 3"), "{out}");
    let out = taskrow(url, &["logs", "--outcome", "succeeded"]).ok();
    assert_eq!(log_codes(&out), ["keep-1"], "{out}");
    let out = taskrow(
        url,
        &["logs", "--outcome", "failed", "--since", "1h", "--json"],
    )
    .ok();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(rows.iter().all(|r| r["outcome"] == "failed"), "{out}");
    assert_eq!(rows[0]["code"], "order-2");
    let out = taskrow(url, &["logs", "--since", "2999-01-01T00:00:00Z"]).ok();
    assert_eq!(out, "no log rows match\n");
    let out = taskrow(url, &["logs", "--limit", "2"]).ok();
    assert_eq!(
        log_codes(&out),
        ["fail-2", "keep-1"],
        "the newest, oldest first: {out}"
    );
    assert!(out.contains("older ones may exist"), "{out}");
    let e = taskrow(url, &["logs", "--outcome", "exploded"]);
    assert_eq!(e.code, Some(2), "{e:?}");

    // Bulk cancel: a task running elsewhere is asked to stop (marked, still running); a dry
    // run changes nothing; run again, the marked one is skipped and named.
    store
        .claim_one(
            &"later-1".into(),
            &ClaimOne::new("other-host-1", Duration::from_secs(600), SystemClock.now()),
        )
        .await
        .unwrap();
    let out = taskrow(url, &["cancel", "--biz-type", "order", "--dry-run"]).ok();
    assert_eq!(codes(&out), ["order-1", "order-2", "later-1"], "{out}");
    assert!(
        out.contains(
            "dry run: would cancel 2 tasks and ask the worker of 1 running task to stop it"
        ),
        "{out}"
    );
    assert_eq!(state(&*store, "order-1").await.0, TaskState::Pending);
    let out = taskrow(url, &["cancel", "--biz-type", "order"]).ok();
    assert!(
        out.starts_with("cancelled 2 tasks and asked the worker of 1 running task to stop it"),
        "{out}"
    );
    assert_eq!(state(&*store, "order-1").await.0, TaskState::Cancelled);
    assert_eq!(state(&*store, "order-2").await.0, TaskState::Cancelled);
    let later = store.get(&"later-1".into()).await.unwrap();
    assert_eq!(later.state, TaskState::Running);
    assert!(later.cancel_requested_at.is_some(), "marked");
    let out = taskrow(url, &["cancel", "--biz-type", "order"]).ok();
    assert!(out.starts_with("cancelled 0 tasks"), "{out}");
    assert!(
        out.contains("later-1") && out.contains("requested already"),
        "{out}"
    );
    let usage = taskrow(url, &["cancel"]);
    assert_eq!(
        usage.code,
        Some(2),
        "a bare cancel touches nothing: {usage:?}"
    );
    let e = taskrow(url, &["cancel", "mail-1", "--type", "x"]).error();
    assert!(e.contains("do not apply to one named task"), "{e}");

    // Bulk delete: asks first; a dry run and a `no` change nothing; `--yes` deletes.
    let out = taskrow(url, &["delete", "--state", "failed", "--dry-run"]).ok();
    assert_eq!(codes(&out), ["mail-1", "fail-2"], "{out}");
    assert!(out.contains("dry run: would delete 2 tasks"), "{out}");
    let out = taskrow_with_input(url, &["delete", "--state", "failed"], "no\n");
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("type `yes` to go on"), "{out:?}");
    assert_eq!(state(&*store, "mail-1").await.0, TaskState::Failed);
    let out = taskrow(url, &["delete", "--state", "failed", "--yes"]).ok();
    assert!(out.starts_with("deleted 2 tasks"), "{out}");
    assert!(out.contains("log rows remain"), "{out}");
    for code in ["mail-1", "fail-2"] {
        assert!(matches!(
            store.get(&code.into()).await,
            Err(Error::NotFound(_))
        ));
    }
    let e = taskrow(
        url,
        &[
            "delete",
            "--biz-type",
            "order",
            "--state",
            "running",
            "--yes",
        ],
    );
    let out = e.ok();
    assert!(out.starts_with("deleted 0 tasks"), "{out}");
    assert!(
        out.contains("later-1"),
        "the live one is named as skipped: {out}"
    );

    // purge --dry-run counts and removes nothing.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let before = taskrow(url, &["list"]).ok();
    let logs = store.logs(&LogFilter::default()).await.unwrap().len();
    let out = taskrow(url, &["purge", "--older-than", "1s", "--dry-run"]).ok();
    assert!(
        out.starts_with(&format!(
            "dry run: would purge 3 tasks (succeeded, cancelled) and {logs} log rows"
        )),
        "{out}"
    );
    assert!(out.contains("nothing changed"), "{out}");
    assert_eq!(taskrow(url, &["list"]).ok(), before);
    assert_eq!(store.logs(&LogFilter::default()).await.unwrap().len(), logs);

    // A corrupt row: list, stats and delete go on around it and show it.
    let client = Client::builder(store.clone()).build().unwrap();
    for code in ["bad-1", "bad-2"] {
        client
            .enqueue(
                &CliTest { n: 9, fail: false },
                EnqueueOptions::new().code(code),
            )
            .await
            .unwrap();
    }
    let bad2 = store.get(&"bad-2".into()).await.unwrap().id;
    raw_sql(
        url,
        "UPDATE taskrow_task SET state = 9 WHERE code = 'bad-1'",
    )
    .await;
    raw_sql(
        url,
        &format!("UPDATE taskrow_task SET retry_policy = 'garbage' WHERE id = {bad2}"),
    )
    .await;
    let out = taskrow(url, &["list"]).ok();
    let line = out
        .lines()
        .find(|l| l.contains("bad-1"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("corrupt") && line.contains("state 9"),
        "{out}"
    );
    let line = out
        .lines()
        .find(|l| l.contains("bad-2"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("corrupt") && line.contains("retry_policy"),
        "{out}"
    );
    assert!(out.contains("12345"), "the other rows still show: {out}");
    let out = taskrow(url, &["list", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let bad = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == "bad-1")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        bad["corrupt"].as_str().unwrap().contains("state 9"),
        "{out}"
    );
    let out = taskrow(url, &["show", "bad-1"]).ok();
    assert!(out.contains("cannot be read: state 9"), "{out}");
    assert!(out.contains("log: no runs yet"), "{out}");
    let out = taskrow(url, &["show", "--json", "bad-1"]).ok();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["task"].is_null() && v["corrupt"].as_str().unwrap().contains("state 9"),
        "{out}"
    );
    let out = taskrow(url, &["stats"]).ok();
    // bad-1 by its state; bad-2 (due) met by the due scan.
    assert!(out.contains("unreadable rows: 2"), "{out}");
    assert!(out.contains("bad-1"), "{out}");
    let out = taskrow(url, &["stats", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["unreadable"][0]["code"], "bad-1", "{out}");
    let out = taskrow(url, &["cancel", "--code-prefix", "bad-"]).ok();
    assert!(out.contains("skipped 2"), "{out}");
    let out = taskrow(url, &["delete", "bad-1"]).ok();
    assert!(out.starts_with("deleted unreadable row `bad-1`"), "{out}");
    let out = taskrow(url, &["delete", &bad2.to_string()]).ok();
    assert!(out.starts_with("deleted unreadable row `bad-2`"), "{out}");
    let out = taskrow(url, &["list"]).ok();
    assert!(!out.contains("bad-"), "{out}");
    assert!(!taskrow(url, &["stats"]).ok().contains("unreadable"));

    // stats --watch redraws every interval; --count ends it (Ctrl-C does by hand).
    let out = taskrow(
        url,
        &["stats", "--watch", "--interval", "1", "--count", "2"],
    )
    .ok();
    assert_eq!(out.matches("tasks by state").count(), 2, "{out}");
    assert_eq!(out.matches("every 1s").count(), 2, "{out}");
    let out = taskrow(
        url,
        &[
            "stats",
            "--watch",
            "--json",
            "--interval",
            "1",
            "--count",
            "2",
        ],
    )
    .ok();
    let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&out)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("a stream of JSON documents: {e}\n{out}"));
    assert_eq!(docs.len(), 2, "{out}");
    assert!(docs[1]["now"].is_string(), "{out}");
    // Without --count it redraws until Ctrl-C (SIGINT), then ends with 0.
    let mut child = binary()
        .args(["--database-url", url, "stats", "--watch", "--interval", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let mut rounds = 0;
    while rounds < 2 {
        let line = lines.next().expect("the watch ended by itself").unwrap();
        rounds += usize::from(line == "tasks by state");
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "Ctrl-C ends the watch: {rest:?} {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_operator_session() {
    let db = Db::sqlite();
    operator_session(&db).await;
    db.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_operator_session() {
    let Some(db) = Db::mysql().await else {
        return;
    };
    operator_session(&db).await;
    db.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_operator_session() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    operator_session(&db).await;
    db.done().await;
}

/// `taskrow list | head -1`: the reader goes away early; the binary ends quietly with 0.
async fn closed_pipe(db: &Db) {
    let url = db.url.as_str();
    taskrow(url, &["migrate", "up"]).ok();
    let client = Client::builder(db.store().await).build().unwrap();
    let tasks: Vec<CliTest> = (0..3_000).map(|n| CliTest { n, fail: false }).collect();
    client
        .enqueue_batch(tasks.iter().map(|t| {
            (
                t as &dyn Task,
                EnqueueOptions::new().code(format!("pipe-{n:05}", n = t.n)),
            )
        }))
        .await
        .unwrap();
    for args in [
        &["list", "--limit", "3000"][..],
        &["logs"],
        &["list", "--json", "--limit", "3000"],
    ] {
        let mut child = binary()
            .arg("--database-url")
            .arg(url)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read one line, as `head -1` does, then close the pipe.
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 1];
        use std::io::Read;
        let _ = stdout.read(&mut first);
        drop(stdout);
        let o = child.wait_with_output().unwrap();
        let stderr = String::from_utf8(o.stderr).unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}: quiet");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_closed_pipe() {
    let db = Db::sqlite();
    closed_pipe(&db).await;
    db.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_closed_pipe() {
    let Some(db) = Db::mysql().await else {
        return;
    };
    closed_pipe(&db).await;
    db.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_closed_pipe() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    closed_pipe(&db).await;
    db.done().await;
}
