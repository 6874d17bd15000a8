//! The taskrow operator commands, as a binary (`taskrow`) and as a library.
//!
//! The stock `taskrow` binary inspects and repairs any taskrow database — `migrate`, `list`,
//! `show`, `logs`, `stats`, `reset`, `cancel`, `delete`, `purge`, `serve` (the web dashboard),
//! `workers` (the worker registry) and `health` (exit status 0 or 1 for an orchestrator) — but
//! it cannot `run` a task: running
//! needs the task's Rust type compiled in. For that, call [`run_cli`] from a binary of your own
//! that links your task types and registers the data their handlers use:
//!
//! ```no_run
//! use std::process::ExitCode;
//! # struct OrderService;
//! # impl OrderService { fn new() -> Self { OrderService } }
//!
//! // use my_tasks as _; // link the crate that holds your `impl Task` blocks
//!
//! #[tokio::main]
//! async fn main() -> ExitCode {
//!     taskrow_cli::run_cli(std::env::args_os(), |client| {
//!         // Called only for `run`: register what the handlers fetch with `ctx.data()`.
//!         client.data(OrderService::new())
//!     })
//!     .await
//! }
//! ```
//!
//! The database comes from `--database-url` or `TASKROW_DATABASE_URL`: `sqlite://tasks.db`
//! (or `sqlite::memory:`), `mysql://user:password@host:3306/database` (`mariadb://` too) and
//! `postgres://user:password@host:5432/database` (`postgresql://` too).
//! A task is named by its code or its id: a plain number is an id; write `code:42` for a code
//! made of digits, and `id:42` to be explicit.
//!
//! Exit status: 0 on success, and when stdout's reader goes away early (`taskrow list | head
//! -1` ends quietly); 1 on an error (printed as one line, `error: …`, on stderr) and when
//! `run` ran a task that did not succeed; 2 on a usage error.

mod args;
mod bulk;
mod commands;
mod logs;
mod parse;
mod render;
mod serve;
mod workers;

use std::ffi::OsString;
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use taskrow::{ClientBuilder, Error, TaskStore};
use taskrow_sql::sea_orm::DatabaseConnection;
use taskrow_sql::url::redact;

/// Runs the taskrow command line with `args` (the program name first, as from
/// [`std::env::args_os`]), printing to stdout and stderr and reading confirmations from stdin.
/// Returns the exit status to end the process with.
///
/// `configure` shapes the [`taskrow::Client`] that `run` executes the task with: register
/// the data your handlers need (`client.data(…)`), or set a lease or a timeout. It is called
/// only for `run`. The task types that `run` can execute are those linked into the calling
/// binary.
pub async fn run_cli<I, T>(
    args: I,
    configure: impl FnOnce(ClientBuilder) -> ClientBuilder,
) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut stdin = BufReader::new(std::io::stdin());
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let tty = std::io::IsTerminal::is_terminal(&stdout);
    run(args, configure, &mut stdin, &mut stdout, &mut stderr, tty).await
}

/// [`run_cli`] with its input and output given: `stdin` answers confirmation prompts, `stdout`
/// gets the results, `stderr` the errors and prompts. For tests, and for embedding the
/// commands in another tool.
pub async fn run_cli_with_io<I, T>(
    args: I,
    configure: impl FnOnce(ClientBuilder) -> ClientBuilder,
    stdin: &mut (dyn BufRead + Send),
    stdout: &mut (dyn Write + Send),
    stderr: &mut (dyn Write + Send),
) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    run(args, configure, stdin, stdout, stderr, false).await
}

/// [`run_cli_with_io`], told whether `stdout` is a terminal.
async fn run<I, T>(
    args: I,
    configure: impl FnOnce(ClientBuilder) -> ClientBuilder,
    stdin: &mut (dyn BufRead + Send),
    stdout: &mut (dyn Write + Send),
    stderr: &mut (dyn Write + Send),
    tty: bool,
) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match args::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let text = e.render().to_string();
            let _ = if e.use_stderr() {
                stderr.write_all(text.as_bytes())
            } else {
                stdout.write_all(text.as_bytes())
            };
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let mut io = commands::Io {
        stdin,
        out: stdout,
        err: stderr,
        tty,
    };
    let result = commands::execute(cli, configure, &mut io).await;
    let _ = io.out.flush();
    match result {
        Ok(code) => code,
        // The reader of stdout has gone (`taskrow list | head -1`): it wanted no more.
        Err(commands::CliError::ClosedOutput) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the driver's message held.
            let line = e.to_string().replace(['\r', '\n'], " ");
            let _ = writeln!(io.err, "error: {line}");
            let _ = io.err.flush();
            ExitCode::FAILURE
        }
    }
}

/// Opens the task store that `url` names: SQLite for `sqlite:` URLs, MySQL or MariaDB for
/// `mysql://` and `mariadb://` ones, PostgreSQL for `postgres://` and `postgresql://` ones.
/// Any other scheme is [`Error::BadUrl`]; a database that
/// cannot be opened is [`Error::Unreachable`]. The tables are not checked here: a store on an
/// unmigrated database answers [`Error::NotMigrated`] on first use.
pub async fn connect(url: &str) -> taskrow::Result<Arc<dyn TaskStore>> {
    Ok(open(url).await?.store)
}

/// A store and the pool under it (for the migrations).
pub(crate) struct Opened {
    pub store: Arc<dyn TaskStore>,
    pub db: DatabaseConnection,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Mysql,
    Postgres,
}

/// The backend for `url`, or [`Error::BadUrl`].
pub(crate) fn backend(url: &str) -> taskrow::Result<Backend> {
    let bad = |reason: String| Error::BadUrl {
        url: redact(url),
        reason,
    };
    let Some((scheme, _)) = url.split_once(':') else {
        return Err(bad(format!(
            "no scheme: {}",
            "write `sqlite://tasks.db`, `mysql://user:password@host:3306/database` or \
             `postgres://user:password@host:5432/database`"
        )));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "sqlite" => Ok(Backend::Sqlite),
        "mysql" | "mariadb" => Ok(Backend::Mysql),
        "postgres" | "postgresql" => Ok(Backend::Postgres),
        other => Err(bad(format!(
            "unknown scheme `{other}`: taskrow opens `sqlite://path/to/tasks.db` (or \
             `sqlite::memory:`), `mysql://user:password@host:3306/database` (or `mariadb://`) \
             and `postgres://user:password@host:5432/database` (or `postgresql://`)"
        ))),
    }
}

/// Opens the store for `url`.
pub(crate) async fn open(url: &str) -> taskrow::Result<Opened> {
    match backend(url)? {
        Backend::Sqlite => {
            let store = taskrow_sqlite::connect(url).await?;
            let db = store.connection().clone();
            Ok(Opened {
                store: Arc::new(store),
                db,
            })
        }
        Backend::Mysql => {
            let store = taskrow_mysql::connect(url).await?;
            let db = store.connection().clone();
            Ok(Opened {
                store: Arc::new(store),
                db,
            })
        }
        Backend::Postgres => {
            let store = taskrow_postgres::connect(url).await?;
            let db = store.connection().clone();
            Ok(Opened {
                store: Arc::new(store),
                db,
            })
        }
    }
}
