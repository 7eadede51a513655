//! Outputs (#15): an executor uploads a running job's files; readers list and download
//! what a succeeded job published.

use futures::{Stream, StreamExt};
use reqwest::{Body, Method};

use crate::{ApiClient, ClientError};
use drover_core::{FencingToken, JobId};
use drover_model::{CodeSnapshot, JobInputs, OutputFile, OutputList};

/// The bytes of a downloaded output, as they arrive.
pub type ByteStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<bytes::Bytes, ClientError>> + Send>>;

impl ApiClient {
    /// `PUT /v1/jobs/{id}/outputs/{path}`: one file of the running attempt held by
    /// `token`, streamed from `body`. No overall timeout (a file may be large); the
    /// API bounds the time between chunks.
    ///
    /// # Errors
    ///
    /// 409 ([`ClientError::is_conflict`]) when `token` no longer holds the job; 413 past
    /// the API's per-job limit; transport errors.
    pub async fn upload_output<S>(
        &self,
        id: JobId,
        token: FencingToken,
        path: &str,
        level: &str,
        body: S,
    ) -> Result<OutputFile, ClientError>
    where
        S: Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    {
        let id = id.to_string();
        let mut segments = vec!["v1", "jobs", &id, "outputs"];
        segments.extend(path.split('/'));
        let request = self
            .request(Method::PUT, &segments)
            .query(&[
                ("token", token.get().to_string()),
                ("level", level.to_owned()),
            ])
            .body(Body::wrap_stream(body));
        let response = self.check(self.transmit_untimed(request).await?).await?;
        self.decode(response).await
    }

    /// `GET /v1/jobs/{id}/outputs`: the files job `id` published (none until it
    /// succeeded), those the token may read.
    ///
    /// # Errors
    ///
    /// 404 when there is no such job; transport errors.
    pub async fn job_outputs(&self, id: JobId) -> Result<OutputList, ClientError> {
        self.call(self.job_request(Method::GET, id, Some("outputs")))
            .await
    }

    /// `GET /v1/workspaces/{name}/outputs`: each action's newest outputs.
    ///
    /// # Errors
    ///
    /// Transport and API errors.
    pub async fn workspace_outputs(&self, workspace: &str) -> Result<OutputList, ClientError> {
        self.call(self.request(Method::GET, &["v1", "workspaces", workspace, "outputs"]))
            .await
    }

    /// `GET /v1/jobs/{id}/outputs/{path}`: the file's bytes as they arrive.
    ///
    /// # Errors
    ///
    /// 403 when the token may not read its level, 404 when the job published no such
    /// file; the stream yields transport errors.
    pub async fn download_output(&self, id: JobId, path: &str) -> Result<ByteStream, ClientError> {
        let id = id.to_string();
        let mut segments = vec!["v1", "jobs", &id, "outputs"];
        segments.extend(path.split('/'));
        self.download(self.request(Method::GET, &segments)).await
    }

    /// A response's body as it arrives (no overall timeout: it may be large).
    async fn download(&self, request: reqwest::RequestBuilder) -> Result<ByteStream, ClientError> {
        let response = self.check(self.transmit_untimed(request).await?).await?;
        let base = self.base_text().to_owned();
        let timeout = self.timeout;
        Ok(Box::pin(response.bytes_stream().map(move |chunk| {
            chunk.map_err(|e| ClientError::transport(&base, timeout, e))
        })))
    }

    /// `HEAD /v1/code/{sha256}`: whether the API holds that code snapshot.
    ///
    /// # Errors
    ///
    /// Transport and API errors other than 404.
    pub async fn has_code(&self, sha256: &str) -> Result<bool, ClientError> {
        let request = self.request(Method::HEAD, &["v1", "code", sha256]);
        match self.check(self.transmit_untimed(request).await?).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `PUT /v1/code/{sha256}`: a code snapshot (a tar), streamed from `body`.
    ///
    /// # Errors
    ///
    /// 400 when the bytes do not hash to `sha256`; 413 past the API's limit.
    pub async fn upload_code<S>(&self, sha256: &str, body: S) -> Result<CodeSnapshot, ClientError>
    where
        S: Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    {
        let request = self
            .request(Method::PUT, &["v1", "code", sha256])
            .body(Body::wrap_stream(body));
        let response = self.check(self.transmit_untimed(request).await?).await?;
        self.decode(response).await
    }

    /// `GET /v1/code/{sha256}`: a code snapshot's tar as it arrives.
    ///
    /// # Errors
    ///
    /// 404 when the API has no such snapshot.
    pub async fn download_code(&self, sha256: &str) -> Result<ByteStream, ClientError> {
        self.download(self.request(Method::GET, &["v1", "code", sha256]))
            .await
    }

    /// `GET /v1/jobs/{id}/inputs?token=`: what the running job's `/workspace` starts
    /// from (for its holder).
    ///
    /// # Errors
    ///
    /// 409 ([`ClientError::is_conflict`]) when `token` no longer holds the job.
    pub async fn job_inputs(
        &self,
        id: JobId,
        token: FencingToken,
    ) -> Result<JobInputs, ClientError> {
        let request = self
            .job_request(Method::GET, id, Some("inputs"))
            .query(&[("token", token.get().to_string())]);
        self.call(request).await
    }

    /// `GET /v1/jobs/{id}/sources`: what job `id` started from, as far as this
    /// client's token may read (`hidden` counts the rest).
    ///
    /// # Errors
    ///
    /// 404 when there is no such job.
    pub async fn job_sources(&self, id: JobId) -> Result<JobInputs, ClientError> {
        self.call(self.job_request(Method::GET, id, Some("sources")))
            .await
    }
}
