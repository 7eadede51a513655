//! The executor's runner for `drover local-run`: the same code a cluster's executor runs
//! a claimed job with (`runner.rs`: image, limits, labels, parameters, secrets, timeout,
//! staging, output collection, release checks), with a project directory in place of
//! the API ([`LocalFiles`]) and the caller reading the log lines. No ZooKeeper, no
//! heartbeats, no tokens.

use std::time::Duration;

use drover_actions::Catalogue;
use drover_core::StatusCode;
use drover_model::{Job, LogLine};
use tokio::sync::{mpsc, watch};

use crate::container::{ContainerError, DockerRuntime, LABEL_EXECUTOR};
use crate::files::Files;
pub use crate::files::{Collected, LocalFiles};
use crate::outcome::{Outcome, RunEnv};
use crate::reporter::Reporter;
use crate::stop::{Stop, StopReason};

/// What a local run's containers are stopped with before a kill.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs jobs on this machine's Docker engine, labelled as executor `id`.
#[derive(Debug)]
pub struct LocalExecutor {
    env: RunEnv,
    catalogue: Catalogue,
}

/// How a local job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// Its terminal status code.
    pub code: StatusCode,
    /// The action's exit code, when it exited.
    pub exit_code: Option<i64>,
    /// For people, as a cluster would record it.
    pub message: String,
}

/// Stops a running local job (Ctrl-C): it ends `CANCELLED_BY_USER`.
#[derive(Debug, Clone, Default)]
pub struct LocalStop(Stop);

impl LocalStop {
    /// Stops the job, its container with [`STOP_GRACE`].
    pub fn cancel(&self) {
        self.0.trip(StopReason::Cancel);
    }
}

impl LocalExecutor {
    /// Connects to the Docker engine. `keep` leaves containers and their volumes once
    /// they ran (`--debug`).
    ///
    /// # Errors
    /// No Docker engine answers.
    pub async fn connect(
        id: &str,
        catalogue: Catalogue,
        keep: bool,
        max_output_bytes: u64,
    ) -> Result<LocalExecutor, ContainerError> {
        let docker = DockerRuntime::connect().await?;
        Ok(LocalExecutor {
            env: RunEnv {
                executor_id: id.to_owned(),
                docker: Some(docker),
                stop_grace: STOP_GRACE,
                max_output_bytes,
                api: None,
                watchdog: None,
                cluster: std::sync::Arc::default(),
                keep_containers: keep,
                secrets: std::sync::Arc::default(),
            },
            catalogue,
        })
    }

    fn docker(&self) -> &DockerRuntime {
        self.env
            .docker
            .as_ref()
            .expect("a local executor always has Docker")
    }

    /// Removes what an earlier run under this id left (a run killed with SIGKILL), as an
    /// executor does at start-up.
    pub async fn remove_leftovers(&self) {
        crate::remove_leftovers(self.docker(), &self.env.executor_id).await;
    }

    /// Ids of the containers this id has on the engine (what `--debug` kept).
    ///
    /// # Errors
    /// Docker cannot list them.
    pub async fn containers(&self) -> Result<Vec<String>, ContainerError> {
        self.docker()
            .list_labelled(LABEL_EXECUTOR, &self.env.executor_id)
            .await
    }

    /// Removes the shared parameters volumes the run made (unless containers are kept).
    pub async fn finish(&self) {
        if !self.env.keep_containers {
            self.docker().remove_params_volumes().await;
        }
    }

    /// Runs `job` to its end: its output lines go to `lines`, its status (`EXECUTING`,
    /// `FINALIZING`) to `status`, its outputs into `files`' staging directory.
    pub async fn run(
        &self,
        job: &Job,
        files: &LocalFiles,
        lines: mpsc::Sender<LogLine>,
        status: watch::Sender<StatusCode>,
        stop: &LocalStop,
    ) -> Ran {
        let reporter = Reporter::local(lines, status);
        let outcome = crate::runner::run_named(
            &self.env,
            &self.catalogue,
            job,
            &reporter,
            Files::Local(files),
            &stop.0,
        )
        .await;
        reporter.close(Duration::ZERO).await;
        match outcome {
            Outcome::Finished {
                code,
                exit_code,
                message,
            } => Ran {
                code,
                exit_code,
                message,
            },
            // a local run is never fenced nor drained: an input that could not be read
            Outcome::Released(message) => Ran {
                code: StatusCode::InternalError,
                exit_code: None,
                message,
            },
            Outcome::Abandoned(reason) => Ran {
                code: StatusCode::InternalError,
                exit_code: None,
                message: format!("stopped: {reason:?}"),
            },
        }
    }
}
