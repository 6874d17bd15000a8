//! `taskrow serve` end to end: the stock binary serves the dashboard on loopback, and refuses
//! an address off loopback without a token.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};

fn taskrow(url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_taskrow"));
    c.env_remove("TASKROW_DATABASE_URL")
        .env_remove("TASKROW_WEB_TOKEN")
        .arg("--database-url")
        .arg(url);
    c
}

fn migrated_sqlite() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tasks.db").display());
    let out = taskrow(&url).args(["migrate", "up"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    (url, dir)
}

fn get(addr: SocketAddr, host: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn serves_the_dashboard_on_loopback() {
    let (url, _dir) = migrated_sqlite();
    let mut child = taskrow(&url)
        .args(["serve", "--listen", "127.0.0.1:0", "--read-only"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in `{line}`"));
    assert!(line.contains("read-only"), "{line}");
    let page = get(addr, &addr.to_string());
    let refused = get(addr, "rebound.example");
    child.kill().unwrap();
    let _ = child.wait();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<title>Overview · taskrow</title>"), "{page}");
    assert!(
        page.to_ascii_lowercase()
            .contains("content-security-policy: default-src 'none'")
    );
    assert!(refused.starts_with("HTTP/1.1 421"), "{refused}");
}

#[test]
fn refuses_an_open_address_without_a_token() {
    let (url, _dir) = migrated_sqlite();
    let out = taskrow(&url)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: cannot serve the dashboard: 0.0.0.0:0 is not a loopback address")
            && err.contains("--token"),
        "{err}"
    );
    let out = taskrow(&url)
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--token",
            "0123456789abcdef0123",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--host-name"), "{err}");
}
