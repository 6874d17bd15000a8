//! A small WebDriver client: chromedriver's HTTP API spoken over a plain tokio `TcpStream`
//! (HTTP/1.1, one connection per command), and a raw HTTP helper for requests a browser cannot
//! forge (another Host header, a cross-site Origin).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// The element key of the W3C WebDriver protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Whether this run is in CI (`CI=true`), where a skipped browser test is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The Chromium and chromedriver binaries, or why there are none.
fn binaries() -> Result<(PathBuf, PathBuf), String> {
    let find = |names: &[&str]| -> Option<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
            .find(|p| p.is_file())
    };
    let chromium = find(&["chromium", "chromium-browser", "google-chrome"])
        .ok_or("no Chromium on PATH (Debian: apt-get install chromium chromium-driver)")?;
    let driver = find(&["chromedriver"])
        .ok_or("no chromedriver on PATH (Debian: apt-get install chromium-driver)")?;
    Ok((chromium, driver))
}

/// A raw HTTP/1.1 exchange: sends `request` and returns the status and the body (read by
/// its `Content-Length`, chunks, or to the end: chromedriver keeps the connection open even
/// when asked to close it).
pub async fn http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut chunk).await.expect("read");
        buf.extend_from_slice(&chunk[..n]);
        if n == 0 || complete(&buf) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if is_chunked(head) {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn is_chunked(head: &str) -> bool {
    head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    })
}

/// Whether `buf` holds a whole response.
fn complete(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let body = &buf[end + 4..];
    if is_chunked(&head) {
        return body.ends_with(b"0\r\n\r\n");
    }
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .is_some_and(|n| body.len() >= n)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// One browser: a chromedriver process and its session.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    shots: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium; `None` (after printing why) when they are
    /// not installed — a failure under `CI=true`.
    pub async fn start(shots: &Path) -> Option<Browser> {
        let (chromium, driver) = match binaries() {
            Ok(b) => b,
            Err(why) => {
                assert!(!in_ci(), "browser test skipped under CI=true: {why}");
                println!("skipped: {why}");
                return None;
            }
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(addr).await.is_ok() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut b = Browser {
            driver: child,
            addr,
            session: String::new(),
            shots: shots.to_owned(),
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000",
                         "--force-device-scale-factor=1"]
            }
        }}});
        let v = b.call("POST", "/session", Some(caps)).await;
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        std::fs::create_dir_all(shots).expect("screenshot directory");
        Some(b)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        let (status, text) = http(self.addr, &req).await;
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("chromedriver answered {status} with no JSON ({e}): {text}")
        });
        assert!(
            status == 200,
            "WebDriver {method} {path} failed with {status}: {}",
            v["value"]["message"]
        );
        v["value"].clone()
    }

    async fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body).await
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })))
            .await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.session_call("GET", "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Every element matching `css`.
    pub async fn find_all(&self, css: &str) -> Vec<String> {
        let v = self
            .session_call(
                "POST",
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        if std::env::var_os("WD_DEBUG").is_some() {
            eprintln!("find_all {css}: {v}");
        }
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The one element matching `css` (panics when there is none).
    pub async fn find(&self, css: &str) -> String {
        let all = self.find_all(css).await;
        if all.is_empty() {
            let text = self
                .exec("return document.documentElement.outerHTML;")
                .await;
            let text = text.as_str().unwrap_or_default();
            panic!(
                "no element matches `{css}` on {}; the page: {}",
                self.url().await,
                &text[..text.len().min(1500)]
            );
        }
        all[0].clone()
    }

    /// Clicks the element.
    pub async fn click(&self, el: &str) {
        self.session_call("POST", &format!("/element/{el}/click"), Some(json!({})))
            .await;
    }

    /// Clicks the element matching `css`.
    pub async fn click_css(&self, css: &str) {
        let el = self.find(css).await;
        self.click(&el).await;
    }

    /// Clicks the element matching `css` and waits until a new page has loaded.
    pub async fn click_to_page(&self, css: &str) {
        self.exec("window.__oldPage = true; return null;").await;
        self.click_css(css).await;
        self.wait_for(
            "return window.__oldPage === undefined && document.readyState === 'complete';",
            20,
            &format!("the page after clicking `{css}`"),
        )
        .await;
    }

    /// The element's rendered text.
    pub async fn text(&self, el: &str) -> String {
        self.session_call("GET", &format!("/element/{el}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The rendered text of the element matching `css`.
    pub async fn text_css(&self, css: &str) -> String {
        let el = self.find(css).await;
        self.text(&el).await
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub async fn exec(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Saves a screenshot of the viewport as `<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let v = self.session_call("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("base64 screenshot");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Waits until `script` returns `true`, or panics after `secs` seconds with `what`.
    pub async fn wait_for(&self, script: &str, secs: u64, what: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if self.exec(script).await == Value::Bool(true) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ends the session and chromedriver.
    pub async fn quit(mut self) {
        let path = format!("/session/{}", self.session);
        let _ = self.call("DELETE", &path, None).await;
        self.session.clear();
        let _ = self.driver.kill().await;
    }
}

impl Drop for Browser {
    /// A test that failed before [`Browser::quit`] still ends its session, or Chromium would
    /// outlive chromedriver (which `kill_on_drop` ends right after).
    fn drop(&mut self) {
        if self.session.is_empty() {
            return;
        }
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))
        else {
            return;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = std::io::Write::write_all(
            &mut s,
            format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\n\r\n",
                self.session, self.addr
            )
            .as_bytes(),
        );
        let mut buf = [0u8; 512];
        let _ = std::io::Read::read(&mut s, &mut buf);
    }
}
