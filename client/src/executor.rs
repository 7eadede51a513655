//! The executor endpoints (role executor or admin): every write carries the fencing
//! token of the queue entry the executor holds, and a 409 means it holds it no more.

use drover_core::JobId;
use reqwest::Method;

use crate::{ApiClient, ClientError};
use drover_model::{
    AppendLogs, Claim, Finish, Heartbeat, HeartbeatReply, Job, LogsAppended, Release,
};

impl ApiClient {
    /// `POST /v1/jobs/{id}/claim`: QUEUED → RUNNING under `claim.token`.
    ///
    /// # Errors
    ///
    /// 409 ([`ClientError::is_conflict`]) when the job is terminal, canceled while
    /// queued or held under a newer token: the queue entry is stale, consume it.
    pub async fn claim(&self, id: JobId, claim: &Claim) -> Result<Job, ClientError> {
        self.call(
            self.job_request(Method::POST, id, Some("claim"))
                .json(claim),
        )
        .await
    }

    /// `POST /v1/jobs/{id}/heartbeat`: liveness, progress and a forward status move;
    /// the answer says whether to stop.
    ///
    /// # Errors
    ///
    /// 409 when the token is not the holder's any more: stop working on the job.
    pub async fn heartbeat(
        &self,
        id: JobId,
        heartbeat: &Heartbeat,
    ) -> Result<HeartbeatReply, ClientError> {
        self.call(
            self.job_request(Method::POST, id, Some("heartbeat"))
                .json(heartbeat),
        )
        .await
    }

    /// `POST /v1/jobs/{id}/logs`: appends a batch of lines.
    ///
    /// # Errors
    ///
    /// 409 when the token is not the holder's.
    pub async fn append_logs(
        &self,
        id: JobId,
        logs: &AppendLogs,
    ) -> Result<LogsAppended, ClientError> {
        self.call(self.job_request(Method::POST, id, Some("logs")).json(logs))
            .await
    }

    /// `POST /v1/jobs/{id}/finish`: records the terminal status.
    ///
    /// # Errors
    ///
    /// 409 when the token is not the holder's or the code is not a legal move.
    pub async fn finish(&self, id: JobId, finish: &Finish) -> Result<Job, ClientError> {
        self.call(
            self.job_request(Method::POST, id, Some("finish"))
                .json(finish),
        )
        .await
    }

    /// `POST /v1/jobs/{id}/release`: back to QUEUED with the attempt counted, or FAILED
    /// (`ATTEMPTS_EXHAUSTED`) when none are left.
    ///
    /// # Errors
    ///
    /// 409 when the token is not the holder's.
    pub async fn release(&self, id: JobId, release: &Release) -> Result<Job, ClientError> {
        self.call(
            self.job_request(Method::POST, id, Some("release"))
                .json(release),
        )
        .await
    }
}
