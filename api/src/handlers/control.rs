//! Operators' orders: pause and resume actions (or the cluster), drain and undrain an
//! executor. Written to ZooKeeper (`/control`), where executors watch them; admins only.

use std::time::{Duration, SystemTime};

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use tracing::info;

use crate::auth::{Admin, Authorized, Read};
use crate::error::{Error, Result};
use crate::extract::JsonBody;
use crate::state::AppState;
use crate::store::system_rfc3339;
#[cfg(feature = "openapi")]
use drover_model::ApiError;
use drover_model::{
    Cleaning, CleanupOrder, DrainOrder, DrainRequest, Orders, Pause, PauseRequest, Pauses,
};

use crate::extract::JobIdPath;

/// The longest drain deadline (one day).
const MAX_DEADLINE_MS: u64 = 86_400_000;
/// The drain deadline when the request does not say: the SIGTERM drain's default.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(120);
/// The longest pause reason, in bytes.
const MAX_REASON: usize = 500;

/// `GET /v1/control`
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/v1/control", tag = "admin",
    responses((status = 200, description = "pauses and drain orders in force", body = Orders),
        (status = 503, description = "no ZooKeeper session", body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn orders(
    _auth: Authorized<Read>,
    State(state): State<AppState>,
) -> Result<Json<Orders>> {
    Ok(Json(state.zk.orders().await?))
}

/// `POST /v1/control/pause`
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/v1/control/pause", tag = "admin",
    request_body = PauseRequest,
    responses((status = 200, description = "what is paused now", body = Pauses),
        (status = 503, description = "no ZooKeeper session", body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn pause(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<PauseRequest>,
) -> Result<Json<Pauses>> {
    check_actions(&body.actions)?;
    let reason = body
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if let Some(reason) = &reason {
        if reason.len() > MAX_REASON || reason.chars().any(char::is_control) {
            return Err(invalid(
                "reason",
                format!("must be at most {MAX_REASON} bytes on one line"),
            ));
        }
    }
    let pause = Pause {
        by: auth.caller.name.to_string(),
        since: system_rfc3339(SystemTime::now()),
        reason,
    };
    let pauses = state
        .zk
        .update_pauses(|pauses| {
            if body.actions.is_empty() {
                pauses.all.get_or_insert_with(|| pause.clone());
            }
            for action in &body.actions {
                pauses
                    .actions
                    .entry(action.clone())
                    .or_insert_with(|| pause.clone());
            }
        })
        .await?;
    info!(by = %pause.by, actions = ?body.actions, "paused");
    Ok(Json(pauses))
}

/// `POST /v1/control/resume`
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/v1/control/resume", tag = "admin",
    request_body = PauseRequest,
    responses((status = 200, description = "what is still paused", body = Pauses),
        (status = 503, description = "no ZooKeeper session", body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn resume(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<PauseRequest>,
) -> Result<Json<Pauses>> {
    check_actions(&body.actions)?;
    if body.reason.is_some() {
        return Err(invalid(
            "reason",
            "is for pausing: leave it out to resume".into(),
        ));
    }
    let pauses = state
        .zk
        .update_pauses(|pauses| {
            if body.actions.is_empty() {
                *pauses = Pauses::default();
            }
            for action in &body.actions {
                pauses.actions.remove(action);
            }
        })
        .await?;
    info!(by = %auth.caller.name, actions = ?body.actions, "resumed");
    Ok(Json(pauses))
}

fn check_actions(actions: &[String]) -> Result<()> {
    for action in actions {
        drover_core::names::check_name("action", action)
            .map_err(|reason| invalid("actions", reason))?;
    }
    Ok(())
}

fn invalid(field: &str, reason: String) -> Error {
    Error::InvalidInput {
        field: field.into(),
        reason,
    }
}

/// `POST /v1/executors/{id}/drain`
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/v1/executors/{id}/drain", tag = "admin",
    params(("id" = String, Path)), request_body = DrainRequest,
    responses((status = 200, description = "the order, now in ZooKeeper", body = DrainOrder),
        (status = 404, description = "no such executor is registered", body = ApiError),
        (status = 503, description = "no ZooKeeper session", body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn drain(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DrainRequest>,
) -> Result<Json<DrainOrder>> {
    let deadline_ms = match body.deadline_ms {
        None => DEFAULT_DEADLINE.as_millis() as u64,
        Some(ms) if ms <= MAX_DEADLINE_MS => ms,
        Some(ms) => {
            return Err(invalid(
                "deadline_ms",
                format!("{ms} is out of range: use 0 to {MAX_DEADLINE_MS} (one day)"),
            ))
        }
    };
    let started = state
        .zk
        .executor_started(&id)
        .ok_or_else(|| Error::ExecutorNotFound { id: id.clone() })?;
    let order = DrainOrder {
        by: auth.caller.name.to_string(),
        since: system_rfc3339(SystemTime::now()),
        deadline_ms,
        executor_started_s: started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        reboot: body.reboot,
    };
    state.zk.order_drain(&id, &order).await?;
    info!(executor = %id, by = %order.by, deadline_ms, reboot = order.reboot, "drain ordered");
    Ok(Json(order))
}

/// `POST /v1/jobs/{id}/cleanup`
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/v1/jobs/{id}/cleanup", tag = "admin",
    params(("id" = String, Path)),
    responses((status = 200, description = "the order given to the executor that ran it, or why none is needed", body = Cleaning),
        (status = 404, description = "no such job", body = ApiError),
        (status = 409, description = "the job has not finished: kill it first", body = ApiError),
        (status = 503, description = "no ZooKeeper session", body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn cleanup(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    JobIdPath(id): JobIdPath,
) -> Result<Json<Cleaning>> {
    let job = state.store.get(id).await?;
    if !job.state.is_terminal() {
        return Err(Error::Conflict {
            code: "job_not_finished",
            message: format!(
                "job {id} is {} ({}): only a finished job is cleaned up; kill it first (`drover kill --cleanup` kills, waits, then cleans)",
                job.state, job.status_code
            ),
            state: job.state,
            status_code: job.status_code,
        });
    }
    let Some(executor) = job.executor else {
        return Ok(Json(Cleaning {
            order: None,
            message: format!("job {id} never ran: there is nothing to clean up"),
        }));
    };
    if state.zk.executor_started(&executor).is_none() {
        return Ok(Json(Cleaning {
            order: None,
            message: format!(
                "executor {executor}, which ran job {id}, is not registered any more: what it left is removed by the reaper of any executor of this cluster on its host"
            ),
        }));
    }
    let order = CleanupOrder {
        executor: executor.clone(),
        by: auth.caller.name.to_string(),
        since: system_rfc3339(SystemTime::now()),
    };
    state.zk.order_cleanup(id, &order).await?;
    info!(job = %id, %executor, by = %order.by, "clean-up ordered");
    Ok(Json(Cleaning {
        order: Some(order),
        message: format!(
            "executor {executor} removes what is left of job {id} on its Docker engine"
        ),
    }))
}

/// `POST /v1/executors/{id}/undrain` answer.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct Undrained {
    /// The executor.
    pub(crate) id: String,
    /// Whether there was an order to withdraw.
    pub(crate) withdrawn: bool,
}

/// `POST /v1/executors/{id}/undrain`
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/v1/executors/{id}/undrain", tag = "admin",
    params(("id" = String, Path)),
    responses((status = 200, description = "the order is gone; the executor takes again", body = Undrained),
        (status = 503, description = "no ZooKeeper session", body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn undrain(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Undrained>> {
    drover_core::names::check_id("executor", &id).map_err(|reason| invalid("id", reason))?;
    let withdrawn = state.zk.withdraw_drain(&id).await?;
    info!(executor = %id, by = %auth.caller.name, withdrawn, "undrained");
    Ok(Json(Undrained { id, withdrawn }))
}
