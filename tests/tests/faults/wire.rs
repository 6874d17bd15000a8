//! A TCP forwarder to MariaDB or PostgreSQL that understands just enough of the wire protocol
//! to lose the reply to a `COMMIT`: it forwards the `COMMIT` to the server, reads the server's
//! answer (so the transaction is known committed) and closes the client's connection instead
//! of passing the answer on. The client sees its connection die with the outcome unknown: the
//! case a retried finish must recognise as its own earlier success.
//!
//! **MySQL.** What it reads: a packet is a 3-byte little-endian payload length, a 1-byte sequence
//! number and the payload. A client command starts a new exchange (sequence 0); its first byte says
//! which: `COM_QUERY` (0x03, then the SQL text; sqlx sends `BEGIN`, `COMMIT` and `ROLLBACK` this
//! way), `COM_STMT_PREPARE` (0x16, then the SQL text; the server's first answer packet, sequence 1,
//! carries the statement id after a 0x00), `COM_STMT_EXECUTE` (0x17, then the statement id),
//! `COM_STMT_CLOSE` (0x19, then the id). The client waits for each answer before its next
//! command, so the next server packet with sequence 1 answers the last one.
//!
//! **PostgreSQL** (see `pg_connection`). A client message is a 1-byte type and a 4-byte
//! big-endian length (counting itself) and the body; the first one has no type byte (the
//! startup message, or an `SSLRequest` answered by one byte; the URL says `sslmode=disable`, so
//! the conversation stays in clear). sqlx sends `BEGIN`, `COMMIT` and `ROLLBACK` as simple
//! queries (`Q`, the SQL text) and statements with values through the extended protocol:
//! `Parse` (`P`: statement name, SQL text; once per statement and connection, the name reused
//! afterwards), `Bind` (`B`: portal, statement name, values), `Execute`, `Close`, `Sync`
//! (`S`). Every `Q` and every `S` (and the startup) is answered by exactly one
//! `ReadyForQuery` (`Z`) at the end of its reply, in order: so the proxy numbers them, and
//! when it forwards a `COMMIT` (a `Q`, or the `S` after a `Bind` of a statement parsed from
//! `COMMIT`) whose answer is to be lost, it knows which `Z` ends that answer. It withholds every
//! server message from there to that `Z` (`CommandComplete` says `COMMIT`, or `ROLLBACK` for
//! a transaction that had failed) and then closes the client's connection.
//!
//! Only the commits of *result writes* are touched: transactions that inserted into the log
//! table (`taskrow_task_log`), as `TaskStore::finish` does (and a claim that settles a lost
//! worker's run, which these scenarios do not provoke). Claims and heartbeats pass.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const COM_QUERY: u8 = 0x03;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;
const COM_STMT_CLOSE: u8 = 0x19;

/// Which result commits lose their reply.
#[derive(Debug, Default)]
struct Plan {
    /// Lose the reply of every `every`-th result commit (0: none).
    every: u64,
    /// Up to this many.
    limit: u64,
}

#[derive(Debug, Default)]
struct Counts {
    plan: Mutex<Plan>,
    accepted: AtomicU64,
    commits: AtomicU64,
    result_commits: AtomicU64,
    dropped: AtomicU64,
    /// Lost answers that were OK packets (the transaction committed).
    lost_ok: AtomicU64,
    /// PostgreSQL: `COMMIT`s sent through the extended protocol (`Parse`/`Bind`/`Sync`) rather
    /// than as a simple query.
    extended_commits: AtomicU64,
}

impl Counts {
    /// Whether the reply of this result commit (the `n`-th, from 1) is to be lost; counts it.
    fn drop_this(&self, n: u64) -> bool {
        let plan = self.plan.lock().unwrap_or_else(|p| p.into_inner());
        if plan.every == 0 || !n.is_multiple_of(plan.every) {
            return false;
        }
        // Under the plan's lock: concurrent connections never go past the limit.
        if self.dropped.load(Ordering::SeqCst) >= plan.limit {
            return false;
        }
        self.dropped.fetch_add(1, Ordering::SeqCst);
        true
    }
}

/// The wire protocol a [`CommitProxy`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Mysql,
    Postgres,
}

/// The forwarder. Dropped, it stops accepting; connections open through it go on.
pub struct CommitProxy {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    counts: Arc<Counts>,
    task: JoinHandle<()>,
}

impl CommitProxy {
    /// Starts forwarding to `upstream` (`host:port`, speaking `wire`), losing no reply until
    /// armed.
    pub async fn start(upstream: String, wire: Wire) -> CommitProxy {
        let l = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("cannot listen");
        let port = l.local_addr().expect("a bound address").port();
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = l.accept().await else {
                    continue;
                };
                c.accepted.fetch_add(1, Ordering::Relaxed);
                match wire {
                    Wire::Mysql => {
                        tokio::spawn(connection(client, upstream.clone(), c.clone()));
                    }
                    Wire::Postgres => {
                        tokio::spawn(pg_connection(client, upstream.clone(), c.clone()));
                    }
                }
            }
        });
        CommitProxy { port, counts, task }
    }

    /// From now on, lose the reply of every `every`-th result commit, up to `limit` in all.
    /// The counts start afresh.
    pub fn arm(&self, every: u64, limit: u64) {
        let mut p = self.counts.plan.lock().unwrap_or_else(|p| p.into_inner());
        *p = Plan { every, limit };
        for c in [
            &self.counts.commits,
            &self.counts.result_commits,
            &self.counts.dropped,
            &self.counts.lost_ok,
            &self.counts.extended_commits,
        ] {
            c.store(0, Ordering::SeqCst);
        }
    }

    /// PostgreSQL: `COMMIT`s seen in the extended protocol's messages.
    pub fn extended_commits(&self) -> u64 {
        self.counts.extended_commits.load(Ordering::SeqCst)
    }

    /// Replies lost so far.
    pub fn dropped(&self) -> u64 {
        self.counts.dropped.load(Ordering::SeqCst)
    }

    /// Of those, replies that said the commit succeeded.
    pub fn dropped_committed(&self) -> u64 {
        self.counts.lost_ok.load(Ordering::SeqCst)
    }

    /// `COMMIT`s seen, all kinds.
    pub fn commits(&self) -> u64 {
        self.counts.commits.load(Ordering::SeqCst)
    }

    /// Result commits (transactions that wrote log rows) seen since armed.
    pub fn result_commits(&self) -> u64 {
        self.counts.result_commits.load(Ordering::SeqCst)
    }

    /// Connections accepted.
    pub fn accepted(&self) -> u64 {
        self.counts.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for CommitProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One client connection's view of its session.
#[derive(Debug, Default)]
struct Session {
    /// Prepared statement id → whether it inserts into the log table.
    statements: HashMap<u32, bool>,
    /// A `COM_STMT_PREPARE` waiting for its answer: whether it inserts into the log table.
    preparing: Option<bool>,
    /// The open transaction wrote log rows.
    writes_results: bool,
    /// Lose the answer to the command just sent (a `COMMIT`) and close the connection.
    lose_answer: bool,
}

fn inserts_log(sql: &str) -> bool {
    let s = sql.to_ascii_lowercase();
    s.trim_start().starts_with("insert") && s.contains("taskrow_task_log")
}

/// Reads one packet, header included.
async fn packet<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut head = [0u8; 4];
    r.read_exact(&mut head).await?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&head);
    buf.resize(4 + len, 0);
    r.read_exact(&mut buf[4..]).await?;
    Ok(buf)
}

async fn connection(client: TcpStream, upstream: String, counts: Arc<Counts>) {
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let session = Arc::new(Mutex::new(Session::default()));
    tokio::select! {
        _ = to_server(BufReader::new(cr), sw, session.clone(), counts.clone()) => {}
        _ = to_client(BufReader::new(sr), cw, session, counts) => {}
    }
    // Both halves of both sockets drop here: the client sees its connection closed.
}

/// Client → server: every packet forwarded; commands looked at.
async fn to_server<R, W>(
    mut from: R,
    mut to: W,
    session: Arc<Mutex<Session>>,
    counts: Arc<Counts>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        let p = packet(&mut from).await?;
        let (seq, body) = (p[3], &p[4..]);
        if seq == 0 && !body.is_empty() {
            let mut s = session.lock().unwrap_or_else(|p| p.into_inner());
            match body[0] {
                COM_QUERY => {
                    let sql = String::from_utf8_lossy(&body[1..]);
                    let word = sql
                        .trim_start()
                        .split(|c: char| !c.is_ascii_alphabetic())
                        .next()
                        .unwrap_or("")
                        .to_ascii_uppercase();
                    match word.as_str() {
                        "COMMIT" => {
                            counts.commits.fetch_add(1, Ordering::SeqCst);
                            if std::mem::take(&mut s.writes_results) {
                                let n = counts.result_commits.fetch_add(1, Ordering::SeqCst) + 1;
                                s.lose_answer = counts.drop_this(n);
                            }
                        }
                        "BEGIN" | "START" | "ROLLBACK" => s.writes_results = false,
                        _ => {
                            if inserts_log(&sql) {
                                s.writes_results = true;
                            }
                        }
                    }
                }
                COM_STMT_PREPARE => {
                    s.preparing = Some(inserts_log(&String::from_utf8_lossy(&body[1..])));
                }
                COM_STMT_EXECUTE if body.len() >= 5 => {
                    let id = u32::from_le_bytes([body[1], body[2], body[3], body[4]]);
                    if s.statements.get(&id).copied().unwrap_or(false) {
                        s.writes_results = true;
                    }
                }
                COM_STMT_CLOSE if body.len() >= 5 => {
                    let id = u32::from_le_bytes([body[1], body[2], body[3], body[4]]);
                    s.statements.remove(&id);
                }
                _ => {}
            }
        }
        to.write_all(&p).await?;
    }
}

/// Server → client: every packet forwarded, except the answer to a `COMMIT` whose answer is
/// to be lost: then the connection ends (the caller closes it).
async fn to_client<R, W>(
    mut from: R,
    mut to: W,
    session: Arc<Mutex<Session>>,
    counts: Arc<Counts>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        let p = packet(&mut from).await?;
        if p[3] == 1 && p.len() > 4 {
            let mut s = session.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(log) = s.preparing.take()
                && p[4] == 0x00
                && p.len() >= 9
            {
                let id = u32::from_le_bytes([p[5], p[6], p[7], p[8]]);
                s.statements.insert(id, log);
            }
            if std::mem::take(&mut s.lose_answer) {
                // The server has answered the COMMIT (0x00: OK, committed); the client never
                // hears of it.
                if p[4] == 0x00 {
                    counts.lost_ok.fetch_add(1, Ordering::SeqCst);
                }
                return Ok(());
            }
        }
        to.write_all(&p).await?;
    }
}

// ---- PostgreSQL ----------------------------------------------------------------------------

/// `SSLRequest`'s and `GSSENCRequest`'s codes, in place of a startup message's protocol version.
const PG_SSL_REQUEST: u32 = 80_877_103;
const PG_GSSENC_REQUEST: u32 = 80_877_104;

/// What a statement (a simple query's, or a parsed one's) is, for the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PgKind {
    /// `BEGIN`, `START TRANSACTION`, `ROLLBACK`: a transaction starts or ends without a commit.
    Boundary,
    /// `COMMIT` (or `END`).
    Commit,
    /// An `INSERT` into the log table.
    InsertsLog,
    Other,
}

fn pg_kind(sql: &str) -> PgKind {
    let word = sql
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    match word.as_str() {
        "COMMIT" | "END" => PgKind::Commit,
        "BEGIN" | "START" | "ROLLBACK" | "ABORT" => PgKind::Boundary,
        _ if inserts_log(sql) => PgKind::InsertsLog,
        _ => PgKind::Other,
    }
}

/// One PostgreSQL client connection's view of its session.
#[derive(Debug, Default)]
struct PgSession {
    /// Parsed statements by name (`""`: the unnamed one).
    statements: HashMap<String, PgKind>,
    /// The open transaction wrote log rows.
    writes_results: bool,
    /// A `Bind` of a `COMMIT` statement waits for its `Sync`.
    commit_bound: bool,
    /// `Q`s and `S`s forwarded (the startup counts as one): each gets one `ReadyForQuery`.
    syncs_sent: u64,
    /// `ReadyForQuery` messages seen from the server.
    ready_seen: u64,
    /// The number of the `ReadyForQuery` that ends the answer to lose (a `COMMIT`'s).
    lose_at: Option<u64>,
}

impl PgSession {
    /// A `COMMIT` goes to the server now: if its transaction wrote results, count it, and mark
    /// its answer to be lost if the plan says so.
    fn commit_sent(&mut self, counts: &Counts) {
        counts.commits.fetch_add(1, Ordering::SeqCst);
        if std::mem::take(&mut self.writes_results) {
            let n = counts.result_commits.fetch_add(1, Ordering::SeqCst) + 1;
            if counts.drop_this(n) {
                self.lose_at = Some(self.syncs_sent);
            }
        }
    }
}

/// A message's body as a C string (up to its NUL) and the rest after it.
fn cstr(body: &[u8]) -> (String, &[u8]) {
    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    let s = String::from_utf8_lossy(&body[..end]).into_owned();
    (s, body.get(end + 1..).unwrap_or(&[]))
}

/// Reads one typed message: its type, and the whole message as sent (type and length
/// included).
async fn pg_message<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len < 4 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a PostgreSQL message of length {len}"),
        ));
    }
    let mut buf = Vec::with_capacity(1 + len);
    buf.extend_from_slice(&head);
    buf.resize(1 + len, 0);
    r.read_exact(&mut buf[5..]).await?;
    Ok((head[0], buf))
}

/// Reads one untyped message (a startup message or a request before it): its code and the
/// whole message.
async fn pg_untyped<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<(u32, Vec<u8>)> {
    let mut head = [0u8; 8];
    r.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if !(8..=10_000).contains(&len) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a PostgreSQL startup message of length {len}"),
        ));
    }
    let code = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    let mut buf = Vec::with_capacity(len);
    buf.extend_from_slice(&head);
    buf.resize(len, 0);
    r.read_exact(&mut buf[8..]).await?;
    Ok((code, buf))
}

async fn pg_connection(client: TcpStream, upstream: String, counts: Arc<Counts>) {
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, mut cw) = client.into_split();
    let (sr, mut sw) = server.into_split();
    let (mut cr, mut sr) = (BufReader::new(cr), BufReader::new(sr));
    // The untyped start: requests for encryption (answered by one byte), then the startup
    // message (or a cancel request, which ends the connection).
    loop {
        let Ok((code, m)) = pg_untyped(&mut cr).await else {
            return;
        };
        if sw.write_all(&m).await.is_err() {
            return;
        }
        if code == PG_SSL_REQUEST || code == PG_GSSENC_REQUEST {
            let mut answer = [0u8; 1];
            if sr.read_exact(&mut answer).await.is_err() || cw.write_all(&answer).await.is_err() {
                return;
            }
            if answer[0] != b'N' {
                // Encrypted from here: nothing to read, only forward.
                blind(cr, cw, sr, sw).await;
                return;
            }
            continue;
        }
        if code >> 16 != 3 {
            // A cancel request, or a protocol this proxy does not know.
            blind(cr, cw, sr, sw).await;
            return;
        }
        break;
    }
    let session = Arc::new(Mutex::new(PgSession {
        syncs_sent: 1,
        ..PgSession::default()
    }));
    tokio::select! {
        _ = pg_to_server(cr, sw, session.clone(), counts.clone()) => {}
        _ = pg_to_client(sr, cw, session, counts) => {}
    }
    // Both halves of both sockets drop here: the client sees its connection closed.
}

/// Forwards both ways without reading.
async fn blind(
    cr: BufReader<OwnedReadHalf>,
    cw: OwnedWriteHalf,
    sr: BufReader<OwnedReadHalf>,
    sw: OwnedWriteHalf,
) {
    let (mut cr, mut cw, mut sr, mut sw) = (cr, cw, sr, sw);
    tokio::select! {
        _ = tokio::io::copy(&mut cr, &mut sw) => {}
        _ = tokio::io::copy(&mut sr, &mut cw) => {}
    }
}

/// Client → server: every message forwarded; queries, parses, binds and syncs looked at.
async fn pg_to_server<R, W>(
    mut from: R,
    mut to: W,
    session: Arc<Mutex<PgSession>>,
    counts: Arc<Counts>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        let (kind, m) = pg_message(&mut from).await?;
        let body = &m[5..];
        {
            let mut s = session.lock().unwrap_or_else(|p| p.into_inner());
            match kind {
                b'Q' => {
                    s.syncs_sent += 1;
                    let (sql, _) = cstr(body);
                    match pg_kind(&sql) {
                        PgKind::Commit => s.commit_sent(&counts),
                        PgKind::Boundary => s.writes_results = false,
                        PgKind::InsertsLog => s.writes_results = true,
                        PgKind::Other => {}
                    }
                }
                b'P' => {
                    let (name, rest) = cstr(body);
                    let (sql, _) = cstr(rest);
                    s.statements.insert(name, pg_kind(&sql));
                }
                b'B' => {
                    let (_portal, rest) = cstr(body);
                    let (name, _) = cstr(rest);
                    match s.statements.get(&name).copied().unwrap_or(PgKind::Other) {
                        PgKind::Commit => s.commit_bound = true,
                        PgKind::Boundary => s.writes_results = false,
                        PgKind::InsertsLog => s.writes_results = true,
                        PgKind::Other => {}
                    }
                }
                b'C' if body.first() == Some(&b'S') => {
                    let (name, _) = cstr(&body[1..]);
                    s.statements.remove(&name);
                }
                b'S' => {
                    s.syncs_sent += 1;
                    if std::mem::take(&mut s.commit_bound) {
                        counts.extended_commits.fetch_add(1, Ordering::SeqCst);
                        s.commit_sent(&counts);
                    }
                }
                _ => {}
            }
        }
        to.write_all(&m).await?;
    }
}

/// Server → client: every message forwarded, except the answer to a `COMMIT` whose answer is
/// to be lost: those messages are read up to its `ReadyForQuery` and then the connection ends
/// (the caller closes it).
async fn pg_to_client<R, W>(
    mut from: R,
    mut to: W,
    session: Arc<Mutex<PgSession>>,
    counts: Arc<Counts>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // The `CommandComplete` tag of the answer being withheld.
    let mut tag = String::new();
    loop {
        let (kind, m) = pg_message(&mut from).await?;
        let withhold = {
            let mut s = session.lock().unwrap_or_else(|p| p.into_inner());
            let this_answer = s.ready_seen + 1;
            if kind == b'Z' {
                s.ready_seen += 1;
            }
            s.lose_at == Some(this_answer)
        };
        if withhold {
            match kind {
                b'C' => tag = cstr(&m[5..]).0,
                b'Z' => {
                    // The server has answered the COMMIT; the client never hears of it.
                    if tag == "COMMIT" {
                        counts.lost_ok.fetch_add(1, Ordering::SeqCst);
                    }
                    return Ok(());
                }
                _ => {}
            }
            continue;
        }
        to.write_all(&m).await?;
    }
}
