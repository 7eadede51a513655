//! Code snapshots (#15): `drover run` uploads a tar of the project directory, addressed
//! by its SHA-256, before the request that names it; executors put it in `/workspace`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG};
use axum::http::StatusCode as HttpStatus;
use axum::response::{IntoResponse, Response};
use axum::Json;
use drover_model::CodeSnapshot;

use crate::artifacts::{Limit, Space};
use crate::auth::{Authorized, Read, Submit};
use crate::error::{Error, Result};
use crate::state::AppState;

/// `sha256` as the store names blobs: 64 lower-case hex digits.
pub(crate) fn check_sha256(field: &str, sha256: &str) -> Result<()> {
    let hex = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hex {
        return Ok(());
    }
    Err(Error::InvalidInput {
        field: field.into(),
        reason: format!(
            "{:?} is not a SHA-256: send 64 lower-case hex digits",
            sha256.chars().take(80).collect::<String>()
        ),
    })
}

fn missing(sha256: &str) -> Error {
    Error::OutputNotFound(format!(
        "no code snapshot {sha256}: upload it with PUT /v1/code/{sha256} (drover run does)"
    ))
}

/// `PUT /v1/code/{sha256}`: the tar, streamed; refused when its bytes hash otherwise.
/// Sending one the store has already is cheap to skip: `HEAD` it first.
pub(crate) async fn upload(
    _auth: Authorized<Submit>,
    State(state): State<AppState>,
    Path(sha256): Path<String>,
    body: Body,
) -> Result<(HttpStatus, Json<CodeSnapshot>)> {
    check_sha256("sha256", &sha256)?;
    if let Some(size) = state.artifacts.size_of(Space::Code, &sha256).await? {
        return Ok((HttpStatus::OK, Json(CodeSnapshot { sha256, size })));
    }
    let limit = Limit {
        bytes: state.config.artifacts.max_code_bytes,
        what: "the code snapshot",
        hint: "leave data out of it with a .droverignore file, or ask the operator to raise api.artifacts.max_code_bytes",
    };
    let (report, _) = state
        .artifacts
        .ingest(
            Space::Code,
            Some(&sha256),
            body.into_data_stream(),
            drover_outputs::FileCheck::plain("code.tar"),
            limit,
            state.config.body_timeout,
        )
        .await?;
    let size = report.size;
    Ok((HttpStatus::CREATED, Json(CodeSnapshot { sha256, size })))
}

/// `GET /v1/code/{sha256}` (and `HEAD`): the tar, streamed.
pub(crate) async fn download(
    _auth: Authorized<Read>,
    State(state): State<AppState>,
    Path(sha256): Path<String>,
) -> Result<Response> {
    check_sha256("sha256", &sha256)?;
    let size = state
        .artifacts
        .size_of(Space::Code, &sha256)
        .await?
        .ok_or_else(|| missing(&sha256))?;
    let stream = state.artifacts.read(Space::Code, &sha256).await?;
    Ok((
        [
            (CONTENT_TYPE, "application/x-tar".to_owned()),
            (CONTENT_LENGTH, size.to_string()),
            (ETAG, format!("\"{sha256}\"")),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Refuses a request naming a snapshot the store does not have.
///
/// # Errors
/// 400 for a malformed SHA-256; 404 for an unknown one.
pub(crate) async fn check_exists(state: &AppState, sha256: &str) -> Result<()> {
    check_sha256("code", sha256)?;
    match state.artifacts.size_of(Space::Code, sha256).await? {
        Some(_) => Ok(()),
        None => Err(missing(sha256)),
    }
}
