//! Pipeline requests in the store: creating a request's jobs in one transaction, and
//! settling a job's dependents in the same operation that ends it.
//!
//! A job that needs others is `WAITING_ON_DEPENDENCIES` and not on the queue. When the
//! last job it needs succeeds, the operation recording that success makes it `CREATED`
//! (with `ready_us`), and once that commits the API puts it on the queue (the reconciler
//! does, after a crash). When a job it needs ends any other way, the same operation
//! ends it, and everything waiting on it, `DEPENDENCY_FAILED`. The reconciler's sweep
//! ([`Store::settle_waiting`]) converges whatever a concurrent PostgreSQL writer left
//! undecided.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use drover_core::{JobId, Route, State, StatusCode};
use drover_pipeline::{plan, Action, Need, Standing, Step};

use super::db::on_writer;
use super::handle::{NewJob, Store};
use super::record::{now_us, stored_priority, JobRow, QueuedRecord, JOB_COLUMNS};
use super::requests::{KeyedRequest, RequestRow};
use crate::error::Result;
use drover_model::Job;

/// The message of a job whose dependencies all succeeded.
pub(crate) const READY_MESSAGE: &str = "every job it needs succeeded; not yet on the queue";

/// One action of a request, with the job it would create.
#[derive(Debug, Clone)]
pub(crate) struct PlannedAction {
    pub(crate) action: Action,
    pub(crate) job: NewJob,
}

/// A request to create.
#[derive(Debug, Clone)]
pub(crate) struct NewRequest {
    pub(crate) workspace: String,
    pub(crate) file_name: String,
    pub(crate) project: String,
    /// The names asked for, as given (`run_all` included).
    pub(crate) requested: Vec<String>,
    /// The names that always run (empty for `run_all`: it runs what is not done).
    pub(crate) always: BTreeSet<String>,
    pub(crate) force: bool,
    /// Dependencies first.
    pub(crate) order: Vec<PlannedAction>,
    /// At most one request per key.
    pub(crate) idempotency_key: Option<String>,
    /// The code snapshot's SHA-256.
    pub(crate) code: Option<String>,
}

/// What submitting a request did.
#[derive(Debug)]
pub(crate) enum Submitted {
    /// Planned and (when anything was to run) written.
    Planned(RequestOutcome),
    /// Its idempotency key names this earlier request: nothing written.
    Existing(KeyedRequest),
}

/// What creating a request did.
#[derive(Debug)]
pub(crate) struct RequestOutcome {
    /// The request as stored, when it created jobs.
    pub(crate) request: Option<RequestRow>,
    /// Jobs it created, in order.
    pub(crate) created: Vec<Job>,
    /// Queued or running jobs it reuses.
    pub(crate) reused: Vec<Job>,
    /// How many actions were skipped because they had succeeded.
    pub(crate) skipped: usize,
}

static STANDING: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE workspace = $1 AND pipeline_action = $2 \
         AND state <> '{canceled}' ORDER BY created_us DESC, id DESC LIMIT 1",
        canceled = State::Canceled
    )
});

static INSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO jobs (id, action, params, priority, state, status_code, status_message, \
         max_attempts, timeout_secs, created_us, requires, request_id, workspace, pipeline_action) \
         VALUES ($1, $2, $3, $4, '{queued}', $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         RETURNING {JOB_COLUMNS}",
        queued = State::Queued,
    )
});

static RELEASE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE jobs SET status_code = '{created}', status_message = $2, ready_us = $3 \
         WHERE status_code = '{waiting}' AND id IN (SELECT job_id FROM job_needs WHERE needs_id = $1) \
         AND NOT EXISTS (SELECT 1 FROM job_needs m JOIN jobs d ON d.id = m.needs_id \
                         WHERE m.job_id = jobs.id AND d.state <> '{success}') \
         RETURNING id, priority, action, requires",
        created = StatusCode::Created,
        waiting = StatusCode::WaitingOnDependencies,
        success = State::Success,
    )
});

static FAIL_DOWNSTREAM: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE jobs SET state = '{failed}', status_code = '{dependency_failed}', \
         status_message = $2, finished_us = $3 \
         WHERE status_code = '{waiting}' AND id IN ( \
           WITH RECURSIVE downstream(id) AS ( \
             SELECT job_id FROM job_needs WHERE needs_id = $1 \
             UNION SELECT n.job_id FROM job_needs n JOIN downstream d ON n.needs_id = d.id) \
           SELECT id FROM downstream) \
         RETURNING id",
        failed = State::Failed,
        dependency_failed = StatusCode::DependencyFailed,
        waiting = StatusCode::WaitingOnDependencies,
    )
});

/// Ended, unsuccessful jobs that something still waits on (the sweep settles them).
static ENDED_NEEDS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ('{failed}', '{canceled}') \
         AND id IN (SELECT n.needs_id FROM job_needs n JOIN jobs j ON j.id = n.job_id \
                    WHERE j.status_code = '{waiting}') LIMIT $1",
        failed = State::Failed,
        canceled = State::Canceled,
        waiting = StatusCode::WaitingOnDependencies,
    )
});

/// Waiting jobs whose every need succeeded, released (the sweep's part of [`RELEASE`]).
static READY_WAITING: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE jobs SET status_code = '{created}', status_message = $1, ready_us = $2 \
         WHERE id IN (SELECT id FROM jobs WHERE status_code = '{waiting}' \
           AND NOT EXISTS (SELECT 1 FROM job_needs m JOIN jobs d ON d.id = m.needs_id \
                           WHERE m.job_id = jobs.id AND d.state <> '{success}') LIMIT $3) \
         RETURNING id, priority, action, requires",
        created = StatusCode::Created,
        waiting = StatusCode::WaitingOnDependencies,
        success = State::Success,
    )
});

/// Settles the dependents of `$row`, a job that just ended, on `$conn`, and evaluates to
/// `Result<Vec<(id, priority, action, requires)>, sqlx::Error>`: the jobs now ready for
/// the queue (see [`ready_records`]).
macro_rules! settle {
    ($conn:expr, $row:expr) => {
        async {
            let now = $crate::store::record::now_us();
            match $crate::store::pipeline::settle_sql($row) {
                None => Ok::<Vec<(String, i64, String, String)>, sqlx::Error>(Vec::new()),
                Some((sql, message, true)) => {
                    sqlx::query_as(sql)
                        .bind(&$row.id)
                        .bind(message)
                        .bind(now)
                        .fetch_all(&mut *$conn)
                        .await
                }
                Some((sql, message, false)) => {
                    sqlx::query_as::<_, (String,)>(sql)
                        .bind(&$row.id)
                        .bind(message)
                        .bind(now)
                        .fetch_all(&mut *$conn)
                        .await?;
                    Ok(Vec::new())
                }
            }
        }
        .await
    };
}
pub(crate) use settle;

/// The statement and message that settle `row`'s dependents, if it is a pipeline job
/// that ended; `true` when it succeeded (dependents may be released).
pub(crate) fn settle_sql(row: &JobRow) -> Option<(&'static str, String, bool)> {
    row.request_id.as_ref()?;
    let code = row.code().ok()?;
    let name = row.pipeline_action.as_deref().unwrap_or(&row.action);
    match code.state() {
        State::Success => Some((RELEASE.as_str(), READY_MESSAGE.to_owned(), true)),
        State::Failed | State::Canceled => Some((
            FAIL_DOWNSTREAM.as_str(),
            drover_pipeline::dependency_failed(name, &row.id, code),
            false,
        )),
        State::Queued | State::Running => None,
    }
}

/// Released rows as records for the queue.
pub(crate) fn ready_records(rows: Vec<(String, i64, String, String)>) -> Vec<QueuedRecord> {
    rows.into_iter()
        .filter_map(|(id, priority, action, requires)| {
            Some(QueuedRecord {
                id: id.parse().ok()?,
                priority: stored_priority(priority).ok()?,
                enqueued: false,
                route: Route::new(&action, requires.split_whitespace()).ok()?,
            })
        })
        .collect()
}

fn standing_of(row: Option<&JobRow>) -> Standing<String> {
    let Some(row) = row else {
        return Standing::Never;
    };
    match row.code().map(StatusCode::state) {
        Ok(State::Queued | State::Running) => Standing::Live(row.id.clone()),
        Ok(State::Success) => Standing::Succeeded(row.id.clone()),
        _ => Standing::Failed(row.id.clone()),
    }
}

/// The live jobs a request reuses, and how many succeeded actions it skips.
fn untouched(
    order: &[PlannedAction],
    steps: &[Step<String>],
    existing: &HashMap<String, JobRow>,
) -> (Vec<JobRow>, usize) {
    let mut reused = Vec::new();
    let mut skipped = 0;
    for (planned, step) in order.iter().zip(steps) {
        match step {
            Step::Reuse(_) => reused.extend(existing.get(&planned.action.name).cloned()),
            Step::Skip(_) => skipped += 1,
            Step::Create { .. } => {}
        }
    }
    (reused, skipped)
}

/// The ids of the jobs a new job needs, each with whether it has to wait for it (a
/// skipped success is needed for its outputs only).
fn need_ids(needs: &[Need<String>], ids: &[Option<JobId>]) -> Vec<(String, bool)> {
    needs
        .iter()
        .filter_map(|need| {
            let id = match need {
                Need::New(j) => ids[*j].map(|id| id.to_string()),
                Need::Existing(id) | Need::Done(id) => Some(id.clone()),
            };
            id.map(|id| (id, need.waits()))
        })
        .collect()
}

/// Takes the workspace's row: requests on one workspace are decided one after the other.
const WORKSPACE_TURN: &str =
    "INSERT INTO workspaces (name, requests, created_us) VALUES ($1, 1, $2) \
     ON CONFLICT (name) DO UPDATE SET requests = workspaces.requests + 1";

/// The created jobs that need nothing, for the queue.
fn ready_of(created: &[JobRow]) -> Vec<QueuedRecord> {
    let rows = created
        .iter()
        .filter(|row| row.status_code == StatusCode::Created.as_str())
        .map(|row| {
            (
                row.id.clone(),
                row.priority,
                row.action.clone(),
                row.requires.clone(),
            )
        })
        .collect();
    ready_records(rows)
}

/// The row [`insert_request!`] writes for `request`.
fn request_row(request: &NewRequest, id: JobId, now: i64) -> RequestRow {
    RequestRow {
        id: id.to_string(),
        workspace: request.workspace.clone(),
        file_name: request.file_name.clone(),
        requested: serde_json::to_string(&request.requested).unwrap_or_default(),
        force_run: request.force,
        created_us: now,
    }
}

/// A new job's first status: ready for the queue, or waiting for what it needs.
fn first_status(needs: &[(String, bool)]) -> (StatusCode, String) {
    let waits = needs.iter().filter(|(_, waits)| *waits).count();
    if waits == 0 {
        (
            StatusCode::Created,
            super::handle::CREATED_MESSAGE.to_owned(),
        )
    } else {
        (
            StatusCode::WaitingOnDependencies,
            format!("waiting for {waits} job(s) it needs to succeed"),
        )
    }
}

/// Inserts the request's row on `$tx`.
macro_rules! insert_request {
    ($tx:expr, $request:expr, $id:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO requests (id, workspace, file_name, requested, force_run, created_us, project, \
             idempotency_key, code_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind($id.to_string())
        .bind(&$request.workspace)
        .bind(&$request.file_name)
        .bind(serde_json::to_string(&$request.requested).unwrap_or_default())
        .bind($request.force)
        .bind($now)
        .bind(&$request.project)
        .bind(&$request.idempotency_key)
        .bind(&$request.code)
        .execute($tx)
        .await
    };
}

/// The request `$key` (an `Option<String>`) already names, on `$tx`.
macro_rules! keyed_request {
    ($tx:expr, $key:expr) => {
        async {
            let Some(key) = &$key else {
                return Ok(None);
            };
            sqlx::query_as::<_, KeyedRequest>(
                "SELECT id, workspace, requested, force_run, project, code_sha256 FROM requests \
                 WHERE idempotency_key = $1",
            )
            .bind(key)
            .fetch_optional($tx)
            .await
        }
        .await
    };
}

/// Inserts one planned job and what it needs on `$tx`; evaluates to its row.
macro_rules! insert_job {
    ($tx:expr, $planned:expr, $id:expr, $needs:expr, $request_id:expr, $workspace:expr, $at:expr) => {
        async {
            let (code, message) = first_status($needs);
            let job = &$planned.job;
            let row: JobRow = sqlx::query_as(&INSERT)
                .bind($id.to_string())
                .bind(&job.action)
                .bind(&job.params)
                .bind(i64::from(job.priority.get()))
                .bind(code.as_str())
                .bind(&message)
                .bind(i64::from(job.max_attempts))
                .bind(i64::try_from(job.timeout_secs).unwrap_or(i64::MAX))
                .bind($at)
                .bind(job.requires.join(" "))
                .bind($request_id.to_string())
                .bind(&$workspace)
                .bind(&$planned.action.name)
                .fetch_one(&mut *$tx)
                .await?;
            for (need, _) in $needs {
                sqlx::query(
                    "INSERT INTO job_needs (job_id, needs_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind($id.to_string())
                .bind(need)
                .execute(&mut *$tx)
                .await?;
            }
            Ok::<_, sqlx::Error>(row)
        }
        .await
    };
}

impl Store {
    /// Creates `request`'s jobs in one transaction: what runs, what is reused, what is
    /// skipped (see [`drover_pipeline::plan`]). Nothing is written when nothing would run.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn create_request(&self, request: NewRequest) -> Result<Submitted> {
        let written = on_writer!(&self.pools, move |conn| {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            // Serialises requests on one workspace (a row lock on PostgreSQL).
            sqlx::query(WORKSPACE_TURN)
                .bind(&request.workspace)
                .bind(now_us())
                .execute(&mut *tx)
                .await?;
            if let Some(keyed) = keyed_request!(&mut *tx, request.idempotency_key)? {
                tx.rollback().await?;
                return Ok(Err(keyed));
            }
            let mut existing: HashMap<String, JobRow> = HashMap::new();
            for planned in &request.order {
                let row: Option<JobRow> = sqlx::query_as(&STANDING)
                    .bind(&request.workspace)
                    .bind(&planned.action.name)
                    .fetch_optional(&mut *tx)
                    .await?;
                existing.extend(row.map(|row| (planned.action.name.clone(), row)));
            }
            let actions: Vec<&Action> = request.order.iter().map(|p| &p.action).collect();
            let steps = plan(&actions, &request.always, request.force, |name| {
                standing_of(existing.get(name))
            });
            let (reused, skipped) = untouched(&request.order, &steps, &existing);
            if !steps.iter().any(|s| matches!(s, Step::Create { .. })) {
                tx.rollback().await?;
                return Ok(Ok((Vec::new(), reused, skipped, None)));
            }
            let request_id = JobId::new();
            let now = now_us();
            insert_request!(&mut *tx, request, request_id, now)?;
            let mut ids: Vec<Option<JobId>> = vec![None; steps.len()];
            let mut created = Vec::new();
            for (i, (planned, step)) in request.order.iter().zip(&steps).enumerate() {
                let Step::Create { needs } = step else {
                    continue;
                };
                let id = JobId::new();
                ids[i] = Some(id);
                let needs = need_ids(needs, &ids);
                // Later actions a microsecond later: creation order is the plan's.
                let at = now + i64::try_from(i).unwrap_or(0);
                let row = insert_job!(
                    &mut *tx,
                    planned,
                    id,
                    &needs,
                    request_id,
                    request.workspace,
                    at
                )?;
                created.push(row);
            }
            tx.commit().await?;
            let row = request_row(&request, request_id, now);
            Ok::<_, sqlx::Error>(Ok((created, reused, skipped, Some(row))))
        })?;
        let (created, reused, skipped, request_row) = match written {
            Ok(written) => written,
            Err(keyed) => return Ok(Submitted::Existing(keyed)),
        };
        // The jobs that need nothing go on the queue now.
        self.ready(ready_of(&created));
        Ok(Submitted::Planned(RequestOutcome {
            request: request_row,
            created: created
                .into_iter()
                .map(JobRow::into_job)
                .collect::<Result<_>>()?,
            reused: reused
                .into_iter()
                .map(JobRow::into_job)
                .collect::<Result<_>>()?,
            skipped,
        }))
    }

    /// The reconciler's sweep: waiting jobs a job they need left failed or cancelled end
    /// `DEPENDENCY_FAILED`; waiting jobs whose every need succeeded become ready (and are
    /// answered, for the queue). Converges what a concurrent writer left undecided.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn settle_waiting(&self, limit: i64) -> Result<Vec<QueuedRecord>> {
        let ready = on_writer!(&self.pools, move |conn| {
            let failed: Vec<JobRow> = sqlx::query_as(&ENDED_NEEDS)
                .bind(limit)
                .fetch_all(&mut *conn)
                .await?;
            for row in &failed {
                settle!(conn, row)?;
            }
            let ready: Vec<(String, i64, String, String)> = sqlx::query_as(&READY_WAITING)
                .bind(READY_MESSAGE)
                .bind(now_us())
                .bind(limit)
                .fetch_all(&mut *conn)
                .await?;
            Ok::<_, sqlx::Error>(ready)
        })?;
        Ok(ready_records(ready))
    }
}
