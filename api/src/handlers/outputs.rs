//! Outputs (#15): executors upload a job's files while it runs (fenced by its token);
//! readers list and download what a succeeded job published, up to their token's level.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG};
use axum::response::{IntoResponse, Response};
use axum::Json;
use drover_core::{FencingToken, JobId};
use drover_model::{CodeSnapshot, JobInputs, OutputFile, OutputList};
use serde::Deserialize;

use crate::artifacts::Space;
use crate::auth::{Authorized, Caller, Execute, Read};
use crate::error::{Error, Result};
use crate::extract::{JobIdPath, QueryParams};
use crate::levels::ReadLevel;
use crate::state::AppState;
use crate::store::outputs::NewOutput;

/// The longest output path, in bytes.
const MAX_PATH_LEN: usize = 1024;

/// `PUT /v1/jobs/{id}/outputs/{path}` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadQuery {
    token: i64,
    level: String,
}

/// A concrete output path: relative, `/`-separated, inside the workspace.
fn check_path(path: &str) -> Result<()> {
    let problem = if path.is_empty() || path.len() > MAX_PATH_LEN {
        Some(format!("must be 1 to {MAX_PATH_LEN} bytes"))
    } else if path.starts_with('/') || path.contains('\\') || path.contains('\0') {
        Some("must be relative, with `/` between its parts".to_owned())
    } else if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        Some("has an empty, `.` or `..` part".to_owned())
    } else {
        None
    };
    match problem {
        Some(reason) => Err(Error::InvalidInput {
            field: "path".into(),
            reason: format!("{path:?} {reason}: send the file's path under /workspace"),
        }),
        None => Ok(()),
    }
}

fn level_of(name: &str) -> Result<ReadLevel> {
    ReadLevel::from_name(name).ok_or_else(|| Error::InvalidInput {
        field: "level".into(),
        reason: format!(
            "{name:?} is not a level: use highly_sensitive, moderately_sensitive or minimally_sensitive"
        ),
    })
}

/// `PUT /v1/jobs/{id}/outputs/{path}?token=&level=`: one file of the running attempt,
/// streamed; `moderately_sensitive` files go through the release checks.
pub(crate) async fn upload(
    _auth: Authorized<Execute>,
    State(state): State<AppState>,
    Path((id, path)): Path<(String, String)>,
    QueryParams(query): QueryParams<UploadQuery>,
    body: Body,
) -> Result<Json<OutputFile>> {
    let id: JobId = crate::extract::parse_job_id(&id)?;
    check_path(&path)?;
    let level = level_of(&query.level)?;
    let token = FencingToken::new(query.token);
    state.store.check_holder(id, token).await?;
    let rules = &state.config.artifacts.release;
    let check = rules.check_for(level.as_str(), &path);
    let (report, object) = state
        .artifacts
        .ingest(
            Space::Outputs,
            None,
            body.into_data_stream(),
            check,
            crate::artifacts::Limit {
                bytes: state.config.artifacts.max_job_bytes,
                what: "the job's outputs",
                hint: "declare fewer or smaller outputs, or ask the operator to raise api.artifacts.max_job_bytes",
            },
            state.config.body_timeout,
        )
        .await?;
    let file = NewOutput {
        path: path.clone(),
        level: level.as_str().to_owned(),
        size: report.size,
        sha256: report.sha256.clone(),
        csv: report.csv.as_ref().map(|c| (c.rows, c.columns)),
        withheld: report.withheld.clone(),
        object: object.clone(),
    };
    if let Err(e) = state.store.record_output(id, token, file).await {
        // not named by any row: nothing would ever delete it
        if let Err(gone) = state.artifacts.delete_object(&object).await {
            tracing::warn!(object, error = %gone, "cannot delete an unrecorded output");
        }
        return Err(e);
    }
    Ok(Json(OutputFile {
        job_id: id,
        action: None,
        path,
        level: level.as_str().to_owned(),
        size: report.size,
        sha256: report.sha256,
        csv_rows: report.csv.as_ref().map(|c| c.rows),
        csv_columns: report.csv.as_ref().map(|c| c.columns),
        withheld: report.withheld,
    }))
}

/// `GET /v1/jobs/{id}/inputs` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InputsQuery {
    token: i64,
}

/// `GET /v1/jobs/{id}/inputs?token=`: for the holder of the running job, what its
/// `/workspace` starts from.
pub(crate) async fn inputs(
    _auth: Authorized<Execute>,
    State(state): State<AppState>,
    JobIdPath(id): JobIdPath,
    QueryParams(query): QueryParams<InputsQuery>,
) -> Result<Json<JobInputs>> {
    state
        .store
        .check_holder(id, FencingToken::new(query.token))
        .await?;
    let (code, files) = state.store.job_inputs(id).await?;
    let code = code_snapshot(&state, code).await?;
    Ok(Json(JobInputs {
        code,
        files,
        hidden: 0,
    }))
}

/// `GET /v1/jobs/{id}/sources`: what job `id` started from (its code snapshot and the
/// outputs of the jobs it needs), as far as the caller's level reads, so that
/// `drover local-run --job` can run it again.
pub(crate) async fn sources(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    JobIdPath(id): JobIdPath,
) -> Result<Json<JobInputs>> {
    state.store.get(id).await?;
    let (code, files) = state.store.job_inputs(id).await?;
    let code = code_snapshot(&state, code).await?;
    let shown = visible(&auth.caller, files);
    Ok(Json(JobInputs {
        code,
        files: shown.files,
        hidden: shown.hidden,
    }))
}

async fn code_snapshot(state: &AppState, code: Option<String>) -> Result<Option<CodeSnapshot>> {
    Ok(match code {
        None => None,
        Some(sha256) => {
            let size = state
                .artifacts
                .size_of(Space::Code, &sha256)
                .await?
                .ok_or_else(|| Error::Unavailable {
                    dependency: "the artifact store",
                    detail: format!("the job's code snapshot {sha256} is gone from the store"),
                })?;
            Some(CodeSnapshot { sha256, size })
        }
    })
}

/// Whether `caller` may read `file`.
fn readable(caller: &Caller, file: &OutputFile) -> bool {
    ReadLevel::from_name(file.readable_at()).is_some_and(|level| level <= caller.level)
}

/// The files `caller` may read, and how many others there are.
fn visible(caller: &Caller, files: Vec<OutputFile>) -> OutputList {
    let total = files.len();
    let files: Vec<OutputFile> = files.into_iter().filter(|f| readable(caller, f)).collect();
    OutputList {
        hidden: (total - files.len()) as u64,
        files,
    }
}

/// `GET /v1/jobs/{id}/outputs`: what the job published (once it succeeded).
pub(crate) async fn list(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    JobIdPath(id): JobIdPath,
) -> Result<Json<OutputList>> {
    state.store.row(id).await?;
    let files = state.store.job_outputs(id).await?;
    Ok(Json(visible(&auth.caller, files)))
}

/// `GET /v1/workspaces/{name}/outputs`: the manifest, each action's newest outputs.
pub(crate) async fn workspace(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<OutputList>> {
    drover_core::names::check_name("workspace", &name).map_err(|e| Error::InvalidInput {
        field: "workspace".into(),
        reason: e.to_string(),
    })?;
    let files = state.store.workspace_outputs(&name).await?;
    Ok(Json(visible(&auth.caller, files)))
}

/// `GET /v1/jobs/{id}/outputs/{path}` takes no query (it shares its route with the
/// upload, which does).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoQuery {}

/// `GET /v1/jobs/{id}/outputs/{path}`: a published file's bytes, streamed, with its
/// SHA-256 as the `ETag`.
pub(crate) async fn download(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    Path((id, path)): Path<(String, String)>,
    QueryParams(NoQuery {}): QueryParams<NoQuery>,
) -> Result<Response> {
    let id: JobId = crate::extract::parse_job_id(&id)?;
    check_path(&path)?;
    let missing = || {
        Error::OutputNotFound(format!(
            "job {id} published no output {path:?}: list them with GET /v1/jobs/{id}/outputs"
        ))
    };
    let (file, object) = state
        .store
        .output_object(id, &path)
        .await?
        .ok_or_else(missing)?;
    if !readable(&auth.caller, &file) {
        // the same answer whatever the file is: its name was in the request already,
        // its level and notes are not told
        return Err(Error::ForbiddenLevel {
            caller: auth.caller.name.to_string(),
            allowed: auth.caller.level.as_str(),
        });
    }
    let stream = match &object {
        Some(object) => state.artifacts.read_object(object).await?,
        None => state.artifacts.read(Space::Outputs, &file.sha256).await?,
    };
    Ok((
        [
            (CONTENT_TYPE, "application/octet-stream".to_owned()),
            (CONTENT_LENGTH, file.size.to_string()),
            (ETAG, format!("\"{}\"", file.sha256)),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
