//! Pipeline requests (#14): run some actions of a project file in a workspace, and read
//! or cancel what a request made.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::StatusCode as HttpStatus;
use axum::Json;
use drover_core::{JobId, Priority};
use drover_pipeline::{Action, Project, RUN_ALL};
use serde::Deserialize;

use super::jobs::{check_action_allowed, shown};
use crate::auth::{Authorized, Read, Submit};
use crate::config::{ApiConfig, MAX_TIMEOUT};
use crate::error::{Error, Result};
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;
use crate::store::pipeline::{NewRequest, PlannedAction, Submitted};
use crate::store::requests::KeyedRequest;
use crate::store::RequestRow;
use crate::store::{CancelKind, NewJob};
#[cfg(feature = "openapi")]
use drover_model::ApiError;
use drover_model::{
    Job, Progress, Request, RequestCreated, RequestDetail, RequestPage, SubmitRequest,
};

/// The workspace of a request that names none.
const DEFAULT_WORKSPACE: &str = "default";
/// Largest project file.
const MAX_PROJECT_BYTES: usize = 1 << 20;

fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The job an action of the project runs.
fn job_of(action: &Action, priority: Priority, config: &ApiConfig) -> Result<NewJob> {
    let (name, params) = action.job();
    let params = serde_json::to_string(&params).map_err(|e| invalid("project", e.to_string()))?;
    if params.len() > config.max_params_bytes {
        return Err(invalid(
            "project",
            format!(
                "action `{}` has {} bytes of params and config; at most {} are allowed (api.max_params_bytes)",
                action.name,
                params.len(),
                config.max_params_bytes
            ),
        ));
    }
    let timeout_secs = action
        .timeout
        .map_or(config.default_timeout.as_secs(), |t| t.as_secs().max(1))
        .min(MAX_TIMEOUT.as_secs());
    Ok(NewJob {
        action: name,
        params,
        priority,
        max_attempts: config.default_max_attempts,
        timeout_secs,
        idempotency_key: None,
        retry_of: None,
        requires: action.requires.iter().cloned().collect(),
    })
}

/// Checks a submitted request and plans it against its project file.
fn new_request(
    body: SubmitRequest,
    state: &AppState,
    auth: &Authorized<Submit>,
) -> Result<(NewRequest, Vec<String>)> {
    if body.project.len() > MAX_PROJECT_BYTES {
        return Err(Error::TooLarge {
            what: "project",
            limit: MAX_PROJECT_BYTES,
            hint: "a project file is configuration: keep data out of it",
        });
    }
    let workspace = body
        .workspace
        .unwrap_or_else(|| DEFAULT_WORKSPACE.to_owned());
    drover_core::names::check_name("workspace", &workspace).map_err(|e| invalid("workspace", e))?;
    let file_name = body.file_name.unwrap_or_else(|| "drover.yaml".to_owned());
    if file_name.is_empty() || file_name.len() > 255 || file_name.chars().any(char::is_control) {
        return Err(invalid(
            "file_name",
            "must be 1 to 255 characters without control characters",
        ));
    }
    if let Some(key) = &body.idempotency_key {
        drover_core::names::check_idempotency_key(key)
            .map_err(|e| invalid("idempotency_key", e))?;
    }
    if body.actions.is_empty() {
        return Err(invalid(
            "actions",
            format!("is empty: name the actions to run, or `{RUN_ALL}` for every action"),
        ));
    }
    let project = Project::parse(&file_name, &body.project)?;
    let order = project
        .resolve(&body.actions)
        .map_err(|e| invalid("actions", e))?;
    let priority = body.priority.unwrap_or(Priority::DEFAULT);
    let mut planned = Vec::with_capacity(order.len());
    for action in order {
        let job = job_of(action, priority, &state.config)?;
        check_action_allowed(&job.action, &auth.caller)?;
        planned.push(PlannedAction {
            action: action.clone(),
            job,
        });
    }
    let always: BTreeSet<String> = body
        .actions
        .iter()
        .filter(|a| *a != RUN_ALL)
        .cloned()
        .collect();
    let warnings = project.warnings.clone();
    Ok((
        NewRequest {
            workspace,
            file_name,
            project: body.project,
            requested: body.actions,
            always,
            force: body.force_run_dependencies,
            order: planned,
            idempotency_key: body.idempotency_key,
            code: body.code,
        },
        warnings,
    ))
}

/// `POST /v1/requests`
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/v1/requests", tag = "requests",
    request_body = SubmitRequest,
    responses(
        (status = 201, description = "jobs created (the ready ones go on the queue at once)", body = RequestCreated),
        (status = 200, description = "nothing to do: every action is running, queued or done", body = RequestCreated),
        (status = 400, description = "a project file that cannot run, with its file, line, action and fix", body = ApiError),
    ), security(("bearer" = []))))]
pub(crate) async fn submit(
    auth: Authorized<Submit>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<SubmitRequest>,
) -> Result<(HttpStatus, Json<RequestCreated>)> {
    let key = body.idempotency_key.clone().unwrap_or_default();
    let (request, warnings) = new_request(body, &state, &auth)?;
    if let Some(code) = &request.code {
        super::code::check_exists(&state, code).await?;
    }
    // what a resend with the same key must match (kept only when there is a key)
    let sent = request.idempotency_key.is_some().then(|| KeyedRequest {
        id: String::new(),
        workspace: request.workspace.clone(),
        requested: serde_json::to_string(&request.requested).unwrap_or_default(),
        force_run: request.force,
        project: request.project.clone(),
        code_sha256: request.code.clone(),
    });
    let outcome = match state.store.create_request(request).await? {
        Submitted::Planned(outcome) => outcome,
        Submitted::Existing(keyed) => {
            return resubmitted(&state, sent.as_ref(), keyed, key, warnings).await
        }
    };
    let created = u32::try_from(outcome.created.len()).unwrap_or(u32::MAX);
    let message = match (created, outcome.reused.len()) {
        (0, 0) => "all actions have already completed successfully".to_owned(),
        (0, _) => "all requested actions were already scheduled to run".to_owned(),
        (n, reused) => format!(
            "created {n} job(s); {reused} queued or running reused; {} skipped because they succeeded",
            outcome.skipped
        ),
    };
    let request = outcome
        .request
        .map(|row| request_of(row, progress_of(&outcome.created)))
        .transpose()?;
    let jobs = outcome
        .created
        .into_iter()
        .chain(outcome.reused)
        .map(|job| shown(&state, job))
        .collect();
    let status = if created > 0 {
        HttpStatus::CREATED
    } else {
        HttpStatus::OK
    };
    Ok((
        status,
        Json(RequestCreated {
            request,
            jobs,
            created,
            message,
            warnings,
        }),
    ))
}

/// The answer to a resend whose idempotency key names an earlier request: that request
/// (200), when the body asks for the same thing.
///
/// # Errors
/// [`Error::RequestKeyReused`] naming the first field that differs.
async fn resubmitted(
    state: &AppState,
    sent: Option<&KeyedRequest>,
    keyed: KeyedRequest,
    key: String,
    warnings: Vec<String>,
) -> Result<(HttpStatus, Json<RequestCreated>)> {
    let differs = sent.and_then(|sent| {
        [
            ("workspace", sent.workspace == keyed.workspace),
            ("actions", sent.requested == keyed.requested),
            ("force_run_dependencies", sent.force_run == keyed.force_run),
            ("project", sent.project == keyed.project),
            ("code", sent.code_sha256 == keyed.code_sha256),
        ]
        .into_iter()
        .find(|(_, same)| !same)
    });
    if let Some((field, _)) = differs {
        return Err(Error::RequestKeyReused {
            message: format!(
                "idempotency_key {key:?} already names request {} with another {field}: \
                 to submit a different request use a new idempotency_key; to get that one, resend its body unchanged",
                keyed.id
            ),
        });
    }
    let id = keyed
        .id
        .parse()
        .map_err(|e: drover_core::Error| Error::Corrupt {
            id: keyed.id.clone(),
            detail: e.to_string(),
        })?;
    let detail = detail(state, id).await?;
    Ok((
        HttpStatus::OK,
        Json(RequestCreated {
            message: format!(
                "request {} was submitted before with this idempotency_key: nothing new was created",
                detail.request.id
            ),
            request: Some(detail.request),
            jobs: detail.jobs,
            created: 0,
            warnings,
        }),
    ))
}

fn progress_of(jobs: &[Job]) -> Progress {
    let mut progress = Progress::default();
    for job in jobs {
        progress.add(job.state);
    }
    progress
}

fn request_of(row: RequestRow, progress: Progress) -> Result<Request> {
    Ok(Request {
        id: row
            .id
            .parse()
            .map_err(|e: drover_core::Error| Error::Corrupt {
                id: row.id.clone(),
                detail: e.to_string(),
            })?,
        requested: serde_json::from_str(&row.requested).unwrap_or_default(),
        workspace: row.workspace,
        file_name: row.file_name,
        force_run_dependencies: row.force_run,
        created_at: crate::store::rfc3339_micros(row.created_us),
        state: progress.state(),
        progress,
    })
}

async fn detail(state: &AppState, id: JobId) -> Result<RequestDetail> {
    let (row, jobs) = state.store.request(id).await?;
    let jobs: Vec<Job> = jobs.into_iter().map(|job| shown(state, job)).collect();
    Ok(RequestDetail {
        request: request_of(row, progress_of(&jobs))?,
        jobs,
    })
}

/// A full request id, or a prefix of one that names exactly one request.
async fn resolve(state: &AppState, text: &str) -> Result<JobId> {
    if let Ok(id) = text.parse::<JobId>() {
        return Ok(id);
    }
    let fragment = text.to_ascii_lowercase();
    if fragment.len() < 4 || !fragment.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(invalid(
            "id",
            format!(
                "{text:?} is not a request id: give the id, or at least its first 4 hex digits"
            ),
        ));
    }
    let rows = state.store.resolve_request(&fragment).await?;
    match rows.as_slice() {
        [] => Err(Error::RequestNotFound {
            id: text.to_owned(),
        }),
        [one] => one
            .id
            .parse()
            .map_err(|e: drover_core::Error| Error::Corrupt {
                id: one.id.clone(),
                detail: e.to_string(),
            }),
        many => Err(invalid(
            "id",
            format!(
                "{text:?} names {} requests ({}): give more of the id",
                many.len(),
                many.iter()
                    .take(5)
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// `GET /v1/requests/{id}` (a full id or a unique prefix)
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/v1/requests/{id}", tag = "requests",
    params(("id" = String, Path, description = "the request id, or a unique prefix of it")),
    responses((status = 200, body = RequestDetail), (status = 404, body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn get(
    _auth: Authorized<Read>,
    State(state): State<AppState>,
    Path(text): Path<String>,
) -> Result<Json<RequestDetail>> {
    let id = resolve(&state, &text).await?;
    Ok(Json(detail(&state, id).await?))
}

/// `GET /v1/requests` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestsQuery {
    workspace: Option<String>,
    limit: Option<u32>,
}

/// `GET /v1/requests?workspace=&limit=`, newest first
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/v1/requests", tag = "requests",
    responses((status = 200, body = RequestPage)), security(("bearer" = []))))]
pub(crate) async fn list(
    _auth: Authorized<Read>,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<RequestsQuery>,
) -> Result<Json<RequestPage>> {
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let requests = state
        .store
        .requests(query.workspace.as_deref(), i64::from(limit))
        .await?
        .into_iter()
        .map(|(row, progress)| request_of(row, progress))
        .collect::<Result<_>>()?;
    Ok(Json(RequestPage { requests }))
}

/// `POST /v1/requests/{id}/cancel`: cancels every unfinished job of the request,
/// dependents first (so they end CANCELLED_BY_USER, not DEPENDENCY_FAILED); running ones
/// are flagged for their executors.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/v1/requests/{id}/cancel", tag = "requests",
    params(("id" = String, Path)),
    responses((status = 200, body = RequestDetail), (status = 404, body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn cancel(
    auth: Authorized<Submit>,
    State(state): State<AppState>,
    Path(text): Path<String>,
) -> Result<Json<RequestDetail>> {
    let id = resolve(&state, &text).await?;
    let (_, jobs) = state.store.request(id).await?;
    for job in jobs
        .iter()
        .rev()
        .filter(|j| !j.state.is_terminal() && !j.cancel_requested)
    {
        match state
            .store
            .cancel(job.id, CancelKind::Cancel, &auth.caller.name)
            .await
        {
            // Ended meanwhile (it finished, or a dependency's cancel failed it).
            Ok(_) | Err(Error::IllegalTransition { .. } | Error::Conflict { .. }) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(Json(detail(&state, id).await?))
}
