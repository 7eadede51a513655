//! The parameters: copied into each container, or shared read-only volumes filled once
//! for parameters seen before (see `params.rs`), swept when unused and reaped when their
//! owner is gone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bollard::body_full;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, VolumeCreateRequest};
use bollard::query_parameters::{
    ListVolumesOptionsBuilder, RemoveVolumeOptionsBuilder, UploadToContainerOptionsBuilder,
};
use tracing::{debug, info, warn};

use crate::params::{Decision, ParamsVolume};

use super::runtime::{
    cluster_filter, docker_err, label_filter, locked, ContainerError, ContainerSpec, DockerRuntime,
    LABEL_CLUSTER, LABEL_EXECUTOR, LABEL_PARAMS_OF, PARAMS_SWEEP,
};

impl DockerRuntime {
    /// Copies `params.json` into `/drover` of a created container.
    pub(super) async fn copy_params(
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
    pub(super) async fn params_volume(&self, spec: &ContainerSpec) -> Option<Arc<ParamsVolume>> {
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
    pub(super) async fn build_params_volume(
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
    pub(super) fn sweep_params_volumes(&self) {
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

    pub(super) async fn remove_params_volume(&self, volume: &ParamsVolume) {
        self.remove(&volume.holder).await;
        self.remove_volume(&volume.name).await;
    }

    pub(super) async fn remove_volume(&self, name: &str) {
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

    pub(super) async fn volumes_with(
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
