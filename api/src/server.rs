//! Serving the API: start-up, the router, graceful shutdown.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use drover_coordination::ZkSettings;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use tracing::{info, warn};

use crate::config::{redact_url, ApiConfig};
use crate::coordinator::Coordinator;
use crate::error::Error;
use crate::extract::refuse_query;
use crate::handlers::{admin, code, control, executor, jobs, logs, ops, outputs, requests};
use crate::listener::{serve_connections, Limits};
use crate::metrics::{self, Metrics};
use crate::reconcile::Reconciler;
use crate::startup::{StartError, StartResult};
use crate::state::AppState;
use crate::store::Store;
use crate::tokens::Tokens;

/// How often histogram buffers are drained between scrapes.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Binds `config.listen` and serves until `shutdown` is cancelled.
///
/// # Errors
/// [`StartError::InvalidConfig`], [`StartError::Bind`], and as [`serve`].
///
/// # Cancellation safety
/// Cancel `shutdown` rather than dropping the future: requests in flight then finish,
/// and the database and ZooKeeper session close in order.
pub async fn run(
    config: ApiConfig,
    zk: ZkSettings,
    shutdown: CancellationToken,
) -> StartResult<()> {
    config.validate()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    serve(listener, config, zk, shutdown).await
}

/// Serves the API on `listener` until `shutdown` is cancelled.
///
/// Opens and migrates the database first; ZooKeeper is connected in the background
/// (submits made while it is unreachable are committed with `enqueued = false`).
/// Tests bind `127.0.0.1:0` themselves and read the port from the listener.
///
/// At most `api.max_connections` connections are served at once; slow clients are cut
/// off after `api.header_timeout` (request head) and `api.body_timeout` (body, 408).
///
/// # Errors
/// [`StartError::InvalidConfig`] for bad settings, [`StartError::DatabaseOpen`] and
/// [`StartError::Migrate`] at start-up, [`StartError::Serve`] if the listener has no address.
pub async fn serve(
    listener: TcpListener,
    config: ApiConfig,
    zk: ZkSettings,
    shutdown: CancellationToken,
) -> StartResult<()> {
    config.validate()?;
    zk.validate().map_err(|err| StartError::InvalidConfig {
        key: "zookeeper".into(),
        reason: err.to_string(),
    })?;
    if config.auth_disabled() {
        warn!(listen = %config.listen, "no api.tokens configured: every caller acts as admin (loopback only)");
    }
    let artifacts = crate::artifacts::Artifacts::open(&config.artifacts, &config.database_url)?;
    let store = Store::open(&config).await?;
    let background = shutdown.child_token();
    let tracker = TaskTracker::new();
    let coordinator = Coordinator::start(
        zk,
        config.queue_path.clone(),
        config.enqueue_timeout,
        &tracker,
        background.clone(),
    );
    let metrics = Metrics::new()?;
    tracker.spawn(upkeep(metrics.clone(), background.clone()));
    if let Some(ready) = store.take_ready() {
        tracker.spawn(crate::enqueuer::run(
            store.clone(),
            coordinator.clone(),
            ready,
            background.clone(),
        ));
    }
    let state = AppState {
        store: store.clone(),
        artifacts,
        tokens: Arc::new(Tokens::new(&config.tokens)),
        config: Arc::new(config),
        zk: coordinator,
        metrics,
        reconciler: Arc::new(Reconciler::default()),
        shutdown: shutdown.clone(),
    };
    let local = listener.local_addr().map_err(StartError::Serve)?;
    info!(addr = %local, database = %redact_url(&state.config.database_url), "api listening");
    let limits = Limits {
        header_timeout: state.config.header_timeout,
        max_connections: state.config.max_connections,
    };
    serve_connections(listener, router(state), limits, shutdown.clone()).await;
    info!("api stopped accepting requests; closing zookeeper session and database");
    background.cancel();
    tracker.close();
    tracker.wait().await;
    store.close().await;
    info!("api stopped");
    Ok(())
}

/// Every route, wrapped in body limit, metrics, panic catching and tracing. Routes
/// that read a query string refuse unknown parameters themselves; every other route
/// refuses any (`extract::refuse_query`).
fn router(state: AppState) -> Router {
    let with_query = Router::new()
        .route("/v1/jobs", get(jobs::list))
        .route("/v1/requests", get(requests::list))
        .route("/v1/jobs/{id}/logs", get(logs::read))
        .route(
            "/v1/jobs/{id}/outputs/{*path}",
            put(outputs::upload).get(outputs::download),
        )
        .route("/v1/jobs/{id}/inputs", get(outputs::inputs))
        .route("/v1/jobs/{id}/sources", get(outputs::sources));
    let without_query = Router::new()
        .route("/v1/jobs", post(jobs::submit))
        .route("/v1/requests", post(requests::submit))
        .route("/v1/requests/{id}", get(requests::get))
        .route("/v1/requests/{id}/cancel", post(requests::cancel))
        .route("/v1/jobs/{id}", get(jobs::get))
        .route("/v1/resolve/{fragment}", get(jobs::resolve))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/v1/jobs/{id}/kill", post(jobs::kill))
        .route("/v1/jobs/{id}/cleanup", post(control::cleanup))
        .route("/v1/jobs/{id}/attempts", get(logs::attempts))
        .route("/v1/jobs/{id}/retry", post(jobs::retry))
        .route("/v1/jobs/{id}/logs", post(executor::append_logs))
        .route("/v1/jobs/{id}/claim", post(executor::claim))
        .route("/v1/jobs/{id}/heartbeat", post(executor::heartbeat))
        .route("/v1/jobs/{id}/finish", post(executor::finish))
        .route("/v1/jobs/{id}/outputs", get(outputs::list))
        .route("/v1/workspaces/{name}/outputs", get(outputs::workspace))
        .route("/v1/code/{sha256}", put(code::upload).get(code::download))
        .route("/v1/jobs/{id}/release", post(executor::release))
        .route("/v1/executors", get(ops::executors))
        .route("/v1/executors/{id}/drain", post(control::drain))
        .route("/v1/executors/{id}/undrain", post(control::undrain))
        .route("/v1/control", get(control::orders))
        .route("/v1/control/pause", post(control::pause))
        .route("/v1/control/resume", post(control::resume))
        .route("/v1/distributions", get(admin::distributions))
        .route("/v1/admin/reconcile", post(admin::reconcile))
        .route("/v1/admin/cleanup", post(admin::cleanup))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics));
    #[cfg(feature = "openapi")]
    let without_query = without_query.route("/openapi.json", get(crate::openapi::serve));
    without_query
        .route_layer(from_fn(refuse_query))
        .merge(with_query)
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(from_fn_with_state(state.metrics.clone(), metrics::track))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// A handler panicked: a 500 with an `ApiError` body; the process goes on.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a handler panicked");
    Error::Internal(detail.to_owned()).into_response()
}

async fn upkeep(metrics: Metrics, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(METRICS_UPKEEP) => metrics.upkeep(),
        }
    }
}
