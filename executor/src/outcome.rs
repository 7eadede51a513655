//! How a job's run ends, and what a run needs besides the job: shared by the runner and
//! the built-in actions that run in-process.

use std::time::Duration;

use drover_core::StatusCode;

use crate::container::DockerRuntime;
use crate::stop::StopReason;

/// How a job's run ended, as far as the executor is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Record this terminal status.
    Finished {
        /// The terminal code.
        code: StatusCode,
        /// The action's exit code, if it exited.
        exit_code: Option<i64>,
        /// For people.
        message: String,
    },
    /// The job is no longer ours: write nothing, keep nothing.
    Abandoned(StopReason),
    /// Draining: give the job back to the queue.
    Released(String),
}

impl Outcome {
    /// Whether it records a success.
    pub(crate) fn succeeded(&self) -> bool {
        matches!(
            self,
            Outcome::Finished {
                code: StatusCode::Succeeded,
                ..
            }
        )
    }
}

/// What a run needs besides the job.
#[derive(Debug, Clone)]
pub(crate) struct RunEnv {
    pub(crate) executor_id: String,
    pub(crate) docker: Option<DockerRuntime>,
    pub(crate) stop_grace: Duration,
    /// `executor.max_output_bytes`.
    pub(crate) max_output_bytes: u64,
    /// The API, for built-in actions that call it (`cleanup_jobs`); none locally.
    pub(crate) api: Option<drover_client::ApiClient>,
    /// The watchdog that kills our containers if we freeze or die.
    pub(crate) watchdog: Option<std::sync::Arc<crate::watchdog::Watchdog>>,
    /// The cluster's id (from ZooKeeper, set before any job is taken).
    pub(crate) cluster: std::sync::Arc<std::sync::OnceLock<String>>,
    /// Keep containers (and their volumes) once they ran: `drover local-run --debug`.
    pub(crate) keep_containers: bool,
    /// The executor's own secrets (its API token, ZooKeeper password, `secret_env`
    /// values): hidden from every job's log and status message, like an action's.
    pub(crate) secrets: std::sync::Arc<Vec<drover_actions::Secret>>,
}

impl Outcome {
    /// An internal error shows users a fixed message and an incident id; the executor's
    /// log carries the full error under that id (at warn). What went wrong inside drover
    /// (paths, hosts, the daemon's words) is for operators, and may say more than users
    /// should see.
    pub(crate) fn with_incident(self, executor: &str, job: drover_core::JobId) -> Outcome {
        let Outcome::Finished {
            code: StatusCode::InternalError,
            exit_code,
            message,
        } = self
        else {
            return self;
        };
        let incident = format!("{:012x}", fastrand::u64(..) & 0xffff_ffff_ffff);
        tracing::warn!(%job, %incident, error = %message, "internal error");
        Outcome::Finished {
            code: StatusCode::InternalError,
            exit_code,
            message: format!(
                "drover could not run this job: an internal error, incident {incident}. It is a fault of the platform, not of the job; an operator finds the error under that incident id in the log of executor {executor}. `drover retry {job}` runs the job again"
            ),
        }
    }

    /// The outcome with the executor's own secrets and every URL credential masked in its
    /// message: the last step before a message leaves the executor.
    pub(crate) fn redacted(self, secrets: &[drover_actions::Secret]) -> Outcome {
        let clean = |message: String| {
            drover_actions::mask_credentials(&drover_actions::redact(&message, secrets))
                .into_owned()
        };
        match self {
            Outcome::Finished {
                code,
                exit_code,
                message,
            } => Outcome::Finished {
                code,
                exit_code,
                message: clean(message),
            },
            Outcome::Released(message) => Outcome::Released(clean(message)),
            abandoned @ Outcome::Abandoned(_) => abandoned,
        }
    }
}

impl RunEnv {
    /// Removes a container that ran, unless containers are kept.
    pub(crate) async fn remove(&self, docker: &DockerRuntime, id: &str) {
        if !self.keep_containers {
            docker.remove(id).await;
        }
    }
}

/// The outcome of a run that `reason` stopped.
pub(crate) fn stopped(reason: StopReason, exit_code: Option<i64>) -> Outcome {
    let finished = |code, message: String| Outcome::Finished {
        code,
        exit_code,
        message,
    };
    match reason {
        StopReason::Cancel => finished(StatusCode::CancelledByUser, "cancelled by a user".into()),
        StopReason::Kill => finished(
            StatusCode::KilledByAdmin,
            "killed by an administrator".into(),
        ),
        StopReason::Timeout(t) => finished(
            StatusCode::TimedOut,
            format!(
                "ran longer than its timeout of {} and was stopped",
                humantime_duration(t)
            ),
        ),
        StopReason::Drain => {
            Outcome::Released("the executor was shut down before the job finished".into())
        }
        StopReason::Lost | StopReason::Fenced => Outcome::Abandoned(reason),
    }
}

fn humantime_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 && secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
