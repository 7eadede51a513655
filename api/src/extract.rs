//! Request extractors whose every rejection is an [`Error`], so clients always get
//! an `ApiError` JSON body saying what was wrong (axum's own rejections are text).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode as HttpStatus;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use drover_core::JobId;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::state::AppState;

/// A JSON request body of type `T`; unknown fields, wrong types and syntax errors are
/// 400s naming the field, an oversized body is a 413, and a body that has not arrived
/// whole within `api.body_timeout` is a 408 (a deadline for the whole body, not for the
/// gaps between its bytes, so a trickle cannot hold a connection either).
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

/// An example body for messages, by type name.
fn example_for<T>() -> &'static str {
    let name = std::any::type_name::<T>();
    match name.rsplit("::").next().unwrap_or(name) {
        "SubmitJob" => r#"{"action":"noop","params":{"n":1},"priority":100}"#,
        "Claim" => r#"{"token":4294967301,"executor":"executor-1"}"#,
        "Heartbeat" => r#"{"token":4294967301,"progress":50,"status_code":"EXECUTING"}"#,
        "AppendLogs" => r#"{"token":4294967301,"lines":[{"stream":"stdout","line":"hello"}]}"#,
        "Finish" => r#"{"token":4294967301,"status_code":"SUCCEEDED","exit_code":0}"#,
        "Release" => r#"{"token":4294967301,"message":"draining"}"#,
        _ => "{}",
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Error> {
        let timeout = state.config.body_timeout;
        let read = tokio::time::timeout(timeout, Bytes::from_request(req, state)).await;
        let read = read.map_err(|_| Error::BodyTimeout { timeout })?;
        let bytes = read.map_err(|rejection| {
            if rejection.status() == HttpStatus::PAYLOAD_TOO_LARGE {
                Error::TooLarge {
                    what: "the request body",
                    limit: state.config.max_body_bytes,
                    hint: "send less (split log batches; keep params small)",
                }
            } else {
                Error::InvalidInput {
                    field: "body".into(),
                    reason: format!("{}: resend the request", rejection.body_text()),
                }
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses `bytes` as a `T`, with errors naming the field path.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let example = example_for::<T>();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::MalformedJson {
            detail: "the body is empty".into(),
            example,
        });
    }
    // serde also reads a struct from an array (`["noop"]`); the contract is objects.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b == b'[') {
        return Err(Error::InvalidInput {
            field: "body".into(),
            reason: format!("is a JSON array: send a JSON object, e.g. {example}"),
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => Error::InvalidInput {
                field: if path == "." { "body".into() } else { path },
                reason: format!("{inner}; for example {example}"),
            },
            _ => Error::MalformedJson {
                detail: inner.to_string(),
                example,
            },
        }
    })?;
    deserializer.end().map_err(|err| Error::MalformedJson {
        detail: format!("{err} (trailing characters after the JSON value)"),
        example,
    })?;
    Ok(value)
}

/// Query parameters of type `T`, rejecting unknown or mistyped ones with a 400.
#[derive(Debug)]
pub(crate) struct QueryParams<T>(pub(crate) T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for QueryParams<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let Query(value) =
            Query::<T>::from_request_parts(parts, state)
                .await
                .map_err(|rejection| Error::InvalidInput {
                    field: "query".into(),
                    reason: format!("{}: fix the query string", rejection.body_text()),
                })?;
        Ok(QueryParams(value))
    }
}

/// Longest parameter name echoed back in a refusal.
const MAX_ECHOED_NAME: usize = 64;

/// Middleware for the routes that take no query parameters: any parameter is a 400
/// naming it (routes that take some refuse unknown ones in [`QueryParams`]).
pub(crate) async fn refuse_query(request: Request, next: Next) -> Response {
    let Some(name) = request.uri().query().and_then(first_parameter) else {
        return next.run(request).await;
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| request.uri().path(), MatchedPath::as_str);
    Error::InvalidInput {
        field: "query".into(),
        reason: format!(
            "unknown parameter `{name}`: {} {route} takes no query parameters; remove the query string",
            request.method()
        ),
    }
    .into_response()
}

/// The name of the first parameter of `query`, if it has any (`?` and `?&` have none).
fn first_parameter(query: &str) -> Option<String> {
    let pair = query.split('&').find(|pair| !pair.is_empty())?;
    let name = pair.split_once('=').map_or(pair, |(name, _)| name);
    Some(name.chars().take(MAX_ECHOED_NAME).collect())
}

/// The `{id}` path segment, a full job id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobIdPath(pub(crate) JobId);

impl FromRequestParts<AppState> for JobIdPath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| Error::InvalidInput {
                field: "path".into(),
                reason: rejection.body_text(),
            })?;
        parse_job_id(&text).map(JobIdPath)
    }
}

/// A full job id from a path segment.
pub(crate) fn parse_job_id(text: &str) -> Result<JobId, Error> {
    text.parse()
        .map_err(|err: drover_core::Error| Error::InvalidInput {
            field: "job id".into(),
            reason: format!("{err}; for a partial id use GET /v1/resolve/{{fragment}}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_model::SubmitJob;

    fn reason(body: &str) -> (String, String) {
        let err = parse_json::<SubmitJob>(body.as_bytes()).unwrap_err();
        (err.code().to_owned(), err.to_string())
    }

    #[test]
    fn the_first_query_parameter_is_named() {
        assert_eq!(first_parameter("colour=red&x=1").as_deref(), Some("colour"));
        assert_eq!(first_parameter("&force").as_deref(), Some("force"));
        assert_eq!(first_parameter(""), None);
        assert_eq!(first_parameter("&&"), None);
        let long = "n".repeat(1000);
        assert_eq!(
            first_parameter(&long).map(|n| n.len()),
            Some(MAX_ECHOED_NAME)
        );
    }

    #[test]
    fn rejections_name_the_problem() {
        let (code, message) = reason(r#"{"action":"noop""#);
        assert_eq!(code, "malformed_json", "{message}");
        let (code, message) = reason(r#"{"action":"noop","colour":1}"#);
        assert_eq!(code, "invalid_input");
        assert!(message.contains("unknown field `colour`"), "{message}");
        let (_, message) = reason(r#"{"action":"noop","priority":"high"}"#);
        assert!(message.contains("priority"), "{message}");
        let (_, message) = reason(r#"{"action":"noop","priority":1000}"#);
        assert!(message.contains("out of range"), "{message}");
        let (code, _) = reason("  ");
        assert_eq!(code, "malformed_json");
        let (code, message) = reason(r#"["noop"]"#);
        assert_eq!(code, "invalid_input", "{message}");
        let (code, _) = reason(r#"{"action":"noop"} x"#);
        assert_eq!(code, "malformed_json");
    }
}
