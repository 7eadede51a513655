//! Running one action as a Docker container through bollard.
//!
//! Parameters are copied in as `/drover/params.json` through the Docker API rather than
//! bind-mounted from an executor path: the executor may itself run in a container that
//! talks to the host's Docker socket. Parameters seen before share a read-only volume
//! filled once through the same API (see `params.rs`); `/drover` is read-only either way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, EventsOptionsBuilder,
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, StopContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use bollard::{body_full, Docker};
use drover_actions::PullPolicy;
use futures::{Stream, StreamExt};
use tracing::{debug, info, warn};

use crate::params::{Decision, ParamsCache, ParamsVolume};

mod output;

pub use output::MAX_LINE_BYTES;

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
const READONLY_PATHS: [&str; 6] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/drover",
];

/// How long a parameters sighting, or an unused shared volume, is remembered.
const PARAMS_TTL: Duration = Duration::from_secs(600);
/// At most this many shared parameters volumes per executor.
const PARAMS_VOLUMES: usize = 64;
/// At most this many remembered parameter sightings.
const PARAMS_SEEN: usize = 4096;
/// How often unused shared volumes are looked for.
const PARAMS_SWEEP: Duration = Duration::from_secs(60);

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
    /// The line was cut at [`MAX_LINE_BYTES`]: the stream's next line goes on where this
    /// one stops.
    pub continued: bool,
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
    /// Shared parameters volumes and sightings.
    params: Arc<Mutex<ParamsCache>>,
    /// The shared volume each container mounts, until it is removed.
    leases: Arc<Mutex<HashMap<String, Arc<ParamsVolume>>>>,
    /// When unused shared volumes were last looked for.
    swept: Arc<Mutex<Instant>>,
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
            params: Arc::new(Mutex::new(ParamsCache::new(
                PARAMS_TTL,
                PARAMS_VOLUMES,
                PARAMS_SEEN,
            ))),
            leases: Arc::default(),
            swept: Arc::new(Mutex::new(Instant::now())),
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
        locked(&self.present)
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

    /// Creates the container with `/drover/params.json` in it; returns its id.
    ///
    /// The file is copied into the container's own filesystem (a read-only root filesystem
    /// gets an anonymous volume at `/drover` to hold it), or, for parameters seen before,
    /// the shared volume holding them is mounted read-only instead: no copy at all.
    ///
    /// # Errors
    /// [`ContainerError::Docker`].
    pub async fn create(&self, spec: &ContainerSpec) -> Result<String, ContainerError> {
        self.sweep_params_volumes();
        let shared = self.params_volume(spec).await;
        let host_config = HostConfig {
            memory: spec.memory.map(|m| m as i64),
            // no swap beyond the memory limit, so the limit means what it says
            memory_swap: spec.memory.map(|m| m as i64),
            nano_cpus: spec.cpus.map(|c| (c * 1e9) as i64),
            network_mode: Some(spec.network.clone()),
            readonly_rootfs: Some(spec.read_only),
            // a real init as PID 1 (Docker's docker-init): signals reach the action, so a
            // graceful stop is one, and zombies are reaped
            init: Some(true),
            readonly_paths: Some(READONLY_PATHS.iter().map(|p| (*p).to_owned()).collect()),
            mounts: shared.as_ref().map(|volume| {
                vec![Mount {
                    typ: Some(MountType::VOLUME),
                    source: Some(volume.name.clone()),
                    target: Some("/drover".to_owned()),
                    read_only: Some(true),
                    ..Default::default()
                }]
            }),
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
            volumes: (spec.read_only && shared.is_none()).then(|| vec!["/drover".to_owned()]),
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
        match shared {
            Some(volume) => {
                locked(&self.leases).insert(id.clone(), volume);
            }
            None => {
                if let Err(e) = self
                    .copy_params(&id, &spec.params_json, spec.read_only)
                    .await
                {
                    self.remove(&id).await;
                    return Err(e);
                }
            }
        }
        debug!(container = %id, name = %spec.name, "container created");
        Ok(id)
    }

    /// Copies `params.json` into `/drover` of a created container.
    async fn copy_params(
        &self,
        id: &str,
        params: &[u8],
        into_volume: bool,
    ) -> Result<(), ContainerError> {
        // Into a volume at /drover, or as `drover/params.json` from the root.
        let (archive, path) = if into_volume {
            (params_archive(params, false), "/drover")
        } else {
            (params_archive(params, true), "/")
        };
        let archive = archive.map_err(|e| ContainerError::Docker {
            op: "archive params",
            source: DockerError::IOError { err: e },
        })?;
        let options = UploadToContainerOptionsBuilder::default()
            .path(path)
            .build();
        self.docker
            .upload_to_container(id, Some(options), body_full(archive.into()))
            .await
            .map_err(docker_err("copy params"))
    }

    /// The shared volume holding `spec`'s parameters, building it the second time they
    /// are seen; `None`: copy them into the container.
    async fn params_volume(&self, spec: &ContainerSpec) -> Option<Arc<ParamsVolume>> {
        let owner = spec.labels.get(LABEL_EXECUTOR)?;
        let decision = locked(&self.params).decide(&spec.params_json, Instant::now());
        match decision {
            Decision::Copy => None,
            Decision::Mount(volume) => Some(volume),
            Decision::Build => {
                let built = match self.build_params_volume(spec, owner).await {
                    Ok(volume) => Some(Arc::new(volume)),
                    Err(e) => {
                        warn!(error = %e, "cannot build a shared parameters volume; copying the parameters into each container");
                        None
                    }
                };
                locked(&self.params).built(&spec.params_json, built.clone(), Instant::now());
                built
            }
        }
    }

    /// A volume holding `params.json`, filled through a holder container that is never
    /// started and keeps the volume in use until the executor removes both.
    async fn build_params_volume(
        &self,
        spec: &ContainerSpec,
        owner: &str,
    ) -> Result<ParamsVolume, ContainerError> {
        let mut labels = HashMap::from([(LABEL_PARAMS_OF.to_owned(), owner.to_owned())]);
        if let Some(cluster) = spec.labels.get(LABEL_CLUSTER) {
            labels.insert(LABEL_CLUSTER.to_owned(), cluster.clone());
        }
        let name = format!("drover-params-{:016x}", fastrand::u64(..));
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.clone()),
                labels: Some(labels.clone()),
                ..Default::default()
            })
            .await
            .map_err(docker_err("create params volume"))?;
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            // never started: the command only has to be there
            entrypoint: Some(vec!["/drover/never-started".to_owned()]),
            labels: Some(labels),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some("none".to_owned()),
                mounts: Some(vec![Mount {
                    typ: Some(MountType::VOLUME),
                    source: Some(name.clone()),
                    target: Some("/drover".to_owned()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let holder = match self.docker.create_container(None, body).await {
            Ok(created) => created.id,
            Err(e) => {
                self.remove_volume(&name).await;
                return Err(ContainerError::Docker {
                    op: "create params holder",
                    source: e,
                });
            }
        };
        let volume = ParamsVolume { name, holder };
        if let Err(e) = self
            .copy_params(&volume.holder, &spec.params_json, true)
            .await
        {
            self.remove_params_volume(&volume).await;
            return Err(e);
        }
        debug!(volume = %volume.name, "shared parameters volume built");
        Ok(volume)
    }

    /// Removes, in the background, shared volumes no container used for a while (at most
    /// once per [`PARAMS_SWEEP`]).
    fn sweep_params_volumes(&self) {
        {
            let mut swept = locked(&self.swept);
            if swept.elapsed() < PARAMS_SWEEP {
                return;
            }
            *swept = Instant::now();
        }
        let expired = locked(&self.params).expired(Instant::now());
        if expired.is_empty() {
            return;
        }
        let docker = self.clone();
        tokio::spawn(async move {
            for volume in expired {
                docker.remove_params_volume(&volume).await;
            }
        });
    }

    /// Removes every shared parameters volume (the executor is stopping; its containers
    /// are gone).
    pub async fn remove_params_volumes(&self) {
        let all = locked(&self.params).take_all();
        for volume in &all {
            self.remove_params_volume(volume).await;
        }
        if !all.is_empty() {
            info!(count = all.len(), "removed the shared parameters volumes");
        }
    }

    async fn remove_params_volume(&self, volume: &ParamsVolume) {
        self.remove(&volume.holder).await;
        self.remove_volume(&volume.name).await;
    }

    async fn remove_volume(&self, name: &str) {
        let options = RemoveVolumeOptionsBuilder::default().force(true).build();
        match self.docker.remove_volume(name, Some(options)).await {
            Ok(()) => debug!(volume = %name, "volume removed"),
            Err(e) => warn!(volume = %name, error = %e, "cannot remove volume"),
        }
    }

    /// Removes the shared parameters volumes (and holders) a previous run of executor
    /// `owner` left behind.
    ///
    /// # Errors
    /// [`ContainerError::Docker`] if they cannot be listed.
    pub async fn remove_params_leftovers(&self, owner: &str) -> Result<usize, ContainerError> {
        let holders = self.list_labelled(LABEL_PARAMS_OF, owner).await?;
        for holder in &holders {
            self.remove(holder).await;
        }
        let volumes = self
            .volumes_with(&label_filter(LABEL_PARAMS_OF, owner))
            .await?;
        for volume in &volumes {
            self.remove_volume(&volume.name).await;
        }
        Ok(volumes.len())
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

    /// The container's output, line by line, until it exits (see [`MAX_LINE_BYTES`] for
    /// how long lines are cut). The last line of each stream comes at the end, newline or
    /// not.
    ///
    /// Docker can end a followed log before the output a container flushed as it exited
    /// (the last line of a stream without its newline): once the follow ends, the last
    /// messages are read again and those not seen yet are added.
    pub fn output(&self, id: &str) -> impl Stream<Item = OutputLine> + Send + 'static {
        output::follow(&self.docker, id)
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

    /// Whether Docker saw the kernel's OOM killer in container `id` (started after
    /// `since`): its `OOMKilled` flag or an `oom` event. Docker can handle a container's
    /// exit before its OOM notice and then keep `OOMKilled: false`, so this looks for
    /// about a second. Only worth asking for an exit code of 137 nobody asked for.
    pub async fn oom_reported(&self, id: &str, since: SystemTime) -> bool {
        let stamp = |t: SystemTime| {
            let t = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
        };
        let since = stamp(since);
        let filters = HashMap::from([("container", vec![id]), ("event", vec!["oom"])]);
        for attempt in 0..5 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let options = EventsOptionsBuilder::default()
                .since(&since)
                .until(&stamp(SystemTime::now()))
                .filters(&filters)
                .build();
            let seen = self
                .docker
                .events(Some(options))
                .any(|event| std::future::ready(event.is_ok()))
                .await;
            let flagged = self
                .docker
                .inspect_container(id, None)
                .await
                .ok()
                .and_then(|c| c.state)
                .and_then(|s| s.oom_killed)
                .unwrap_or(false);
            if seen || flagged {
                return true;
            }
        }
        false
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

    /// Kills a container at once (SIGKILL) and waits until Docker says it is not running:
    /// for work that is no longer ours, where a grace period would be an overlap.
    pub async fn kill(&self, id: &str) {
        let options = KillContainerOptionsBuilder::default()
            .signal("KILL")
            .build();
        if let Err(e) = self.docker.kill_container(id, Some(options)).await {
            debug!(container = %id, error = %e, "kill failed (it may have exited already)");
        }
    }

    /// Kills and removes every container of `job` (earlier attempts a previous holder
    /// left on this daemon).
    pub async fn kill_job_leftovers(&self, job: drover_core::JobId) {
        match self.list_labelled(LABEL_JOB, &job.to_string()).await {
            Ok(ids) => {
                for id in ids {
                    warn!(container = %id, job = %job, "killing a container an earlier holder of the job left running");
                    self.kill(&id).await;
                    self.remove(&id).await;
                }
            }
            Err(e) => warn!(job = %job, error = %e, "cannot list earlier containers of the job"),
        }
    }

    /// Removes a container and its anonymous volume, whatever its state (and gives back
    /// the shared parameters volume it mounted).
    pub async fn remove(&self, id: &str) {
        // the lease goes only once the container is gone: a sweep never removes a
        // volume still mounted
        let _lease = locked(&self.leases).remove(id);
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

    /// Ids of running containers labelled with `label=value`.
    ///
    /// # Errors
    /// [`ContainerError::Docker`].
    pub async fn running_labelled(
        &self,
        label: &str,
        value: &str,
    ) -> Result<Vec<String>, ContainerError> {
        let options = ListContainersOptionsBuilder::default()
            .filters(&label_filter(label, value))
            .build();
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(docker_err("list"))?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    /// Every container (running or not) of `cluster` with a `label` label, with that
    /// label's value: drover's own containers and whose they are.
    ///
    /// # Errors
    /// [`ContainerError::Docker`].
    pub async fn owners_of(
        &self,
        label: &str,
        cluster: &str,
    ) -> Result<Vec<(String, String)>, ContainerError> {
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&cluster_filter(label, cluster))
            .build();
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(docker_err("list"))?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let owner = c.labels.as_ref()?.get(label)?.clone();
                Some((c.id?, owner))
            })
            .collect())
    }

    /// The owners (`drover.params-of`) of every shared parameters volume of `cluster`.
    ///
    /// # Errors
    /// [`ContainerError::Docker`].
    pub async fn params_owners(&self, cluster: &str) -> Result<Vec<String>, ContainerError> {
        let volumes = self
            .volumes_with(&cluster_filter(LABEL_PARAMS_OF, cluster))
            .await?;
        Ok(volumes
            .into_iter()
            .filter_map(|v| v.labels.get(LABEL_PARAMS_OF).cloned())
            .collect())
    }

    async fn volumes_with(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<bollard::models::Volume>, ContainerError> {
        let options = ListVolumesOptionsBuilder::default()
            .filters(filters)
            .build();
        Ok(self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(docker_err("list volumes"))?
            .volumes
            .unwrap_or_default())
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
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&label_filter(label, value))
            .build();
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(docker_err("list"))?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }
}

/// A listing filter: only what is labelled `label=value`.
/// Objects with a `label` label that belong to `cluster` (Docker ANDs label filters).
fn cluster_filter(label: &str, cluster: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_owned(),
        vec![label.to_owned(), format!("{LABEL_CLUSTER}={cluster}")],
    )])
}

fn label_filter(label: &str, value: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), vec![format!("{label}={value}")])])
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
