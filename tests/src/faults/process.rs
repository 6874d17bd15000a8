//! Worker processes: the settings `taskrow-test-worker` takes on its command line, and a handle
//! to a running one (kill it with SIGKILL, stop it with SIGTERM, wait for it).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::clock::ClockChoice;
use super::records::now_us;

/// The environment variable the worker binary reads its database URL from when `--url` is not
/// given.
pub const URL_VAR: &str = "TASKROW_TEST_WORKER_URL";

/// How a `taskrow-test-worker` process runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// The database: `sqlite://…`, `mysql://…` or `postgres://…`. The tables must exist.
    pub url: String,
    /// Where the handlers write their run records (`runs-<pid>.log`).
    pub records: PathBuf,
    /// Most tasks at once.
    pub concurrency: usize,
    /// The claim's lease.
    pub lease: Duration,
    /// The heartbeat, or `None` for none.
    pub heartbeat: Option<Duration>,
    /// How often an idle worker polls.
    pub poll: Duration,
    /// How long a graceful shutdown waits for running tasks.
    pub shutdown_timeout: Duration,
    /// Exit once no task is pending or running.
    pub exit_when_idle: bool,
    /// The worker id (lease owner, log rows, run records); taskrow's default when `None`.
    pub id: Option<String>,
    /// The client's clock: taskrow's default for the store when `None`.
    pub clock: Option<ClockChoice>,
    /// How far this process's local time source runs ahead of the system clock, in ms
    /// (behind when negative). The client uses it with [`ClockChoice::System`]; a
    /// [`ClockChoice::Database`] clock never reads a wall clock, so there it only serves to
    /// report how far the local time is from the database's.
    pub clock_skew_ms: i64,
    /// Register the schedule [`SCHEDULE_NAME`] ticking at this interval (a `faults.drain` task
    /// each tick), as every instance of an application would.
    pub schedule_every: Option<Duration>,
}

/// The name of the schedule a worker process registers with `--schedule-every-ms`.
pub const SCHEDULE_NAME: &str = "faults.tick";

impl WorkerConfig {
    /// Short leases and polls, for tests: 8 at once, a 2 s lease with a heartbeat every
    /// 600 ms, a 50 ms poll, 10 s to shut down; runs until told to stop.
    pub fn new(url: impl Into<String>, records: impl Into<PathBuf>) -> Self {
        Self {
            url: url.into(),
            records: records.into(),
            concurrency: 8,
            lease: Duration::from_secs(2),
            heartbeat: Some(Duration::from_millis(600)),
            poll: Duration::from_millis(50),
            shutdown_timeout: Duration::from_secs(10),
            exit_when_idle: false,
            id: None,
            clock: None,
            clock_skew_ms: 0,
            schedule_every: None,
        }
    }

    /// The command-line arguments that give these settings.
    pub fn args(&self) -> Vec<String> {
        let ms = |d: Duration| d.as_millis().to_string();
        let mut a = vec![
            "--url".to_owned(),
            self.url.clone(),
            "--records".to_owned(),
            self.records.display().to_string(),
            "--concurrency".to_owned(),
            self.concurrency.to_string(),
            "--lease-ms".to_owned(),
            ms(self.lease),
            "--heartbeat-ms".to_owned(),
            self.heartbeat.map_or_else(|| "0".to_owned(), ms),
            "--poll-ms".to_owned(),
            ms(self.poll),
            "--shutdown-timeout-ms".to_owned(),
            ms(self.shutdown_timeout),
        ];
        if self.exit_when_idle {
            a.push("--exit-when-idle".to_owned());
        }
        if let Some(id) = &self.id {
            a.push("--worker-id".to_owned());
            a.push(id.clone());
        }
        if let Some(c) = self.clock {
            a.push("--clock".to_owned());
            a.push(c.name().to_owned());
        }
        if let Some(every) = self.schedule_every {
            a.push("--schedule-every-ms".to_owned());
            a.push(ms(every));
        }
        if self.clock_skew_ms != 0 {
            a.push("--clock-skew-ms".to_owned());
            a.push(self.clock_skew_ms.to_string());
        }
        a
    }

    /// Settings from command-line arguments (as [`WorkerConfig::args`] writes them); the URL
    /// may come from [`URL_VAR`] instead.
    ///
    /// # Errors
    ///
    /// A message naming the bad or missing argument.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut url = std::env::var(URL_VAR).ok().filter(|u| !u.is_empty());
        let mut records = None;
        let mut cfg = Self::new("", "");
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if a == "--exit-when-idle" {
                cfg.exit_when_idle = true;
                continue;
            }
            let v = it
                .next()
                .ok_or_else(|| format!("{a} needs a value"))?
                .clone();
            let num = |v: &str| {
                v.parse::<u64>()
                    .map_err(|e| format!("{a}: `{v}` is not a number: {e}"))
            };
            match a.as_str() {
                "--url" => url = Some(v),
                "--records" => records = Some(PathBuf::from(v)),
                "--concurrency" => cfg.concurrency = usize::try_from(num(&v)?).unwrap_or(1),
                "--lease-ms" => cfg.lease = Duration::from_millis(num(&v)?),
                "--heartbeat-ms" => {
                    cfg.heartbeat = Some(num(&v)?).filter(|&m| m > 0).map(Duration::from_millis);
                }
                "--poll-ms" => cfg.poll = Duration::from_millis(num(&v)?),
                "--shutdown-timeout-ms" => cfg.shutdown_timeout = Duration::from_millis(num(&v)?),
                "--worker-id" => cfg.id = Some(v),
                "--schedule-every-ms" => {
                    cfg.schedule_every = Some(Duration::from_millis(num(&v)?));
                }
                "--clock" => cfg.clock = Some(ClockChoice::parse(&v)?),
                "--clock-skew-ms" => {
                    cfg.clock_skew_ms = v
                        .parse::<i64>()
                        .map_err(|e| format!("{a}: `{v}` is not a number: {e}"))?;
                }
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        cfg.url = url.ok_or_else(|| format!("no database: pass --url or set {URL_VAR}"))?;
        cfg.records = records.ok_or("no record directory: pass --records DIR")?;
        Ok(cfg)
    }
}

/// A running `taskrow-test-worker` process, its stdout and stderr in a log file. Dropped while
/// running, it is killed.
#[derive(Debug)]
pub struct WorkerProcess {
    child: Child,
    pid: u32,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl WorkerProcess {
    /// Starts `bin` with `cfg`, its output going to `log`.
    ///
    /// # Panics
    ///
    /// If the log file cannot be made or the binary cannot start.
    pub fn spawn(bin: &Path, cfg: &WorkerConfig, log: &Path) -> Self {
        Self::spawn_args(bin, &cfg.args(), log)
    }

    /// Starts `bin` with `args`, its output going to `log`.
    ///
    /// # Panics
    ///
    /// If the log file cannot be made or the binary cannot start.
    pub fn spawn_args(bin: &Path, args: &[String], log: &Path) -> Self {
        Self::spawn_env(bin, args, &[], log)
    }

    /// Starts `bin` with `args` and these environment variables set, its output going to
    /// `log`.
    ///
    /// # Panics
    ///
    /// If the log file cannot be made or the binary cannot start.
    pub fn spawn_env(bin: &Path, args: &[String], env: &[(String, String)], log: &Path) -> Self {
        let out = File::create(log)
            .unwrap_or_else(|e| panic!("cannot create the worker log {}: {e}", log.display()));
        let err = out.try_clone().expect("cannot share the worker log");
        let child = Command::new(bin)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Self {
            pid: child.id(),
            child,
            log: log.to_owned(),
            status: None,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its exit status, if it has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("cannot poll a worker process");
        }
        self.status
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        self.try_exit().is_none()
    }

    /// Kills it with SIGKILL and waits until it is gone; returns when it was known dead (µs
    /// since the epoch): no run of it can have gone on past that.
    pub fn kill9(&mut self) -> i64 {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            self.status = Some(self.child.wait().expect("cannot reap a killed worker"));
        }
        now_us()
    }

    /// Sends SIGTERM: the worker shuts down gracefully.
    pub fn terminate(&self) {
        let pid = Pid::from_raw(i32::try_from(self.pid).expect("a pid fits in i32"));
        if let Err(e) = kill(pid, Signal::SIGTERM) {
            eprintln!("cannot send SIGTERM to {}: {e}", self.pid);
        }
    }

    /// Waits up to `limit` for it to exit; `None` if it still runs.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.try_exit() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Its output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Where its output goes.
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A process holding a SQLite database's write lock (`taskrow-test-worker hold-sqlite-lock`).
#[derive(Debug)]
pub struct LockHolder {
    child: Child,
    /// When the lock was taken (µs since the epoch).
    pub locked_at_us: i64,
}

impl LockHolder {
    /// Starts `bin hold-sqlite-lock` on `url` for `millis` ms and returns once it holds the
    /// lock.
    ///
    /// # Panics
    ///
    /// If the process cannot start or does not report the lock.
    pub async fn start(bin: &Path, url: &str, millis: u64) -> Self {
        let mut child = Command::new(bin)
            .args([
                "hold-sqlite-lock",
                "--url",
                url,
                "--millis",
                &millis.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            line
        })
        .await
        .expect("reading the lock holder's output");
        assert_eq!(
            line.trim(),
            "locked",
            "the lock holder did not take the write lock"
        );
        Self {
            child,
            locked_at_us: now_us(),
        }
    }

    /// Waits for it to release the lock and exit.
    ///
    /// # Panics
    ///
    /// If it fails or takes longer than `limit`.
    pub async fn wait(mut self, limit: Duration) -> i64 {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().expect("cannot poll the lock holder") {
                assert!(s.success(), "the lock holder failed: {s}");
                return now_us();
            }
            assert!(
                Instant::now() < deadline,
                "the lock holder did not finish in {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
