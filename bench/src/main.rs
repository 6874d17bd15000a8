//! taskrow-bench: throughput, pickup latency and scale of taskrow on the memory store, SQLite,
//! MariaDB/MySQL and PostgreSQL, each beside the floor — the same workload in plain SQL through
//! `sea_orm::sqlx` — measured in the same run, printed as a markdown table.
//!
//! ```text
//! cargo run --release -p taskrow-bench -- [--n 5000] [--concurrency 8]
//!     [--scale-rows 10000,1000000] [--stores memory,sqlite,mysql,postgres] [--quick]
//! ```
//!
//! MariaDB/MySQL runs when `TASKROW_MYSQL_URL` names a server, PostgreSQL when
//! `TASKROW_POSTGRES_URL` does (a fresh database is made on each, and dropped at the end);
//! otherwise they are skipped.

mod counting;
mod floor;
mod report;
mod run;
mod tasks;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};

use crate::floor::Floor;
use crate::report::Line;
use crate::run::{Concrete, Kind, Sut};

/// Errors of the benchmark itself.
pub type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Debug, Parser)]
#[command(
    name = "taskrow-bench",
    about = "taskrow's throughput, pickup latency and scale beside the plain-SQL floor, as a markdown table"
)]
struct Cli {
    /// Tasks per throughput workload (default 5000; 200 with --quick).
    #[arg(long)]
    n: Option<usize>,
    /// Worker concurrency C; the floor runs C claimers.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Not-yet-due rows already in the table for the scale workloads (default
    /// 10000,1000000; 1000,10000 with --quick).
    #[arg(long, value_delimiter = ',')]
    scale_rows: Option<Vec<usize>>,
    /// Stores to measure.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "memory,sqlite,mysql,postgres"
    )]
    stores: Vec<Kind>,
    /// Workloads to run (all by default).
    #[arg(long, value_delimiter = ',')]
    phases: Option<Vec<PhaseName>>,
    /// Tiny sizes, for CI: finishes in seconds, even in a debug build.
    #[arg(long)]
    quick: bool,
    /// Tasks per transaction in the batch enqueue.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Rows per claim of the floor's drain.
    #[arg(long, default_value_t = 32)]
    floor_batch: usize,
    /// Latency samples per measurement (default 200; 20 with --quick).
    #[arg(long)]
    samples: Option<usize>,
    /// Claims timed per table size in the scale workload (default 200; 20 with --quick).
    #[arg(long)]
    claim_samples: Option<usize>,
    /// Runs of each throughput workload (enqueue, drain), taskrow and floor alternating; the
    /// best run counts (default 3; 1 with --quick).
    #[arg(long)]
    repeat: Option<usize>,
    /// Poll interval of the poller pickup measurement, in milliseconds.
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
    #[command(subcommand)]
    command: Option<Child>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PhaseName {
    Enqueue,
    Drain,
    Latency,
    Scale,
    /// The scale workload's claims only (no drains at scale).
    ScaleClaims,
}

#[derive(Debug, Subcommand)]
enum Child {
    /// (internal) Enqueue probes from another process for the poller pickup measurement.
    #[command(hide = true)]
    ChildEnqueue {
        #[arg(long)]
        kind: Kind,
        #[arg(long)]
        url: String,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        poll_ms: u64,
        #[arg(long)]
        mode: String,
        /// Enqueue on the system clock instead of the client's default.
        #[arg(long)]
        system_clock: bool,
    },
    /// (internal) One workload on one side alone, for profilers (callgrind, perf).
    #[command(hide = true)]
    Profile {
        #[arg(long)]
        kind: Kind,
        #[arg(long)]
        workload: run::Workload,
        /// Run the floor's version instead of taskrow's.
        #[arg(long)]
        floor: bool,
        #[arg(long, default_value_t = 5000)]
        n: usize,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long, default_value_t = 32)]
        floor_batch: usize,
        /// Count taskrow's claims and result writes, and the tasks in them.
        #[arg(long)]
        count: bool,
    },
}

/// Which workloads run.
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    pub enqueue: bool,
    pub drain: bool,
    pub latency: bool,
    pub scale: bool,
    /// The scale workload's claims only (implied by `scale`).
    pub scale_claims: bool,
}

/// The resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub n: usize,
    pub concurrency: usize,
    pub batch: usize,
    pub floor_batch: usize,
    pub scale_rows: Vec<usize>,
    pub samples: usize,
    pub claim_samples: usize,
    pub poll: Duration,
    pub repeat: usize,
    pub phases: Phases,
}

impl Settings {
    /// Settings for one workload run by `profile`.
    pub fn for_profile(n: usize, concurrency: usize, floor_batch: usize) -> Self {
        Settings {
            n,
            concurrency,
            batch: 500,
            floor_batch,
            scale_rows: Vec::new(),
            samples: n,
            claim_samples: n,
            poll: Duration::from_millis(50),
            repeat: 1,
            phases: Phases {
                enqueue: false,
                drain: false,
                latency: false,
                scale: false,
                scale_claims: false,
            },
        }
    }

    fn of(cli: &Cli) -> BoxResult<Self> {
        let q = cli.quick;
        let s = Settings {
            n: cli.n.unwrap_or(if q { 200 } else { 5000 }),
            concurrency: cli.concurrency,
            batch: cli.batch,
            floor_batch: cli.floor_batch,
            scale_rows: cli.scale_rows.clone().unwrap_or_else(|| {
                if q {
                    vec![1_000, 10_000]
                } else {
                    vec![10_000, 1_000_000]
                }
            }),
            samples: cli.samples.unwrap_or(if q { 20 } else { 200 }),
            claim_samples: cli.claim_samples.unwrap_or(if q { 20 } else { 200 }),
            poll: Duration::from_millis(cli.poll_ms),
            repeat: cli.repeat.unwrap_or(if q { 1 } else { 3 }),
            phases: match &cli.phases {
                None => Phases {
                    enqueue: true,
                    drain: true,
                    latency: true,
                    scale: true,
                    scale_claims: true,
                },
                Some(p) => Phases {
                    enqueue: p.contains(&PhaseName::Enqueue),
                    drain: p.contains(&PhaseName::Drain),
                    latency: p.contains(&PhaseName::Latency),
                    scale: p.contains(&PhaseName::Scale),
                    scale_claims: p.contains(&PhaseName::ScaleClaims),
                },
            },
        };
        if s.n == 0 || s.concurrency == 0 || s.batch == 0 || s.floor_batch == 0 {
            return Err("--n, --concurrency, --batch and --floor-batch must be at least 1".into());
        }
        if s.samples == 0 || s.claim_samples == 0 || s.poll.is_zero() || s.repeat == 0 {
            return Err(
                "--samples, --claim-samples, --poll-ms and --repeat must be at least 1".into(),
            );
        }
        Ok(s)
    }
}

/// Runs `sut`'s workloads on a task of its own (so a panic is reported, not fatal), and hands
/// the store back for clean-up.
async fn bench_one(mut sut: Sut, s: &Settings, lines: &mut Vec<Line>) -> BoxResult<Sut> {
    let s = s.clone();
    let t0 = Instant::now();
    eprintln!("{}:", sut.label);
    let handle = tokio::spawn(async move {
        let mut mine = Vec::new();
        let r = run::bench(&mut sut, &s, &mut mine).await;
        (sut, mine, r)
    });
    match handle.await {
        Ok((sut, mine, r)) => {
            lines.extend(mine);
            eprintln!(
                "  {} done in {:.1} s",
                sut.label,
                t0.elapsed().as_secs_f64()
            );
            if let Some(f) = &sut.floor {
                f.close().await;
            }
            r.map(|()| sut)
        }
        Err(e) => Err(format!("the benchmark task failed: {e}").into()),
    }
}

async fn bench_all(cli: &Cli, s: &Settings, lines: &mut Vec<Line>) -> bool {
    let mut ok = true;
    for kind in &cli.stores {
        let r: BoxResult<()> = async {
            match kind {
                Kind::Memory => {
                    let sut = Sut::new(
                        Kind::Memory,
                        Concrete::Memory(taskrow_memory::MemoryStore::new()),
                        None,
                        None,
                    );
                    bench_one(sut, s, lines).await?;
                }
                Kind::Sqlite => {
                    let (store, dir) = taskrow_sqlite::testing::temp_store().await;
                    let url = format!(
                        "sqlite://{}?mode=rwc",
                        dir.path().join("tasks.db").display()
                    );
                    let floor = Floor::sqlite(&url).await?;
                    let sut = Sut::new(
                        Kind::Sqlite,
                        Concrete::Sqlite(store),
                        Some(floor),
                        Some(url),
                    );
                    let r = bench_one(sut, s, lines).await;
                    drop(dir);
                    r?;
                }
                Kind::Mysql => {
                    if taskrow_mysql::testing::server_url().is_none() {
                        println!(
                            "MySQL skipped: {} not set (e.g. mysql://root@127.0.0.1:3306)",
                            taskrow_mysql::testing::URL_VAR
                        );
                        return Ok(());
                    }
                    let (store, db) = taskrow_mysql::testing::fresh_store()
                        .await
                        .ok_or("no MySQL server")?;
                    let r = async {
                        let floor = Floor::mysql(&db.url).await?;
                        let sut = Sut::new(
                            Kind::Mysql,
                            Concrete::Mysql(store),
                            Some(floor),
                            Some(db.url.clone()),
                        );
                        let sut = bench_one(sut, s, lines).await?;
                        if let Concrete::Mysql(store) = &sut.concrete {
                            let _ = store.connection().clone().close().await;
                        }
                        BoxResult::Ok(())
                    }
                    .await;
                    eprintln!("  dropping database {}", db.name);
                    db.drop_database().await;
                    r?;
                }
                Kind::Postgres => {
                    if taskrow_postgres::testing::server_url().is_none() {
                        println!(
                            "PostgreSQL skipped: {} not set (e.g. postgres://postgres@127.0.0.1:5432)",
                            taskrow_postgres::testing::URL_VAR
                        );
                        return Ok(());
                    }
                    let (store, db) = taskrow_postgres::testing::fresh_store()
                        .await
                        .ok_or("no PostgreSQL server")?;
                    let r = async {
                        let floor = Floor::postgres(&db.url).await?;
                        let sut = Sut::new(
                            Kind::Postgres,
                            Concrete::Postgres(store),
                            Some(floor),
                            Some(db.url.clone()),
                        );
                        let sut = bench_one(sut, s, lines).await?;
                        if let Concrete::Postgres(store) = &sut.concrete {
                            let _ = store.connection().clone().close().await;
                        }
                        BoxResult::Ok(())
                    }
                    .await;
                    eprintln!("  dropping database {}", db.name);
                    // `WITH (FORCE)`: the store's LISTEN connection may not have closed yet.
                    db.drop_database().await;
                    r?;
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = r {
            eprintln!("{kind:?}: the benchmark failed: {e}");
            ok = false;
        }
    }
    ok
}

/// The `profile` subcommand: a fresh store of `kind`, one workload.
async fn profile(
    kind: Kind,
    workload: run::Workload,
    floor_side: bool,
    (n, c, floor_batch): (usize, usize, usize),
    count: bool,
) -> BoxResult<()> {
    match kind {
        Kind::Memory => {
            let mut sut = Sut::new(
                Kind::Memory,
                Concrete::Memory(taskrow_memory::MemoryStore::new()),
                None,
                None,
            );
            run::profile(&mut sut, workload, floor_side, n, c, floor_batch, count).await
        }
        Kind::Sqlite => {
            let (store, dir) = taskrow_sqlite::testing::temp_store().await;
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("tasks.db").display()
            );
            let floor = Floor::sqlite(&url).await?;
            let mut sut = Sut::new(
                Kind::Sqlite,
                Concrete::Sqlite(store),
                Some(floor),
                Some(url),
            );
            run::profile(&mut sut, workload, floor_side, n, c, floor_batch, count).await
        }
        Kind::Mysql => {
            let (store, db) = taskrow_mysql::testing::fresh_store()
                .await
                .ok_or("TASKROW_MYSQL_URL not set")?;
            let floor = Floor::mysql(&db.url).await?;
            let mut sut = Sut::new(
                Kind::Mysql,
                Concrete::Mysql(store),
                Some(floor),
                Some(db.url.clone()),
            );
            let r = run::profile(&mut sut, workload, floor_side, n, c, floor_batch, count).await;
            db.drop_database().await;
            r
        }
        Kind::Postgres => {
            let (store, db) = taskrow_postgres::testing::fresh_store()
                .await
                .ok_or("TASKROW_POSTGRES_URL not set")?;
            let floor = Floor::postgres(&db.url).await?;
            let mut sut = Sut::new(
                Kind::Postgres,
                Concrete::Postgres(store),
                Some(floor),
                Some(db.url.clone()),
            );
            let r = run::profile(&mut sut, workload, floor_side, n, c, floor_batch, count).await;
            db.drop_database().await;
            r
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Diagnostics only (e.g. `RUST_LOG=sqlx::query=debug` lists every statement): without
    // RUST_LOG no subscriber is installed, so measurements carry no logging cost.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
    }
    if let Some(Child::ChildEnqueue {
        kind,
        url,
        count,
        poll_ms,
        mode,
        system_clock,
    }) = &cli.command
    {
        let r = run::child_enqueue(
            *kind,
            url,
            *count,
            Duration::from_millis(*poll_ms),
            mode == "floor",
            *system_clock,
        )
        .await;
        return match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("child-enqueue: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Child::Profile {
        kind,
        workload,
        floor,
        n,
        concurrency,
        floor_batch,
        count,
    }) = &cli.command
    {
        let r = profile(
            *kind,
            *workload,
            *floor,
            (*n, *concurrency, *floor_batch),
            *count,
        )
        .await;
        return match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("profile: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let s = match Settings::of(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("taskrow-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "taskrow-bench: n={} concurrency={} batch={} floor claims of {} ({} claimers) \
         scale rows {:?} samples={} claim samples={} poll={} ms repeat={}{}{}",
        s.n,
        s.concurrency,
        s.batch,
        s.floor_batch,
        s.concurrency,
        s.scale_rows,
        s.samples,
        s.claim_samples,
        s.poll.as_millis(),
        s.repeat,
        if cli.quick { " (quick)" } else { "" },
        if cfg!(debug_assertions) {
            " — a debug build: run with --release for real numbers"
        } else {
            ""
        }
    );
    let t0 = Instant::now();
    let mut lines = Vec::new();
    let ok = bench_all(&cli, &s, &mut lines).await;
    lines.extend(report::memory_against_sqlite(&lines));
    println!();
    print!("{}", report::table(&lines));
    println!();
    println!(
        "Rates are tasks per second; \"taskrow vs floor\" is taskrow ÷ floor for rates \
         (1.00 = as fast as plain SQL) and taskrow's time as a multiple of the floor's for \
         latencies. n={}, C={}, enqueue batches of {}, floor drain: {} claimers taking {} rows \
         per claim; enqueue and drain rates are the best of {} runs, taskrow and floor \
         alternating; claim latencies alternate taskrow and floor claims on one table. \
         Total {:.0} s.",
        s.n,
        s.concurrency,
        s.batch,
        s.concurrency,
        s.floor_batch,
        s.repeat,
        t0.elapsed().as_secs_f64()
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
