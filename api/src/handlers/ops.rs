//! Operations endpoints: health, readiness, metrics, executors, and the 404/405 answers.

use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode as HttpStatus, Uri};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use crate::auth::{Authorized, Read};
use crate::error::{Error, Result};
use crate::state::AppState;
#[cfg(feature = "openapi")]
use drover_model::ApiError;
use drover_model::ExecutorInfo;

/// How long readiness waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "the process runs"))))]
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, description = "the database answers"),
        (status = 503, description = "the database does not answer"))))]
pub(crate) async fn readyz(State(state): State<AppState>) -> (HttpStatus, Json<Value>) {
    let zookeeper = state.zk.status();
    let database = match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no answer within {READY_TIMEOUT:?}")),
    };
    match database {
        Ok(()) => (
            HttpStatus::OK,
            Json(json!({ "status": "ready", "database": "ok", "zookeeper": zookeeper })),
        ),
        Err(detail) => (
            HttpStatus::SERVICE_UNAVAILABLE,
            Json(json!({
                "error": "unavailable",
                "message": format!("the database does not answer: {detail}; check it is running and api.database_url"),
                "status": "not ready",
                "database": "unavailable",
                "zookeeper": zookeeper,
            })),
        ),
    }
}

/// `GET /metrics`
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"))))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse> {
    let jobs = state.store.count_by_state().await?;
    let text = state
        .metrics
        .render(&jobs, state.zk.status() == "connected");
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    ))
}

/// `GET /v1/executors`
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/v1/executors", tag = "jobs",
    responses((status = 200, body = Vec<ExecutorInfo>),
        (status = 503, description = "no ZooKeeper session", body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn executors(
    _auth: Authorized<Read>,
    State(state): State<AppState>,
) -> Result<Json<Vec<ExecutorInfo>>> {
    Ok(Json(state.zk.executors().await?))
}

/// Any path no route matches.
pub(crate) async fn not_found(method: Method, uri: Uri) -> Error {
    Error::RouteNotFound {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

/// A route that exists, with a method it does not take.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> Error {
    Error::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
