//! A real database crash: a private MariaDB or PostgreSQL instance (its own data directory and
//! port, never the shared server) killed with SIGKILL mid-drain and restarted on the same data.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sea_orm::sqlx::Connection;
use sea_orm::sqlx::mysql::MySqlConnection;
use sea_orm::sqlx::postgres::PgConnection;
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

/// The message when PostgreSQL's server programs are not installed.
const PG_INSTALL: &str = "this scenario starts a private PostgreSQL instance of its own: install \
                          the server programs (`apt-get install postgresql`)";

/// The directory of PostgreSQL's server programs (`initdb`, `postgres`): `pg_config --bindir`,
/// else the newest `/usr/lib/postgresql/<version>/bin`, else `PATH`.
fn pg_bindir() -> Option<PathBuf> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has(&d) {
            return Some(d);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has(d))
        .collect();
    versions.sort();
    if let Some((_, d)) = versions.pop() {
        return Some(d);
    }
    find_program("initdb", &[])
        .and_then(|p| p.parent().map(Path::to_owned))
        .filter(|d| has(d))
}

/// The uid and gid of the `postgres` account (from `/etc/passwd`).
fn postgres_account() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == "postgres")
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// The pids of the processes whose parent is `parent` (from `/proc`).
fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if proc_stat(pid).is_some_and(|(_, ppid)| ppid == parent) {
            out.push(pid);
        }
    }
    out
}

/// A process's state letter and parent pid, from `/proc/<pid>/stat`; `None` once it is gone.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`, where comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` still runs (a zombie has ended).
fn alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// A PostgreSQL server of this test's own: `initdb` into a temporary directory (as the
/// `postgres` account when the test runs as root: initdb refuses root), then `postgres` on
/// that data directory and a free port on 127.0.0.1, trust authentication for `postgres`.
/// Dropped, it kills its postmaster and whatever is left of its server processes (by their
/// pids) and removes the directory.
pub struct PrivatePostgres {
    dir: TempDir,
    port: u16,
    bindir: PathBuf,
    account: Option<(u32, u32)>,
    child: Option<Child>,
    /// Server processes of the postmaster, as last listed (to see them end after a kill).
    children: Vec<u32>,
    /// How many times the server was started.
    pub starts: usize,
}

impl PrivatePostgres {
    /// Initialises a data directory and starts the server on it.
    ///
    /// # Panics
    ///
    /// If PostgreSQL's programs are missing (saying how to install them), or the server does
    /// not start.
    pub async fn start() -> Self {
        let bindir = pg_bindir().unwrap_or_else(|| panic!("initdb not found: {PG_INSTALL}"));
        let account = if is_root() {
            Some(postgres_account().unwrap_or_else(|| {
                panic!("running as root, and there is no `postgres` account to run initdb as: {PG_INSTALL}")
            }))
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("taskrow-faults-postgres-")
            .tempdir()
            .expect("cannot make a directory for the private PostgreSQL");
        if let Some((uid, gid)) = account {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("cannot give the private PostgreSQL's directory to `postgres`");
        }
        let data = dir.path().join("data");
        let mut cmd = Command::new(bindir.join("initdb"));
        cmd.arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale"])
            // Syncing the fresh files to disk would only slow the test down: the crash here is
            // the server's, not the machine's (the kernel keeps what was written).
            .arg("--no-sync");
        if let Some((uid, gid)) = account {
            cmd.uid(uid).gid(gid);
        }
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .expect("running initdb")
            .unwrap_or_else(|e| panic!("cannot run initdb: {e} ({PG_INSTALL})"));
        assert!(
            out.status.success(),
            "initdb failed ({}):\n{}\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stdout), 10),
            tail(&String::from_utf8_lossy(&out.stderr), 20)
        );
        let mut db = Self {
            dir,
            port: free_port(),
            bindir,
            account,
            child: None,
            children: Vec::new(),
            starts: 0,
        };
        db.run().await;
        db
    }

    /// The server's log (crash recovery is reported there).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The postmaster's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the server on the data directory and port, and waits until it takes
    /// connections; returns how long that took.
    pub async fn run(&mut self) -> Duration {
        assert!(self.child.is_none(), "the private PostgreSQL already runs");
        let started = Instant::now();
        let d = self.dir.path();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("postgres.log"))
            .expect("cannot open the server's log file");
        let err = out.try_clone().expect("cannot share the server's log file");
        let mut cmd = Command::new(self.bindir.join("postgres"));
        cmd.arg("-D")
            .arg(d.join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(d)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=on", "-c", "synchronous_commit=on"])
            // After a crash, the server syncs its data directory before the redo: one `syncfs`
            // instead of an `fsync` per file (3 s and more here, most of the restart).
            .args(["-c", "recovery_init_sync_method=syncfs"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if let Some((uid, gid)) = self.account {
            cmd.uid(uid).gid(gid);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bindir.display()));
        self.child = Some(child);
        self.starts += 1;
        let url = self.url("postgres");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "the private PostgreSQL exited with {status} while starting; its log ends:\n{}",
                    tail(&self.log(), 30)
                );
            }
            let attempt =
                tokio::time::timeout(Duration::from_secs(2), PgConnection::connect(&url)).await;
            if let Ok(Ok(c)) = attempt {
                let _ = c.close().await;
                return started.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "the private PostgreSQL on port {} took no connection within 60 s; its log ends:\n{}",
                self.port,
                tail(&self.log(), 30)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the postmaster with SIGKILL (its own pid), then waits for its server processes,
    /// which notice their postmaster's death and exit, to be gone (up to 5 s; any left then
    /// is killed by its pid, so that the restart finds no process attached to the old
    /// server's shared memory). Returns the server processes there were and how many of them
    /// had to be killed.
    pub async fn kill9(&mut self) -> (usize, usize) {
        let Some(mut c) = self.child.take() else {
            return (0, 0);
        };
        let children = children_of(c.id());
        // `Child::kill` is SIGKILL to this child's pid.
        let _ = c.kill();
        let _ = c.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while children.iter().any(|&p| alive(p)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left: Vec<u32> = children.iter().copied().filter(|&p| alive(p)).collect();
        for &p in &left {
            if let Ok(pid) = i32::try_from(p) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        self.children = left.clone();
        (children.len(), left.len())
    }

    /// Kills everything at once (when done): the postmaster and its server processes.
    fn kill_all(&mut self) {
        if let Some(mut c) = self.child.take() {
            let children = children_of(c.id());
            let _ = c.kill();
            let _ = c.wait();
            self.children.extend(children);
        }
        for &p in &self.children {
            if alive(p)
                && let Ok(pid) = i32::try_from(p)
            {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.children.iter().any(|&p| alive(p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.children.clear();
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.kill_all();
        // The TempDir removes the data directory.
    }
}

/// The private server of a crash scenario, MariaDB or PostgreSQL.
enum Private {
    Mariadb(PrivateMariadb),
    Postgres(PrivatePostgres),
}

impl Private {
    async fn start(backend: Backend) -> Self {
        match backend {
            Backend::Postgres => Private::Postgres(PrivatePostgres::start().await),
            _ => Private::Mariadb(PrivateMariadb::start().await),
        }
    }

    fn engine(&self) -> &'static str {
        match self {
            Private::Mariadb(_) => "MariaDB",
            Private::Postgres(_) => "PostgreSQL",
        }
    }

    /// The server process the scenario kills.
    fn process(&self) -> &'static str {
        match self {
            Private::Mariadb(_) => "mariadbd",
            Private::Postgres(_) => "postgres (the postmaster)",
        }
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Private::Mariadb(s) => s.pid(),
            Private::Postgres(s) => s.pid(),
        }
    }

    fn dir(&self) -> PathBuf {
        match self {
            Private::Mariadb(s) => s.dir.path().to_owned(),
            Private::Postgres(s) => s.dir.path().to_owned(),
        }
    }

    /// The URL of the server's administrative database (empty for MariaDB).
    fn admin_url(&self) -> String {
        match self {
            Private::Mariadb(s) => s.url(""),
            Private::Postgres(s) => s.url("postgres"),
        }
    }

    fn url(&self, database: &str) -> String {
        match self {
            Private::Mariadb(s) => s.url(database),
            Private::Postgres(s) => s.url(database),
        }
    }

    /// A migrated store on `url`, and its pool.
    async fn store(&self, url: &str) -> (Arc<dyn taskrow::TaskStore>, sea_orm::DatabaseConnection) {
        match self {
            Private::Mariadb(_) => {
                let s = taskrow_mysql::MysqlStore::connect_and_migrate(url)
                    .await
                    .unwrap_or_else(|e| panic!("cannot migrate the private MariaDB: {e}"));
                let conn = s.connection().clone();
                (Arc::new(s), conn)
            }
            Private::Postgres(_) => {
                let s = taskrow_postgres::PostgresStore::connect_and_migrate(url)
                    .await
                    .unwrap_or_else(|e| panic!("cannot migrate the private PostgreSQL: {e}"));
                let conn = s.connection().clone();
                (Arc::new(s), conn)
            }
        }
    }

    /// SIGKILL; a word on what went with it.
    async fn kill9(&mut self) -> String {
        match self {
            Private::Mariadb(s) => {
                s.kill9();
                String::new()
            }
            Private::Postgres(s) => {
                let (children, killed) = s.kill9().await;
                if killed == 0 {
                    format!("; its {children} server processes exited on their own when it died")
                } else {
                    format!(
                        "; of its {children} server processes, {killed} still ran 5 s later and were killed by their pids"
                    )
                }
            }
        }
    }

    async fn run(&mut self) -> Duration {
        match self {
            Private::Mariadb(s) => s.run().await,
            Private::Postgres(s) => s.run().await,
        }
    }

    /// What the server's log says of its recovery, if it reports one.
    fn recovery(&self) -> Option<&'static str> {
        match self {
            Private::Mariadb(s) => s
                .error_log()
                .contains("crash recovery")
                .then_some("InnoDB crash recovery"),
            Private::Postgres(s) => s
                .log()
                .contains("automatic recovery in progress")
                .then_some("WAL redo (`automatic recovery in progress`)"),
        }
    }

    /// The end of the server's log (PostgreSQL's: its `LOG` lines, not the refused
    /// connections of the test's waits).
    fn log_tail(&self) -> String {
        match self {
            Private::Mariadb(s) => tail(&s.error_log(), 30),
            Private::Postgres(s) => {
                let log = s.log();
                let lines: Vec<&str> = log.lines().filter(|l| l.contains("LOG:")).collect();
                tail(&lines.join("\n"), 30)
            }
        }
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

/// Issue 12, item 5 (MariaDB), issue 14 (PostgreSQL). A private server (never the shared one)
/// holds 2,000 tasks (1,200 on PostgreSQL; half kept on success); 3 worker processes drain
/// them; mid-drain the server is killed with SIGKILL (MariaDB's `mariadbd`, PostgreSQL's
/// postmaster, whose server processes then exit by themselves), stays down longer than a
/// lease, and is restarted on the same data directory and port (InnoDB crash recovery, WAL
/// redo). The workers reconnect by themselves and finish. Checked:
/// every finish that had committed before the kill (read just before it) is still there
/// after the restart; nothing lost; every task succeeded exactly once in the log; no two runs
/// of a task at once by the handlers' record; the kept rows all succeeded.
pub async fn db_crash(backend: Backend, seed: u64) -> Option<Row> {
    let n: usize = if backend == Backend::Postgres {
        1200
    } else {
        2000
    };
    const PROCESSES: usize = 3;
    const DOWN: Duration = Duration::from_millis(2500);
    let total = Instant::now();
    let mut server = Private::start(backend).await;
    let engine = server.engine();
    println!(
        "private {engine} (pid {:?}) initialised and started in {} ms",
        server.pid(),
        total.elapsed().as_millis()
    );
    let admin = Database::connect(&server.admin_url())
        .await
        .unwrap_or_else(|e| panic!("cannot reach the private {engine}: {e}"));
    admin
        .execute_unprepared("CREATE DATABASE taskrow")
        .await
        .expect("cannot create the database");
    let _ = admin.close().await;
    let url = server.url("taskrow");
    let (store, conn) = server.store(&url).await;
    let db = Db::external(url.clone(), store, conn);
    let mut scratch = Scratch::new("dbcrash");
    let client = db.client(scratch.recorder());

    let task = Drain { millis: 20 };
    let codes: Vec<String> = (0..n).map(|i| format!("dbcrash-{i:05}")).collect();
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
        &format!("{} tasks finished before the kill", n / 5),
        Duration::from_secs(60),
        Duration::from_millis(20),
        || async { db.log_count().await >= (n / 5) as i64 },
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
    let process = server.process();
    let went = server.kill9().await;
    let killed_at = started.elapsed();
    println!(
        "kill -9 {process} (pid {pid}) at +{} ms: {} of {n} finished, {running_before} running{went}",
        killed_at.as_millis(),
        before.len()
    );
    assert!(
        before.len() < n * 3 / 4,
        "the drain was nearly over at the kill ({} of {n}): make it longer",
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
    let crash_recovery = server.recovery();
    // `TASKROW_FAULTS_SERVER_LOG=1` shows the server's own account of its restart.
    if std::env::var_os("TASKROW_FAULTS_SERVER_LOG").is_some() {
        println!("the server's log ends:\n{}", server.log_tail());
    }
    println!(
        "{engine} restarted on the same data and port in {} ms (pid {:?}); its log {}",
        recovery.as_millis(),
        server.pid(),
        crash_recovery.map_or_else(
            || format!("reports no crash recovery:\n{}", server.log_tail()),
            |r| format!("reports {r}")
        )
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
    let first_page = taskrow::Page::first(n as u64);
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
    drop(db);
    let dir: PathBuf = server.dir();
    drop(server);
    assert!(
        !Path::new(&dir).exists(),
        "the private {engine}'s directory was not removed"
    );
    Some(Row {
        tasks: n,
        faults: format!(
            "a private {engine} (own data dir and port) killed with SIGKILL ({process}) at +{:.1} s mid-drain ({} of {n} finished, {running_before} running, {PROCESSES} worker processes{went}); down {:.1} s (lease 2 s), restarted on the same data and port: up in {} ms{}",
            killed_at.as_secs_f64(),
            before.len(),
            DOWN.as_secs_f64(),
            recovery.as_millis(),
            crash_recovery.map_or_else(String::new, |r| format!(", {r}"))
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
