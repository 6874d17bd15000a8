//! How long the dashboard's pages take on a large table: fills a SQLite file (WAL) with
//! `N` tasks (default 1,000,000; pass another number as the first argument) and times each page
//! over HTTP, the median of 5 requests. One task in 10 has biz type `rare`; one in 100 is due.
//!
//! ```sh
//! cargo run --release -p taskrow-web --example page_timing -- 1000000
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use taskrow::typetag;
use taskrow::{Client, EnqueueOptions, Task, TaskContext, TaskError};

#[derive(Debug, Serialize, Deserialize)]
struct Row {
    n: u64,
}

#[typetag::serde(name = "timing.row")]
#[taskrow::async_trait]
impl Task for Row {
    async fn run(&self, _ctx: &TaskContext) -> Result<(), TaskError> {
        Ok(())
    }
}

fn get(addr: SocketAddr, path: &str) -> (Duration, usize) {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(
        body.starts_with("HTTP/1.1 200"),
        "{path}: {}",
        &body[..200.min(body.len())]
    );
    (start.elapsed(), body.len())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("tasks.db").display()
    );
    let store = taskrow_sqlite::connect_and_migrate(&url).await?;
    let client = Client::new(store);
    let fill = Instant::now();
    let batch = 10_000;
    for start in (0..n).step_by(batch as usize) {
        let rows: Vec<Row> = (start..(start + batch).min(n)).map(|n| Row { n }).collect();
        client
            .enqueue_batch(rows.iter().map(|r| {
                (
                    r as &dyn Task,
                    EnqueueOptions::new()
                        .code(format!("row-{:07}", r.n))
                        .biz_type(if r.n % 10 == 0 { "rare" } else { "common" })
                        .delay(if r.n % 100 == 0 {
                            Duration::ZERO
                        } else {
                            Duration::from_secs(3600)
                        }),
                )
            }))
            .await?;
    }
    println!("{n} tasks stored in {:.1?}", fill.elapsed());

    let server = taskrow_web::standalone::Server::bind(
        client,
        taskrow_web::standalone::Config::new(SocketAddr::from(([127, 0, 0, 1], 0))),
    )
    .await?;
    let addr = server.local_addr();
    tokio::spawn(server.serve(std::future::pending()));
    let deep = n.saturating_sub(100);
    let pages = [
        "/".to_owned(),
        "/tasks".to_owned(),
        format!("/tasks?after={deep}"),
        "/tasks?biz=rare".to_owned(),
        format!("/tasks?biz=rare&after={}", n / 2),
        "/tasks?state=failed".to_owned(),
        format!("/tasks?prefix=row-{:07}", n / 2),
        "/tasks?due=1".to_owned(),
        "/failures".to_owned(),
        "/tasks/1".to_owned(),
    ];
    println!("{:<40} {:>10} {:>10}", "page", "median", "bytes");
    for p in &pages {
        let path = p.clone();
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..5 {
            let path = path.clone();
            let (t, b) = tokio::task::spawn_blocking(move || get(addr, &path)).await?;
            times.push(t);
            bytes = b;
        }
        times.sort();
        println!("{:<40} {:>10.1?} {:>10}", p, times[2], bytes);
    }
    Ok(())
}
