//! A container's life: create (limits, labels, mounts, parameters), start, follow,
//! wait, stop or kill, remove.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, EventsOptionsBuilder, KillContainerOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures::{Stream, StreamExt};
use tracing::{debug, warn};

use super::runtime::{
    docker_err, locked, ContainerError, ContainerSpec, DockerRuntime, Exit, OutputLine, LABEL_JOB,
    READONLY_PATHS,
};

impl DockerRuntime {
    /// Creates the container with `/drover/params.json` in it; returns its id.
    ///
    /// The file is copied into the container's own filesystem (a read-only root filesystem
    /// gets an anonymous volume at `/drover` to hold it), or, for parameters seen before,
    /// the shared volume holding them is mounted read-only instead: no copy at all.
    ///
    /// # Errors
    /// [`ContainerError::Docker`].
    pub async fn create(&self, spec: &ContainerSpec) -> Result<String, ContainerError> {
        Ok(self.create_deferring(spec, false).await?.0)
    }

    /// [`create`](Self::create), except that with `defer` the parameters of a container
    /// that would get a copy of them (a writable root filesystem, no shared volume) are
    /// not copied but returned, as a tar entry for `drover/params.json` to put first in
    /// the one archive the caller extracts at `/` (staging a pipeline job's inputs): one
    /// upload instead of two.
    ///
    /// # Errors
    /// [`ContainerError::Docker`].
    pub async fn create_deferring(
        &self,
        spec: &ContainerSpec,
        defer: bool,
    ) -> Result<(String, Option<Vec<u8>>), ContainerError> {
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
            volumes: container_volumes(spec, shared.is_none()),
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
        let mut deferred = None;
        match shared {
            Some(volume) => {
                locked(&self.leases).insert(id.clone(), volume);
            }
            None if defer && !spec.read_only => deferred = Some(spec.params_json.clone()),
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
        Ok((id, deferred))
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
        super::output::follow(&self.docker, id)
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

    /// Kills and removes every container of `job` on this daemon: earlier attempts a
    /// previous holder left, or what a clean-up order (`drover kill --cleanup`) names.
    pub async fn kill_job_leftovers(&self, job: drover_core::JobId) {
        match self.list_labelled(LABEL_JOB, &job.to_string()).await {
            Ok(ids) => {
                for id in ids {
                    warn!(container = %id, job = %job, "killing and removing a container of the job left on this daemon");
                    self.kill(&id).await;
                    self.remove(&id).await;
                }
            }
            Err(e) => warn!(job = %job, error = %e, "cannot list earlier containers of the job"),
        }
    }

    /// A tar stream of `path` in container `id` (running or exited), as `docker cp`
    /// reads it: links are entries, never followed.
    pub fn download(
        &self,
        id: &str,
        path: &str,
    ) -> impl Stream<Item = Result<bytes::Bytes, DockerError>> + Send + 'static {
        let options = bollard::query_parameters::DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        let docker = self.docker.clone();
        let id = id.to_owned();
        futures::stream::once(async move { docker.download_from_container(&id, Some(options)) })
            .flatten()
    }

    /// Extracts the tar arriving on `tar` at `path` in created container `id`, as
    /// `docker cp` into it does (into its volumes too).
    ///
    /// # Errors
    /// [`ContainerError::Docker`].
    pub async fn upload(
        &self,
        id: &str,
        path: &str,
        tar: impl Stream<Item = bytes::Bytes> + Send + 'static,
    ) -> Result<(), ContainerError> {
        let options = bollard::query_parameters::UploadToContainerOptionsBuilder::default()
            .path(path)
            .build();
        self.docker
            .upload_to_container(id, Some(options), bollard::body_stream(tar))
            .await
            .map_err(docker_err("copy inputs"))
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
}

/// The anonymous volumes of a container: `/drover` for the parameters of a read-only
/// container that has no shared volume, `/workspace` for a job with outputs.
fn container_volumes(spec: &ContainerSpec, own_params: bool) -> Option<Vec<String>> {
    let mut volumes = Vec::new();
    if spec.read_only && own_params {
        volumes.push("/drover".to_owned());
    }
    if spec.workspace {
        volumes.push(crate::collect::WORKSPACE.to_owned());
    }
    (!volumes.is_empty()).then_some(volumes)
}
