//! Maintenance endpoints: the reconciler (called by the `reconcile` distribution's
//! leader), job cleanup (called by the `cleanup_jobs` action), and the distributions'
//! status.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use axum::extract::State;
use axum::Json;
use drover_coordination::{Election, ZkError};
use tracing::{info, warn};

use crate::auth::{Authorized, Cleanup as CleanupAccess, Read, Reconcile as ReconcileAccess};
use crate::error::{Error, Result};
use crate::extract::JsonBody;
use crate::reconcile::{
    Thresholds, DEFAULT_GRACE, DEFAULT_STALE_AFTER, DEFAULT_UNKNOWN_ACTION_AFTER,
};
use crate::state::AppState;
use crate::store::{now_us, system_rfc3339};
#[cfg(feature = "openapi")]
use drover_model::ApiError;
use drover_model::{CleanedUp, Cleanup, Distribution, Reconcile, Reconciled, DISTRIBUTIONS_PATH};

/// The longest threshold a reconcile request may ask for (one day).
const MAX_THRESHOLD_MS: u64 = 86_400_000;
/// The largest cleanup batch.
const MAX_BATCH: u32 = 10_000;
/// The cleanup batch when the request does not say.
const DEFAULT_BATCH: u32 = 1_000;
/// The longest retention (100 years): anything longer is surely a unit mistake.
const MAX_RETENTION_SECS: u64 = 100 * 365 * 86_400;

fn threshold(field: &str, value: Option<u64>, default: Duration) -> Result<Duration> {
    match value {
        None => Ok(default),
        Some(ms) if ms <= MAX_THRESHOLD_MS => Ok(Duration::from_millis(ms)),
        Some(ms) => Err(Error::InvalidInput {
            field: field.into(),
            reason: format!("{ms} is out of range: use 0 to {MAX_THRESHOLD_MS} (one day)"),
        }),
    }
}

fn zookeeper_unavailable() -> Error {
    Error::Unavailable {
        dependency: "zookeeper",
        detail: "the API has no ZooKeeper session right now".into(),
    }
}

/// `POST /v1/admin/reconcile`
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/v1/admin/reconcile", tag = "admin",
    request_body = Reconcile,
    responses((status = 200, description = "what was repaired", body = Reconciled),
        (status = 503, description = "no ZooKeeper session", body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn reconcile(
    auth: Authorized<ReconcileAccess>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Reconcile>,
) -> Result<Json<Reconciled>> {
    let thresholds = Thresholds {
        grace: threshold("grace_ms", body.grace_ms, DEFAULT_GRACE)?,
        stale_after: threshold("stale_after_ms", body.stale_after_ms, DEFAULT_STALE_AFTER)?,
        unknown_action_after: threshold(
            "unknown_action_after_ms",
            body.unknown_action_after_ms,
            DEFAULT_UNKNOWN_ACTION_AFTER,
        )?,
    };
    let enqueue_timeout = state.config.enqueue_timeout;
    if thresholds.grace < enqueue_timeout {
        return Err(Error::InvalidInput {
            field: "grace_ms".into(),
            reason: format!(
                "{} ms is shorter than this API's enqueue timeout ({} ms): a submit whose enqueue is still in flight would look entry-less and get a second entry; use at least {} (distributor.reconcile_grace)",
                thresholds.grace.as_millis(),
                enqueue_timeout.as_millis(),
                enqueue_timeout.as_millis()
            ),
        });
    }
    let (session, queue) = state.zk.connected().ok_or_else(zookeeper_unavailable)?;
    let report = state
        .reconciler
        .run(&state.store, &session, &queue, thresholds, &|action| {
            state.zk.action_known(action)
        })
        .await?;
    state.metrics.count_reconcile(&report);
    if report.total() > 0 {
        info!(caller = %auth.caller.name, repairs = report.total(), "reconcile run by caller");
    }
    Ok(Json(report))
}

/// `POST /v1/admin/cleanup`
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/v1/admin/cleanup", tag = "admin",
    request_body = Cleanup,
    responses((status = 200, description = "one batch deleted; `more` says whether to call again", body = CleanedUp),
        (status = 400, description = "invalid retention or batch", body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn cleanup(
    auth: Authorized<CleanupAccess>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Cleanup>,
) -> Result<Json<CleanedUp>> {
    if !(1..=MAX_RETENTION_SECS).contains(&body.older_than_secs) {
        return Err(Error::InvalidInput {
            field: "older_than_secs".into(),
            reason: format!(
                "{} is out of range: use 1 to {MAX_RETENTION_SECS} (e.g. 604800 for 7 days)",
                body.older_than_secs
            ),
        });
    }
    let batch = body.batch.unwrap_or(DEFAULT_BATCH);
    if !(1..=MAX_BATCH).contains(&batch) {
        return Err(Error::InvalidInput {
            field: "batch".into(),
            reason: format!("{batch} is out of range: use 1 to {MAX_BATCH}"),
        });
    }
    let retention =
        i64::try_from(body.older_than_secs.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
    let cutoff_us = now_us().saturating_sub(retention);
    let deleted = state.store.delete_finished(cutoff_us, batch).await?;
    state.metrics.count_cleanup(deleted.jobs);
    // the rows are gone: an object left here by a failure is garbage, never a loss
    let mut outputs = 0;
    for object in &deleted.objects {
        match state.artifacts.delete_object(object).await {
            Ok(()) => outputs += 1,
            Err(e) => warn!(object, error = %e, "cannot delete a cleaned-up output"),
        }
    }
    if deleted.jobs > 0 {
        info!(caller = %auth.caller.name, jobs = deleted.jobs, log_lines = deleted.log_lines, outputs, "cleanup deleted finished jobs");
    }
    Ok(Json(CleanedUp {
        deleted_jobs: deleted.jobs,
        deleted_log_lines: deleted.log_lines,
        deleted_outputs: outputs,
        more: deleted.jobs >= u64::from(batch),
        cutoff: system_rfc3339(
            std::time::UNIX_EPOCH + Duration::from_micros(u64::try_from(cutoff_us).unwrap_or(0)),
        ),
    }))
}

/// `GET /v1/distributions`
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/v1/distributions", tag = "admin",
    responses((status = 200, description = "every distribution that published a status, by name", body = Vec<Distribution>),
        (status = 503, description = "no ZooKeeper session", body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn distributions(
    _auth: Authorized<Read>,
    State(state): State<AppState>,
) -> Result<Json<Vec<Distribution>>> {
    let (session, _) = state.zk.connected().ok_or_else(zookeeper_unavailable)?;
    let timeout = state.config.enqueue_timeout.max(Duration::from_secs(2));
    let listing = tokio::time::timeout(timeout, read_distributions(&session))
        .await
        .map_err(|_| Error::Unavailable {
            dependency: "zookeeper",
            detail: format!("no answer within {timeout:?}"),
        })??;
    Ok(Json(listing))
}

async fn read_distributions(session: &drover_coordination::Session) -> Result<Vec<Distribution>> {
    let unavailable = |err: ZkError| Error::Unavailable {
        dependency: "zookeeper",
        detail: format!("cannot read {DISTRIBUTIONS_PATH}: {err}"),
    };
    let client = session.client();
    let mut names = match client.list_children(DISTRIBUTIONS_PATH).await {
        Ok(names) => names,
        Err(ZkError::NoNode) => return Ok(Vec::new()),
        Err(err) => return Err(unavailable(err)),
    };
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let path = format!("{DISTRIBUTIONS_PATH}/{name}");
        let data = match client.get_data(&path).await {
            Ok((data, _)) => data,
            Err(ZkError::NoNode) => continue,
            Err(err) => return Err(unavailable(err)),
        };
        let mut status: Distribution = match serde_json::from_slice(&data) {
            Ok(status) => status,
            Err(err) => {
                warn!(%path, error = %err, "a distribution status is not valid JSON; skipping it");
                continue;
            }
        };
        status.leader = match Election::new(session, &name, "") {
            Ok(election) => election.leader().await.ok().flatten(),
            Err(_) => None,
        };
        status.stuck = stuck(&status, OffsetDateTime::now_utc());
        out.push(status);
    }
    Ok(out)
}

/// Why a led distribution looks stuck: its next tick is overdue by more than three
/// intervals (the gap between its last and next tick) and at least 30 s.
fn stuck(status: &Distribution, now: OffsetDateTime) -> Option<String> {
    let parse = |text: &Option<String>| {
        text.as_deref()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
    };
    status.leader.as_ref()?;
    let next = parse(&status.next_tick)?;
    let period: time::Duration =
        parse(&status.last_tick).map_or(time::Duration::ZERO, |last| next - last);
    let overdue = now - next;
    let limit = std::cmp::max(period.saturating_mul(3), time::Duration::seconds(30));
    (overdue > limit).then(|| {
        format!(
            "leader {} has not ticked: the tick due at {} is {}s overdue; restart that distributor (see drover distributions)",
            status.leader.as_deref().unwrap_or("?"),
            status.next_tick.as_deref().unwrap_or("?"),
            overdue.whole_seconds()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(leader: Option<&str>, last: Option<&str>, next: Option<&str>) -> Distribution {
        Distribution {
            name: "d".into(),
            action: "noop".into(),
            schedule: "every 10s".into(),
            catch_up: "latest".into(),
            leader: leader.map(Into::into),
            published_by: "a".into(),
            last_tick: last.map(Into::into),
            last_job: None,
            next_tick: next.map(Into::into),
            updated_at: "2026-01-01T00:00:00Z".into(),
            stuck: None,
        }
    }

    #[test]
    fn a_leader_is_stuck_after_three_overdue_intervals_and_thirty_seconds() {
        let at = |t: &str| OffsetDateTime::parse(t, &Rfc3339).unwrap();
        let s = status(
            Some("a"),
            Some("2026-01-01T00:00:00Z"),
            Some("2026-01-01T00:01:00Z"),
        );
        assert_eq!(
            stuck(&s, at("2026-01-01T00:03:59Z")),
            None,
            "under 3 intervals"
        );
        let why = stuck(&s, at("2026-01-01T00:04:01Z")).unwrap();
        assert!(
            why.contains("leader a") && why.contains("181s overdue"),
            "{why}"
        );
        let fast = status(
            Some("a"),
            Some("2026-01-01T00:00:00Z"),
            Some("2026-01-01T00:00:01Z"),
        );
        assert_eq!(stuck(&fast, at("2026-01-01T00:00:20Z")), None, "under 30 s");
        assert!(stuck(&fast, at("2026-01-01T00:00:32Z")).is_some());
        let unled = status(None, None, Some("2026-01-01T00:00:01Z"));
        assert_eq!(stuck(&unled, at("2027-01-01T00:00:00Z")), None);
    }
}
