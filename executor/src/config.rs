//! The executor's configuration: the `[executor]` table, or `DROVER_EXECUTOR__*`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use drover_core::ConfigError;
use serde::{Deserialize, Serialize};

/// After the drain deadline, how long beyond the stop grace the slots get to stop their
/// containers, report and give their jobs back.
pub const STOP_MARGIN: Duration = Duration::from_secs(30);
/// How long the executor spends finishing the give-backs still in flight and deregistering
/// before it exits anyway.
pub const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(15);

/// How an executor runs. Every field has a default that suits one executor per node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorConfig {
    /// A stable id, unique among executors sharing a Docker daemon (default: the host
    /// name). After a crash, the executor removes containers labelled with its own id.
    pub id: Option<String>,
    /// The host it says it runs on, what `drover prepare-for-reboot --host` and
    /// `drover drain --host` select by (default: the host name; under Kubernetes set it to
    /// the node's name, `DROVER_EXECUTOR__HOST` from `spec.nodeName`).
    pub host: Option<String>,
    /// Jobs run at once (default: the number of CPUs).
    pub slots: Option<usize>,
    /// Environment variables of the executor whose values are secret: hidden from every
    /// job's log and status message (as are its API token and ZooKeeper password).
    pub secret_env: Vec<String>,
    /// Directory of Docker action files (`*.toml`); built-in actions only when unset.
    pub actions_dir: Option<PathBuf>,
    /// What this executor's node has (`["gpu", "db"]`; comma-separated in
    /// `DROVER_EXECUTOR__TAGS`). It takes only jobs whose required tags (the action
    /// file's `requires` and the submit's) it carries all of. Default none.
    #[serde(with = "drover_core::comma_separated")]
    pub tags: Vec<String>,
    /// The ZooKeeper queue (default `/job`).
    pub queue_path: String,
    /// How often a running job reports it is alive (default `3s`).
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// How long SIGTERM lets running jobs finish before they are stopped and released
    /// (default `2m`). Kubernetes' `terminationGracePeriodSeconds` and Compose's
    /// `stop_grace_period` must be longer.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Between SIGTERM and SIGKILL when a container is stopped (default `10s`).
    #[serde(with = "humantime_serde")]
    pub stop_grace: Duration,
    /// The longest wait between tries while the API is unreachable (default `30s`).
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// How long a stopped drover container of this cluster may stay on the Docker engine
    /// before the reaper removes it, whoever made it (default `1h`): a safety net for
    /// what a crash between a container's stop and its removal leaves.
    #[serde(with = "humantime_serde")]
    pub reap_after: Duration,
    /// Log lines sent to the API in one batch at most (default 500).
    pub log_batch_lines: usize,
    /// How long a log line may wait for its batch (default `500ms`).
    #[serde(with = "humantime_serde")]
    pub log_flush_interval: Duration,
    /// The HTTP listener: Prometheus `/metrics`, `/healthz` and `/readyz` (default
    /// `0.0.0.0:9101`).
    pub metrics_listen: SocketAddr,
    /// Run that listener at all (default true; tests running several executors on one
    /// host turn it off).
    pub metrics: bool,
    /// Run a watchdog process that kills this executor's containers when the executor
    /// stops answering for 2/5 of the ZooKeeper session timeout (frozen) or dies
    /// (default true; needs Docker). Off only when the executor is not the `drover` binary.
    pub watchdog: bool,
    /// Bytes of declared outputs one job may upload (default 10 GiB); past it the job
    /// ends `UNMATCHED_PATTERNS` saying so.
    pub max_output_bytes: u64,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            id: None,
            host: None,
            slots: None,
            secret_env: Vec::new(),
            actions_dir: None,
            tags: Vec::new(),
            queue_path: "/job".to_owned(),
            heartbeat_interval: Duration::from_secs(3),
            drain_timeout: Duration::from_secs(120),
            stop_grace: Duration::from_secs(10),
            backoff_max: Duration::from_secs(30),
            reap_after: Duration::from_secs(3600),
            log_batch_lines: 500,
            log_flush_interval: Duration::from_millis(500),
            metrics_listen: SocketAddr::from(([0, 0, 0, 0], 9101)),
            metrics: true,
            watchdog: true,
            max_output_bytes: 10 << 30,
        }
    }
}

impl ExecutorConfig {
    /// The executor's id: configured, else the host name.
    pub fn executor_id(&self) -> String {
        self.id.clone().unwrap_or_else(|| {
            hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "executor".to_owned())
        })
    }

    /// The host it publishes: configured, else the host name.
    pub fn host(&self) -> String {
        self.host.clone().unwrap_or_else(|| {
            hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
    }

    /// The longest a SIGTERM can take to end the process: the drain deadline, then the
    /// containers' stop grace plus [`STOP_MARGIN`] for the slots to report and give
    /// back, then [`DEREGISTER_TIMEOUT`]. Kubernetes' `terminationGracePeriodSeconds`
    /// and Compose's `stop_grace_period` must be longer, or the last jobs are SIGKILLed
    /// with their entries still locked until the session expires.
    pub fn shutdown_budget(&self) -> Duration {
        self.drain_timeout + self.stop_grace + STOP_MARGIN + DEREGISTER_TIMEOUT
    }

    /// Slots: configured, else the CPU count.
    pub fn slot_count(&self) -> usize {
        self.slots
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Checks values serde cannot; the message names the field and how to fix it.
    ///
    /// # Errors
    /// A message for the first invalid field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let id = self.executor_id();
        drover_core::names::check_id("executor", &id)
            .map_err(|e| ConfigError::new("executor.id", e))?;
        if self.slots == Some(0) || self.slots.is_some_and(|s| s > 1024) {
            return Err(ConfigError::new(
                "executor.slots",
                "must be between 1 and 1024",
            ));
        }
        drover_core::route::tag_set(&self.tags)
            .map_err(|e| ConfigError::new("executor.tags", e))?;
        if !self.queue_path.starts_with('/') {
            return Err(ConfigError::new(
                "executor.queue_path",
                format!("{:?} must be absolute, like /job", self.queue_path),
            ));
        }
        let positive = [
            ("heartbeat_interval", self.heartbeat_interval),
            ("stop_grace", self.stop_grace),
            ("backoff_max", self.backoff_max),
            ("reap_after", self.reap_after),
            ("log_flush_interval", self.log_flush_interval),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, d)| d.is_zero()) {
            return Err(ConfigError::new(
                format!("executor.{name}"),
                "must be more than zero, e.g. \"3s\"",
            ));
        }
        if self.log_batch_lines == 0 {
            return Err(ConfigError::new(
                "executor.log_batch_lines",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
