//! The unauthenticated HTTP listener (`--metrics-listen`): `/metrics`, `/healthz` and
//! `/readyz`, for Prometheus and the kubelet. Nothing about individual calls is served
//! here; the ledger and spend reads are on the authenticated API ([`super::api`]).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::exchange::{FailMode, Shared};

pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(shared)
}

async fn metrics(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

/// Ready when the store answers, or when failing open makes the store optional.
async fn ready(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    match tokio::time::timeout(Duration::from_millis(500), s.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready".to_string()),
        _ if s.opts.fail_mode == FailMode::Open => {
            (StatusCode::OK, "ready (store unreachable; failing open)".to_string())
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "store unreachable and failing closed".to_string(),
        ),
    }
}
