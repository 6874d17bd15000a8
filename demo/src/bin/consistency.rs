//! Seed 000's scenario: an inbound confirmation finishes a document row and must publish an MQ
//! message. Both are written in one transaction (the document update and the task carrying the
//! publish); the task is dispatched right after commit. The stand-in publisher fails its first
//! two calls, so the worker retries it; at the end the document and the message agree.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use taskrow::serde::{Deserialize, Serialize};
use taskrow::typetag;
use taskrow::{
    Client, EnqueueOptions, LogFilter, RetryPolicy, Task, TaskContext, TaskError, TaskStore,
    async_trait,
};
use taskrow_sql::Dispatched;
use taskrow_sql::sea_orm::ConnectionTrait;

/// Stands in for the MQ client: records what it published; fails its first two calls.
#[derive(Debug, Default)]
struct Publisher {
    calls: AtomicU32,
    published: Mutex<Vec<String>>,
}

impl Publisher {
    fn publish(&self, topic: &str, body: &str) -> Result<(), std::io::Error> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= 2 {
            return Err(std::io::Error::other(format!(
                "broker unreachable (call {n})"
            )));
        }
        self.published
            .lock()
            .expect("not poisoned")
            .push(format!("{topic}: {body}"));
        Ok(())
    }
}

/// The side effect of finishing an inbound document: tell the warehouse system.
#[derive(Serialize, Deserialize)]
#[serde(crate = "taskrow::serde")]
struct PublishInboundFinished {
    document_id: i64,
}

#[typetag::serde(name = "wes.inbound_finished.publish")]
#[async_trait]
impl Task for PublishInboundFinished {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        let body = format!(
            r#"{{"documentId":{},"state":"finished"}}"#,
            self.document_id
        );
        // The task's code is the message key: consumers deduplicate on it.
        ctx.data::<Publisher>()?
            .publish("wes.inbound.finished", &body)?;
        println!(
            "  published for document {} on attempt {}",
            self.document_id,
            ctx.attempt()
        );
        Ok(())
    }
}

async fn document_state(store: &taskrow_sqlite::SqliteStore, id: i64) -> String {
    let db = store.connection();
    let row = db
        .query_one_raw(taskrow_sql::sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!("SELECT state FROM inbound_document WHERE id = {id}"),
        ))
        .await
        .expect("query")
        .expect("the document exists");
    row.try_get("", "state").expect("a state")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    taskrow_demo::init_tracing();
    let (url, path) = taskrow_demo::demo_database("taskrow-consistency")?;
    let store = taskrow_sqlite::connect_and_migrate(&url).await?;
    println!("seed 000 scenario on SQLite file {}", path.display());
    store
        .connection()
        .execute_unprepared(
            "CREATE TABLE inbound_document (id BIGINT PRIMARY KEY, state VARCHAR(20) NOT NULL);
             INSERT INTO inbound_document (id, state) VALUES (7001, 'receiving');",
        )
        .await?;

    let publisher = std::sync::Arc::new(Publisher::default());
    let client = Client::builder(store.clone())
        .data_arc(publisher.clone())
        .id("app-caller")
        .build()?;
    let worker = client
        .worker()
        .id("worker-1")
        .poll_interval(Duration::from_millis(50))
        .start()?;

    println!("inbound confirmation for document 7001: one transaction for both writes");
    let mut tx = store.begin_with_tasks(&client).await?;
    tx.execute_unprepared("UPDATE inbound_document SET state = 'finished' WHERE id = 7001")
        .await?;
    let options = EnqueueOptions::new()
        .code("inbound-finished-7001")
        .biz_type("wes")
        .unlimited_attempts() // a consistency task runs until it succeeds
        .retry(RetryPolicy::fixed(Duration::from_millis(300)));
    tx.enqueue(&PublishInboundFinished { document_id: 7001 }, options)
        .await?;
    let committed = tx.commit().await?;
    println!("  committed: document finished, publish task stored");

    for d in committed.dispatch().await {
        if let Dispatched::Ran(report) = d {
            println!(
                "  immediate run (awaited): {}{}",
                report.outcome,
                report.error.map(|e| format!(" — {e}")).unwrap_or_default()
            );
        }
    }

    println!("the worker retries until the broker takes it …");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !client.store().counts().await?.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err("the publish task did not finish in 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.shutdown().await;

    println!("\nend state:");
    println!("  document 7001: {}", document_state(&store, 7001).await);
    println!(
        "  messages published: {:?}",
        publisher.published.lock().expect("not poisoned")
    );
    println!("  task log:");
    for l in client
        .store()
        .logs(&LogFilter::code("inbound-finished-7001"))
        .await?
    {
        println!(
            "    attempt {} {:<10} by {:<10} {}",
            l.attempt,
            l.outcome.as_str(),
            l.worker,
            l.error.unwrap_or_default()
        );
    }
    Ok(())
}
