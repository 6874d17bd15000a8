//! What every scenario uses: a fresh database on any backend, a scratch directory, worker
//! processes, waits with deadlines, and the checks of a drain.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use taskrow::{
    Client, EnqueueOptions, Jitter, LogFilter, Outcome, Page, RetryPolicy, Task, TaskFilter,
    TaskLog, TaskRecord, TaskRef, TaskStore,
};
use taskrow_tests::faults::records::{overlapping_codes, overlapping_in_log};
use taskrow_tests::faults::{Recorder, Run, WorkerConfig, WorkerProcess, read_runs};
use tempfile::TempDir;

/// The worker binary of this crate.
pub fn worker_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_taskrow-test-worker"))
}

/// Which database a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in WAL mode, in a temporary directory.
    Sqlite,
    /// A fresh database on the MariaDB/MySQL server of `TASKROW_MYSQL_URL`.
    Mysql,
    /// A fresh database on the PostgreSQL server of `TASKROW_POSTGRES_URL`.
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Mysql => "mysql",
            Backend::Postgres => "postgres",
        }
    }
}

/// A store on `url`, whichever database it names (`sqlite:`, `mysql://`, `postgres://`).
pub async fn connect_store(url: &str) -> taskrow::Result<Arc<dyn TaskStore>> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("sqlite:") {
        Ok(Arc::new(taskrow_sqlite::SqliteStore::connect(url).await?))
    } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        Ok(Arc::new(
            taskrow_postgres::PostgresStore::connect(url).await?,
        ))
    } else {
        Ok(Arc::new(taskrow_mysql::MysqlStore::connect(url).await?))
    }
}

/// A test database on a shared server, dropped when the scenario passed.
enum Fresh {
    Mysql(taskrow_mysql::testing::FreshDatabase),
    Postgres(taskrow_postgres::testing::FreshDatabase),
}

/// One row of the suite's table.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// Tasks the scenario enqueued (or inserted by hand).
    pub tasks: usize,
    /// What was done to them.
    pub faults: String,
    /// Tasks neither finished nor still in the table.
    pub lost: usize,
    /// Tasks with two runs overlapping in time (and why, when some are expected).
    pub twice_at_once: String,
    /// Where the tasks ended.
    pub final_states: String,
}

/// A fresh, migrated database for one scenario.
pub struct Db {
    /// Its URL (workers connect to it).
    pub url: String,
    /// The store, opened by the test.
    pub store: Arc<dyn TaskStore>,
    /// The store's pool, for hand-made SQL.
    pub conn: DatabaseConnection,
    fresh: Option<Fresh>,
    _dir: Option<TempDir>,
}

impl Db {
    /// A fresh database, or `None` when its server is not configured (`TASKROW_MYSQL_URL`,
    /// `TASKROW_POSTGRES_URL`; after printing why; under `CI=true` that panics instead).
    pub async fn open(backend: Backend) -> Option<Db> {
        match backend {
            Backend::Sqlite => {
                let (url, dir) = taskrow_sqlite::testing::temp_url();
                let store = taskrow_sqlite::SqliteStore::connect_and_migrate(&url)
                    .await
                    .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
                Some(Db {
                    conn: store.connection().clone(),
                    store: Arc::new(store),
                    url,
                    fresh: None,
                    _dir: Some(dir),
                })
            }
            Backend::Mysql => {
                let (store, db) = taskrow_mysql::testing::fresh_store().await?;
                Some(Db {
                    conn: store.connection().clone(),
                    store: Arc::new(store),
                    url: db.url.clone(),
                    fresh: Some(Fresh::Mysql(db)),
                    _dir: None,
                })
            }
            Backend::Postgres => {
                let (store, db) = taskrow_postgres::testing::fresh_store().await?;
                Some(Db {
                    conn: store.connection().clone(),
                    store: Arc::new(store),
                    url: db.url.clone(),
                    fresh: Some(Fresh::Postgres(db)),
                    _dir: None,
                })
            }
        }
    }

    /// A database the scenario set up itself (a private server's), already migrated: its
    /// store and that store's pool.
    pub fn external(url: String, store: Arc<dyn TaskStore>, conn: DatabaseConnection) -> Db {
        Db {
            conn,
            store,
            url,
            fresh: None,
            _dir: None,
        }
    }

    /// Drops the test database of a shared server (call it when the scenario passed; a failed
    /// one leaves it).
    pub async fn done(self) {
        // The store's pool first: PostgreSQL would otherwise drop the database under it.
        let _ = self.conn.close_by_ref().await;
        match self.fresh {
            Some(Fresh::Mysql(db)) => db.drop_database().await,
            Some(Fresh::Postgres(db)) => db.drop_database().await,
            None => {}
        }
    }

    /// `sql` with `?` placeholders in this database's spelling (`$1`, `$2`… on PostgreSQL).
    fn placeholders(&self, sql: &str) -> String {
        if self.conn.get_database_backend() != sea_orm::DbBackend::Postgres {
            return sql.to_owned();
        }
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(c);
            }
        }
        out
    }

    /// A client on this store whose handlers record to `rec`, with no retry jitter.
    pub fn client(&self, rec: Recorder) -> Client {
        Client::builder(self.store.clone())
            .data(rec)
            .jitter(Jitter::fixed(0.0))
            .build()
            .unwrap()
    }

    /// Runs `sql` with `?` placeholders bound to `values`; returns the rows affected.
    pub async fn exec(&self, sql: &str, values: Vec<sea_orm::Value>) -> u64 {
        let backend = self.conn.get_database_backend();
        let text = self.placeholders(sql);
        self.conn
            .execute_raw(Statement::from_sql_and_values(backend, text, values))
            .await
            .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"))
            .rows_affected()
    }

    /// One integer from `sql` (`?` placeholders bound to `values`).
    pub async fn scalar(&self, sql: &str, values: Vec<sea_orm::Value>) -> i64 {
        let backend = self.conn.get_database_backend();
        let text = self.placeholders(sql);
        let row = self
            .conn
            .query_one_raw(Statement::from_sql_and_values(backend, text, values))
            .await
            .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"))
            .unwrap_or_else(|| panic!("`{sql}` returned no row"));
        // PostgreSQL is strict about widths: `smallint`, `integer` and `bigint` columns.
        row.try_get_by_index::<i64>(0)
            .or_else(|e| {
                row.try_get_by_index::<i32>(0)
                    .map(i64::from)
                    .or_else(|_| row.try_get_by_index::<i16>(0).map(i64::from))
                    .map_err(|_| e)
            })
            .unwrap_or_else(|e| panic!("`{sql}` did not return an integer: {e}"))
    }

    /// Every log row.
    pub async fn logs(&self) -> Vec<TaskLog> {
        self.store.logs(&LogFilter::default()).await.unwrap()
    }

    /// The task with this code.
    pub async fn task(&self, code: &str) -> taskrow::Result<TaskRecord> {
        self.store.get(&TaskRef::from(code)).await
    }

    /// The log rows of this code, oldest first.
    pub async fn logs_of(&self, code: &str) -> Vec<TaskLog> {
        self.store.logs(&LogFilter::code(code)).await.unwrap()
    }

    /// How many log rows there are.
    pub async fn log_count(&self) -> i64 {
        self.scalar("SELECT COUNT(*) FROM taskrow_task_log", vec![])
            .await
    }

    /// Every task row matching `filter`.
    pub async fn rows(&self, filter: &TaskFilter) -> Vec<TaskRecord> {
        let mut out: Vec<TaskRecord> = Vec::new();
        loop {
            let page = match out.last() {
                None => Page::first(1000),
                Some(r) => Page::after(r.id, 1000),
            };
            let got = self.store.list(filter, &page).await.unwrap();
            if got.is_empty() {
                return out;
            }
            out.extend(got);
        }
    }
}

/// A scratch directory: the handlers' records, the workers' logs.
pub struct Scratch {
    dir: TempDir,
    n: usize,
}

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("taskrow-faults-{name}-"))
            .tempdir()
            .expect("cannot make a scratch directory");
        Self { dir, n: 0 }
    }
    /// Where the handlers record their runs.
    pub fn records(&self) -> PathBuf {
        self.dir.path().join("records")
    }
    /// Every run recorded so far.
    pub fn runs(&self) -> Vec<Run> {
        read_runs(&self.records())
    }
    /// A recorder for handlers in this process.
    pub fn recorder(&self) -> Recorder {
        Recorder::open(&self.records()).expect("cannot open the run record")
    }
    /// A path for the next worker's log.
    pub fn next_log(&mut self) -> PathBuf {
        self.n += 1;
        self.dir.path().join(format!("worker-{}.log", self.n))
    }
    /// A worker configuration on `url` recording here.
    pub fn config(&self, url: &str) -> WorkerConfig {
        WorkerConfig::new(url, self.records())
    }
    /// Starts a worker process.
    pub fn spawn(&mut self, cfg: &WorkerConfig) -> WorkerProcess {
        let log = self.next_log();
        WorkerProcess::spawn(worker_bin(), cfg, &log)
    }
}

/// `key=<number>` summed over the lines of `log` that contain `line`.
pub fn sum_field(log: &str, line: &str, key: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains(line))
        .filter_map(|l| {
            let at = l.find(&format!("{key}="))? + key.len() + 1;
            let digits: String = l[at..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .sum()
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Waits until `check` holds, asking every `every`; panics naming `what` after `limit`.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, every: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(every).await;
    }
}

/// Waits for every process to exit by itself within `limit`; panics with the logs of any that
/// does not, or that fails.
pub async fn wait_all_exit(procs: &mut [WorkerProcess], limit: Duration) {
    let deadline = Instant::now() + limit;
    for p in procs.iter_mut() {
        let left = deadline.saturating_duration_since(Instant::now());
        match p.wait_exit(left).await {
            Some(s) if s.success() => {}
            Some(s) => panic!(
                "worker {} exited with {s}; its log ends:\n{}",
                p.pid(),
                tail(&p.log(), 30)
            ),
            None => panic!(
                "worker {} still runs after {limit:?}; its log ends:\n{}",
                p.pid(),
                tail(&p.log(), 30)
            ),
        }
    }
}

/// `n` drain tasks coded `<prefix>-<i>`, each running `millis`, with short retries.
pub async fn enqueue_drains(client: &Client, prefix: &str, n: usize, millis: u64) -> Vec<String> {
    let task = taskrow_tests::faults::tasks::Drain { millis };
    let codes: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:05}")).collect();
    for chunk in codes.chunks(1000) {
        let batch: Vec<(&dyn Task, EnqueueOptions)> = chunk
            .iter()
            .map(|c| (&task as &dyn Task, drain_options(c)))
            .collect();
        client.enqueue_batch(batch).await.unwrap();
    }
    codes
}

/// Options of the drain tasks: attempts to spare for killed workers, a short retry interval.
pub fn drain_options(code: &str) -> EnqueueOptions {
    EnqueueOptions::new()
        .code(code)
        .max_attempts(20)
        .retry(RetryPolicy::fixed(Duration::from_millis(200)))
}

/// What a drain left: the checks every drain scenario makes, counted.
#[derive(Debug, Default)]
pub struct Drained {
    /// Codes with no succeeded log row (and no row left in the table).
    pub lost: Vec<String>,
    /// Codes with more than one succeeded log row.
    pub succeeded_twice: Vec<String>,
    /// Codes whose handler never recorded a finished run.
    pub never_finished: Vec<String>,
    /// Codes with overlapping runs in the handlers' records.
    pub overlaps_records: Vec<String>,
    /// Codes with overlapping runs in taskrow's log.
    pub overlaps_log: Vec<String>,
    /// Runs that never ended outside the killed processes.
    pub unfinished_unexplained: Vec<Run>,
    /// Runs cut short by a kill.
    pub interrupted: usize,
    /// Codes run more than once (one after the other).
    pub rerun: usize,
    /// Handler runs, all processes.
    pub runs: usize,
    /// Log rows by outcome.
    pub outcomes: BTreeMap<String, usize>,
    /// Rows left in the table.
    pub left: usize,
    /// Runs per process.
    pub per_pid: BTreeMap<u32, usize>,
}

impl Drained {
    /// Checks `codes` against the handlers' records, the log and the table. `killed` maps the
    /// pid of each killed process to when it was known dead.
    pub async fn check(
        db: &Db,
        scratch: &Scratch,
        codes: &[String],
        killed: &HashMap<u32, i64>,
    ) -> Self {
        let runs = scratch.runs();
        let logs = db.logs().await;
        let left = db.rows(&TaskFilter::all()).await;
        let mut d = Drained {
            runs: runs.len(),
            left: left.len(),
            ..Drained::default()
        };
        let wanted: HashSet<&str> = codes.iter().map(String::as_str).collect();
        let left_codes: HashSet<&str> = left.iter().map(|r| r.code.as_str()).collect();
        let mut succeeded: HashMap<&str, usize> = HashMap::new();
        for l in &logs {
            *d.outcomes.entry(l.outcome.to_string()).or_default() += 1;
            if l.outcome == Outcome::Succeeded {
                *succeeded.entry(l.code.as_str()).or_default() += 1;
            }
        }
        let mut finished: HashMap<&str, usize> = HashMap::new();
        let mut started: HashMap<&str, usize> = HashMap::new();
        for r in &runs {
            *started.entry(r.code.as_str()).or_default() += 1;
            *d.per_pid.entry(r.pid).or_default() += 1;
            if r.end_us.is_some() {
                *finished.entry(r.code.as_str()).or_default() += 1;
            } else if killed.contains_key(&r.pid) {
                d.interrupted += 1;
            } else {
                d.unfinished_unexplained.push(r.clone());
            }
        }
        for c in codes {
            let c = c.as_str();
            match succeeded.get(c).copied().unwrap_or(0) {
                0 if !left_codes.contains(c) => d.lost.push(c.to_owned()),
                0 | 1 => {}
                _ => d.succeeded_twice.push(c.to_owned()),
            }
            if finished.get(c).copied().unwrap_or(0) == 0 {
                d.never_finished.push(c.to_owned());
            }
            if started.get(c).copied().unwrap_or(0) > 1 {
                d.rerun += 1;
            }
        }
        let ours: Vec<Run> = runs
            .into_iter()
            .filter(|r| wanted.contains(r.code.as_str()))
            .collect();
        d.overlaps_records = overlapping_codes(&ours, |r| killed.get(&r.pid).copied());
        d.overlaps_log = overlapping_in_log(&logs);
        d
    }

    /// Asserts the drain's promises: nothing lost or left, every task succeeded exactly once
    /// in the log and finished at least once in its handler, no two runs of a task at once,
    /// and every run that did not end belongs to a killed process.
    pub fn assert_complete(&self, what: &str) {
        assert_eq!(self.left, 0, "{what}: rows left in the table");
        self.assert_all_ran(what);
    }

    /// [`Drained::assert_complete`] but for rows left in the table (tasks kept on success).
    pub fn assert_all_ran(&self, what: &str) {
        assert!(
            self.lost.is_empty(),
            "{what}: lost tasks {:?}",
            first(&self.lost)
        );
        assert!(
            self.succeeded_twice.is_empty(),
            "{what}: succeeded twice in the log: {:?}",
            first(&self.succeeded_twice)
        );
        assert!(
            self.never_finished.is_empty(),
            "{what}: no finished handler run for {:?}",
            first(&self.never_finished)
        );
        assert!(
            self.overlaps_records.is_empty(),
            "{what}: runs overlapping in time (handler records): {:?}",
            first(&self.overlaps_records)
        );
        assert!(
            self.overlaps_log.is_empty(),
            "{what}: runs overlapping in time (log): {:?}",
            first(&self.overlaps_log)
        );
        assert!(
            self.unfinished_unexplained.is_empty(),
            "{what}: runs that never ended in a live process: {:?}",
            first(&self.unfinished_unexplained)
        );
    }

    /// The table's "twice at once" cell.
    pub fn twice_at_once(&self) -> String {
        let n = self
            .overlaps_records
            .iter()
            .chain(&self.overlaps_log)
            .collect::<HashSet<_>>()
            .len();
        n.to_string()
    }

    /// The table's "final states" cell for a drain that should have left nothing.
    pub fn final_states(&self) -> String {
        let ok = self.outcomes.get("succeeded").copied().unwrap_or(0);
        let mut s = format!("{ok} succeeded, {} left", self.left);
        if self.rerun > 0 {
            s.push_str(&format!("; {} ran again after a fault", self.rerun));
        }
        if let Some(n) = self.outcomes.get("lease_lost") {
            s.push_str(&format!("; {n} late results refused (lease_lost)"));
        }
        if let Some(n) = self.outcomes.get("worker_lost") {
            s.push_str(&format!(
                "; {n} claims of killed workers logged worker_lost (started or not)"
            ));
        }
        s
    }
}

fn first<T: std::fmt::Debug>(v: &[T]) -> &[T] {
    &v[..v.len().min(5)]
}

/// A seeded random source for kill moments, from the suite's seed and the scenario's name.
pub fn rng(seed: u64, name: &str) -> Jitter {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Jitter::seeded(seed ^ h)
}

/// A whole number of milliseconds in `lo..hi`, from `r`.
pub fn between(r: &Jitter, lo: u64, hi: u64) -> Duration {
    let span = hi.saturating_sub(lo) as f64;
    Duration::from_millis(lo + (r.next_f64() * span) as u64)
}

/// A seed from the wall clock.
pub fn now_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
