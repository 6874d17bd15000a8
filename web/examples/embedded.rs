//! An application that nests the taskrow dashboard under `/admin/taskrow`, behind its own
//! login (HTTP basic auth here, `admin` / `admin`), with a worker running its task types in
//! the same process — so the dashboard's "run now" runs a task right here.
//!
//! ```sh
//! cargo run -p taskrow-web --example embedded            # SQLite file taskrow-embedded.db
//! cargo run -p taskrow-web --example embedded -- sqlite://other.db?mode=rwc
//! ```
//! Then open <http://127.0.0.1:3000/admin/taskrow> and log in as admin / admin.

use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde::{Deserialize, Serialize};
use taskrow::typetag;
use taskrow::{Client, EnqueueOptions, RetryPolicy, Task, TaskContext, TaskError};

/// Sends a welcome mail (succeeds).
#[derive(Debug, Serialize, Deserialize)]
struct WelcomeMail {
    user_id: i64,
}

#[typetag::serde(name = "example.welcome_mail")]
#[taskrow::async_trait]
impl Task for WelcomeMail {
    async fn run(&self, _ctx: &TaskContext) -> Result<(), TaskError> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(())
    }
}

/// Charges an order at a gateway that is down (fails, retries, fails for good).
#[derive(Debug, Serialize, Deserialize)]
struct ChargeOrder {
    order_id: i64,
    cents: u64,
}

#[typetag::serde(name = "example.charge_order")]
#[taskrow::async_trait]
impl Task for ChargeOrder {
    async fn run(&self, _ctx: &TaskContext) -> Result<(), TaskError> {
        Err(TaskError::msg(format!(
            "payment gateway unavailable (order {})",
            self.order_id
        )))
    }
}

/// The application's own guard: every dashboard request needs the admin's login.
async fn admin_only(req: Request, next: Next) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("admin:admin")
    );
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if given == Some(expected.as_str()) {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"admin\"")],
        "log in as an administrator",
    )
        .into_response()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sqlite://taskrow-embedded.db?mode=rwc".to_owned());
    let store = taskrow_sqlite::connect_and_migrate(&url).await?;
    let client = Client::new(store);

    for user_id in 1..=3 {
        client
            .enqueue(&WelcomeMail { user_id }, EnqueueOptions::new())
            .await?;
    }
    client
        .enqueue(
            &ChargeOrder {
                order_id: 42,
                cents: 1999,
            },
            EnqueueOptions::new()
                .biz_type("payment")
                .max_attempts(2)
                .retry(RetryPolicy::fixed(Duration::from_secs(5))),
        )
        .await?;
    let worker = client.worker().concurrency(4).start()?;

    let app = Router::new()
        .route(
            "/",
            get(|| async { Html("<p><a href=\"/admin/taskrow\">Task dashboard</a></p>") }),
        )
        .nest(
            "/admin/taskrow",
            taskrow_web::router(client.clone()).layer(middleware::from_fn(admin_only)),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!(
        "open http://{}/admin/taskrow (admin / admin); Ctrl-C stops",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    worker.shutdown().await;
    Ok(())
}
