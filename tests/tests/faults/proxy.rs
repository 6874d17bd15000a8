//! A TCP forwarder the test controls: the database "disappears" when it is cut (every
//! connection through it is closed and the port stops listening, so new connections are
//! refused) and "comes back" when it is restored (the same port listens again). The shared
//! MariaDB and PostgreSQL servers themselves are never touched.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A forwarder from `127.0.0.1:<port>` to an upstream address.
pub struct Proxy {
    /// The port it listens on.
    pub port: u16,
    up: watch::Sender<bool>,
    accepted: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = TcpSocket::new_v4()?;
    s.set_reuseaddr(true)?;
    s.bind(addr)?;
    s.listen(1024)
}

impl Proxy {
    /// Starts forwarding to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> Proxy {
        let first = listen(SocketAddr::from(([127, 0, 0, 1], 0))).expect("cannot listen");
        let addr = first.local_addr().expect("a bound address");
        let (up, rx) = watch::channel(true);
        let accepted = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(serve(first, addr, upstream, rx, accepted.clone()));
        Proxy {
            port: addr.port(),
            up,
            accepted,
            task,
        }
    }

    /// Cuts every connection and refuses new ones.
    pub fn cut(&self) {
        let _ = self.up.send(false);
    }

    /// Listens and forwards again.
    pub fn restore(&self) {
        let _ = self.up.send(true);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

async fn serve(
    first: TcpListener,
    addr: SocketAddr,
    upstream: String,
    mut up: watch::Receiver<bool>,
    accepted: Arc<AtomicU64>,
) {
    let mut listener = Some(first);
    loop {
        let l = match listener.take() {
            Some(l) => l,
            None => loop {
                // The port was ours a moment ago; retry briefly if the kernel is slow to free it.
                match listen(addr) {
                    Ok(l) => break l,
                    Err(e) => {
                        eprintln!("proxy: cannot listen on {addr} again yet: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            },
        };
        let mut down = up.clone();
        loop {
            tokio::select! {
                r = l.accept() => {
                    if let Ok((client, _)) = r {
                        accepted.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(pipe(client, upstream.clone(), up.clone()));
                    }
                }
                _ = down.wait_for(|u| !*u) => break,
            }
        }
        drop(l);
        if up.wait_for(|u| *u).await.is_err() {
            return;
        }
    }
}

async fn pipe(mut client: TcpStream, upstream: String, mut up: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = up.wait_for(|u| !*u) => {}
    }
    // Dropping both ends closes them: the client sees its connection die mid-conversation,
    // the server sees its client go (and rolls back any open transaction).
}

/// `host:port` of a `mysql://user:pass@host:port/db` or `postgres://…` URL (port 3306 or
/// 5432 when not given).
pub fn upstream_of(url: &str) -> String {
    let authority = authority(url);
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.contains(':') {
        hostport.to_owned()
    } else if url.to_ascii_lowercase().starts_with("postgres") {
        format!("{hostport}:5432")
    } else {
        format!("{hostport}:3306")
    }
}

/// `url` asking for a connection without TLS where the driver could otherwise negotiate it
/// (PostgreSQL's `sslmode=disable`): a proxy that reads the protocol must see it in clear.
/// Other URLs are returned as they are.
pub fn in_clear(url: &str) -> String {
    if !url.to_ascii_lowercase().starts_with("postgres") || url.contains("sslmode=") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}sslmode=disable")
}

/// `url` with its host and port replaced by `127.0.0.1:<port>`.
pub fn through(url: &str, port: u16) -> String {
    let authority = authority(url);
    let start = url
        .find(authority)
        .expect("the authority is part of the URL");
    let userinfo = authority
        .rsplit_once('@')
        .map_or(String::new(), |(u, _)| format!("{u}@"));
    format!(
        "{}{userinfo}127.0.0.1:{port}{}",
        &url[..start],
        &url[start + authority.len()..]
    )
}

fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    &rest[..end]
}
