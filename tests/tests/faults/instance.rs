//! A real database crash: a private MariaDB instance (its own data directory and port, never
//! the shared server) killed with SIGKILL mid-drain and restarted on the same data.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::sqlx::Connection;
use sea_orm::sqlx::mysql::MySqlConnection;
use sea_orm::{ConnectionTrait, Database};
use taskrow::{EnqueueOptions, LogFilter, Outcome, Task, TaskFilter, TaskState};
use taskrow_tests::faults::WorkerProcess;
use taskrow_tests::faults::tasks::Drain;
use tempfile::TempDir;

use super::common::{
    Backend, Db, Drained, Row, Scratch, between, drain_options, rng, tail, wait_all_exit,
};

/// The message when MariaDB's programs are not installed.
const INSTALL: &str = "this scenario starts a private MariaDB instance of its own: install the \
                       server programs (`apt-get install mariadb-server`)";

/// `name` in `PATH` or one of `dirs`.
fn find_program(name: &str, dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(dirs.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A free TCP port on 127.0.0.1 (free a moment ago).
fn free_port() -> u16 {
    let l = TcpListener::bind(("127.0.0.1", 0)).expect("cannot bind a port");
    l.local_addr().expect("a bound address").port()
}

/// A MariaDB server of this test's own: a data directory under a temporary directory, a free
/// port on 127.0.0.1, root without a password. Dropped, it kills its server (by its pid) and
/// removes the directory.
pub struct PrivateMariadb {
    dir: TempDir,
    port: u16,
    server: PathBuf,
    child: Option<Child>,
    /// How many times the server was started.
    pub starts: usize,
}

impl PrivateMariadb {
    /// Initialises a data directory and starts the server on it.
    ///
    /// # Panics
    ///
    /// If MariaDB's programs are missing (saying how to install them), or the server does not
    /// start.
    pub async fn start() -> Self {
        let install = find_program("mariadb-install-db", &["/usr/bin", "/usr/local/bin"])
            .unwrap_or_else(|| panic!("mariadb-install-db not found: {INSTALL}"));
        let server = find_program("mariadbd", &["/usr/sbin", "/usr/local/sbin"])
            .or_else(|| find_program("mysqld", &["/usr/sbin", "/usr/local/sbin"]))
            .unwrap_or_else(|| panic!("mariadbd not found: {INSTALL}"));
        let dir = tempfile::Builder::new()
            .prefix("taskrow-faults-mariadb-")
            .tempdir()
            .expect("cannot make a directory for the private MariaDB");
        let data = dir.path().join("data");
        let mut cmd = Command::new(&install);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if is_root() {
            cmd.arg("--user=root");
        }
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .expect("running mariadb-install-db")
            .unwrap_or_else(|e| panic!("cannot run {}: {e} ({INSTALL})", install.display()));
        assert!(
            out.status.success(),
            "mariadb-install-db failed ({}):\n{}\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stdout), 10),
            tail(&String::from_utf8_lossy(&out.stderr), 20)
        );
        let mut db = Self {
            dir,
            port: free_port(),
            server,
            child: None,
            starts: 0,
        };
        db.run().await;
        db
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's error log (crash recovery is reported there).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mariadbd.err")).unwrap_or_default()
    }

    /// `mysql://root@127.0.0.1:<port>`, naming `database` if not empty.
    pub fn url(&self, database: &str) -> String {
        if database.is_empty() {
            format!("mysql://root@127.0.0.1:{}", self.port)
        } else {
            format!("mysql://root@127.0.0.1:{}/{database}", self.port)
        }
    }

    /// The server's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the server on the data directory and port, and waits until it takes
    /// connections; returns how long that took.
    pub async fn run(&mut self) -> Duration {
        assert!(self.child.is_none(), "the private MariaDB already runs");
        let started = Instant::now();
        let d = self.dir.path();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("mariadbd.out"))
            .expect("cannot open the server's output file");
        let err = out
            .try_clone()
            .expect("cannot share the server's output file");
        let mut cmd = Command::new(&self.server);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.data().display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", d.join("sock").display()))
            .arg(format!("--pid-file={}", d.join("mariadbd.pid").display()))
            .arg(format!("--log-error={}", d.join("mariadbd.err").display()))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if is_root() {
            cmd.arg("--user=root");
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.server.display()));
        self.child = Some(child);
        self.starts += 1;
        let url = self.url("");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "the private MariaDB exited with {status} while starting; its log ends:\n{}",
                    tail(&self.error_log(), 30)
                );
            }
            let attempt =
                tokio::time::timeout(Duration::from_secs(2), MySqlConnection::connect(&url)).await;
            if let Ok(Ok(c)) = attempt {
                let _ = c.close().await;
                return started.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "the private MariaDB on port {} took no connection within 60 s; its log ends:\n{}",
                self.port,
                tail(&self.error_log(), 30)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the server with SIGKILL (its own pid, nothing else) and waits until it is gone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            // `Child::kill` is SIGKILL to this child's pid.
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateMariadb {
    fn drop(&mut self) {
        self.kill9();
        // The TempDir removes the data directory.
    }
}

/// The codes with a `succeeded` log row, as the database has them now.
async fn succeeded_codes(db: &Db) -> taskrow::Result<HashSet<String>> {
    let logs = db
        .store
        .logs(&LogFilter::default().outcomes([Outcome::Succeeded]))
        .await?;
    Ok(logs.into_iter().map(|l| l.code).collect())
}

/// Retries `what` until it answers (the store's pool meets a restarted server).
async fn retried<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = taskrow::Result<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "{what} still fails after 30 s: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Issue 12, item 5. A private MariaDB instance (never the shared server) holds 2,000 tasks
/// (half kept on success); 3 worker processes drain them; mid-drain the server is killed with
/// SIGKILL, stays down longer than a lease, and is restarted on the same data directory and
/// port (InnoDB crash recovery). The workers reconnect by themselves and finish. Checked:
/// every finish that had committed before the kill (read just before it) is still there
/// after the restart; nothing lost; every task succeeded exactly once in the log; no two runs
/// of a task at once by the handlers' record; the kept rows all succeeded.
pub async fn db_crash(backend: Backend, seed: u64) -> Option<Row> {
    const N: usize = 2000;
    const PROCESSES: usize = 3;
    const DOWN: Duration = Duration::from_millis(2500);
    let total = Instant::now();
    let mut server = PrivateMariadb::start().await;
    println!(
        "private MariaDB (pid {:?}) initialised and started in {} ms",
        server.pid(),
        total.elapsed().as_millis()
    );
    let admin = Database::connect(&server.url(""))
        .await
        .expect("cannot reach the private MariaDB");
    admin
        .execute_unprepared("CREATE DATABASE taskrow")
        .await
        .expect("cannot create the database");
    let _ = admin.close().await;
    let url = server.url("taskrow");
    let store = taskrow_mysql::MysqlStore::connect_and_migrate(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot migrate the private MariaDB: {e}"));
    let db = Db::external(url.clone(), store);
    let mut scratch = Scratch::new("dbcrash");
    let client = db.client(scratch.recorder());

    let task = Drain { millis: 20 };
    let codes: Vec<String> = (0..N).map(|i| format!("dbcrash-{i:05}")).collect();
    let kept: HashSet<&str> = codes
        .iter()
        .skip(1)
        .step_by(2)
        .map(String::as_str)
        .collect();
    for chunk in codes.chunks(1000) {
        let batch: Vec<(&dyn Task, EnqueueOptions)> = chunk
            .iter()
            .map(|c| {
                let o = drain_options(c);
                let o = if kept.contains(c.as_str()) {
                    o.keep_on_success()
                } else {
                    o
                };
                (&task as &dyn Task, o)
            })
            .collect();
        client.enqueue_batch(batch).await.unwrap();
    }

    let mut cfg = scratch.config(&url);
    cfg.exit_when_idle = true;
    cfg.concurrency = 4;
    let started = Instant::now();
    let mut procs: Vec<WorkerProcess> = (0..PROCESSES).map(|_| scratch.spawn(&cfg)).collect();
    let r = rng(seed, &format!("db_crash::{}", backend.name()));
    super::common::wait_for(
        &format!("{} tasks finished before the kill", N / 5),
        Duration::from_secs(60),
        Duration::from_millis(20),
        || async { db.log_count().await >= (N / 5) as i64 },
    )
    .await;
    tokio::time::sleep(between(&r, 0, 500)).await;

    // What had committed, read just before the kill.
    let before = succeeded_codes(&db).await.expect("reading the log");
    let running_before = db
        .rows(&TaskFilter::all().states([TaskState::Running]))
        .await
        .len();
    let pid = server.pid().expect("the server runs");
    server.kill9();
    let killed_at = started.elapsed();
    println!(
        "kill -9 mariadbd (pid {pid}) at +{} ms: {} of {N} finished, {running_before} running",
        killed_at.as_millis(),
        before.len()
    );
    assert!(
        before.len() < N * 3 / 4,
        "the drain was nearly over at the kill ({} of {N}): make it longer",
        before.len()
    );
    tokio::time::sleep(DOWN).await;
    for p in &mut procs {
        assert!(
            p.is_running(),
            "worker {} exited while the database was down; its log ends:\n{}",
            p.pid(),
            tail(&p.log(), 20)
        );
    }
    let recovery = server.run().await;
    let recovered = server.error_log();
    let crash_recovery = recovered.contains("crash recovery");
    println!(
        "mariadbd restarted on the same data and port in {} ms (pid {:?}); its log {} crash recovery",
        recovery.as_millis(),
        server.pid(),
        if crash_recovery {
            "reports"
        } else {
            "does not report"
        }
    );

    // Every finish that committed before the crash is still there.
    let after = retried("reading the log after the restart", || succeeded_codes(&db)).await;
    let missing: Vec<&String> = before.difference(&after).collect();
    assert!(
        missing.is_empty(),
        "{} finishes committed before the crash are gone after the restart: {:?}",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
    let kept_before: Vec<&str> = before
        .iter()
        .map(String::as_str)
        .filter(|c| kept.contains(c))
        .collect();
    let succeeded_filter = TaskFilter::all().states([TaskState::Succeeded]);
    let first_page = taskrow::Page::first(N as u64);
    let succeeded_rows: HashSet<String> = retried("reading the rows after the restart", || {
        db.store.list(&succeeded_filter, &first_page)
    })
    .await
    .into_iter()
    .map(|r| r.code)
    .collect();
    let reverted: Vec<&&str> = kept_before
        .iter()
        .filter(|c| !succeeded_rows.contains(**c))
        .collect();
    assert!(
        reverted.is_empty(),
        "kept rows finished before the crash are no longer succeeded: {:?}",
        reverted.iter().take(5).collect::<Vec<_>>()
    );
    let deleted_back: usize = {
        let left: HashSet<String> = db
            .rows(&TaskFilter::all())
            .await
            .into_iter()
            .map(|r| r.code)
            .collect();
        before
            .iter()
            .filter(|c| !kept.contains(c.as_str()) && left.contains(*c))
            .count()
    };
    assert_eq!(
        deleted_back, 0,
        "rows deleted on success before the crash came back"
    );

    wait_all_exit(&mut procs, Duration::from_secs(90)).await;
    let secs = started.elapsed().as_secs_f64();
    let text: String = procs.iter().map(WorkerProcess::log).collect();
    let count = |what: &str| text.lines().filter(|l| l.contains(what)).count();
    let failed_writes =
        count("writing task results failed") + count("writing a task result failed");
    let given_up = count("giving it up");
    let warnings = count(" WARN ") + count(" ERROR ");
    let d = Drained::check(&db, &scratch, &codes, &HashMap::new()).await;
    d.assert_all_ran("database crash");
    let left = db.rows(&TaskFilter::all()).await;
    let left_codes: HashSet<&str> = left.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(left_codes, kept, "the kept rows, and only them, are left");
    assert!(
        left.iter().all(|r| r.state == TaskState::Succeeded),
        "every kept row succeeded: {:?}",
        left.iter().find(|r| r.state != TaskState::Succeeded)
    );
    println!(
        "drained in {secs:.1} s; {} ran again after the crash; log outcomes {:?}; the workers logged {warnings} warnings or errors, {failed_writes} failed result writes, {given_up} results given up",
        d.rerun, d.outcomes
    );
    server.kill9();
    let dir: PathBuf = server.dir.path().to_owned();
    drop(server);
    assert!(
        !Path::new(&dir).exists(),
        "the private MariaDB's directory was not removed"
    );
    Some(Row {
        tasks: N,
        faults: format!(
            "a private mariadbd (own data dir and port) killed with SIGKILL at +{:.1} s mid-drain ({} of {N} finished, {running_before} running, {PROCESSES} worker processes); down {:.1} s (lease 2 s), restarted on the same data and port: up in {} ms{}",
            killed_at.as_secs_f64(),
            before.len(),
            DOWN.as_secs_f64(),
            recovery.as_millis(),
            if crash_recovery {
                ", InnoDB crash recovery"
            } else {
                ""
            }
        ),
        lost: d.lost.len(),
        twice_at_once: d.twice_at_once(),
        final_states: format!(
            "all {} finishes committed before the kill still there ({} kept rows still succeeded); {} succeeded exactly once in all, {} kept rows succeeded, 0 other rows left{}{}",
            before.len(),
            kept_before.len(),
            d.outcomes.get("succeeded").copied().unwrap_or(0),
            kept.len(),
            if d.rerun > 0 {
                format!("; {} ran again after the crash", d.rerun)
            } else {
                String::new()
            },
            {
                let other: Vec<String> = d
                    .outcomes
                    .iter()
                    .filter(|(k, _)| k.as_str() != "succeeded")
                    .map(|(k, n)| format!("{n} {k}"))
                    .collect();
                if other.is_empty() {
                    String::new()
                } else {
                    format!("; other log rows: {}", other.join(", "))
                }
            }
        ),
    })
}
