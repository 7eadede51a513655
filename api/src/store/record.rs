//! A job row as stored, and its conversion to the wire [`Job`].

use std::time::{SystemTime, UNIX_EPOCH};

use drover_core::{FencingToken, JobId, Priority, StatusCode};

use crate::error::{Error, Result};
use drover_model::Job;

/// A QUEUED record that should have a queue entry (the reconciler's, and a job whose
/// dependencies succeeded).
#[derive(Debug, Clone)]
pub(crate) struct QueuedRecord {
    pub(crate) id: JobId,
    pub(crate) priority: Priority,
    pub(crate) enqueued: bool,
    /// What it needs of an executor, as its queue entry's name carries it.
    pub(crate) route: drover_core::Route,
}

/// The columns every job query returns, in [`JobRow`]'s order.
pub(crate) const JOB_COLUMNS: &str = "id, action, params, priority, status_code, \
    status_message, progress, exit_code, attempts, max_attempts, timeout_secs, executor, \
    fencing_token, last_heartbeat_us, created_us, started_us, finished_us, idempotency_key, \
    enqueued, retry_of, cancel_requested, kill_requested, queue_entry, requires, request_id, \
    workspace, pipeline_action";

/// A `jobs` row (its `state` column, which mirrors the code's state for filters and
/// indexes, is not read back). Integers are `i64` (PostgreSQL `BIGINT`, SQLite `INTEGER`); times are
/// microseconds since the Unix epoch.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct JobRow {
    pub(crate) id: String,
    pub(crate) action: String,
    pub(crate) params: String,
    pub(crate) priority: i64,
    pub(crate) status_code: String,
    pub(crate) status_message: String,
    pub(crate) progress: i64,
    pub(crate) exit_code: Option<i64>,
    pub(crate) attempts: i64,
    pub(crate) max_attempts: i64,
    pub(crate) timeout_secs: i64,
    pub(crate) executor: Option<String>,
    pub(crate) fencing_token: Option<i64>,
    pub(crate) last_heartbeat_us: Option<i64>,
    pub(crate) created_us: i64,
    pub(crate) started_us: Option<i64>,
    pub(crate) finished_us: Option<i64>,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) enqueued: bool,
    pub(crate) retry_of: Option<String>,
    pub(crate) cancel_requested: bool,
    pub(crate) kill_requested: bool,
    pub(crate) queue_entry: Option<String>,
    /// Required tags, sorted, separated by spaces.
    pub(crate) requires: String,
    /// The pipeline request that created the job.
    pub(crate) request_id: Option<String>,
    pub(crate) workspace: Option<String>,
    pub(crate) pipeline_action: Option<String>,
}

impl JobRow {
    /// The stored status code; a row that does not name one is corrupt.
    pub(crate) fn code(&self) -> Result<StatusCode> {
        self.status_code
            .parse()
            .map_err(|err: drover_core::UnknownStatusCode| self.corrupt(err.to_string()))
    }

    /// The stored token.
    pub(crate) fn token(&self) -> Option<FencingToken> {
        self.fencing_token.map(FencingToken::new)
    }

    fn corrupt(&self, detail: String) -> Error {
        Error::Corrupt {
            id: self.id.clone(),
            detail,
        }
    }

    /// The wire form.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when a column holds something this API never writes.
    pub(crate) fn into_job(self) -> Result<Job> {
        let code = self.code()?;
        let int = |value: i64, what: &str| {
            u32::try_from(value).map_err(|_| self.corrupt(format!("{what} {value} is negative")))
        };
        let id: JobId = self
            .id
            .parse()
            .map_err(|err: drover_core::Error| self.corrupt(err.to_string()))?;
        let parse_id = |text: &Option<String>| -> Result<Option<JobId>> {
            text.as_deref()
                .map(|t| {
                    t.parse()
                        .map_err(|err: drover_core::Error| self.corrupt(err.to_string()))
                })
                .transpose()
        };
        let retry_of = parse_id(&self.retry_of)?;
        let request_id = parse_id(&self.request_id)?;
        let priority = stored_priority(self.priority).map_err(|e| self.corrupt(e))?;
        let params = serde_json::from_str(&self.params)
            .map_err(|err| self.corrupt(format!("params are not JSON: {err}")))?;
        Ok(Job {
            id,
            action: self.action.clone(),
            params,
            priority,
            state: code.state(),
            status_code: code,
            status_message: self.status_message.clone(),
            progress: u8::try_from(self.progress.clamp(0, 100)).unwrap_or(0),
            exit_code: self.exit_code,
            attempts: int(self.attempts, "attempts")?,
            max_attempts: int(self.max_attempts, "max_attempts")?,
            timeout_secs: u64::try_from(self.timeout_secs).unwrap_or(0),
            executor: self.executor.clone(),
            fencing_token: self.token(),
            queue_entry: self.queue_entry.clone(),
            requires: self
                .requires
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            last_heartbeat: self.last_heartbeat_us.map(rfc3339),
            created_at: rfc3339(self.created_us),
            started_at: self.started_us.map(rfc3339),
            finished_at: self.finished_us.map(rfc3339),
            idempotency_key: self.idempotency_key.clone(),
            enqueued: self.enqueued,
            retry_of,
            cancel_requested: self.cancel_requested,
            kill_requested: self.kill_requested,
            request_id,
            workspace: self.workspace.clone(),
            pipeline_action: self.pipeline_action.clone(),
            stale: false,
        })
    }
}

/// Now, in microseconds since the Unix epoch.
pub(crate) fn now_us() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
}

/// A stored priority (the schema keeps it in 0..=999).
///
/// # Errors
/// The value, when the row holds something else.
pub(crate) fn stored_priority(value: i64) -> Result<Priority, String> {
    u16::try_from(value)
        .ok()
        .and_then(|p| Priority::new(p).ok())
        .ok_or_else(|| format!("priority {value} is out of range"))
}

pub(crate) use drover_core::clock::rfc3339 as system_rfc3339;
pub(crate) use drover_core::clock::rfc3339_micros as rfc3339;

#[cfg(test)]
mod tests {
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123456Z"
        );
        let now = rfc3339(now_us());
        assert!(OffsetDateTime::parse(&now, &Rfc3339).is_ok(), "{now}");
    }
}
