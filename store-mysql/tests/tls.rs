//! TLS to MariaDB with the `rustls` feature, against a private server started for the test with
//! a certificate signed by a CA of the test's own and `require_secure_transport=ON`: a login in
//! plain text is refused (and the error says TLS may be why), a certificate the given CA did
//! not sign is refused by the client, and the store connects with `ssl-mode=VERIFY_CA&ssl-ca=`,
//! migrates, enqueues and runs a task through a worker, on a connection whose `Ssl_cipher` is
//! set.
//!
//! Compiled with the feature only: `cargo test -p taskrow-mysql --features rustls --test tls`.
//! The private server needs MariaDB's `mariadb-install-db` and `/usr/sbin/mariadbd`, and
//! `openssl`; without them the test prints that it skips (and fails under `CI=true`). It never
//! touches the shared server: it kills only the process it started, and removes its directory.
#![cfg(feature = "rustls")]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use taskrow::serde::{Deserialize, Serialize};
use taskrow::{
    Client, EnqueueOptions, Error, LogFilter, Task, TaskContext, TaskError, TaskStore, async_trait,
    typetag,
};
use taskrow_mysql::MysqlStore;

/// Debian's MariaDB server.
const MARIADBD: &str = "/usr/sbin/mariadbd";

/// A task that only has to run.
#[derive(Debug, Serialize, Deserialize)]
#[serde(crate = "taskrow::serde")]
struct Greet {
    to: String,
}

#[typetag::serde(name = "taskrow_mysql_tls_test.greet")]
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

/// Whether `program` runs at all.
fn runs(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A CA of the test's own, `{name}-ca.crt` and `.key` in `dir`.
fn make_ca(dir: &Path, name: &str) {
    let key = dir.join(format!("{name}-ca.key"));
    let cert = dir.join(format!("{name}-ca.crt"));
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
            &format!("/CN=taskrow test CA {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ],
    );
}

/// The server's certificate for `localhost` and `127.0.0.1`, `server.crt` and `.key` in `dir`,
/// signed by the CA `{ca}-ca.crt` (not a CA itself: rustls refuses a CA certificate as a
/// server's).
fn make_server_cert(dir: &Path, ca: &str) {
    let path = |f: &str| dir.join(f).to_str().unwrap().to_owned();
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n\
         basicConstraints=critical,CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(
        "openssl",
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &path("server.key"),
            "-out",
            &path("server.csr"),
        ],
    );
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &path("server.csr"),
            "-CA",
            &path(&format!("{ca}-ca.crt")),
            "-CAkey",
            &path(&format!("{ca}-ca.key")),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &path("server.ext"),
            "-out",
            &path("server.crt"),
        ],
    );
}

/// A MariaDB server of the test's own: TLS only (`require_secure_transport=ON`), on a free
/// port of 127.0.0.1, root without a password. Dropping it kills the process it started (by
/// its pid, and only that one) and removes its directory.
struct PrivateServer {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl PrivateServer {
    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_str().unwrap().to_owned()
    }

    /// The server, or `None` (after saying why) where one cannot be started.
    fn start() -> Option<Self> {
        if !Path::new(MARIADBD).exists() || !runs("mariadb-install-db", "--help") {
            return skip(&format!(
                "no MariaDB server ({MARIADBD} and mariadb-install-db: apt-get install \
                 mariadb-server)"
            ));
        }
        if !runs("openssl", "version") {
            return skip("no `openssl` to make the test's certificates");
        }
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let dir = std::env::temp_dir().join(format!(
            "taskrow-mysql-tls-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir(&dir).unwrap();
        let mut server = PrivateServer {
            dir,
            port: 0,
            child: None,
        };
        // The CA that signs the server's certificate, and another one that did not.
        make_ca(&server.dir, "test");
        make_ca(&server.dir, "other");
        make_server_cert(&server.dir, "test");

        let datadir = format!("--datadir={}", server.path("data"));
        let mut install = vec![
            "--no-defaults",
            datadir.as_str(),
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ];
        if root {
            install.push("--user=root");
        }
        run("mariadb-install-db", &install);

        server.port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(server.dir.join("log")).unwrap();
        let mut command = Command::new(MARIADBD);
        command
            .arg("--no-defaults")
            .arg(&datadir)
            .arg(format!("--port={}", server.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", server.path("sock")))
            .arg(format!("--ssl-cert={}", server.path("server.crt")))
            .arg(format!("--ssl-key={}", server.path("server.key")))
            .arg(format!("--ssl-ca={}", server.path("test-ca.crt")))
            .arg("--require-secure-transport=ON")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if root {
            command.arg("--user=root");
        }
        server.child = Some(command.spawn().expect("cannot start mariadbd"));
        Some(server)
    }

    /// A URL of database `db` on the server (none if empty), with `params`.
    fn url(&self, db: &str, params: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{db}?{params}", self.port)
    }

    /// `ssl-mode=VERIFY_CA` with the CA that signed the server's certificate.
    fn verify_ca(&self) -> String {
        format!("ssl-mode=VERIFY_CA&ssl-ca={}", self.path("test-ca.crt"))
    }

    /// A connection over TLS to the server without a database, once it accepts one (within
    /// 60 s of its start).
    async fn admin(&mut self) -> DatabaseConnection {
        let url = self.url("", &self.verify_ca());
        let start = Instant::now();
        loop {
            match Database::connect(&url).await {
                Ok(db) => return db,
                Err(e) => {
                    let child = self.child.as_mut().unwrap();
                    if let Some(status) = child.try_wait().unwrap() {
                        panic!("mariadbd exited ({status}) before it accepted a connection");
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(60),
                        "mariadbd accepts no TLS connection within 60 s: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(self.dir.join("log"))
        {
            eprintln!("the private server's log:\n{log}");
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The value of `SHOW STATUS LIKE 'Ssl_cipher'` on one of `db`'s connections.
async fn ssl_cipher(db: &DatabaseConnection) -> String {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::MySql,
            "SHOW STATUS LIKE 'Ssl_cipher'",
        ))
        .await
        .unwrap();
    rows[0].try_get_by_index::<String>(1).unwrap()
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
    let Some(mut server) = PrivateServer::start() else {
        return;
    };
    let admin = server.admin().await;
    admin
        .execute_unprepared("CREATE DATABASE app")
        .await
        .unwrap();
    let _ = admin.close().await;

    // Plain text is refused by the server (MariaDB says "access denied", as for a wrong
    // password: the error says TLS may be why), and a certificate not signed by the given CA by
    // the client: what works below went through TLS, to this server.
    match MysqlStore::connect(&server.url("app", "ssl-mode=DISABLED")).await {
        Err(e @ Error::AccessDenied { .. }) => {
            let why = e.to_string();
            assert!(why.contains("require_secure_transport=ON"), "{why}");
            println!("plain text: {why}");
        }
        other => panic!("plain text must be refused: {other:?}"),
    }
    let wrong_ca = server.url(
        "app",
        &format!("ssl-mode=VERIFY_CA&ssl-ca={}", server.path("other-ca.crt")),
    );
    match MysqlStore::connect(&wrong_ca).await {
        Err(e @ Error::Unreachable { .. }) => println!("another CA: {e}"),
        other => panic!("a certificate not signed by the CA must be refused: {other:?}"),
    }
    // The certificate names 127.0.0.1: checking the host name passes too.
    let identity = server.url(
        "app",
        &format!(
            "ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
            server.path("test-ca.crt")
        ),
    );
    let store = MysqlStore::connect(&identity).await.unwrap();
    assert!(!ssl_cipher(store.connection()).await.is_empty());
    let _ = store.connection().clone().close().await;
    // `ssl-mode=PREFERRED`, the default, takes the TLS the server offers (unverified).
    let store = MysqlStore::connect(&server.url("app", "")).await.unwrap();
    assert!(!ssl_cipher(store.connection()).await.is_empty());
    let _ = store.connection().clone().close().await;

    let store = taskrow_mysql::connect_and_migrate(&server.url("app", &server.verify_ca()))
        .await
        .unwrap();
    let db = store.connection().clone();
    let cipher = ssl_cipher(&db).await;
    assert!(!cipher.is_empty(), "taskrow's connection is not over TLS");
    println!("connected with {cipher}");

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
    assert!(!ssl_cipher(&db).await.is_empty());

    worker.shutdown().await;
    drop(client);
    drop(store);
    let _ = db.close().await;
    drop(server);
}
