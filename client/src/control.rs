//! Operators' orders (role admin to change them, any role to read): pause and resume,
//! drain and undrain an executor.

use reqwest::Method;
use serde::Deserialize;

use crate::{ApiClient, ClientError};
use drover_model::{Attempt, Cleaning, DrainOrder, DrainRequest, Orders, PauseRequest, Pauses};

/// The answer to an undrain.
#[derive(Debug, Clone, Deserialize)]
pub struct Undrained {
    /// The executor.
    pub id: String,
    /// Whether there was an order to withdraw.
    pub withdrawn: bool,
}

impl ApiClient {
    /// `GET /v1/control`: the pauses and drain orders in force.
    ///
    /// # Errors
    /// 503 when the API has no ZooKeeper session, transport errors.
    pub async fn orders(&self) -> Result<Orders, ClientError> {
        self.call(self.request(Method::GET, &["v1", "control"]))
            .await
    }

    /// `POST /v1/control/pause`: pauses `actions` (none: the whole cluster); returns what
    /// is paused now.
    ///
    /// # Errors
    /// 400 for a bad action name or reason; 403 without the admin role; 503.
    pub async fn pause(&self, request: &PauseRequest) -> Result<Pauses, ClientError> {
        self.call(
            self.request(Method::POST, &["v1", "control", "pause"])
                .json(request),
        )
        .await
    }

    /// `POST /v1/control/resume`: lifts the pauses of `actions` (none: every pause);
    /// returns what is still paused.
    ///
    /// # Errors
    /// 400 for a bad action name; 403 without the admin role; 503.
    pub async fn resume(&self, actions: &[String]) -> Result<Pauses, ClientError> {
        let request = PauseRequest {
            actions: actions.to_vec(),
            reason: None,
        };
        self.call(
            self.request(Method::POST, &["v1", "control", "resume"])
                .json(&request),
        )
        .await
    }

    /// `POST /v1/executors/{id}/drain`: orders executor `id` to drain.
    ///
    /// # Errors
    /// 404 when no such executor is registered; 403 without the admin role; 503.
    pub async fn drain(&self, id: &str, request: &DrainRequest) -> Result<DrainOrder, ClientError> {
        self.call(
            self.request(Method::POST, &["v1", "executors", id, "drain"])
                .json(request),
        )
        .await
    }

    /// `GET /v1/jobs/{id}/attempts`: every run of job `id`, first first.
    ///
    /// # Errors
    /// 404 for an unknown job; transport errors.
    pub async fn attempts(&self, id: drover_core::JobId) -> Result<Vec<Attempt>, ClientError> {
        let id = id.to_string();
        self.call(self.request(Method::GET, &["v1", "jobs", &id, "attempts"]))
            .await
    }

    /// `POST /v1/jobs/{id}/cleanup`: orders the executor that ran finished job `id` to
    /// remove what is left of it.
    ///
    /// # Errors
    /// 409 while the job has not finished; 403 without the admin role; 404; 503.
    pub async fn cleanup_job(&self, id: drover_core::JobId) -> Result<Cleaning, ClientError> {
        let id = id.to_string();
        self.call(self.request(Method::POST, &["v1", "jobs", &id, "cleanup"]))
            .await
    }

    /// `POST /v1/executors/{id}/undrain`: withdraws executor `id`'s drain order.
    ///
    /// # Errors
    /// 403 without the admin role; 503.
    pub async fn undrain(&self, id: &str) -> Result<Undrained, ClientError> {
        self.call(self.request(Method::POST, &["v1", "executors", id, "undrain"]))
            .await
    }
}
