//! The HTTP client of the drover API: one typed method per endpoint of `api/API.md`.
//!
//! [`ApiClient`] is what the `drover` CLI, executors, distributors and benchmarks use to
//! talk to the API. It is cheap to clone (clones share one connection pool) and carries
//! the base URL and an optional bearer token.
//!
//! ```no_run
//! # async fn example() -> Result<(), drover_client::ClientError> {
//! use drover_client::{ApiClient, Resolved};
//! use drover_model::SubmitJob;
//!
//! let client = ApiClient::builder("http://127.0.0.1:8080").token("s3cret").build()?;
//! let submitted = client
//!     .submit(&SubmitJob { action: "noop".into(), ..SubmitJob::default() })
//!     .await?;
//! match client.resolve(&submitted.job.id.to_string()[..8]).await? {
//!     Resolved::Job(job) => println!("{} is {}", job.id, job.state),
//!     Resolved::Ambiguous(candidates) => println!("{} jobs match", candidates.len()),
//! }
//! # Ok(()) }
//! ```
//!
//! Errors are [`ClientError`]s: [`ClientError::is_unavailable`] says whether trying again
//! later can help; an [`Api`](ClientError::Api) error carries the API's
//! [`ApiError`](drover_model::ApiError) body, whose message is written for people.
//!
//! Inside: `admin` (reconcile, cleanup, distributions), `builder` (URL, token, timeouts), `error` ([`ClientError`]), `executor` (the
//! fenced executor endpoints), `ndjson` (the followed log stream).

mod admin;
mod builder;
mod control;
mod error;
mod executor;
mod ndjson;
mod outputs;
mod requests;

use std::fmt;
use std::time::Duration;

use drover_core::{JobId, State};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use reqwest::{Method, RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use self::builder::ApiClientBuilder;
pub use self::control::Undrained;
pub use self::error::ClientError;
pub use self::outputs::ByteStream;
use drover_model::{Candidates, ExecutorInfo, Job, JobPage, LogPage, StoredLogLine, SubmitJob};
/// HTTP status codes, as [`ClientError::Api`] carries them.
pub use reqwest::StatusCode;

/// Where the API listens unless told otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// How long a call may take, from sending the request to the end of the answer. Short
/// enough that an executor cut off from the API (a partition) gives up on a claim or a
/// report and backs off within seconds, rather than hanging; the API answers executor
/// calls in milliseconds. The CLI, where a person waits, sets a longer one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long establishing a connection may take (on a LAN, a handshake takes
/// milliseconds; an unanswered one means the API is out of reach).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The least time a maintenance call ([`reconcile`](ApiClient::reconcile),
/// [`cleanup`](ApiClient::cleanup)) is given, whatever the client's timeout: one reconcile
/// run or one cleanup batch (up to 10000 jobs and their logs, one transaction) can take
/// far longer than an executor call.
pub const MAINTENANCE_TIMEOUT: Duration = Duration::from_secs(120);

/// A client of one drover API.
///
/// Every call but [`follow_logs`](Self::follow_logs) is bounded by the client's timeout
/// ([`DEFAULT_TIMEOUT`] unless set with [`ApiClientBuilder::timeout`]; maintenance calls
/// get at least [`MAINTENANCE_TIMEOUT`]); connecting by [`DEFAULT_CONNECT_TIMEOUT`] unless
/// set with [`ApiClientBuilder::connect_timeout`].
///
/// # Cancellation safety
///
/// Dropping a call's future abandons the request; whether the API applied it is then
/// unknown, as with any lost answer. Submissions with an `idempotency_key` and fenced
/// executor writes are safe to repeat.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
    timeout: Duration,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// `GET /v1/jobs` filters and paging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ListJobs {
    /// Only jobs in this state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
    /// Only jobs of this action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Only the jobs of this pipeline request (its whole id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<JobId>,
    /// Only the pipeline jobs of this workspace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// At most this many (the API's default is 50, its maximum 500).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// A previous page's `next_cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// The answer to [`ApiClient::resolve`].
// A resolution is inspected once, not stored: boxing the job would only cost callers.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    /// Exactly one job matches.
    Job(Job),
    /// Several match (up to 20, newest first): the caller must say which.
    Ambiguous(Vec<Job>),
}

/// The answer to [`ApiClient::submit`].
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    /// The job, new or existing.
    pub job: Job,
    /// `false` when the `idempotency_key` matched an existing job (200, not 201).
    pub created: bool,
}

/// The answer to [`ApiClient::ready`].
#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    /// 200: the database answers.
    pub ready: bool,
    /// The API's report (database and ZooKeeper state).
    pub detail: serde_json::Value,
}

/// A stream of log lines from [`ApiClient::follow_logs`].
pub type LogStream = BoxStream<'static, Result<StoredLogLine, ClientError>>;

impl ApiClient {
    /// A client of the API at `url`, with an optional bearer token and default timeouts.
    ///
    /// # Errors
    ///
    /// As [`ApiClientBuilder::build`].
    pub fn new(url: &str, token: Option<String>) -> Result<ApiClient, ClientError> {
        let builder = ApiClient::builder(url);
        match token {
            Some(token) => builder.token(token).build(),
            None => builder.build(),
        }
    }

    /// Settings for a client of the API at `url`.
    pub fn builder(url: impl Into<String>) -> ApiClientBuilder {
        ApiClientBuilder {
            url: url.into(),
            token: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// The API's base URL.
    pub fn url(&self) -> &Url {
        &self.base
    }

    /// What bounds each call (but [`follow_logs`](Self::follow_logs)).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// This client with room for one maintenance run: a timeout of at least
    /// [`MAINTENANCE_TIMEOUT`]. Shares the connection pool.
    fn for_maintenance(&self) -> ApiClient {
        let mut client = self.clone();
        client.timeout = client.timeout.max(MAINTENANCE_TIMEOUT);
        client
    }

    // ---- user endpoints ---------------------------------------------------------------

    /// `POST /v1/jobs`: submits a job.
    ///
    /// # Errors
    ///
    /// 400 for a bad submission (the message names the field), 401/403, transport errors.
    pub async fn submit(&self, job: &SubmitJob) -> Result<Submitted, ClientError> {
        let response = self
            .send(self.request(Method::POST, &["v1", "jobs"]).json(job))
            .await?;
        let created = response.status() == StatusCode::CREATED;
        let job = self.decode(response).await?;
        Ok(Submitted { job, created })
    }

    /// `GET /v1/jobs/{id}`.
    ///
    /// # Errors
    ///
    /// 404 ([`ClientError::is_not_found`]) when there is no such job.
    pub async fn get(&self, id: JobId) -> Result<Job, ClientError> {
        self.call(self.job_request(Method::GET, id, None)).await
    }

    /// `GET /v1/jobs`: one page, newest first.
    ///
    /// # Errors
    ///
    /// 400 for a bad filter or cursor, transport errors.
    pub async fn list(&self, query: &ListJobs) -> Result<JobPage, ClientError> {
        self.call(self.request(Method::GET, &["v1", "jobs"]).query(query))
            .await
    }

    /// Every job matching `query`, newest first, following the cursor page by page.
    /// `query.limit` is the page size.
    pub fn list_all(&self, query: ListJobs) -> BoxStream<'_, Result<Job, ClientError>> {
        stream::try_unfold(Some(query), move |next| async move {
            let Some(query) = next else {
                return Ok(None);
            };
            let page = self.list(&query).await?;
            let following = page.next_cursor.map(|cursor| ListJobs {
                cursor: Some(cursor),
                ..query
            });
            let jobs = stream::iter(page.jobs.into_iter().map(Ok));
            Ok(Some((jobs, following)))
        })
        .try_flatten()
        .boxed()
    }

    /// `GET /v1/resolve/{fragment}`: the job whose id starts with (else contains)
    /// `fragment`.
    ///
    /// # Errors
    ///
    /// 404 ([`ClientError::is_not_found`]) when no job matches; 400 for a fragment
    /// that cannot be part of an id.
    pub async fn resolve(&self, fragment: &str) -> Result<Resolved, ClientError> {
        let request = self.request(Method::GET, &["v1", "resolve", fragment]);
        let response = self.transmit(request).await?;
        let status = response.status();
        if status.is_success() {
            return self.decode(response).await.map(Resolved::Job);
        }
        let url = response.url().to_string();
        let body = self.body(response).await?;
        if status == StatusCode::CONFLICT {
            if let Ok(found) = serde_json::from_slice::<Candidates>(&body) {
                return Ok(Resolved::Ambiguous(found.candidates));
            }
        }
        Err(ClientError::from_answer(&url, status, &body))
    }

    /// `POST /v1/jobs/{id}/cancel`: a queued job is canceled at once, a running one
    /// gets `cancel_requested` (its executor stops it).
    ///
    /// # Errors
    ///
    /// 409 when the job is already terminal, 404.
    pub async fn cancel(&self, id: JobId) -> Result<Job, ClientError> {
        self.call(self.job_request(Method::POST, id, Some("cancel")))
            .await
    }

    /// `POST /v1/jobs/{id}/kill` (admin): like [`cancel`](Self::cancel), with
    /// `KILLED_BY_ADMIN`.
    ///
    /// # Errors
    ///
    /// 403 without the admin role, 409 when terminal, 404.
    pub async fn kill(&self, id: JobId) -> Result<Job, ClientError> {
        self.call(self.job_request(Method::POST, id, Some("kill")))
            .await
    }

    /// `POST /v1/jobs/{id}/retry`: a new job with the same action, params and priority,
    /// whose `retry_of` is `id`.
    ///
    /// # Errors
    ///
    /// 409 when the job is not terminal, 404.
    pub async fn retry(&self, id: JobId) -> Result<Job, ClientError> {
        self.call(self.job_request(Method::POST, id, Some("retry")))
            .await
    }

    /// `GET /v1/jobs/{id}/logs?after=&limit=`: stored lines after position `after`
    /// (0 for the start), at most `limit` (`None`: the API's default, 1000).
    ///
    /// # Errors
    ///
    /// 404 when there is no such job.
    pub async fn logs(
        &self,
        id: JobId,
        after: i64,
        limit: Option<u32>,
    ) -> Result<LogPage, ClientError> {
        let mut request = self
            .job_request(Method::GET, id, Some("logs"))
            .query(&[("after", after)]);
        if let Some(limit) = limit {
            request = request.query(&[("limit", limit)]);
        }
        self.call(request).await
    }

    /// `GET /v1/jobs/{id}/logs?follow=true`: the lines after `after` as they arrive; the
    /// stream ends when the job is terminal and every line was sent.
    ///
    /// Only connecting is bounded by a timeout: a job may be silent for hours. To resume
    /// after an error, call again with the last `seq` received.
    ///
    /// # Errors
    ///
    /// The call fails like [`logs`](Self::logs); the stream yields at most one error
    /// (a broken connection, an undecodable line) and then ends.
    pub async fn follow_logs(&self, id: JobId, after: i64) -> Result<LogStream, ClientError> {
        let request = self
            .job_request(Method::GET, id, Some("logs"))
            .query(&[("follow", "true")])
            .query(&[("after", after)]);
        let response = self.check(self.transmit_untimed(request).await?).await?;
        let url = response.url().to_string();
        Ok(ndjson::decode_lines(
            self.base_text().to_owned(),
            url,
            self.timeout,
            response.bytes_stream(),
        ))
    }

    /// `GET /v1/executors`: the executors registered in ZooKeeper.
    ///
    /// # Errors
    ///
    /// 503 when ZooKeeper is unavailable, transport errors.
    pub async fn executors(&self) -> Result<Vec<ExecutorInfo>, ClientError> {
        self.call(self.request(Method::GET, &["v1", "executors"]))
            .await
    }

    /// `GET /healthz`: the API process answers.
    ///
    /// # Errors
    ///
    /// Transport errors; any non-200 answer.
    pub async fn health(&self) -> Result<serde_json::Value, ClientError> {
        self.call(self.request(Method::GET, &["healthz"])).await
    }

    /// `GET /readyz`: whether the API can serve (its database answers); a 503 is an
    /// answer here, not an error.
    ///
    /// # Errors
    ///
    /// Transport errors; statuses other than 200 and 503.
    pub async fn ready(&self) -> Result<Readiness, ClientError> {
        let response = self
            .transmit(self.request(Method::GET, &["readyz"]))
            .await?;
        let status = response.status();
        let url = response.url().to_string();
        let body = self.body(response).await?;
        if status != StatusCode::OK && status != StatusCode::SERVICE_UNAVAILABLE {
            return Err(ClientError::from_answer(&url, status, &body));
        }
        let detail = serde_json::from_slice(&body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
        });
        Ok(Readiness {
            ready: status == StatusCode::OK,
            detail,
        })
    }

    /// `GET /metrics`: the Prometheus text exposition.
    ///
    /// # Errors
    ///
    /// Transport errors; any non-200 answer.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let response = self.send(self.request(Method::GET, &["metrics"])).await?;
        let body = self.body(response).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    // ---- plumbing ---------------------------------------------------------------------

    /// A request for the base URL plus `segments`, each percent-encoded as one segment.
    fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        let mut url = self.base.clone();
        // `build` checked that the base can be a base, so this always applies.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        let request = self.http.request(method, url);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// A request for `/v1/jobs/{id}` or `/v1/jobs/{id}/{verb}`.
    fn job_request(&self, method: Method, id: JobId, verb: Option<&str>) -> RequestBuilder {
        let id = id.to_string();
        match verb {
            Some(verb) => self.request(method, &["v1", "jobs", &id, verb]),
            None => self.request(method, &["v1", "jobs", &id]),
        }
    }

    /// Sends `request`, checks the status and decodes the JSON answer.
    async fn call<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, ClientError> {
        let response = self.send(request).await?;
        self.decode(response).await
    }

    /// Sends `request` under the timeout; a non-success status is an error.
    async fn send(&self, request: RequestBuilder) -> Result<Response, ClientError> {
        let response = self.transmit(request).await?;
        self.check(response).await
    }

    /// Sends `request` under the client's timeout.
    async fn transmit(&self, request: RequestBuilder) -> Result<Response, ClientError> {
        self.transmit_untimed(request.timeout(self.timeout)).await
    }

    /// Sends `request` as it is.
    async fn transmit_untimed(&self, request: RequestBuilder) -> Result<Response, ClientError> {
        request.send().await.map_err(|err| self.transport(err))
    }

    /// `response` if its status is a success, else the API's error.
    async fn check(&self, response: Response) -> Result<Response, ClientError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let url = response.url().to_string();
        let body = self.body(response).await?;
        Err(ClientError::from_answer(&url, status, &body))
    }

    /// The whole body of `response`.
    async fn body(&self, response: Response) -> Result<Vec<u8>, ClientError> {
        let bytes = response.bytes().await.map_err(|err| self.transport(err))?;
        Ok(bytes.to_vec())
    }

    /// The body of a success answer as a `T`.
    async fn decode<T: DeserializeOwned>(&self, response: Response) -> Result<T, ClientError> {
        let url = response.url().to_string();
        let body = self.body(response).await?;
        serde_json::from_slice(&body).map_err(|err| ClientError::Decode {
            url,
            detail: err.to_string(),
        })
    }

    /// A transport failure, naming the API by its base URL.
    fn transport(&self, err: reqwest::Error) -> ClientError {
        ClientError::transport(self.base_text(), self.timeout, err)
    }

    /// The base URL as people write it, without a trailing slash.
    fn base_text(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }
}

#[cfg(test)]
mod tests;
