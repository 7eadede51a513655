//! Fenced lifecycle updates: claim, heartbeat, finish, release, cancel and kill.
//!
//! Each is one writer operation. Hot paths (claim, heartbeat, finish) are one
//! compare-and-set statement whose condition is the transition table (see
//! [`statements`](super::statements)); only when it matches nothing is the row read, on
//! the same connection, to explain the refusal. The rarer moves (release, cancel, kill)
//! read the row, compute the target, ask [`check_transition`], then compare-and-set on
//! exactly what they read. A compare-and-set that loses a race is retried.

use drover_core::{FencingToken, JobId, StatusCode};

use super::db::on_writer;
use super::decide::{
    claim_refusal, default_result_message, plan_cancel, plan_release, refuse_write, CancelKind,
    Move, Step,
};
use super::handle::{not_found, Store};
use super::pipeline::{ready_records, settle};
use super::record::{now_us, JobRow};
use crate::error::{Error, Result};
use drover_model::{HeartbeatReply, Job};

/// How often a move is retried when the row changes between its statements.
pub(super) const RETRIES: usize = 5;

/// Applies `$mv` to the row `$row` (status `$code`) if it is still exactly as read.
macro_rules! cas {
    ($conn:expr, $sql:expr, $row:expr, $code:expr, $mv:expr) => {{
        let finished_us = $mv.code.is_terminal().then(now_us);
        sqlx::query_as::<_, JobRow>(&$sql.cas)
            .bind(&$row.id)
            .bind($code.as_str())
            .bind($row.fencing_token)
            .bind($row.attempts)
            .bind($row.cancel_requested)
            .bind($row.kill_requested)
            .bind($mv.code.state().as_str())
            .bind($mv.code.as_str())
            .bind(&$mv.message)
            .bind(finished_us)
            .bind($mv.progress)
            .bind($mv.cancel_requested)
            .bind($mv.kill_requested)
            .fetch_optional($conn)
            .await
    }};
}

/// Reads the row on the writing connection (so it sees the writes queued before).
macro_rules! current {
    ($conn:expr, $sql:expr, $id:expr) => {
        sqlx::query_as::<_, JobRow>(&$sql.get)
            .bind(&$id)
            .fetch_optional($conn)
            .await
    };
}
pub(super) use current;

impl Store {
    /// Claims the job for the holder of `token` on queue entry `entry`: `QUEUED` →
    /// `RUNNING`/`PREPARING`, or a take-over of a `RUNNING` job through a re-take of
    /// the entry it was claimed through. The caller has checked the marker in ZooKeeper.
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; 409s ([`Error::Fenced`], [`Error::Conflict`],
    /// [`Error::IllegalTransition`]) when the job is terminal, was claimed with a token
    /// that is not older, runs under another entry, or is not claimable; database errors.
    pub(crate) async fn claim(
        &self,
        id: JobId,
        token: FencingToken,
        executor: &str,
        entry: &str,
    ) -> Result<Job> {
        let message = format!("claimed by executor {executor}");
        for _ in 0..RETRIES {
            let (sql, id_text, executor, message, entry) = (
                self.sql.clone(),
                id.to_string(),
                executor.to_owned(),
                message.clone(),
                entry.to_owned(),
            );
            let step = on_writer!(&self.pools, move |conn| {
                let claimed = sqlx::query_as::<_, JobRow>(&sql.fenced.claim)
                    .bind(&id_text)
                    .bind(token.get())
                    .bind(&executor)
                    .bind(&message)
                    .bind(now_us())
                    .bind(&entry)
                    .fetch_optional(&mut *conn)
                    .await?;
                if let Some(row) = claimed {
                    return Ok((Step::Done(Box::new(row)), Vec::new()));
                }
                let Some(row) = current!(&mut *conn, sql, id_text)? else {
                    return Ok((Step::Fail(not_found(id)), Vec::new()));
                };
                let mut ready = Vec::new();
                let step = match claim_refusal(&row, token, &entry) {
                    Err(step) => step,
                    Ok((code, mv)) => match cas!(&mut *conn, sql, row, code, mv)? {
                        Some(ended) => {
                            ready = settle!(conn, &ended)?;
                            Step::Fail(super::decide::finished(
                                &ended,
                                mv.code,
                                "it will not run again: consume the queue entry",
                            ))
                        }
                        None => Step::Retry,
                    },
                };
                Ok::<_, sqlx::Error>((step, ready))
            })?;
            let (step, ready) = step;
            self.ready(ready_records(ready));
            match step {
                Step::Done(row) => return row.into_job(),
                Step::Fail(err) => {
                    if matches!(&err, Error::Conflict { state, .. } if state.is_terminal()) {
                        self.notify();
                    }
                    return Err(err);
                }
                Step::Retry => {}
            }
        }
        Err(busy(id))
    }

    /// Records a heartbeat; the answer says whether to stop.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a non-running `status`; 409s when `token` does not
    /// hold the job, the job is terminal, or the move is backwards; database errors.
    pub(crate) async fn heartbeat(
        &self,
        id: JobId,
        token: FencingToken,
        progress: Option<u8>,
        status: Option<StatusCode>,
    ) -> Result<HeartbeatReply> {
        if let Some(code) = status.filter(|code| !self.sql.fenced.heartbeat_to.contains_key(code)) {
            return Err(Error::InvalidInput {
                field: "status_code".into(),
                reason: format!(
                    "{code} is not a running status: a heartbeat may move the job to PREPARING, EXECUTING or FINALIZING; report a result with POST /v1/jobs/{{id}}/finish"
                ),
            });
        }
        for _ in 0..RETRIES {
            let (sql, id_text) = (self.sql.clone(), id.to_string());
            let step = on_writer!(&self.pools, move |conn| {
                let text = match status {
                    Some(code) => sql
                        .fenced
                        .heartbeat_to
                        .get(&code)
                        .unwrap_or(&sql.fenced.heartbeat),
                    None => &sql.fenced.heartbeat,
                };
                let flags: Option<(bool, bool)> = sqlx::query_as(text)
                    .bind(&id_text)
                    .bind(token.get())
                    .bind(now_us())
                    .bind(progress.map(i64::from))
                    .fetch_optional(&mut *conn)
                    .await?;
                if let Some(flags) = flags {
                    return Ok(Ok(flags));
                }
                let step = match current!(&mut *conn, sql, id_text)? {
                    None => Step::Fail(not_found(id)),
                    Some(row) => refuse_write(&row, token, status),
                };
                Ok::<_, sqlx::Error>(Err(step))
            })?;
            match step {
                Ok((cancel_requested, kill_requested)) => {
                    return Ok(HeartbeatReply {
                        cancel_requested,
                        kill_requested,
                    })
                }
                Err(Step::Fail(err)) => return Err(err),
                Err(_) => {}
            }
        }
        Err(busy(id))
    }

    /// Records the result: a terminal `code`, exit code and message.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a code that is not terminal; 409s as for heartbeats;
    /// database errors. Repeating the same result with the same token answers the job.
    pub(crate) async fn finish(
        &self,
        id: JobId,
        token: FencingToken,
        code: StatusCode,
        exit_code: Option<i64>,
        message: Option<&str>,
    ) -> Result<Job> {
        if !self.sql.fenced.finish.contains_key(&code) {
            return Err(Error::InvalidInput {
                field: "status_code".into(),
                reason: format!(
                    "{code} is not a result: finish with a terminal code such as SUCCEEDED, NONZERO_EXIT, TIMED_OUT or CANCELLED_BY_USER; report progress with a heartbeat"
                ),
            });
        }
        let message = match message {
            Some(text) if !text.trim().is_empty() => text.to_owned(),
            _ => default_result_message(code, exit_code),
        };
        for _ in 0..RETRIES {
            let (sql, id_text, message) = (self.sql.clone(), id.to_string(), message.clone());
            let step = on_writer!(&self.pools, move |conn| {
                let text = sql.fenced.finish.get(&code).unwrap_or(&sql.cas);
                let done = sqlx::query_as::<_, JobRow>(text)
                    .bind(&id_text)
                    .bind(token.get())
                    .bind(&message)
                    .bind(exit_code)
                    .bind(now_us())
                    .fetch_optional(&mut *conn)
                    .await?;
                if let Some(row) = done {
                    let ready = settle!(conn, &row)?;
                    return Ok((Step::Done(Box::new(row)), ready));
                }
                let step = match current!(&mut *conn, sql, id_text)? {
                    None => Step::Fail(not_found(id)),
                    // The same result again (a retried request): the job as recorded.
                    Some(row)
                        if row.token() == Some(token)
                            && row.code().ok() == Some(code)
                            && row.exit_code == exit_code =>
                    {
                        Step::Done(Box::new(row))
                    }
                    Some(row) => refuse_write(&row, token, Some(code)),
                };
                Ok::<_, sqlx::Error>((step, Vec::new()))
            })?;
            let (step, ready) = step;
            self.ready(ready_records(ready));
            match step {
                Step::Done(row) => {
                    self.notify();
                    return row.into_job();
                }
                Step::Fail(err) => return Err(err),
                Step::Retry => {}
            }
        }
        Err(busy(id))
    }

    /// Gives the job back to the queue; ends it instead when no attempts are left or
    /// cancellation was requested.
    ///
    /// # Errors
    /// 409s as for heartbeats; database errors.
    pub(crate) async fn release(
        &self,
        id: JobId,
        token: FencingToken,
        reason: Option<&str>,
    ) -> Result<Job> {
        let reason = reason
            .filter(|r| !r.trim().is_empty())
            .unwrap_or("no reason given")
            .to_owned();
        self.read_decide_write(id, move |row| plan_release(row, token, &reason))
            .await
    }

    /// Cancels (or kills) the job: a queued job ends at once, a running one is flagged
    /// for its executor, which learns it on its next heartbeat.
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; [`Error::IllegalTransition`] when the job is terminal;
    /// database errors.
    pub(crate) async fn cancel(&self, id: JobId, kind: CancelKind, caller: &str) -> Result<Job> {
        let caller = caller.to_owned();
        self.read_decide_write(id, move |row| plan_cancel(row, kind, &caller))
            .await
    }

    /// Reads the row, lets `plan` decide (a move, or a refusal), and applies the move
    /// if the row is still exactly as read; retries when it is not.
    async fn read_decide_write<P>(&self, id: JobId, plan: P) -> Result<Job>
    where
        P: Fn(&JobRow) -> Result<Move, Step> + Clone + Send + 'static,
    {
        for _ in 0..RETRIES {
            let (sql, id_text, plan) = (self.sql.clone(), id.to_string(), plan.clone());
            let step = on_writer!(&self.pools, move |conn| {
                let Some(row) = current!(&mut *conn, sql, id_text)? else {
                    return Ok((Step::Fail(not_found(id)), Vec::new()));
                };
                let step = match plan(&row) {
                    Err(step) => step,
                    Ok(Move {
                        flag: Some(kind), ..
                    }) => {
                        let text = match kind {
                            CancelKind::Cancel => &sql.request_cancel,
                            CancelKind::Kill => &sql.request_kill,
                        };
                        let flagged = sqlx::query_as::<_, JobRow>(text)
                            .bind(&id_text)
                            .fetch_optional(&mut *conn)
                            .await?;
                        flagged.map_or(Step::Retry, |row| Step::Done(Box::new(row)))
                    }
                    Ok(mv) => match row.code() {
                        Ok(code) => cas!(&mut *conn, sql, row, code, mv)?
                            .map_or(Step::Retry, |row| Step::Done(Box::new(row))),
                        Err(err) => Step::Fail(err),
                    },
                };
                let ready = match &step {
                    Step::Done(row) => settle!(conn, row.as_ref())?,
                    _ => Vec::new(),
                };
                Ok::<_, sqlx::Error>((step, ready))
            })?;
            let (step, ready) = step;
            self.ready(ready_records(ready));
            match step {
                Step::Done(row) => {
                    let job = row.into_job()?;
                    if job.state.is_terminal() {
                        self.notify();
                    }
                    return Ok(job);
                }
                Step::Fail(err) => return Err(err),
                Step::Retry => {}
            }
        }
        Err(busy(id))
    }
}

/// The 503 when a row kept changing under a request (a livelock guard; never seen in
/// tests).
pub(super) fn busy(id: JobId) -> Error {
    Error::Unavailable {
        dependency: "database",
        detail: format!("job {id} kept changing while this request updated it"),
    }
}
