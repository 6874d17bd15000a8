//! A TCP forwarder to MariaDB that understands just enough of the MySQL protocol to lose the
//! reply to a `COMMIT`: it forwards the `COMMIT` to the server, reads the server's answer (so
//! the transaction is known committed) and closes the client's connection instead of passing
//! the answer on. The client sees its connection die with the outcome unknown: the case a
//! retried finish must recognise as its own earlier success.
//!
//! What it reads: a packet is a 3-byte little-endian payload length, a 1-byte sequence number
//! and the payload. A client command starts a new exchange (sequence 0); its first byte says
//! which: `COM_QUERY` (0x03, then the SQL text; sqlx sends `BEGIN`, `COMMIT` and `ROLLBACK`
//! this way), `COM_STMT_PREPARE` (0x16, then the SQL text; the server's first answer packet,
//! sequence 1, carries the statement id after a 0x00), `COM_STMT_EXECUTE` (0x17, then the
//! statement id), `COM_STMT_CLOSE` (0x19, then the id). The client waits for each answer
//! before its next command, so the next server packet with sequence 1 answers the last one.
//!
//! Only the commits of *result writes* are touched: transactions that inserted into the log
//! table (`taskrow_task_log`), as `TaskStore::finish` does (and a claim that settles a lost
//! worker's run, which these scenarios do not provoke). Claims and heartbeats pass.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
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

/// The forwarder. Dropped, it stops accepting; connections open through it go on.
pub struct CommitProxy {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    counts: Arc<Counts>,
    task: JoinHandle<()>,
}

impl CommitProxy {
    /// Starts forwarding to `upstream` (`host:port`), losing no reply until armed.
    pub async fn start(upstream: String) -> CommitProxy {
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
                tokio::spawn(connection(client, upstream.clone(), c.clone()));
            }
        });
        CommitProxy { port, counts, task }
    }

    /// From now on, lose the reply of every `every`-th result commit, up to `limit` in all.
    pub fn arm(&self, every: u64, limit: u64) {
        let mut p = self.counts.plan.lock().unwrap_or_else(|p| p.into_inner());
        *p = Plan { every, limit };
        self.counts.result_commits.store(0, Ordering::SeqCst);
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
