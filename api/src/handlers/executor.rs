//! Executor endpoints: every write carries the fencing token of the queue entry.

use axum::extract::State;
use axum::Json;

use crate::auth::{Authorized, Execute};
use crate::error::{Error, Result};
use crate::extract::{JobIdPath, JsonBody};
use crate::state::AppState;
#[cfg(feature = "openapi")]
use drover_model::ApiError;
use drover_model::{
    AppendLogs, Claim, Finish, Heartbeat, HeartbeatReply, Job, LogsAppended, Release,
};

const MAX_MESSAGE_LEN: usize = 4096;

fn check_executor(executor: &str) -> Result<()> {
    drover_core::names::check_id("executor", executor).map_err(|reason| Error::InvalidInput {
        field: "executor".into(),
        reason,
    })
}

/// An entry name as the queue makes them: `entry-PPP-`, a route and `-` when routed,
/// and ten digits.
fn check_entry(entry: &str) -> Result<()> {
    if drover_coordination::is_entry_name(entry) {
        Ok(())
    } else {
        Err(Error::InvalidInput {
            field: "entry".into(),
            reason: format!(
                "{entry:?} is not a queue entry name: send the name of the entry you took, like entry-100-0000000042 or entry-100-train+gpu-0000000042"
            ),
        })
    }
}

fn check_message(message: Option<&str>) -> Result<Option<String>> {
    match message {
        Some(text) if text.len() > MAX_MESSAGE_LEN => Err(Error::InvalidInput {
            field: "message".into(),
            reason: format!(
                "is {} bytes: keep it under {MAX_MESSAGE_LEN}; ship details as log lines",
                text.len()
            ),
        }),
        Some(text) => Ok(Some(text.replace('\0', "\u{fffd}"))),
        None => Ok(None),
    }
}

/// `POST /v1/jobs/{id}/claim`
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/v1/jobs/{id}/claim", tag = "executor",
    params(("id" = String, Path)), request_body = Claim,
    responses((status = 200, description = "RUNNING/PREPARING under this token", body = Job),
        (status = 409, description = "terminal, held by a token not older, or not claimable", body = ApiError),
        (status = 423, description = "the job's action is paused: hand the entry back unclaimed", body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn claim(
    _auth: Authorized<Execute>,
    State(state): State<AppState>,
    JobIdPath(id): JobIdPath,
    JsonBody(body): JsonBody<Claim>,
) -> Result<Json<Job>> {
    check_executor(&body.executor)?;
    check_entry(&body.entry)?;
    refuse_paused(&state, &body.entry)?;
    let checking = std::time::Instant::now();
    let checked = state.zk.verify_claim(id, &body.entry, body.token).await;
    state
        .metrics
        .observe_claim_check(checked.is_ok(), checking.elapsed());
    checked?;
    Ok(Json(
        state
            .store
            .claim(id, body.token, &body.executor, &body.entry)
            .await?,
    ))
}

/// A claim through an entry of a paused action is refused (423): the executor that took
/// it as the pause arrived hands it back unclaimed, at no attempt's cost. Decided from the
/// entry's route alone (a plain entry's executor reads the job and routes it first).
fn refuse_paused(state: &AppState, entry: &str) -> Result<()> {
    let segment = drover_coordination::route_of(entry);
    let action = segment.split('+').next().unwrap_or_default();
    if action.is_empty() {
        return Ok(());
    }
    match state
        .zk
        .pauses()
        .as_ref()
        .and_then(|p| Some((p.of(action)?, p.all.is_some())))
    {
        Some((pause, all)) => Err(Error::Paused {
            message: drover_model::Pauses::message(action, pause, all),
        }),
        None => Ok(()),
    }
}

/// `POST /v1/jobs/{id}/heartbeat`
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/v1/jobs/{id}/heartbeat", tag = "executor",
    params(("id" = String, Path)), request_body = Heartbeat,
    responses((status = 200, description = "whether to stop", body = HeartbeatReply),
        (status = 409, description = "not the holder, finished, or a backwards move", body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn heartbeat(
    _auth: Authorized<Execute>,
    State(state): State<AppState>,
    JobIdPath(id): JobIdPath,
    JsonBody(body): JsonBody<Heartbeat>,
) -> Result<Json<HeartbeatReply>> {
    if let Some(progress) = body.progress.filter(|p| *p > 100) {
        return Err(Error::InvalidInput {
            field: "progress".into(),
            reason: format!("{progress} is out of range: use 0 to 100"),
        });
    }
    let reply = state
        .store
        .heartbeat(id, body.token, body.progress, body.status_code)
        .await?;
    Ok(Json(reply))
}

/// `POST /v1/jobs/{id}/logs`
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/v1/jobs/{id}/logs", tag = "executor",
    params(("id" = String, Path)), request_body = AppendLogs,
    responses((status = 200, description = "stored (up to the cap)", body = LogsAppended),
        (status = 409, description = "not the holder, or not running", body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn append_logs(
    _auth: Authorized<Execute>,
    State(state): State<AppState>,
    JobIdPath(id): JobIdPath,
    JsonBody(body): JsonBody<AppendLogs>,
) -> Result<Json<LogsAppended>> {
    if let Some((i, line)) = body
        .lines
        .iter()
        .enumerate()
        .find(|(_, line)| !matches!(line.stream.as_str(), "stdout" | "stderr" | "drover"))
    {
        return Err(Error::InvalidInput {
            field: format!("lines[{i}].stream"),
            reason: format!(
                "{:?} is not a stream: use stdout, stderr or drover",
                line.stream
            ),
        });
    }
    let appended = state
        .store
        .append_logs(id, body.token, body.lines, state.config.log_cap_bytes)
        .await?;
    Ok(Json(appended))
}

/// `POST /v1/jobs/{id}/finish`
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/v1/jobs/{id}/finish", tag = "executor",
    params(("id" = String, Path)), request_body = Finish,
    responses((status = 200, description = "the recorded result", body = Job),
        (status = 400, description = "not a terminal code", body = ApiError),
        (status = 409, description = "not the holder, or already finished", body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn finish(
    _auth: Authorized<Execute>,
    State(state): State<AppState>,
    JobIdPath(id): JobIdPath,
    JsonBody(body): JsonBody<Finish>,
) -> Result<Json<Job>> {
    let message = check_message(body.message.as_deref())?;
    let job = state
        .store
        .finish(
            id,
            body.token,
            body.status_code,
            body.exit_code,
            message.as_deref(),
        )
        .await?;
    Ok(Json(job))
}

/// `POST /v1/jobs/{id}/release`
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/v1/jobs/{id}/release", tag = "executor",
    params(("id" = String, Path)), request_body = Release,
    responses((status = 200, description = "QUEUED again, or FAILED/ATTEMPTS_EXHAUSTED, or CANCELED if requested", body = Job),
        (status = 409, description = "not the holder", body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn release(
    _auth: Authorized<Execute>,
    State(state): State<AppState>,
    JobIdPath(id): JobIdPath,
    JsonBody(body): JsonBody<Release>,
) -> Result<Json<Job>> {
    let message = check_message(body.message.as_deref())?;
    let job = state
        .store
        .release(id, body.token, message.as_deref())
        .await?;
    Ok(Json(job))
}
