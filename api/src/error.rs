//! What can go wrong answering a request, and the one place it becomes an HTTP answer
//! (start-up failures are [`StartError`](crate::StartError)s).

use axum::http::{header, HeaderValue, StatusCode as HttpStatus};
use axum::response::{IntoResponse, Response};
use axum::Json;
use drover_core::{State, StatusCode};
use serde::Serialize;

use drover_model::{ApiError, Job};

/// Everything that can go wrong answering a request.
///
/// Each message says what was wrong and how to fix it; [`IntoResponse`] turns it into
/// the status and [`ApiError`] body of the HTTP contract (`api/API.md`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request value is invalid (400).
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field or part of the request (`action`, `query`, `path`, ...).
        field: String,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// The request body is not valid JSON (400).
    #[error("malformed JSON body: {detail}; send a JSON object, e.g. {example}")]
    MalformedJson {
        /// The parser's message with line and column.
        detail: String,
        /// An example of a valid body.
        example: &'static str,
    },

    /// Something is larger than allowed (413).
    #[error("{what} is larger than the limit of {limit} bytes: {hint}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The limit.
        limit: usize,
        /// How to get under it.
        hint: &'static str,
    },

    /// The request body did not arrive in time (408; the connection is closed).
    #[error("the request body did not arrive within {timeout:?} (api.body_timeout): send the whole body right after the headers, as long as Content-Length says, or ask the operator to raise api.body_timeout")]
    BodyTimeout {
        /// `api.body_timeout`.
        timeout: std::time::Duration,
    },

    /// No usable bearer token (401).
    #[error("{0}")]
    Unauthenticated(String),

    /// The token's role may not do this (403).
    #[error("token {caller:?} has role {role}; this endpoint needs {needed}: use a token with that role")]
    Forbidden {
        /// The token's name.
        caller: String,
        /// The token's role.
        role: &'static str,
        /// The roles that may.
        needed: &'static str,
    },

    /// The token may not read outputs at this level (403). Says nothing of the file.
    #[error("token {caller:?} may read outputs up to {allowed} only, and this file is kept above that: ask for a token whose `level` allows it")]
    ForbiddenLevel {
        /// The token's name.
        caller: String,
        /// The most sensitive level it may read.
        allowed: &'static str,
    },

    /// The token's role may not submit this action (403).
    #[error("token {caller:?} has role {role}; the built-in maintenance action {action} ({what}) may be submitted or retried only with {needed}: schedule it with a distribution ([[distributor.distributions]]), or ask an admin to run it")]
    ForbiddenAction {
        /// The token's name.
        caller: String,
        /// The token's role.
        role: &'static str,
        /// The action.
        action: String,
        /// What the action does, for the message.
        what: &'static str,
        /// The roles that may.
        needed: &'static str,
    },

    /// No such job (404).
    #[error("no job {id}: check the id (partial ids go through GET /v1/resolve/{{fragment}})")]
    JobNotFound {
        /// The id or fragment looked up.
        id: String,
    },

    /// No such pipeline request (404).
    #[error("no request {id}: check the id (`drover requests` lists them)")]
    RequestNotFound {
        /// The id looked up.
        id: String,
    },

    /// No such output file (404), and how to list them.
    #[error("{0}")]
    OutputNotFound(String),

    /// An idempotency key that names an earlier, different pipeline request (409).
    #[error("{message}")]
    RequestKeyReused {
        /// Which request, what differs, and what to do.
        message: String,
    },

    /// A project file that cannot run (400), with its file, line, action and fix.
    #[error("{0}")]
    Project(#[from] drover_pipeline::ProjectError),

    /// No such route (404).
    #[error("no endpoint {method} {path}: see GET /openapi.json for the endpoints")]
    RouteNotFound {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
    },

    /// The route exists but not with this method (405).
    #[error("method {method} is not allowed on {path}: see GET /openapi.json")]
    MethodNotAllowed {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
    },

    /// The transition table refuses the move (409).
    #[error("{source}")]
    IllegalTransition {
        /// The job's current state.
        state: State,
        /// The job's current code.
        status_code: StatusCode,
        /// The table's refusal, naming both codes and what is allowed.
        #[source]
        source: drover_core::Error,
    },

    /// The job is held by another fencing token (409); nothing changed.
    #[error("{message}")]
    Fenced {
        /// `stale_token` (ours is older) or `not_holder`.
        code: &'static str,
        /// What happened and what to do.
        message: String,
        /// The job's current state.
        state: State,
        /// The job's current code.
        status_code: StatusCode,
    },

    /// A claim's queue entry is not what it says in ZooKeeper (409): not taken under
    /// the claim's token, taken again since, or holding another job.
    #[error("{message}")]
    EntryRefused {
        /// `entry_not_taken`, `entry_retaken` or `entry_mismatch`.
        code: &'static str,
        /// What ZooKeeper showed and what to do.
        message: String,
    },

    /// The request conflicts with the job's state in another way (409).
    #[error("{message}")]
    Conflict {
        /// A stable code (`job_finished`, `job_not_finished`, ...).
        code: &'static str,
        /// What happened and what to do.
        message: String,
        /// The job's current state.
        state: State,
        /// The job's current code.
        status_code: StatusCode,
    },

    /// A claim for an entry of a paused action (423): the executor hands the entry back
    /// unclaimed; it runs once the pause is lifted.
    #[error("{message}")]
    Paused {
        /// Who paused it and how to resume.
        message: String,
    },

    /// No executor with this id is registered (404).
    #[error("no executor {id:?} is registered: `drover executors` lists the registered ones")]
    ExecutorNotFound {
        /// The id asked for.
        id: String,
    },

    /// Another API process is running the reconciler right now (409); nothing was done.
    #[error("another API process is reconciling now ({holder}); this run was skipped: the next tick runs it")]
    ReconcileRunning {
        /// Which session holds the lock.
        holder: String,
    },

    /// A partial id matches several jobs (409, with the candidates).
    #[error("{} jobs match {fragment:?}: give more characters of the id", candidates.len())]
    Ambiguous {
        /// What was looked up.
        fragment: String,
        /// Up to 20 matches, newest first.
        candidates: Vec<Job>,
    },

    /// A dependency is unavailable (503).
    #[error("{dependency} is unavailable: {detail}; retry later")]
    Unavailable {
        /// `database` or `zookeeper`.
        dependency: &'static str,
        /// What failed.
        detail: String,
    },

    /// A database call failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    /// A stored record cannot be read back (a bug or a hand-edited row).
    #[error("job {id} is stored in a form this API cannot read: {detail}")]
    Corrupt {
        /// The row's id.
        id: String,
        /// What could not be read.
        detail: String,
    },

    /// A handler panicked (caught; the process goes on).
    #[error("internal error: {0}")]
    Internal(String),
}

/// The body of a 409 for an ambiguous partial id: an [`ApiError`] and a
/// [`Candidates`](drover_model::Candidates) in one object, so either type parses it.
#[derive(Serialize)]
struct AmbiguousBody<'a> {
    error: &'static str,
    message: String,
    fragment: &'a str,
    candidates: &'a [Job],
}

impl Error {
    /// The HTTP status of this error: the one mapping of the API.
    pub fn status(&self) -> HttpStatus {
        match self {
            Error::InvalidInput { .. } | Error::MalformedJson { .. } | Error::Project(_) => {
                HttpStatus::BAD_REQUEST
            }
            Error::TooLarge { .. } => HttpStatus::PAYLOAD_TOO_LARGE,
            Error::BodyTimeout { .. } => HttpStatus::REQUEST_TIMEOUT,
            Error::Unauthenticated(_) => HttpStatus::UNAUTHORIZED,
            Error::Forbidden { .. }
            | Error::ForbiddenAction { .. }
            | Error::ForbiddenLevel { .. } => HttpStatus::FORBIDDEN,
            Error::JobNotFound { .. }
            | Error::OutputNotFound(_)
            | Error::RequestNotFound { .. }
            | Error::RouteNotFound { .. }
            | Error::ExecutorNotFound { .. } => HttpStatus::NOT_FOUND,
            Error::Paused { .. } => HttpStatus::LOCKED,
            Error::MethodNotAllowed { .. } => HttpStatus::METHOD_NOT_ALLOWED,
            Error::IllegalTransition { .. }
            | Error::Fenced { .. }
            | Error::Conflict { .. }
            | Error::RequestKeyReused { .. }
            | Error::EntryRefused { .. }
            | Error::ReconcileRunning { .. }
            | Error::Ambiguous { .. } => HttpStatus::CONFLICT,
            Error::Unavailable { .. } => HttpStatus::SERVICE_UNAVAILABLE,
            Error::Database(err) if is_unavailable(err) => HttpStatus::SERVICE_UNAVAILABLE,
            Error::Database(_) | Error::Corrupt { .. } | Error::Internal(_) => {
                HttpStatus::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The stable machine-readable code of the [`ApiError`] body.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidInput { .. } => "invalid_input",
            Error::MalformedJson { .. } => "malformed_json",
            Error::TooLarge { .. } => "too_large",
            Error::BodyTimeout { .. } => "request_timeout",
            Error::Unauthenticated(_) => "unauthenticated",
            Error::Forbidden { .. }
            | Error::ForbiddenAction { .. }
            | Error::ForbiddenLevel { .. } => "forbidden",
            Error::JobNotFound { .. }
            | Error::OutputNotFound(_)
            | Error::RequestNotFound { .. }
            | Error::RouteNotFound { .. }
            | Error::ExecutorNotFound { .. } => "not_found",
            Error::Project(_) => "invalid_project",
            Error::MethodNotAllowed { .. } => "method_not_allowed",
            Error::IllegalTransition { .. } => "illegal_transition",
            Error::Fenced { code, .. }
            | Error::Conflict { code, .. }
            | Error::EntryRefused { code, .. } => code,
            Error::Ambiguous { .. } => "ambiguous_id",
            Error::Paused { .. } => "paused",
            Error::RequestKeyReused { .. } => "idempotency_key_reused",
            Error::ReconcileRunning { .. } => "reconcile_in_progress",
            Error::Unavailable { .. } => "unavailable",
            Error::Database(err) if is_unavailable(err) => "unavailable",
            _ => "internal",
        }
    }

    /// The job's state and code, on conflicts.
    fn job_status(&self) -> (Option<State>, Option<StatusCode>) {
        match self {
            Error::IllegalTransition {
                state, status_code, ..
            }
            | Error::Fenced {
                state, status_code, ..
            }
            | Error::Conflict {
                state, status_code, ..
            } => (Some(*state), Some(*status_code)),
            _ => (None, None),
        }
    }

    /// The message a client sees; internals are not leaked on 5xx.
    fn public_message(&self) -> String {
        match self {
            Error::Database(err) if is_unavailable(err) => {
                "the database is unavailable; retry later".to_owned()
            }
            Error::Database(_) | Error::Corrupt { .. } | Error::Internal(_) => {
                "internal error; the API log has the details".to_owned()
            }
            other => other.to_string(),
        }
    }
}

/// Whether a database error means "cannot reach it" rather than "it refused this".
fn is_unavailable(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
    )
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, code = self.code(), "request failed");
        }
        if let Error::Ambiguous {
            fragment,
            candidates,
        } = &self
        {
            let body = AmbiguousBody {
                error: "ambiguous_id",
                message: self.to_string(),
                fragment,
                candidates,
            };
            return (status, Json(body)).into_response();
        }
        let (state, status_code) = self.job_status();
        let body = ApiError {
            error: self.code().to_owned(),
            message: self.public_message(),
            state,
            status_code,
        };
        let mut response = (status, Json(body)).into_response();
        if status == HttpStatus::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == HttpStatus::REQUEST_TIMEOUT {
            // The rest of the body may still come: the connection cannot be reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// The API's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_errors_map_to_4xx_and_startup_errors_never_reach_clients() {
        let bad = Error::InvalidInput {
            field: "action".into(),
            reason: "empty".into(),
        };
        assert_eq!(bad.status(), HttpStatus::BAD_REQUEST);
        assert_eq!(bad.code(), "invalid_input");
        let db = Error::Database(sqlx::Error::PoolTimedOut);
        assert_eq!(db.status(), HttpStatus::SERVICE_UNAVAILABLE);
        let internal = Error::Database(sqlx::Error::RowNotFound);
        assert_eq!(internal.status(), HttpStatus::INTERNAL_SERVER_ERROR);
        assert!(!internal.public_message().contains("RowNotFound"));
    }
}
