//! The Docker engine as the executor sees it: the runtime handle, the labels drover puts
//! on what it creates, and the errors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::errors::Error as DockerError;
use bollard::Docker;

use crate::params::{ParamsCache, ParamsVolume};

/// Labels drover puts on every container it creates.
pub const LABEL_JOB: &str = "drover.job";
/// The executor that created the container.
pub const LABEL_EXECUTOR: &str = "drover.executor";
/// Which attempt of the job it runs.
pub const LABEL_ATTEMPT: &str = "drover.attempt";
/// On a shared parameters volume and its holder container: the executor that owns them.
pub const LABEL_PARAMS_OF: &str = "drover.params-of";
/// Label naming the cluster (its id in ZooKeeper) a container or volume belongs to.
pub const LABEL_CLUSTER: &str = "drover.cluster";

/// Docker's default read-only paths (moby's `oci.DefaultLinuxSpec`), which setting
/// `ReadonlyPaths` replaces, plus `/drover`: parameters are input, the same for every
/// attempt, whether copied into the container or mounted from a shared volume.
pub(super) const READONLY_PATHS: [&str; 6] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/drover",
];

/// How long a parameters sighting, or an unused shared volume, is remembered.
pub(super) const PARAMS_TTL: Duration = Duration::from_secs(600);
/// At most this many shared parameters volumes per executor.
pub(super) const PARAMS_VOLUMES: usize = 64;
/// At most this many remembered parameter sightings.
pub(super) const PARAMS_SEEN: usize = 4096;
/// How often unused shared volumes are looked for.
pub(super) const PARAMS_SWEEP: Duration = Duration::from_secs(60);

/// What went wrong with a container.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The image is missing and cannot be had.
    #[error("image {image} is not available: {reason}")]
    ImageUnavailable {
        /// The image.
        image: String,
        /// Why (pull policy `never`, the registry refused, no registry reachable, ...).
        reason: String,
    },
    /// Docker refused or failed an operation.
    #[error("docker {op} failed: {source}")]
    Docker {
        /// What was attempted.
        op: &'static str,
        /// Docker's reason.
        #[source]
        source: DockerError,
    },
    /// The Docker daemon cannot be reached.
    #[error("cannot reach the Docker daemon: {0} (is /var/run/docker.sock mounted, or DOCKER_HOST set?)")]
    Unreachable(DockerError),
}

impl ContainerError {
    /// Whether Docker refused to start a container as an invalid request (400): its
    /// command cannot be run (not found, not executable). The job's fault, not drover's.
    pub fn is_refused_start(&self) -> bool {
        matches!(
            self,
            ContainerError::Docker {
                op: "start",
                source: DockerError::DockerResponseServerError {
                    status_code: 400,
                    ..
                },
            }
        )
    }

    /// Whether Docker said the image does not exist (a create after it was removed).
    pub fn is_missing_image(&self) -> bool {
        matches!(
            self,
            ContainerError::Docker {
                op: "create",
                source: DockerError::DockerResponseServerError {
                    status_code: 404,
                    ..
                },
            }
        )
    }
}

/// Everything needed to create one container.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    /// Container name (unique per job attempt).
    pub name: String,
    /// Labels (`drover.job`, `drover.executor`, `drover.attempt`).
    pub labels: HashMap<String, String>,
    /// The image.
    pub image: String,
    /// Entrypoint override.
    pub entrypoint: Option<Vec<String>>,
    /// Command (the image's default when empty).
    pub command: Vec<String>,
    /// `KEY=value` environment, parameters and secrets included.
    pub env: Vec<String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// User.
    pub user: Option<String>,
    /// Memory limit in bytes.
    pub memory: Option<u64>,
    /// CPU limit in cores.
    pub cpus: Option<f64>,
    /// Network mode.
    pub network: String,
    /// Read-only root filesystem.
    pub read_only: bool,
    /// The bytes of `/drover/params.json`.
    pub params_json: Vec<u8>,
    /// A writable `/workspace` volume (the working directory), for a job with outputs.
    pub workspace: bool,
}

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit code.
    pub code: i64,
    /// The kernel's OOM killer stopped it.
    pub oom_killed: bool,
}

/// A line of container output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    /// The line without its newline.
    pub line: String,
    /// The line was cut at [`MAX_LINE_BYTES`]: the stream's next line goes on where this
    /// one stops.
    pub continued: bool,
}

/// How long an image seen present is trusted to still be there (saves an inspection per
/// job; a create that finds it gone checks again).
pub(super) const IMAGE_PRESENT_FOR: Duration = Duration::from_secs(30);

/// The Docker engine, as the executor uses it.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    pub(super) docker: Docker,
    /// Images seen present, and when.
    pub(super) present: Arc<Mutex<HashMap<String, Instant>>>,
    /// SlotContext parameters volumes and sightings.
    pub(super) params: Arc<Mutex<ParamsCache>>,
    /// The shared volume each container mounts, until it is removed.
    pub(super) leases: Arc<Mutex<HashMap<String, Arc<ParamsVolume>>>>,
    /// When unused shared volumes were last looked for.
    pub(super) swept: Arc<Mutex<Instant>>,
}

pub(super) use drover_core::lock as locked;

pub(super) fn docker_err(op: &'static str) -> impl FnOnce(DockerError) -> ContainerError {
    move |source| ContainerError::Docker { op, source }
}

impl DockerRuntime {
    /// Connects to the local daemon (`DOCKER_HOST` or the default socket) and agrees on an
    /// API version with it.
    ///
    /// # Errors
    /// [`ContainerError::Unreachable`].
    pub async fn connect() -> Result<DockerRuntime, ContainerError> {
        let docker = Docker::connect_with_local_defaults().map_err(ContainerError::Unreachable)?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(ContainerError::Unreachable)?;
        docker.ping().await.map_err(ContainerError::Unreachable)?;
        Ok(DockerRuntime {
            docker,
            present: Arc::default(),
            params: Arc::new(Mutex::new(ParamsCache::new(
                PARAMS_TTL,
                PARAMS_VOLUMES,
                PARAMS_SEEN,
            ))),
            leases: Arc::default(),
            swept: Arc::new(Mutex::new(Instant::now())),
        })
    }
}

/// A listing filter: only what is labelled `label=value`.
/// Objects with a `label` label that belong to `cluster` (Docker ANDs label filters).
pub(super) fn cluster_filter(label: &str, cluster: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_owned(),
        vec![label.to_owned(), format!("{LABEL_CLUSTER}={cluster}")],
    )])
}

pub(super) fn label_filter(label: &str, value: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), vec![format!("{label}={value}")])])
}
