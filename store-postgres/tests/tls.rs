//! TLS to PostgreSQL with the `rustls` feature, against a private server started for the test
//! with a self-signed certificate (`ssl=on`), whose `pg_hba.conf` refuses connections without
//! TLS: the store connects with `sslmode=verify-full`, migrates, enqueues and runs a task, and
//! `pg_stat_ssl` shows every connection encrypted, the LISTEN connection of the wake-ups among
//! them.
//!
//! Compiled with the feature only: `cargo test -p taskrow-postgres --features rustls --test tls`.
//! The private server needs root (PostgreSQL's `initdb` runs as the `postgres` user, through
//! `runuser`), PostgreSQL 15's binaries in `/usr/lib/postgresql/15/bin` and `openssl`; without
//! them the test prints that it skips (and fails under `CI=true`). It stops only the server it
//! started, and removes its directory.
#![cfg(feature = "rustls")]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use taskrow::serde::{Deserialize, Serialize};
use taskrow::{
    Client, EnqueueOptions, Error, LogFilter, Task, TaskContext, TaskError, TaskStore, async_trait,
    typetag,
};
use taskrow_postgres::PostgresStore;

/// Where Debian's PostgreSQL 15 keeps its server binaries.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A task that only has to run.
#[derive(Debug, Serialize, Deserialize)]
#[serde(crate = "taskrow::serde")]
struct Greet {
    to: String,
}

#[typetag::serde(name = "taskrow_postgres_tls_test.greet")]
#[async_trait]
impl Task for Greet {
    async fn run(&self, _ctx: &TaskContext) -> Result<(), TaskError> {
        Ok(())
    }
}

/// `None` after saying why the test skips; a panic instead under `CI=true`.
fn skip<T>(reason: &str) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{reason}: CI must run the TLS test");
    }
    println!("skipped: {reason}");
    None
}

/// Runs `program` with `args`, panicking with its output if it fails.
fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs one of PostgreSQL's server binaries as the `postgres` user.
fn as_postgres(binary: &str, args: &[&str]) -> Output {
    let program = format!("{PG_BIN}/{binary}");
    let mut all = vec!["-u", "postgres", "--", program.as_str()];
    all.extend_from_slice(args);
    run("runuser", &all)
}

/// A self-signed certificate for `localhost` and `127.0.0.1` (not a CA: rustls refuses a CA
/// certificate as a server's), and its key.
fn self_signed(cert: &Path, key: &Path) {
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ],
    );
}

/// A PostgreSQL server of the test's own: TLS only, on a free port of 127.0.0.1. Dropping it
/// stops it (`pg_ctl stop -m immediate` on its data directory; a `kill -9` of its postmaster
/// if that fails) and removes its directory.
struct PrivateServer {
    dir: PathBuf,
    port: u16,
    pid: Option<u32>,
}

impl PrivateServer {
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_str().unwrap().to_owned()
    }

    /// The server, or `None` (after saying why) where one cannot be started.
    fn start() -> Option<Self> {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if !root {
            return skip("the TLS test starts a PostgreSQL server as `postgres`: run it as root");
        }
        if !Path::new(PG_BIN).join("initdb").exists() {
            return skip(&format!("no PostgreSQL 15 server binaries in {PG_BIN}"));
        }
        if Command::new("openssl").arg("version").output().is_err() {
            return skip("no `openssl` to make the test's certificate");
        }
        let dir =
            std::env::temp_dir().join(format!("taskrow-tls-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir(&dir).unwrap();
        let mut server = PrivateServer {
            dir,
            port: 0,
            pid: None,
        };
        // The server's certificate, and another one that did not sign it.
        self_signed(
            &server.dir.join("server.crt"),
            &server.dir.join("server.key"),
        );
        self_signed(&server.dir.join("other.crt"), &server.dir.join("other.key"));
        run("chown", &["-R", "postgres:postgres", &server.path("")]);
        run("chmod", &["0600", &server.path("server.key")]);

        let data = server.data();
        let data = data.to_str().unwrap();
        as_postgres(
            "initdb",
            &["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        // TLS or nothing: a connection in plain text is refused.
        std::fs::write(
            server.data().join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        server.port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file={} \
             -c ssl_key_file={} -c fsync=off",
            server.port,
            server.path(""),
            server.path("server.crt"),
            server.path("server.key"),
        );
        let log = server.path("log");
        as_postgres(
            "pg_ctl",
            &[
                "-D", data, "-o", &options, "-l", &log, "-w", "-t", "60", "start",
            ],
        );
        let pid = std::fs::read_to_string(server.data().join("postmaster.pid")).unwrap();
        server.pid = pid.lines().next().and_then(|l| l.trim().parse().ok());
        Some(server)
    }

    /// A URL of the server's `postgres` database, with `params`.
    fn url(&self, params: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?{params}",
            self.port
        )
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(self.dir.join("log"))
        {
            eprintln!("the private server's log:\n{log}");
        }
        if let Some(pid) = self.pid {
            let data = self.data();
            let stopped = Command::new("runuser")
                .args(["-u", "postgres", "--", &format!("{PG_BIN}/pg_ctl"), "-D"])
                .arg(&data)
                .args(["-m", "immediate", "-w", "stop"])
                .output()
                .is_ok_and(|o| o.status.success());
            if !stopped {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn rows(db: &DatabaseConnection, sql: &str) -> Vec<sea_orm::QueryResult> {
    db.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap()
}

/// (application name, TLS) of every client connection of the server.
async fn connections(db: &DatabaseConnection) -> Vec<(String, bool)> {
    rows(
        db,
        "SELECT a.application_name AS app, s.ssl FROM pg_stat_activity a \
         JOIN pg_stat_ssl s ON s.pid = a.pid WHERE a.backend_type = 'client backend'",
    )
    .await
    .iter()
    .map(|r| {
        (
            r.try_get::<String>("", "app").unwrap(),
            r.try_get::<bool>("", "ssl").unwrap(),
        )
    })
    .collect()
}

/// Waits until `check` holds, checking every 20 ms, for at most `bound`.
async fn eventually<F, Fut>(what: &str, bound: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < bound, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_works_over_tls_only() {
    let Some(server) = PrivateServer::start() else {
        return;
    };
    let root_cert = server.path("server.crt");

    // Plain text is refused by the server, and a certificate not signed by the given root by
    // the client: what works below went through TLS, to this server.
    match PostgresStore::connect(&server.url("sslmode=disable")).await {
        Err(Error::Unreachable { source, .. }) => {
            let why = source.to_string();
            assert!(why.contains("no encryption"), "{why}");
        }
        other => panic!("plain text must be refused: {other:?}"),
    }
    let wrong_root = server.url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        server.path("other.crt")
    ));
    assert!(
        matches!(
            PostgresStore::connect(&wrong_root).await,
            Err(Error::Unreachable { .. })
        ),
        "a certificate not signed by the root must be refused"
    );

    let url = server.url(&format!("sslmode=verify-full&sslrootcert={root_cert}"));
    let store = PostgresStore::connect_and_migrate(&url).await.unwrap();
    let db = store.connection().clone();
    let mine = rows(
        &db,
        "SELECT s.ssl, s.version FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()",
    )
    .await;
    assert!(mine[0].try_get::<bool>("", "ssl").unwrap());
    println!(
        "connected with {}",
        mine[0].try_get::<String>("", "version").unwrap()
    );

    let client = Client::builder(store.clone()).build().unwrap();
    let worker = client.worker().start().unwrap();
    client
        .enqueue(
            &Greet {
                to: "TLS".to_owned(),
            },
            EnqueueOptions::new().code("over-tls"),
        )
        .await
        .unwrap();
    eventually("the task to run", Duration::from_secs(10), || {
        let store = &store;
        async move {
            !store
                .logs(&LogFilter::code("over-tls"))
                .await
                .unwrap()
                .is_empty()
        }
    })
    .await;

    // The worker's wake-ups listen on a connection of their own, with the pool's options.
    eventually("the listener connects", Duration::from_secs(10), || {
        let db = &db;
        async move {
            connections(db)
                .await
                .iter()
                .any(|(app, _)| app == taskrow_postgres::APPLICATION_NAME)
        }
    })
    .await;
    let all = connections(&db).await;
    assert!(all.len() >= 2, "{all:?}");
    assert!(
        all.iter().all(|(_, ssl)| *ssl),
        "every connection over TLS: {all:?}"
    );

    worker.shutdown().await;
    drop(client);
    drop(store);
    let _ = db.close().await;
    drop(server);
}
