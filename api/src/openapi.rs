//! The OpenAPI document served at `/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::handlers::{admin, control, executor, jobs, logs, ops, requests};
use drover_model::{
    ApiError, AppendLogs, Attempt, Candidates, Claim, CleanedUp, Cleaning, Cleanup, CleanupOrder,
    Distribution, DrainOrder, DrainPhase, DrainRequest, DrainStatus, ExecutorInfo, Finish,
    Heartbeat, HeartbeatReply, Job, JobPage, LogLine, LogPage, LogsAppended, Orders, Pause,
    PauseRequest, Pauses, Progress, Reconcile, Reconciled, Release, Repairs, Request,
    RequestCreated, RequestDetail, RequestPage, StoredLogLine, SubmitJob, SubmitRequest,
};

/// Declares the bearer scheme the endpoints name.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "drover API", description = "drover's job API: durable job records and the fenced state machine. See api/API.md."),
    paths(
        jobs::submit, jobs::list, jobs::get, jobs::resolve, jobs::cancel, jobs::kill, jobs::retry,
        logs::read, logs::attempts,
        requests::submit, requests::list, requests::get, requests::cancel,
        executor::claim, executor::heartbeat, executor::append_logs, executor::finish, executor::release,
        ops::executors, ops::healthz, ops::readyz, ops::metrics,
        admin::reconcile, admin::cleanup, admin::distributions,
        control::orders, control::pause, control::resume, control::drain, control::undrain,
        control::cleanup,
    ),
    components(schemas(
        ApiError, AppendLogs, Candidates, Claim, ExecutorInfo, Finish, Heartbeat, HeartbeatReply,
        Job, JobPage, LogLine, LogPage, LogsAppended, Release, StoredLogLine, SubmitJob,
        Reconcile, Reconciled, Repairs, Cleanup, CleanedUp, Distribution,
        SubmitRequest, Request, RequestCreated, RequestDetail, RequestPage, Progress,
        Orders, Pauses, Pause, PauseRequest, DrainOrder, DrainRequest, DrainStatus, DrainPhase,
        control::Undrained, Cleaning, CleanupOrder, Attempt,
    )),
    modifiers(&Bearer),
)]
struct ApiDoc;

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /openapi.json`
pub(crate) async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
