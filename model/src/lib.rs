//! drover's shared vocabulary: the API's wire types (what clients send and what the API
//! answers, as JSON) and the ZooKeeper layout every role agrees on ([`paths`]).
//!
//! This crate is the contract between the API server (`drover-api`), its client
//! (`drover-client`), the `drover` CLI, executors and distributors. Every request body
//! rejects unknown fields. With the `openapi` feature (the server's) the types also
//! describe themselves for the OpenAPI document.

mod cleanup;
mod control;
mod outputs;
pub mod paths;
mod request;

pub use cleanup::{CleanedUp, Cleanup};
pub use control::{
    Attempt, Cleaning, CleanupOrder, DiskUse, DrainOrder, DrainPhase, DrainRequest, DrainStatus,
    Orders, Pause, PauseRequest, Pauses,
};
pub use outputs::{CodeSnapshot, JobInputs, OutputFile, OutputList};
pub use request::{Progress, Request, RequestCreated, RequestDetail, RequestPage, SubmitRequest};

use std::collections::BTreeMap;

use drover_core::{FencingToken, JobId, Priority, State, StatusCode};
use serde::{Deserialize, Serialize};

/// A job record as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    /// The job's id.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: JobId,
    /// The action to run (`noop`, `sleep`, a Docker action's name, ...).
    pub action: String,
    /// The action's parameters, a JSON object.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub params: serde_json::Value,
    /// Queue priority, 0–999, lower runs first.
    #[cfg_attr(feature = "openapi", schema(value_type = u16))]
    pub priority: Priority,
    /// Coarse state.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: State,
    /// Precise status code.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status_code: StatusCode,
    /// A human-readable explanation of the status.
    pub status_message: String,
    /// 0–100, from heartbeats.
    pub progress: u8,
    /// The action's exit code, once it exited.
    pub exit_code: Option<i64>,
    /// Claims so far (each run or re-run counts one).
    pub attempts: u32,
    /// Claims allowed before a release fails the job with `ATTEMPTS_EXHAUSTED`.
    pub max_attempts: u32,
    /// Seconds the action may run before it is stopped (`TIMED_OUT`).
    pub timeout_secs: u64,
    /// The executor holding (or that last held) the job.
    pub executor: Option<String>,
    /// The fencing token of the current (or last) holder.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub fencing_token: Option<FencingToken>,
    /// The queue entry (`entry-PPP-NNNNNNNNNN`) the current (or last) holder claimed
    /// through: only a re-take of this entry may take a running job over.
    #[serde(default)]
    pub queue_entry: Option<String>,
    /// Last heartbeat, RFC 3339.
    pub last_heartbeat: Option<String>,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// First claim of the current run, RFC 3339.
    pub started_at: Option<String>,
    /// When it reached a terminal state, RFC 3339.
    pub finished_at: Option<String>,
    /// The submitter's idempotency key, if given.
    pub idempotency_key: Option<String>,
    /// Tags an executor must carry to run it (besides those its action file requires).
    #[serde(default)]
    pub requires: Vec<String>,
    /// Whether the id was put on the ZooKeeper queue (false: the reconciler will).
    pub enqueued: bool,
    /// The job this one retries.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub retry_of: Option<JobId>,
    /// A user asked to cancel it while it runs.
    pub cancel_requested: bool,
    /// An admin asked to kill it while it runs.
    pub kill_requested: bool,
    /// The pipeline request that created it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub request_id: Option<JobId>,
    /// The workspace of its request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// The project file's action it runs (a matrix action's expanded name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_action: Option<String>,
    /// A RUNNING job whose last heartbeat is older than three of its executor's heartbeat
    /// intervals: its executor may be stuck (worked out when read, never stored).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
}

/// `POST /v1/jobs`: submit a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubmitJob {
    /// The action to run; non-empty, at most 128 characters of `[A-Za-z0-9_.-]`.
    pub action: String,
    /// Parameters (a JSON object, size-limited by `api.max_params_bytes`).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub params: BTreeMap<String, serde_json::Value>,
    /// 0–999, default 100.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u16>))]
    pub priority: Option<Priority>,
    /// Default from `api.default_max_attempts`.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Default from `api.default_timeout`.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Resubmitting with the same key returns the existing job (200, not 201).
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Tags an executor must carry to run the job (`gpu`, `db`), besides those the
    /// action's file requires: at most 32 of `[A-Za-z0-9_.-]`, 64 characters each.
    #[serde(default)]
    pub requires: Vec<String>,
}

/// Every executor write names its token and itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Claim {
    /// The fencing token of the queue entry the executor holds: its taken node's
    /// creation zxid, which the API checks in ZooKeeper.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub token: FencingToken,
    /// The executor's id.
    pub executor: String,
    /// The queue entry the executor took (`entry-PPP-NNNNNNNNNN`): its payload must be
    /// this job's id and its taken node must have been created at `token`.
    pub entry: String,
}

/// `POST /v1/jobs/{id}/heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Heartbeat {
    /// The holder's fencing token.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub token: FencingToken,
    /// 0–100.
    #[serde(default)]
    pub progress: Option<u8>,
    /// A forward move within RUNNING (`PREPARING` → `EXECUTING` → `FINALIZING`).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub status_code: Option<StatusCode>,
}

/// The heartbeat's answer: what the executor must do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatReply {
    /// Stop the action gracefully and finish with `CANCELLED_BY_USER`.
    pub cancel_requested: bool,
    /// Stop the action and finish with `KILLED_BY_ADMIN`.
    pub kill_requested: bool,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogLine {
    /// `stdout` or `stderr` (or `drover` for the API's own markers).
    pub stream: String,
    /// The line, without its newline.
    pub line: String,
}

/// `POST /v1/jobs/{id}/logs`: a batch of lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppendLogs {
    /// The holder's fencing token.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub token: FencingToken,
    /// Lines in order.
    pub lines: Vec<LogLine>,
}

/// The answer to a log batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogsAppended {
    /// Lines stored from this batch.
    pub accepted: usize,
    /// The job's log reached its cap: later lines are dropped (a marker line says so).
    pub truncated: bool,
}

/// A stored log line with its position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredLogLine {
    /// Position in the job's log, from 1.
    pub seq: i64,
    /// `stdout`, `stderr` or `drover`.
    pub stream: String,
    /// The line.
    pub line: String,
}

/// `GET /v1/jobs/{id}/logs?after=SEQ&limit=N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogPage {
    /// Lines after `after`, in order.
    pub lines: Vec<StoredLogLine>,
    /// Pass as `after` to continue.
    pub next: i64,
    /// The job is terminal: no more lines will come once `lines` is empty.
    pub finished: bool,
}

/// `POST /v1/jobs/{id}/finish`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Finish {
    /// The holder's fencing token.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub token: FencingToken,
    /// A terminal code (`SUCCEEDED`, `NONZERO_EXIT`, `TIMED_OUT`, ...).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status_code: StatusCode,
    /// The action's exit code, if it exited.
    #[serde(default)]
    pub exit_code: Option<i64>,
    /// What happened, for people.
    #[serde(default)]
    pub message: Option<String>,
}

/// `POST /v1/jobs/{id}/release`: give the job back to the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Release {
    /// The holder's fencing token.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub token: FencingToken,
    /// Why (drain deadline, lost session, ...).
    #[serde(default)]
    pub message: Option<String>,
}

/// `GET /v1/jobs`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobPage {
    /// Up to `limit` jobs.
    pub jobs: Vec<Job>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/resolve/{fragment}` when the fragment matches several jobs (status 409).
///
/// The body also carries [`ApiError`]'s `error` (`ambiguous_id`) and `message`, so it
/// parses as either type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Candidates {
    /// What was looked up.
    pub fragment: String,
    /// Up to 20 matching jobs, newest first.
    pub candidates: Vec<Job>,
}

/// Every 4xx/5xx body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiError {
    /// A stable machine-readable code (`not_found`, `conflict`, `stale_token`, ...).
    pub error: String,
    /// What was wrong and how to fix it.
    pub message: String,
    /// The job's current state, on conflicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub state: Option<State>,
    /// The job's current status code, on conflicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub status_code: Option<StatusCode>,
}

/// `GET /v1/executors`: one registered executor, from ZooKeeper membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecutorInfo {
    /// The executor's id.
    pub id: String,
    /// The host it runs on.
    pub host: String,
    /// How many jobs it runs at once.
    pub slots: u32,
    /// How many it runs now.
    pub busy: u32,
    /// drover's version on it.
    pub version: String,
    /// When it started, RFC 3339.
    pub started_at: String,
    /// The actions it knows, each with the tags its action file requires (it runs those
    /// whose tags it carries).
    #[serde(default)]
    pub actions: BTreeMap<String, Vec<String>>,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Set while a remote drain (`drover drain`) holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainStatus>,
    /// How often its running jobs heartbeat, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_ms: Option<u64>,
    /// What drover takes on its Docker engine, as last measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskUse>,
}

impl Job {
    /// What the job needs of an executor. A record the API wrote always has a valid one.
    ///
    /// # Errors
    /// A stored action or tag that is not a valid name.
    pub fn route(&self) -> Result<drover_core::Route, String> {
        drover_core::Route::new(&self.action, &self.requires)
    }
}

impl ExecutorInfo {
    /// What it offers, for routing decisions.
    pub fn offer(&self) -> drover_core::Offer {
        drover_core::Offer::from_lists(&self.actions, &self.tags)
    }
}

pub use paths::DISTRIBUTIONS as DISTRIBUTIONS_PATH;

/// `POST /v1/admin/reconcile`: what counts as old enough to repair. Both are optional;
/// the API's defaults are 10 s and 30 s.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reconcile {
    /// A QUEUED record younger than this (in milliseconds, 0–86400000) is left alone: its
    /// submit may still be putting it on the queue. Default 10000.
    #[serde(default)]
    pub grace_ms: Option<u64>,
    /// A RUNNING job is only given back when its last heartbeat is older than this (in
    /// milliseconds, 0–86400000) and its taken node is gone. Default 30000.
    #[serde(default)]
    pub stale_after_ms: Option<u64>,
    /// An ENQUEUED job whose action no registered executor knows (and at least one is
    /// registered) is ended `UNKNOWN_ACTION` once it is older than this (in milliseconds,
    /// 0–86400000). Default 600000 (10 minutes).
    #[serde(default)]
    pub unknown_action_after_ms: Option<u64>,
}

/// One kind of repair: how many, and the first few affected (job ids or entry names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Repairs {
    /// How many were repaired.
    pub count: u64,
    /// Up to 100 of them.
    pub sample: Vec<String>,
}

impl Repairs {
    /// Counts one more, keeping it in the sample while there is room.
    pub fn add(&mut self, what: impl ToString) {
        self.count += 1;
        if self.sample.len() < 100 {
            self.sample.push(what.to_string());
        }
    }
}

/// What one reconcile run repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reconciled {
    /// QUEUED records with no entry on the queue (never enqueued, or the entry was
    /// deleted): put on the queue.
    pub enqueued: Repairs,
    /// Records marked `enqueued = false` whose entry was on the queue: flag fixed.
    pub marked_enqueued: Repairs,
    /// RUNNING jobs whose executor is gone (no taken node, stale heartbeat): back to
    /// QUEUED, the attempt counted.
    pub released: Repairs,
    /// RUNNING jobs whose executor is gone and that may not run again (attempts used
    /// up, or cancel/kill requested): ended.
    pub ended: Repairs,
    /// Queue entries whose job no longer exists, or is finished, and that no executor
    /// holds: deleted (entry names).
    pub removed_entries: Repairs,
    /// ENQUEUED jobs whose action no registered executor knows, past
    /// `unknown_action_after_ms`: ended `UNKNOWN_ACTION`.
    #[serde(default)]
    pub unknown_action: Repairs,
    /// Entries on the queue when the run started.
    pub entries_seen: u64,
    /// How long the run took, in milliseconds.
    pub elapsed_ms: u64,
}

impl Reconciled {
    /// How many repairs of every kind.
    pub fn total(&self) -> u64 {
        self.enqueued.count
            + self.marked_enqueued.count
            + self.released.count
            + self.ended.count
            + self.removed_entries.count
            + self.unknown_action.count
    }

    /// The counts, for a log line: `enqueued=1 marked_enqueued=0 released=2 ended=0
    /// removed_entries=0 unknown_action=0`.
    pub fn counts(&self) -> String {
        format!(
            "enqueued={} marked_enqueued={} released={} ended={} removed_entries={} unknown_action={}",
            self.enqueued.count,
            self.marked_enqueued.count,
            self.released.count,
            self.ended.count,
            self.removed_entries.count,
            self.unknown_action.count
        )
    }
}

/// A distribution's status, as its leader publishes it (`/distributions/<name>`) and
/// `GET /v1/distributions` serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Distribution {
    /// The distribution's name (its election is `/election/<name>`).
    pub name: String,
    /// The action its jobs run (`reconcile` for the built-in reconciler, which calls the
    /// API instead of submitting jobs).
    pub action: String,
    /// `every 1h` or `cron 0 2 * * *`.
    pub schedule: String,
    /// The catch-up policy: `latest`, `none` or `all`.
    pub catch_up: String,
    /// The current leader's id (its election node's data); `None` when nobody leads.
    /// The API reads it from the election, so it is live even if the status is old.
    #[serde(default)]
    pub leader: Option<String>,
    /// The distributor that wrote this status.
    pub published_by: String,
    /// The last tick handled (scheduled time, RFC 3339).
    #[serde(default)]
    pub last_tick: Option<String>,
    /// The job the last tick created or found (its idempotency key matched).
    #[serde(default)]
    pub last_job: Option<String>,
    /// The next tick the leader waits for (scheduled time, RFC 3339).
    #[serde(default)]
    pub next_tick: Option<String>,
    /// When the leader wrote this, RFC 3339.
    pub updated_at: String,
    /// Set by the API when a leader is named but its next tick is long overdue (several
    /// intervals, at least 30 s): the leader is not ticking. Says how late it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck: Option<String>,
}
