//! User endpoints: submit, read, list, resolve, cancel, kill, retry.

use axum::extract::{Path, State};
use axum::http::StatusCode as HttpStatus;
use axum::Json;
use drover_actions::Builtin;
use drover_core::{JobId, Priority, State as JobState};
use serde::Deserialize;
use tracing::warn;

pub(crate) use super::shown::shown;
use super::shown::shown_with;
use crate::auth::{Access, Admin, Authorized, Caller, Maintain, Read, Submit};
use crate::config::{ApiConfig, MAX_TIMEOUT};
use crate::error::{Error, Result};
use crate::extract::{JobIdPath, JsonBody, QueryParams};
use crate::state::AppState;
use crate::store::{CancelKind, Created, ListFilter, NewJob, MAX_CANDIDATES};
#[cfg(feature = "openapi")]
use drover_model::{ApiError, Candidates};
use drover_model::{Job, JobPage, SubmitJob};

/// Largest page of jobs.
const MAX_LIMIT: u32 = 500;
const DEFAULT_LIMIT: u32 = 50;

/// Checks a submission and turns it into a record to create.
fn new_job(body: SubmitJob, config: &ApiConfig) -> Result<NewJob> {
    let invalid = |field: &str, reason: String| Error::InvalidInput {
        field: field.into(),
        reason,
    };
    let action = body.action;
    if action.is_empty() {
        return Err(invalid(
            "action",
            "is empty: name the action to run, e.g. \"noop\"".into(),
        ));
    }
    drover_core::names::check_name("action", &action).map_err(|e| invalid("action", e))?;
    let params = serde_json::to_string(&body.params)
        .map_err(|err| invalid("params", format!("cannot be stored as JSON: {err}")))?;
    if params.len() > config.max_params_bytes {
        return Err(Error::TooLarge {
            what: "params",
            limit: config.max_params_bytes,
            hint: "keep parameters small and pass large inputs by reference (a URL or a path)",
        });
    }
    let max_attempts = body.max_attempts.unwrap_or(config.default_max_attempts);
    if !(1..=1000).contains(&max_attempts) {
        return Err(invalid(
            "max_attempts",
            format!("{max_attempts} is out of range: use 1 to 1000"),
        ));
    }
    let timeout_secs = body
        .timeout_secs
        .unwrap_or(config.default_timeout.as_secs());
    if timeout_secs == 0 || timeout_secs > MAX_TIMEOUT.as_secs() {
        return Err(invalid(
            "timeout_secs",
            format!(
                "{timeout_secs} is out of range: use 1 to {} (30 days)",
                MAX_TIMEOUT.as_secs()
            ),
        ));
    }
    if let Some(key) = &body.idempotency_key {
        drover_core::names::check_idempotency_key(key)
            .map_err(|e| invalid("idempotency_key", e))?;
    }
    let requires = drover_core::route::tag_set(&body.requires)
        .map_err(|e| invalid("requires", e))?
        .into_iter()
        .collect();
    Ok(NewJob {
        action,
        params,
        priority: body.priority.unwrap_or(Priority::DEFAULT),
        max_attempts,
        timeout_secs,
        idempotency_key: body.idempotency_key,
        retry_of: None,
        requires,
    })
}

/// Refuses a built-in maintenance action (`cleanup_jobs`) unless the caller may maintain:
/// it runs with the executor's rights (deleting history), not the submitter's.
pub(crate) fn check_action_allowed(action: &str, caller: &Caller) -> Result<()> {
    let Some(builtin) = Builtin::from_name(action).filter(|b| b.is_maintenance()) else {
        return Ok(());
    };
    if Maintain::allows(caller.role) {
        return Ok(());
    }
    Err(Error::ForbiddenAction {
        caller: caller.name.to_string(),
        role: caller.role.as_str(),
        action: builtin.name().to_owned(),
        what: "it deletes finished jobs and their logs",
        needed: Maintain::NEEDED,
    })
}

/// Longest value shown in an `idempotency_key_reused` message.
const MAX_SHOWN: usize = 80;

/// The first field in which `new` differs from `existing`, the job its idempotency key
/// already names: `(field, existing value, new value)`. Defaults are applied before, so
/// omitting a field equals sending its default.
fn differing_field(new: &NewJob, existing: &Job) -> Option<(&'static str, String, String)> {
    let shown = |text: String| {
        if text.chars().count() > MAX_SHOWN {
            format!("{}...", text.chars().take(MAX_SHOWN).collect::<String>())
        } else {
            text
        }
    };
    let params = serde_json::from_str::<serde_json::Value>(&new.params).ok();
    let fields = [
        (
            "action",
            new.action == existing.action,
            format!("{:?}", existing.action),
            format!("{:?}", new.action),
        ),
        (
            "params",
            params.as_ref() == Some(&existing.params),
            existing.params.to_string(),
            new.params.clone(),
        ),
        (
            "priority",
            new.priority == existing.priority,
            existing.priority.get().to_string(),
            new.priority.get().to_string(),
        ),
        (
            "max_attempts",
            new.max_attempts == existing.max_attempts,
            existing.max_attempts.to_string(),
            new.max_attempts.to_string(),
        ),
        (
            "timeout_secs",
            new.timeout_secs == existing.timeout_secs,
            existing.timeout_secs.to_string(),
            new.timeout_secs.to_string(),
        ),
        (
            "requires",
            new.requires == existing.requires,
            format!("{:?}", existing.requires),
            format!("{:?}", new.requires),
        ),
    ];
    fields
        .into_iter()
        .find(|(_, same, _, _)| !same)
        .map(|(field, _, stored, sent)| (field, shown(stored), shown(sent)))
}

/// The existing job of a taken idempotency key, if `new` asks for the same job.
///
/// # Errors
/// [`Error::Conflict`] `idempotency_key_reused` naming the first field that differs.
fn same_job(new: &NewJob, existing: Job) -> Result<Job> {
    let Some((field, stored, sent)) = differing_field(new, &existing) else {
        return Ok(existing);
    };
    Err(Error::Conflict {
        code: "idempotency_key_reused",
        message: format!(
            "idempotency_key {:?} already names job {} with another {field} ({stored} there, {sent} here): \
             to submit a different job use a new idempotency_key; to get that job, resend its body unchanged",
            new.idempotency_key.as_deref().unwrap_or_default(),
            existing.id
        ),
        state: existing.state,
        status_code: existing.status_code,
    })
}

/// Commits `new`, then puts it on the queue, then records that it is there.
///
/// # Errors
/// Store errors, and [`same_job`]'s 409 when the idempotency key names another job.
async fn create_and_enqueue(state: &AppState, new: &NewJob) -> Result<(HttpStatus, Job)> {
    let job = match state.store.create(new).await? {
        Created::Existing(job) => return Ok((HttpStatus::OK, same_job(new, job)?)),
        Created::New(job) => job,
    };
    let route = job.route().map_err(|detail| Error::Corrupt {
        id: job.id.to_string(),
        detail,
    })?;
    if let Err(reason) = state.zk.enqueue(job.id, job.priority, &route).await {
        warn!(job_id = %job.id, %reason, "job committed but not enqueued; the reconciler will enqueue it");
        return Ok((HttpStatus::CREATED, job));
    }
    match state.store.mark_enqueued(job.id).await {
        Ok(enqueued) => Ok((HttpStatus::CREATED, enqueued)),
        Err(err) => {
            // The entry is on the queue and the record is whole; only the flag is stale,
            // which costs at most a duplicate entry from the reconciler.
            warn!(job_id = %job.id, error = %err, "job enqueued but not marked so");
            Ok((HttpStatus::CREATED, job))
        }
    }
}

/// `POST /v1/jobs`
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/v1/jobs", tag = "jobs",
    request_body = SubmitJob,
    responses(
        (status = 201, description = "committed (and enqueued unless `enqueued` is false)", body = Job),
        (status = 200, description = "the idempotency key matched an existing job with the same body", body = Job),
        (status = 409, description = "the idempotency key names a job with another action, params, priority, max_attempts or timeout", body = ApiError),
        (status = 400, description = "invalid body", body = ApiError),
        (status = 403, description = "a maintenance action (cleanup_jobs) from neither an admin nor a distributor", body = ApiError),
        (status = 408, description = "the body did not arrive within api.body_timeout", body = ApiError),
        (status = 413, description = "body or params too large", body = ApiError),
    ), security(("bearer" = []))))]
pub(crate) async fn submit(
    auth: Authorized<Submit>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<SubmitJob>,
) -> Result<(HttpStatus, Json<Job>)> {
    check_action_allowed(&body.action, &auth.caller)?;
    let new = new_job(body, &state.config)?;
    let (status, job) = create_and_enqueue(&state, &new).await?;
    Ok((status, Json(shown(&state, job))))
}

/// `GET /v1/jobs/{id}`
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "the full job id")),
    responses((status = 200, body = Job), (status = 404, body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn get(
    _auth: Authorized<Read>,
    State(state): State<AppState>,
    JobIdPath(id): JobIdPath,
) -> Result<Json<Job>> {
    Ok(Json(shown(&state, state.store.get(id).await?)))
}

/// `GET /v1/jobs` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    state: Option<String>,
    action: Option<String>,
    request: Option<String>,
    workspace: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// The opaque cursor: the last job's position.
fn encode_cursor((created_us, id): &(i64, String)) -> String {
    format!("{created_us}.{id}")
}

fn decode_cursor(text: &str) -> Result<(i64, String)> {
    let bad = || Error::InvalidInput {
        field: "cursor".into(),
        reason: format!(
            "{text:?} is not a cursor: pass the next_cursor of the previous page unchanged"
        ),
    };
    let (us, id) = text.split_once('.').ok_or_else(bad)?;
    let us = us.parse().map_err(|_| bad())?;
    let id: JobId = id.parse().map_err(|_| bad())?;
    Ok((us, id.to_string()))
}

/// `GET /v1/jobs?state=&action=&request=&workspace=&limit=&cursor=`
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/v1/jobs", tag = "jobs",
    params(
        ("state" = Option<String>, Query, description = "QUEUED, RUNNING, SUCCESS, FAILED or CANCELED"),
        ("action" = Option<String>, Query, description = "only this action"),
        ("request" = Option<String>, Query, description = "only this pipeline request's jobs (its whole id)"),
        ("workspace" = Option<String>, Query, description = "only this workspace's pipeline jobs"),
        ("limit" = Option<u32>, Query, description = "1 to 500, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses((status = 200, body = JobPage), (status = 400, body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn list(
    _auth: Authorized<Read>,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<JobPage>> {
    let job_state = match query.state.as_deref() {
        Some(text) => Some(
            text.parse::<JobState>()
                .map_err(|err| Error::InvalidInput {
                    field: "state".into(),
                    reason: err.to_string(),
                })?,
        ),
        None => None,
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::InvalidInput {
            field: "limit".into(),
            reason: format!(
                "{limit} is out of range: use 1 to {MAX_LIMIT} and follow next_cursor for more"
            ),
        });
    }
    let request = match query.request.as_deref().filter(|r| !r.is_empty()) {
        Some(text) => Some(
            text.parse::<JobId>()
                .map_err(|_| Error::InvalidInput {
                    field: "request".into(),
                    reason: format!(
                        "{text:?} is not a request id: pass a whole id (`drover request PREFIX` finds one)"
                    ),
                })?
                .to_string(),
        ),
        None => None,
    };
    let filter = ListFilter {
        state: job_state,
        action: query.action.filter(|a| !a.is_empty()),
        request,
        workspace: query.workspace.filter(|w| !w.is_empty()),
        after: query.cursor.as_deref().map(decode_cursor).transpose()?,
        limit,
    };
    let (jobs, last) = state.store.list(&filter).await?;
    let offers = state.zk.offers();
    let jobs = jobs
        .into_iter()
        .map(|job| shown_with(offers.as_ref(), job))
        .collect();
    Ok(Json(JobPage {
        jobs,
        next_cursor: last.as_ref().map(encode_cursor),
    }))
}

/// `GET /v1/resolve/{fragment}`
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/v1/resolve/{fragment}", tag = "jobs",
    params(("fragment" = String, Path, description = "a prefix (else a substring) of a job id")),
    responses(
        (status = 200, description = "exactly one job matches", body = Job),
        (status = 409, description = "several match (the body is also an ApiError)", body = Candidates),
        (status = 404, body = ApiError),
    ), security(("bearer" = []))))]
pub(crate) async fn resolve(
    _auth: Authorized<Read>,
    State(state): State<AppState>,
    Path(fragment): Path<String>,
) -> Result<Json<Job>> {
    let fragment = fragment.trim().to_ascii_lowercase();
    if fragment.is_empty()
        || fragment.len() > 36
        || !fragment.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
    {
        return Err(Error::InvalidInput {
            field: "fragment".into(),
            reason: format!("{fragment:?} cannot be part of a job id: use 1 to 36 characters of 0-9, a-f and '-'"),
        });
    }
    let mut matches = state.store.resolve(&fragment).await?;
    match matches.len() {
        0 => Err(Error::JobNotFound { id: fragment }),
        1 => Ok(Json(shown(&state, matches.remove(0)))),
        _ => {
            matches.truncate(MAX_CANDIDATES);
            Err(Error::Ambiguous {
                fragment,
                candidates: matches,
            })
        }
    }
}

/// `POST /v1/jobs/{id}/cancel`
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path)),
    responses((status = 200, description = "canceled, or flagged for its executor", body = Job),
        (status = 409, description = "already finished", body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn cancel(
    auth: Authorized<Submit>,
    State(state): State<AppState>,
    JobIdPath(id): JobIdPath,
) -> Result<Json<Job>> {
    let job = state
        .store
        .cancel(id, CancelKind::Cancel, &auth.caller.name)
        .await?;
    Ok(Json(job))
}

/// `POST /v1/jobs/{id}/kill`
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/v1/jobs/{id}/kill", tag = "jobs",
    params(("id" = String, Path)),
    responses((status = 200, description = "killed, or flagged for its executor", body = Job),
        (status = 403, description = "not an admin", body = ApiError),
        (status = 409, description = "already finished", body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn kill(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    JobIdPath(id): JobIdPath,
) -> Result<Json<Job>> {
    let job = state
        .store
        .cancel(id, CancelKind::Kill, &auth.caller.name)
        .await?;
    Ok(Json(job))
}

/// `POST /v1/jobs/{id}/retry`
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/v1/jobs/{id}/retry", tag = "jobs",
    params(("id" = String, Path)),
    responses((status = 201, description = "a new job with retry_of = id", body = Job),
        (status = 403, description = "a maintenance action (cleanup_jobs) from neither an admin nor a distributor", body = ApiError),
        (status = 409, description = "the job has not finished", body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn retry(
    auth: Authorized<Submit>,
    State(state): State<AppState>,
    JobIdPath(id): JobIdPath,
) -> Result<(HttpStatus, Json<Job>)> {
    let old = state.store.get(id).await?;
    check_action_allowed(&old.action, &auth.caller)?;
    if !old.state.is_terminal() {
        return Err(Error::Conflict {
            code: "job_not_finished",
            message: format!(
                "job {id} is {} ({}): only a finished job can be retried; wait for it or cancel it first",
                old.state, old.status_code
            ),
            state: old.state,
            status_code: old.status_code,
        });
    }
    let new = NewJob {
        action: old.action,
        params: old.params.to_string(),
        priority: old.priority,
        max_attempts: old.max_attempts,
        timeout_secs: old.timeout_secs,
        idempotency_key: None,
        retry_of: Some(id),
        requires: old.requires,
    };
    let (status, job) = create_and_enqueue(&state, &new).await?;
    Ok((status, Json(shown(&state, job))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::Offers;
    use crate::store::ENQUEUED_MESSAGE;

    fn submit(action: &str) -> SubmitJob {
        SubmitJob {
            action: action.into(),
            ..SubmitJob::default()
        }
    }

    /// The record `new` would be once on the queue.
    fn enqueued_job(new: &NewJob) -> Job {
        Job {
            id: JobId::new(),
            action: new.action.clone(),
            params: serde_json::from_str(&new.params).unwrap(),
            priority: new.priority,
            state: JobState::Queued,
            status_code: drover_core::StatusCode::Enqueued,
            status_message: String::new(),
            progress: 0,
            exit_code: None,
            attempts: 0,
            max_attempts: new.max_attempts,
            timeout_secs: new.timeout_secs,
            executor: None,
            fencing_token: None,
            queue_entry: None,
            last_heartbeat: None,
            created_at: String::new(),
            started_at: None,
            finished_at: None,
            idempotency_key: new.idempotency_key.clone(),
            requires: new.requires.clone(),
            enqueued: true,
            retry_of: None,
            cancel_requested: false,
            kill_requested: false,
            request_id: None,
            workspace: None,
            pipeline_action: None,
            stale: false,
        }
    }

    #[test]
    fn submissions_are_checked_with_reasons() {
        let config = ApiConfig::default();
        let job = new_job(submit("noop"), &config).unwrap();
        assert_eq!(job.priority, Priority::DEFAULT);
        assert_eq!(job.max_attempts, 3);
        assert_eq!(job.timeout_secs, 3600);
        assert_eq!(job.params, "{}");
        let err = new_job(submit(""), &config).unwrap_err().to_string();
        assert!(err.contains("action") && err.contains("empty"), "{err}");
        assert!(new_job(submit("rm -rf /"), &config).is_err());
        let mut big = submit("noop");
        big.params.insert("blob".into(), "x".repeat(70_000).into());
        assert!(matches!(new_job(big, &config), Err(Error::TooLarge { .. })));
        let mut tagged = submit("train");
        tagged.requires = vec!["gpu".into(), "db".into(), "gpu".into()];
        assert_eq!(
            new_job(tagged.clone(), &config).unwrap().requires,
            ["db", "gpu"]
        );
        tagged.requires.push("g/pu".into());
        let err = new_job(tagged, &config).unwrap_err().to_string();
        assert!(
            err.contains("requires") && err.contains("\"g/pu\""),
            "{err}"
        );
    }

    #[test]
    fn maintenance_actions_need_an_admin_or_a_distributor() {
        use crate::config::Role;
        let caller = |role| Caller {
            name: "alice".into(),
            role,
            level: crate::levels::ReadLevel::ModeratelySensitive,
        };
        let err = check_action_allowed("cleanup_jobs", &caller(Role::Submitter)).unwrap_err();
        assert_eq!(err.status(), HttpStatus::FORBIDDEN);
        let message = err.to_string();
        assert!(
            message.contains("cleanup_jobs") && message.contains("distributor.distributions"),
            "{message}"
        );
        for role in [Role::Admin, Role::Distributor] {
            check_action_allowed("cleanup_jobs", &caller(role)).unwrap();
        }
        check_action_allowed("noop", &caller(Role::Submitter)).unwrap();
    }

    #[test]
    fn a_reused_key_names_the_first_differing_field() {
        let config = ApiConfig::default();
        let mut body = submit("noop");
        body.params.insert("n".into(), 1.into());
        body.idempotency_key = Some("k".into());
        let new = new_job(body.clone(), &config).unwrap();
        let existing = enqueued_job(&new);
        assert_eq!(differing_field(&new, &existing), None);
        let mut other = body.clone();
        other.params.insert("n".into(), "x".repeat(500).into());
        let (field, stored, sent) =
            differing_field(&new_job(other, &config).unwrap(), &existing).unwrap();
        assert_eq!((field, stored.as_str()), ("params", r#"{"n":1}"#));
        assert!(sent.len() < 100 && sent.ends_with("..."), "{sent}");
        let mut other = body.clone();
        other.requires = vec!["gpu".into()];
        let (field, _, sent) =
            differing_field(&new_job(other, &config).unwrap(), &existing).unwrap();
        assert_eq!((field, sent.as_str()), ("requires", r#"["gpu"]"#));
        let mut other = body;
        other.timeout_secs = Some(5);
        let err = same_job(&new_job(other, &config).unwrap(), existing).unwrap_err();
        assert_eq!(err.code(), "idempotency_key_reused");
        assert_eq!(err.status(), HttpStatus::CONFLICT);
        assert!(
            err.to_string()
                .contains("timeout_secs (3600 there, 5 here)"),
            "{err}"
        );
    }

    #[test]
    fn an_enqueued_job_no_executor_can_run_is_shown_waiting() {
        let config = ApiConfig::default();
        let body = SubmitJob {
            requires: vec!["gpu".into()],
            ..submit("train")
        };
        let new = new_job(body, &config).unwrap();
        let job = |message: &str| Job {
            status_message: message.into(),
            ..enqueued_job(&new)
        };
        let offer = |tags: &[&str]| drover_core::Offer {
            actions: [("train".to_owned(), Default::default())].into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        };
        let none = Offers::new(Vec::new());
        let shown = shown_with(Some(&none), job(ENQUEUED_MESSAGE));
        assert_eq!(shown.status_code, drover_core::StatusCode::WaitingOnWorkers);
        assert!(
            shown.status_message.starts_with(
                "no executor offers action `train` with tag `gpu`; no executor is registered"
            ),
            "{}",
            shown.status_message
        );
        let cpu = Offers::new(vec![("cpu-1".into(), offer(&[]))]);
        let released = shown_with(Some(&cpu), job("given back: its executor vanished"));
        assert!(
            released.status_message.contains("cpu-1 lacks gpu")
                && released
                    .status_message
                    .ends_with("; before that: given back: its executor vanished"),
            "{}",
            released.status_message
        );
        let gpu = Offers::new(vec![("gpu-1".into(), offer(&["gpu"]))]);
        let mut pauses = drover_model::Pauses::default();
        let pause = drover_model::Pause {
            by: "ops".into(),
            since: "2026-12-04T10:00:00Z".into(),
            reason: None,
        };
        pauses.actions.insert("train".into(), pause);
        let paused = gpu.clone().paused(pauses);
        let shown = shown_with(Some(&paused), job(ENQUEUED_MESSAGE));
        assert_eq!(shown.status_code, drover_core::StatusCode::WaitingPaused);
        assert!(
            shown
                .status_message
                .starts_with("action train is paused by ops since"),
            "{}",
            shown.status_message
        );
        for offers in [Some(&gpu), None] {
            let shown = shown_with(offers, job(ENQUEUED_MESSAGE));
            assert_eq!(
                (shown.status_code, shown.status_message.as_str()),
                (drover_core::StatusCode::Enqueued, ENQUEUED_MESSAGE)
            );
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_a_400() {
        let id = JobId::new().to_string();
        let cursor = encode_cursor(&(42, id.clone()));
        assert_eq!(decode_cursor(&cursor).unwrap(), (42, id));
        assert!(decode_cursor("nope").is_err());
    }
}
