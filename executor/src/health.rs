//! The executor's HTTP listener (`executor.metrics_listen`): Prometheus metrics and the
//! probes an orchestrator needs.
//!
//! - `GET /healthz` — 200 while the process runs (liveness).
//! - `GET /readyz` — 200 when attached to ZooKeeper (session up, registered in
//!   `/executors`) and not draining; otherwise 503 with the reason (readiness: a
//!   rolling update waits for it before moving to the next node).
//! - `GET /metrics` — Prometheus text.

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use drover_coordination::Queue;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::Error;

/// What `/readyz` looks at.
#[derive(Debug, Clone)]
pub(crate) struct Readiness {
    /// `Some` while attached to ZooKeeper and registered.
    pub(crate) queue: watch::Receiver<Option<Queue>>,
    /// Cancelled once the drain began.
    pub(crate) drain: CancellationToken,
}

impl Readiness {
    /// Whether the executor takes jobs, and if not, why.
    fn check(&self) -> Result<(), &'static str> {
        if self.drain.is_cancelled() {
            Err("draining: taking no new jobs")
        } else if self.queue.borrow().is_none() {
            Err("not attached to ZooKeeper (connecting, or the session was lost)")
        } else {
            Ok(())
        }
    }
}

#[derive(Debug, Clone)]
struct AppState {
    metrics: PrometheusHandle,
    readiness: Readiness,
}

/// Binds `addr` and serves until `stop`.
///
/// # Errors
/// [`Error::Metrics`] when the address cannot be bound.
pub(crate) async fn start(
    addr: SocketAddr,
    metrics: PrometheusHandle,
    readiness: Readiness,
    stop: CancellationToken,
) -> Result<(), Error> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        Error::Metrics(format!(
            "cannot listen on {addr} (executor.metrics_listen): {e}; choose another address, or set executor.metrics = false"
        ))
    })?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AppState { metrics, readiness });
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            warn!(error = %e, "the executor's HTTP listener stopped");
        }
    });
    Ok(())
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.readiness.check() {
        Ok(()) => (StatusCode::OK, Json(json!({"ready": true}))),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": reason})),
        ),
    }
}

async fn metrics_text(State(state): State<AppState>) -> String {
    state.metrics.render()
}
