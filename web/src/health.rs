//! `GET /health`: a health check for an orchestrator (a load balancer, a Kubernetes probe).
//!
//! 200 with the report as JSON when healthy, 503 with the same JSON (its `reason` says what
//! failed) otherwise. Healthy means: the database answers, its schema is the one this version
//! of taskrow knows, the client's clock can be trusted, and — when asked — a worker is alive:
//!
//! - `?worker=ID`: that worker's registry row is alive (beaten within its last three beat
//!   intervals);
//! - `?max_age=SECS`: the last beat (of `worker`, or of some worker) is at most SECS seconds
//!   old.
//!
//! It sits behind whatever guards the router (the standalone server's token: send
//! `Authorization: Bearer <token>`).

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use taskrow::HealthCheck;

use crate::Shared;

/// The query: both optional.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct HealthQuery {
    #[serde(default)]
    worker: Option<String>,
    #[serde(default)]
    max_age: Option<String>,
}

pub(crate) async fn health(State(s): State<Shared>, Query(q): Query<HealthQuery>) -> Response {
    let mut check = HealthCheck::new();
    if let Some(id) = q.worker.filter(|w| !w.is_empty()) {
        check = check.worker(id);
    }
    if let Some(text) = q.max_age.filter(|m| !m.is_empty()) {
        match text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        {
            Some(age) => {
                check = check.max_age(age);
            }
            _ => {
                let body = serde_json::json!({
                    "healthy": false,
                    "reason": format!("max_age must be a number of seconds, not {text:?}"),
                });
                return json(StatusCode::BAD_REQUEST, &body);
            }
        }
    }
    let report = s.client.health(&check).await;
    let status = if report.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, &report)
}

fn json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let text = serde_json::to_string(body)
        .unwrap_or_else(|e| format!("{{\"healthy\":false,\"reason\":\"cannot write JSON: {e}\"}}"));
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        text,
    )
        .into_response()
}
