//! Running one action as a Docker container through bollard.
//!
//! Parameters are copied in as `/drover/params.json` through the Docker API (an anonymous
//! volume at `/drover`, so it works with a read-only root filesystem too) rather than
//! bind-mounted from an executor path: the executor may itself run in a container that
//! talks to the host's Docker socket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use bollard::{body_full, Docker};
use drover_actions::PullPolicy;
use futures::{Stream, StreamExt};
use tracing::{debug, info, warn};

/// Labels drover puts on every container it creates.
pub const LABEL_JOB: &str = "drover.job";
/// The executor that created the container.
pub const LABEL_EXECUTOR: &str = "drover.executor";
/// Which attempt of the job it runs.
pub const LABEL_ATTEMPT: &str = "drover.attempt";

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
}

/// How long an image seen present is trusted to still be there (saves an inspection per
/// job; a create that finds it gone checks again).
const IMAGE_PRESENT_FOR: Duration = Duration::from_secs(30);

/// The Docker engine, as the executor uses it.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    docker: Docker,
    /// Images seen present, and when.
    present: Arc<Mutex<HashMap<String, Instant>>>,
}

fn docker_err(op: &'static str) -> impl FnOnce(DockerError) -> ContainerError {
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
        })
    }

    /// Makes sure `image` is present, pulling it as `policy` says.
    ///
    /// # Errors
    /// [`ContainerError::ImageUnavailable`] saying which image and why.
    pub async fn ensure_image(
        &self,
        image: &str,
        policy: PullPolicy,
    ) -> Result<(), ContainerError> {
        if policy != PullPolicy::Always && self.recently_present(image) {
            return Ok(());
        }
        let present = self.docker.inspect_image(image).await.is_ok();
        if present {
            self.seen_present(image);
        }
        let pull = match policy {
            PullPolicy::Always => true,
            PullPolicy::IfNotPresent => !present,
            PullPolicy::Never if present => false,
            PullPolicy::Never => {
                return Err(ContainerError::ImageUnavailable {
                    image: image.to_owned(),
                    reason: "it is not present on this host and the action's pull policy is \"never\"; load or build it on every executor host".into(),
                })
            },
        };
        if !pull {
            return Ok(());
        }
        info!(%image, "pulling image");
        let options = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let mut progress = self.docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            if let Err(e) = step {
                if present {
                    warn!(%image, error = %e, "pull failed; using the local image");
                    return Ok(());
                }
                return Err(ContainerError::ImageUnavailable {
                    image: image.to_owned(),
                    reason: format!("it is not present on this host and pulling it failed: {e}"),
                });
            }
        }
        self.seen_present(image);
        Ok(())
    }

    fn images(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.present
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn recently_present(&self, image: &str) -> bool {
        self.images()
            .get(image)
            .is_some_and(|seen| seen.elapsed() < IMAGE_PRESENT_FOR)
    }

    fn seen_present(&self, image: &str) {
        self.images().insert(image.to_owned(), Instant::now());
    }

    /// Forgets that `image` was present (a create did not find it).
    pub fn forget_image(&self, image: &str) {
        self.images().remove(image);
    }

    /// Creates the container and copies `/drover/params.json` into it; returns its id.
    ///
    /// The file is written into the container's own filesystem; only a read-only root
    /// filesystem gets an anonymous volume at `/drover` to hold it (a volume costs the
    /// daemon a create and a remove per job).
    ///
    /// # Errors
    /// [`ContainerError::Docker`].
    pub async fn create(&self, spec: &ContainerSpec) -> Result<String, ContainerError> {
        let host_config = HostConfig {
            memory: spec.memory.map(|m| m as i64),
            // no swap beyond the memory limit, so the limit means what it says
            memory_swap: spec.memory.map(|m| m as i64),
            nano_cpus: spec.cpus.map(|c| (c * 1e9) as i64),
            network_mode: Some(spec.network.clone()),
            readonly_rootfs: Some(spec.read_only),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: spec.entrypoint.clone(),
            cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
            env: Some(spec.env.clone()),
            working_dir: spec.workdir.clone(),
            user: spec.user.clone(),
            labels: Some(spec.labels.clone()),
            volumes: spec.read_only.then(|| vec!["/drover".to_owned()]),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let id = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(docker_err("create"))?
            .id;
        // Into the volume, or as `drover/params.json` from the root.
        let (archive, path) = if spec.read_only {
            (params_archive(&spec.params_json, false), "/drover")
        } else {
            (params_archive(&spec.params_json, true), "/")
        };
        let archive = archive.map_err(|e| ContainerError::Docker {
            op: "archive params",
            source: DockerError::IOError { err: e },
        })?;
        let options = UploadToContainerOptionsBuilder::default()
            .path(path)
            .build();
        if let Err(e) = self
            .docker
            .upload_to_container(&id, Some(options), body_full(archive.into()))
            .await
        {
            self.remove(&id).await;
            return Err(ContainerError::Docker {
                op: "copy params",
                source: e,
            });
        }
        debug!(container = %id, name = %spec.name, "container created");
        Ok(id)
    }

    /// Starts a created container.
    ///
    /// # Errors
    /// [`ContainerError::Docker`].
    pub async fn start(&self, id: &str) -> Result<(), ContainerError> {
        self.docker
            .start_container(id, None)
            .await
            .map_err(docker_err("start"))
    }

    /// The container's output, line by line, until it exits.
    pub fn output(&self, id: &str) -> impl Stream<Item = OutputLine> + Send + 'static {
        let options = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .build();
        let chunks = self.docker.logs(id, Some(options));
        let mut buffers: [String; 2] = Default::default();
        chunks
            .take_while(|c| std::future::ready(c.is_ok()))
            .map(move |chunk| {
                let (index, stream, bytes) = match chunk {
                    Ok(bollard::container::LogOutput::StdErr { message }) => (1, "stderr", message),
                    Ok(other) => (0, "stdout", other.into_bytes()),
                    Err(_) => return Vec::new(),
                };
                let buffer = &mut buffers[index];
                buffer.push_str(&String::from_utf8_lossy(&bytes));
                let mut lines = Vec::new();
                while let Some(end) = buffer.find('\n') {
                    let line: String = buffer.drain(..=end).collect();
                    lines.push(OutputLine {
                        stream,
                        line: line.trim_end_matches(['\n', '\r']).to_owned(),
                    });
                }
                lines
            })
            .flat_map(futures::stream::iter)
    }

    /// Waits for the container to exit.
    ///
    /// # Errors
    /// [`ContainerError::Docker`] if the wait or the inspection fails.
    pub async fn wait(&self, id: &str) -> Result<Exit, ContainerError> {
        let mut waits = self.docker.wait_container(id, None);
        let code = match waits.next().await {
            Some(Ok(response)) => response.status_code,
            // bollard reports a non-zero exit as an error carrying the code
            Some(Err(DockerError::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => {
                return Err(ContainerError::Docker {
                    op: "wait",
                    source: e,
                })
            }
            None => -1,
        };
        // Only a SIGKILLed container (137) may have been the OOM killer's: inspect only
        // then, saving a call per job.
        if code != 137 {
            return Ok(Exit {
                code,
                oom_killed: false,
            });
        }
        let state = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(docker_err("inspect"))?
            .state;
        let oom_killed = state.as_ref().and_then(|s| s.oom_killed).unwrap_or(false);
        let code = state.and_then(|s| s.exit_code).unwrap_or(code);
        Ok(Exit { code, oom_killed })
    }

    /// Stops a container gracefully: SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(&self, id: &str, grace: Duration) {
        let options = StopContainerOptionsBuilder::default()
            .t(grace.as_secs().max(1) as i32)
            .build();
        if let Err(e) = self.docker.stop_container(id, Some(options)).await {
            debug!(container = %id, error = %e, "stop failed (it may have exited already)");
        }
    }

    /// Removes a container and its anonymous volume, whatever its state.
    pub async fn remove(&self, id: &str) {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => debug!(container = %id, "container removed"),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => warn!(container = %id, error = %e, "cannot remove container"),
        }
    }

    /// Ids of containers (running or not) labelled with `label=value`.
    ///
    /// # Errors
    /// [`ContainerError::Docker`].
    pub async fn list_labelled(
        &self,
        label: &str,
        value: &str,
    ) -> Result<Vec<String>, ContainerError> {
        let filters = HashMap::from([("label".to_owned(), vec![format!("{label}={value}")])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(docker_err("list"))?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }
}

/// A tar archive holding `params.json`.
fn params_archive(params: &[u8], with_dir: bool) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let name = if with_dir {
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_size(0);
        dir.set_mode(0o755);
        dir.set_mtime(0);
        dir.set_cksum();
        builder.append_data(&mut dir, "drover/", std::io::empty())?;
        "drover/params.json"
    } else {
        "params.json"
    };
    let mut header = tar::Header::new_gnu();
    header.set_size(params.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, name, params)?;
    builder.into_inner()
}
