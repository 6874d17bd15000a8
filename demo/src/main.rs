//! The seeds' tasks, run by a taskrow worker.
//!
//! Seed 003 inserts three jobs for `orderTaskService`: `noParamTask()`,
//! `syncOrder(10001, "admin")` and `createOrder(OrderDTO{20001, "Tom", 199.99})`. Here they are
//! typed tasks; a fourth one fails twice before it succeeds, to show retries and the log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use taskrow::serde::{Deserialize, Serialize};
use taskrow::typetag;
use taskrow::{
    Client, EnqueueOptions, LogFilter, RetryPolicy, Task, TaskContext, TaskError, TaskStore,
    async_trait,
};

/// The seeds' `orderTaskService` bean: handlers reach it through the context.
#[derive(Debug, Default)]
struct OrderTaskService {
    calls: Mutex<HashMap<String, u32>>,
}

impl OrderTaskService {
    fn no_param_task(&self) {
        println!("  [orderTaskService] noParamTask: done");
    }
    fn sync_order(&self, order_id: i64, operator: &str) {
        println!("  [orderTaskService] syncOrder: orderId={order_id}, operator={operator}");
    }
    fn create_order(&self, dto: &OrderDto) {
        println!(
            "  [orderTaskService] createOrder: orderId={}, userName={}, amount={}",
            dto.order_id, dto.user_name, dto.amount
        );
    }
    /// Fails the first two calls for a key, as a flaky downstream would.
    fn flaky_call(&self, key: &str) -> Result<u32, String> {
        let mut calls = self.calls.lock().expect("not poisoned");
        let n = calls.entry(key.to_owned()).or_default();
        *n += 1;
        if *n <= 2 {
            Err(format!("downstream unavailable (call {n})"))
        } else {
            Ok(*n)
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(crate = "taskrow::serde")]
struct NoParam {}

#[typetag::serde(name = "order.no_param")]
#[async_trait]
impl Task for NoParam {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        ctx.data::<OrderTaskService>()?.no_param_task();
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(crate = "taskrow::serde")]
struct SyncOrder {
    order_id: i64,
    operator: String,
}

#[typetag::serde(name = "order.sync")]
#[async_trait]
impl Task for SyncOrder {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        ctx.data::<OrderTaskService>()?
            .sync_order(self.order_id, &self.operator);
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(crate = "taskrow::serde", rename_all = "camelCase")]
struct OrderDto {
    order_id: i64,
    user_name: String,
    amount: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(crate = "taskrow::serde")]
struct CreateOrder {
    dto: OrderDto,
}

#[typetag::serde(name = "order.create")]
#[async_trait]
impl Task for CreateOrder {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        ctx.data::<OrderTaskService>()?.create_order(&self.dto);
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(crate = "taskrow::serde")]
struct NotifyWarehouse {
    order_id: i64,
}

#[typetag::serde(name = "order.notify_warehouse")]
#[async_trait]
impl Task for NotifyWarehouse {
    async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        let svc = ctx.data::<OrderTaskService>()?;
        match svc.flaky_call(ctx.code()) {
            Ok(n) => {
                println!(
                    "  [warehouse] order {} notified on call {n} (attempt {})",
                    self.order_id,
                    ctx.attempt()
                );
                Ok(())
            }
            Err(e) => {
                println!("  [warehouse] attempt {} failed: {e}", ctx.attempt());
                Err(TaskError::msg(e))
            }
        }
    }
}

async fn wait_until_empty(store: &dyn TaskStore) -> taskrow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = store.counts().await?;
        if left.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(taskrow::Error::InvalidInput(format!(
                "tasks left after 30 s: {left:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    taskrow_demo::init_tracing();
    #[cfg(feature = "prometheus")]
    let metrics = prometheus::serve()?;

    let (url, path) = taskrow_demo::demo_database("taskrow-demo")?;
    let store = taskrow_sqlite::connect_and_migrate(&url).await?;
    println!(
        "taskrow demo: SQLite file {} (WAL), migrated",
        path.display()
    );
    let client = Client::builder(store)
        .data(OrderTaskService::default())
        .build()?;

    let quick = RetryPolicy::fixed(Duration::from_millis(300));
    let order = |code: &str, name: &str| {
        EnqueueOptions::new()
            .code(code)
            .name(name)
            .biz_type("order")
            .max_attempts(3) // seed 003: max_retry_count 2
            .retry(quick)
    };
    client
        .enqueue(&NoParam {}, order("no_param_job", "no-parameter test task"))
        .await?;
    client
        .enqueue(
            &SyncOrder {
                order_id: 10001,
                operator: "admin".into(),
            },
            order("sync_order_job", "sync order"),
        )
        .await?;
    client
        .enqueue(
            &CreateOrder {
                dto: OrderDto {
                    order_id: 20001,
                    user_name: "Tom".into(),
                    amount: 199.99,
                },
            },
            order("create_order_job", "create order"),
        )
        .await?;
    client
        .enqueue(
            &NotifyWarehouse { order_id: 20001 },
            order("notify_warehouse_job", "notify the warehouse (fails twice)"),
        )
        .await?;
    println!("enqueued 4 tasks; starting a worker\n");

    let worker = client
        .worker()
        .concurrency(4)
        .poll_interval(Duration::from_millis(100))
        .start()?;
    wait_until_empty(client.store().as_ref()).await?;
    worker.shutdown().await;

    println!("\nall tasks succeeded and were deleted; the log keeps every run:");
    println!(
        "{:<22} {:<24} {:>7} {:<10} {:>6}  error",
        "code", "type", "attempt", "outcome", "ms"
    );
    for log in client.store().logs(&LogFilter::default()).await? {
        println!(
            "{:<22} {:<24} {:>7} {:<10} {:>6}  {}",
            log.code,
            log.task_type,
            log.attempt,
            log.outcome,
            if log.duration_ms == 0 {
                "<1".to_owned()
            } else {
                log.duration_ms.to_string()
            },
            log.error.unwrap_or_default()
        );
    }
    println!("\ninspect it: cargo run -q -p taskrow-cli -- --database-url '{url}' stats");
    #[cfg(feature = "prometheus")]
    prometheus::print(&metrics);
    Ok(())
}

/// `--features prometheus`: taskrow's metrics for Prometheus, served while the demo runs.
#[cfg(feature = "prometheus")]
mod prometheus {
    use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

    /// Where the demo serves `/metrics`; `TASKROW_DEMO_METRICS` overrides it.
    const ADDR: &str = "127.0.0.1:9898";

    /// Installs the Prometheus recorder and its HTTP listener on the current runtime.
    pub fn serve() -> Result<PrometheusHandle, Box<dyn std::error::Error>> {
        let addr: std::net::SocketAddr = std::env::var("TASKROW_DEMO_METRICS")
            .unwrap_or_else(|_| ADDR.to_owned())
            .parse()?;
        let (recorder, exporter) = PrometheusBuilder::new().with_http_listener(addr).build()?;
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder)?;
        tokio::spawn(async move {
            if let Err(e) = exporter.await {
                eprintln!("the metrics listener stopped: {e:?}");
            }
        });
        println!("taskrow demo: metrics for Prometheus at http://{addr}/metrics");
        Ok(handle)
    }

    /// Prints taskrow's counters as Prometheus would scrape them.
    pub fn print(handle: &PrometheusHandle) {
        println!("\ntaskrow's counters, as Prometheus scrapes them:");
        for line in handle.render().lines() {
            if line.starts_with("taskrow_") && line.contains("_total") {
                println!("  {line}");
            }
        }
    }
}
