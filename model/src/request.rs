//! Pipeline requests (#14): one project file, the actions asked for, one workspace.

use drover_core::{JobId, Priority, State};
use serde::{Deserialize, Serialize};

use crate::Job;

/// `POST /v1/requests`: run some actions of a project file (and what they need).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubmitRequest {
    /// The project file's text (`drover.yaml` or OpenSAFELY's `project.yaml`).
    pub project: String,
    /// The file's name, for error messages; default `drover.yaml`.
    #[serde(default)]
    pub file_name: Option<String>,
    /// The actions to run (a matrix action's name asks for all its expansions),
    /// or `["run_all"]`.
    pub actions: Vec<String>,
    /// The workspace whose state decides what is skipped; default `default`.
    #[serde(default)]
    pub workspace: Option<String>,
    /// Rerun every dependency, even those that succeeded (`-f`).
    #[serde(default)]
    pub force_run_dependencies: bool,
    /// Queue priority of the request's jobs, 0–999, default 100.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u16>))]
    pub priority: Option<Priority>,
    /// Makes a resend safe: a second request with the same key (and the same body) gets
    /// the first one back instead of a new one (a distribution's tick uses this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The SHA-256 of the project's code snapshot, uploaded first with
    /// `PUT /v1/code/{sha256}`: each job's `/workspace` starts with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// A request as the API returns it, with where its jobs stand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Request {
    /// The request's id (a UUID, like a job's).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: JobId,
    /// The workspace it ran in.
    pub workspace: String,
    /// The project file's name.
    pub file_name: String,
    /// The actions asked for.
    pub requested: Vec<String>,
    /// Whether dependencies that had succeeded were rerun.
    pub force_run_dependencies: bool,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// One state for the whole request: every job's, when they agree; `FAILED` when one
    /// failed; `RUNNING` while any runs or some are done and others wait; `QUEUED`
    /// before any started.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: State,
    /// How many of its jobs are in each state.
    pub progress: Progress,
}

/// A request's jobs by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Progress {
    /// Jobs the request created.
    pub total: u32,
    /// Queued (waiting on dependencies or on the queue).
    pub queued: u32,
    /// Running.
    pub running: u32,
    /// Succeeded.
    pub succeeded: u32,
    /// Failed.
    pub failed: u32,
    /// Canceled.
    pub canceled: u32,
}

impl Progress {
    /// The request's one state, from its jobs' states.
    #[must_use]
    pub fn state(&self) -> State {
        let done = self.succeeded + self.failed + self.canceled;
        if self.failed > 0 {
            State::Failed
        } else if self.total > 0 && self.succeeded == self.total {
            State::Success
        } else if self.total > 0 && self.canceled == self.total {
            State::Canceled
        } else if self.running > 0 || (done > 0 && self.queued > 0) {
            State::Running
        } else if self.queued > 0 {
            State::Queued
        } else if self.canceled > 0 {
            State::Canceled
        } else {
            State::Success
        }
    }

    /// Counts one job in `state`.
    pub fn add(&mut self, state: State) {
        self.total += 1;
        match state {
            State::Queued => self.queued += 1,
            State::Running => self.running += 1,
            State::Success => self.succeeded += 1,
            State::Failed => self.failed += 1,
            State::Canceled => self.canceled += 1,
        }
    }
}

/// The answer to `POST /v1/requests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestCreated {
    /// The new request; `None` when there was nothing to do.
    pub request: Option<Request>,
    /// Every job serving the request: the ones it created, then the queued or running
    /// ones it reuses, in the order they can run.
    pub jobs: Vec<Job>,
    /// How many of `jobs` the request created.
    pub created: u32,
    /// What happened, in words ("all requested actions were already scheduled to run").
    pub message: String,
    /// What the project file does that works but should change.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// `GET /v1/requests/{id}`: a request and its jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestDetail {
    /// The request.
    pub request: Request,
    /// Its jobs, in the order they were created (dependencies first).
    pub jobs: Vec<Job>,
}

/// `GET /v1/requests`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestPage {
    /// The requests.
    pub requests: Vec<Request>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(states: &[State]) -> Progress {
        let mut p = Progress::default();
        for s in states {
            p.add(*s);
        }
        p
    }

    #[test]
    fn one_state_for_a_request() {
        use State::*;
        assert_eq!(progress(&[Success, Success]).state(), Success);
        assert_eq!(progress(&[Queued, Queued]).state(), Queued);
        assert_eq!(progress(&[Success, Queued]).state(), Running);
        assert_eq!(progress(&[Running, Queued]).state(), Running);
        assert_eq!(progress(&[Success, Failed, Queued]).state(), Failed);
        assert_eq!(progress(&[Canceled, Canceled]).state(), Canceled);
        assert_eq!(progress(&[Success, Canceled]).state(), Canceled);
    }
}
