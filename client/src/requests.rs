//! Pipeline requests: run some actions of a project file, read and cancel requests.

use reqwest::Method;

use crate::{ApiClient, ClientError};
use drover_model::{RequestCreated, RequestDetail, RequestPage, SubmitRequest};

impl ApiClient {
    /// `POST /v1/requests`: creates the jobs a request needs (nothing, when everything
    /// it asks for is running, queued or done: the answer's `message` says which).
    ///
    /// # Errors
    ///
    /// 400 (code `invalid_project`) for a project
    /// file that cannot run: the message names the file, the line, the action and the fix.
    pub async fn submit_request(
        &self,
        request: &SubmitRequest,
    ) -> Result<RequestCreated, ClientError> {
        self.call(
            self.request(Method::POST, &["v1", "requests"])
                .json(request),
        )
        .await
    }

    /// `GET /v1/requests/{id}`: the request and its jobs; `id` may be a unique prefix.
    ///
    /// # Errors
    ///
    /// 404 ([`ClientError::is_not_found`]) when there is no such request.
    pub async fn request_detail(&self, id: &str) -> Result<RequestDetail, ClientError> {
        self.call(self.request(Method::GET, &["v1", "requests", id]))
            .await
    }

    /// `GET /v1/requests`: the newest requests, of one workspace or all.
    ///
    /// # Errors
    ///
    /// Transport and API errors.
    pub async fn requests(
        &self,
        workspace: Option<&str>,
        limit: u32,
    ) -> Result<RequestPage, ClientError> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(workspace) = workspace {
            query.push(("workspace", workspace.to_owned()));
        }
        self.call(self.request(Method::GET, &["v1", "requests"]).query(&query))
            .await
    }

    /// `POST /v1/requests/{id}/cancel`: cancels every unfinished job of the request.
    ///
    /// # Errors
    ///
    /// 404 when there is no such request.
    pub async fn cancel_request(&self, id: &str) -> Result<RequestDetail, ClientError> {
        self.call(self.request(Method::POST, &["v1", "requests", id, "cancel"]))
            .await
    }
}
