//! The standalone server behind `taskrow serve`: the dashboard on its own port, guarded by
//! what an application would otherwise provide.
//!
//! - It listens on loopback unless told otherwise; any other address requires a token
//!   ([`Config::token`]), and it refuses to start without one.
//! - The `Host` header must name the listen address (or `localhost` on loopback) or one of
//!   [`Config::host_names`]: a page on another site that re-points its own name at this
//!   address (DNS rebinding) is refused.
//! - With a token, a request must carry it: `Authorization: Bearer <token>`, or the cookie
//!   that opening any page once with `?token=<token>` sets.
//!
//! ```no_run
//! # async fn demo(client: taskrow::Client) -> Result<(), taskrow_web::standalone::ServeError> {
//! use taskrow_web::standalone::{Config, Server};
//! let server = Server::bind(client, Config::new("127.0.0.1:8080".parse().unwrap())).await?;
//! println!("dashboard on http://{}", server.local_addr());
//! server.serve(std::future::pending()).await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use taskrow::Client;

use crate::security::{CSP, same_secret};
use crate::{Dashboard, RunNow};

/// The cookie that carries the token once a browser has shown it.
const TOKEN_COOKIE: &str = "taskrow_token";

/// How the standalone server listens and whom it lets in.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// Where to listen (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// The secret every request must carry; required unless `listen` is a loopback address.
    pub token: Option<String>,
    /// Names the `Host` header may carry besides the listen address (a reverse proxy's or a
    /// DNS name; with or without a port).
    pub host_names: Vec<String>,
    /// Hide every action and refuse every POST.
    pub read_only: bool,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("host_names", &self.host_names)
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new(SocketAddr::from(([127, 0, 0, 1], 8080)))
    }
}

impl Config {
    /// Listen on `listen`, no token, no extra host name, actions shown.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            token: None,
            host_names: Vec::new(),
            read_only: false,
        }
    }
    /// The token every request must carry.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
    /// Another name the `Host` header may carry.
    pub fn host_name(mut self, name: impl Into<String>) -> Self {
        self.host_names.push(name.into());
        self
    }
    /// Read-only mode.
    pub fn read_only(mut self, yes: bool) -> Self {
        self.read_only = yes;
        self
    }

    /// The settings' own faults, before anything listens.
    fn check(&self) -> Result<(), ServeError> {
        if let Some(t) = &self.token
            && (t.len() < 16
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')))
        {
            return Err(ServeError::Config(
                "the token must be at least 16 characters of letters, digits, `-`, `_`, `.` or \
                 `~` (it travels in a URL and a cookie): use a long random one, e.g. \
                 `openssl rand -hex 24`"
                    .into(),
            ));
        }
        if !self.listen.ip().is_loopback() && self.token.is_none() {
            return Err(ServeError::Config(format!(
                "{} is not a loopback address: anyone who can reach it could act on your tasks. \
                 Pass --token (a long random secret) to listen there, or listen on 127.0.0.1",
                self.listen
            )));
        }
        if self.listen.ip().is_unspecified() && self.host_names.is_empty() {
            return Err(ServeError::Config(format!(
                "listening on {} (every address) needs --host-name with the name or address \
                 browsers will use, so that the Host header can be checked",
                self.listen
            )));
        }
        Ok(())
    }
}

/// Why the server could not start or stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// The settings are unsafe or inconsistent; the message says what to change.
    Config(String),
    /// Binding or serving failed.
    Io(std::io::Error),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(m) => f.write_str(m),
            Self::Io(e) => write!(f, "the dashboard's listener failed: {e}"),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Config(_) => None,
        }
    }
}

/// A bound standalone dashboard, ready to serve.
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
    app: Router,
    addr: SocketAddr,
}

/// Who may come in: the allowed `Host` values and the token.
#[derive(Debug)]
struct Gate {
    hosts: Vec<String>,
    names: Vec<String>,
    token: Option<String>,
}

impl Server {
    /// Checks `config` and binds its address (port 0 picks a free one); "run now" resets the
    /// task and wakes workers ([`RunNow::ResetAndWake`]), as this process has no task types.
    pub async fn bind(client: Client, config: Config) -> Result<Self, ServeError> {
        Self::bind_with(client, config, RunNow::ResetAndWake).await
    }

    /// [`Server::bind`] with the given run-now mode (a binary that links the task types can
    /// run them in process).
    pub async fn bind_with(
        client: Client,
        config: Config,
        run_now: RunNow,
    ) -> Result<Self, ServeError> {
        config.check()?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(ServeError::Io)?;
        let addr = listener.local_addr().map_err(ServeError::Io)?;
        let mut hosts = vec![addr.to_string()];
        if addr.ip().is_loopback() {
            hosts.push(format!("localhost:{}", addr.port()));
            hosts.push(format!("127.0.0.1:{}", addr.port()));
            hosts.push(format!("[::1]:{}", addr.port()));
        }
        let gate = Arc::new(Gate {
            hosts,
            names: config
                .host_names
                .iter()
                .map(|n| n.to_ascii_lowercase())
                .collect(),
            token: config.token.clone(),
        });
        let dashboard = Dashboard::new(client)
            .read_only(config.read_only)
            .run_now(run_now)
            .router();
        let app = dashboard.layer(axum::middleware::from_fn(move |req, next| {
            let gate = gate.clone();
            async move { guard(&gate, req, next).await }
        }));
        Ok(Self {
            listener,
            app,
            addr,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        axum::serve(self.listener, self.app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServeError::Io)
    }
}

/// The Host check, then the token.
async fn guard(gate: &Gate, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !gate.host_allowed(&host) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "This taskrow dashboard does not answer to this Host name. Open it by the address it \
             listens on, or start it with --host-name for the name you use.",
        );
    }
    let Some(token) = &gate.token else {
        return next.run(req).await;
    };
    if let Some(given) = query_token(req.uri().query())
        && same_secret(&given, token)
    {
        // Set the cookie and drop the token from the address bar (and from history).
        // Never `//host…`: that would send the browser to another site.
        let path = match req.uri().path() {
            p if p.starts_with("//") => "/".to_owned(),
            p => p.to_owned(),
        };
        let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
        let mut res = (StatusCode::SEE_OTHER, [(header::LOCATION, path)]).into_response();
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().insert(header::SET_COOKIE, v);
        }
        return res;
    }
    if carries_token(req.headers(), token) {
        return next.run(req).await;
    }
    refuse(
        StatusCode::UNAUTHORIZED,
        "This taskrow dashboard needs its token: open it once as /?token=<token> (a cookie keeps \
         it), or send `Authorization: Bearer <token>`.",
    )
}

impl Gate {
    fn host_allowed(&self, host: &str) -> bool {
        if self.hosts.iter().any(|h| h == host) {
            return true;
        }
        let name = match host.rsplit_once(':') {
            Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                name
            }
            _ => host,
        };
        self.names.iter().any(|n| n == host || n == name)
    }
}

fn query_token(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(str::to_owned)
}

fn carries_token(headers: &HeaderMap, token: &str) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| same_secret(t.trim(), token));
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(TOKEN_COOKIE)?.strip_prefix('='))
        .any(|t| same_secret(t, token));
    bearer || cookie
}

fn refuse(status: StatusCode, message: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        message,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(names: &[&str]) -> Gate {
        Gate {
            hosts: vec!["127.0.0.1:8080".into(), "localhost:8080".into()],
            names: names.iter().map(|n| n.to_string()).collect(),
            token: None,
        }
    }

    #[test]
    fn host_names_and_listen_address_pass() {
        let g = gate(&["tasks.example.com"]);
        assert!(g.host_allowed("127.0.0.1:8080"));
        assert!(g.host_allowed("localhost:8080"));
        assert!(g.host_allowed("tasks.example.com"));
        assert!(g.host_allowed("tasks.example.com:443"));
        assert!(!g.host_allowed("evil.example:8080"));
        assert!(!g.host_allowed("127.0.0.1:9090"));
        assert!(!g.host_allowed(""));
    }

    #[test]
    fn unsafe_configs_refuse_to_start() {
        let open = Config::new("0.0.0.0:8080".parse().unwrap());
        assert!(
            matches!(open.clone().check(), Err(ServeError::Config(m)) if m.contains("--token"))
        );
        let with_token = open.token("0123456789abcdef0123");
        assert!(
            matches!(with_token.clone().check(), Err(ServeError::Config(m)) if m.contains("--host-name"))
        );
        assert!(with_token.host_name("tasks.example.com").check().is_ok());
        let lan = Config::new("192.168.1.5:8080".parse().unwrap());
        assert!(lan.clone().check().is_err());
        assert!(lan.clone().token("short").check().is_err());
        assert!(lan.clone().token("0123456789abcdef;0123").check().is_err());
        assert!(lan.token("0123456789abcdef0123").check().is_ok());
        assert!(Config::default().check().is_ok());
    }

    #[test]
    fn token_from_bearer_or_cookie() {
        let mut h = HeaderMap::new();
        assert!(!carries_token(&h, "secret"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer secret"),
        );
        assert!(carries_token(&h, "secret"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; taskrow_token=secret"),
        );
        assert!(carries_token(&h, "secret"));
        assert!(!carries_token(&h, "other"));
    }
}
