//! An operator binary of your own: taskrow's commands with your task types compiled in, so
//! that `run` can execute them, and the data their handlers need registered.
//!
//! ```sh
//! export TASKROW_DATABASE_URL=sqlite://tasks.db
//! cargo run -p taskrow-cli --example ops -- migrate up
//! cargo run -p taskrow-cli --example ops -- seed      # this example's own extra command
//! cargo run -p taskrow-cli --example ops -- list --state failed
//! cargo run -p taskrow-cli --example ops -- run order-sync-10002
//! ```
//!
//! In an application, the task types live in the application's crate: link it with
//! `use my_app as _;` and register the same services the workers get.

use std::process::ExitCode;
use std::time::Duration;

use taskrow::serde::{Deserialize, Serialize};
use taskrow::typetag;
use taskrow::{Client, EnqueueOptions, Task, TaskContext, TaskError, async_trait};

/// The service the order task calls; `up: false` plays an outage.
#[derive(Debug)]
struct OrderService {
    up: bool,
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
        let orders = ctx.data::<OrderService>()?;
        if !orders.up {
            return Err(TaskError::msg(format!(
                "order service unavailable (HTTP 503) syncing order {}",
                self.order_id
            )));
        }
        println!("synced order {} for {}", self.order_id, self.operator);
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(crate = "taskrow::serde")]
struct SendMail {
    to: String,
    template: String,
}

#[typetag::serde(name = "mail.send")]
#[async_trait]
impl Task for SendMail {
    async fn run(&self, _ctx: &TaskContext) -> Result<(), TaskError> {
        if !self.to.contains('@') {
            return Err(TaskError::permanent(std::io::Error::other(format!(
                "invalid recipient `{}`",
                self.to
            ))));
        }
        Ok(())
    }
}

/// Enqueues a few tasks and runs some of them while the order service is down, so that the
/// database has pending, failed and succeeded tasks to look at.
async fn seed() -> taskrow::Result<()> {
    let url = std::env::var("TASKROW_DATABASE_URL")
        .map_err(|_| taskrow::Error::Config("set TASKROW_DATABASE_URL".into()))?;
    let store = taskrow_cli::connect(&url).await?;
    let client = Client::builder(store)
        .data(OrderService { up: false })
        .build()
        .unwrap();
    let order = |id: i64| SyncOrder {
        order_id: id,
        operator: "admin".into(),
    };
    let opts = |code: &str| EnqueueOptions::new().code(code).biz_type("order");
    client
        .enqueue(&order(10001), opts("order-sync-10001"))
        .await?;
    client
        .enqueue(&order(10002), opts("order-sync-10002").max_attempts(2))
        .await?;
    client.run_now("order-sync-10002").await?;
    client.run_now("order-sync-10002").await?;
    client
        .enqueue(&order(10003), opts("order-sync-10003"))
        .await?;
    client.run_now("order-sync-10003").await?;
    let mail = |to: &str| SendMail {
        to: to.into(),
        template: "welcome".into(),
    };
    let opts = |code: &str| EnqueueOptions::new().code(code).biz_type("mail");
    client
        .enqueue(
            &mail("tom@example.com"),
            opts("mail-welcome-7").delay(Duration::from_secs(3600)),
        )
        .await?;
    client
        .enqueue(&mail("tom at example"), opts("mail-welcome-8"))
        .await?;
    client.run_now("mail-welcome-8").await?;
    client
        .enqueue(
            &mail("ann@example.com"),
            opts("mail-receipt-9").keep_on_success(),
        )
        .await?;
    client.run_now("mail-receipt-9").await?;
    println!("seeded 6 tasks");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("seed") {
        return match seed().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    taskrow_cli::run_cli(std::env::args_os(), |client| {
        // Called only for `run`: the order service is back up.
        client.data(OrderService { up: true })
    })
    .await
}
