//! Finding containers by label: a job's, an executor's, the cluster's.

use std::collections::HashMap;

use bollard::models::ContainerSummary;
use bollard::query_parameters::ListContainersOptionsBuilder;

use super::runtime::{cluster_filter, docker_err, label_filter, ContainerError, DockerRuntime};

impl DockerRuntime {
    /// Ids of running containers labelled with `label=value`.
    ///
    /// # Errors
    /// [`ContainerError::Docker`].
    pub async fn running_labelled(
        &self,
        label: &str,
        value: &str,
    ) -> Result<Vec<String>, ContainerError> {
        let list = self.containers(&label_filter(label, value), false).await?;
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
        let list = self
            .containers(&cluster_filter(label, cluster), true)
            .await?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let owner = c.labels.as_ref()?.get(label)?.clone();
                Some((c.id?, owner))
            })
            .collect())
    }

    /// How many of `cluster`'s containers run now on this daemon, whichever executor made
    /// them (what `prepare-for-reboot` waits to see at zero).
    ///
    /// # Errors
    /// [`ContainerError::Docker`].
    pub async fn running_in_cluster(&self, cluster: &str) -> Result<usize, ContainerError> {
        let filters = cluster_filter(super::runtime::LABEL_EXECUTOR, cluster);
        Ok(self.containers(&filters, false).await?.len())
    }

    /// `cluster`'s containers that stopped (exited or dead) more than `age` ago.
    ///
    /// # Errors
    /// [`ContainerError::Docker`] when they cannot be listed.
    pub async fn stopped_before(
        &self,
        cluster: &str,
        age: std::time::Duration,
    ) -> Result<Vec<String>, ContainerError> {
        let mut filters = cluster_filter(super::runtime::LABEL_EXECUTOR, cluster);
        filters.insert("status".into(), vec!["exited".into(), "dead".into()]);
        let mut old = Vec::new();
        for id in self
            .containers(&filters, true)
            .await?
            .into_iter()
            .filter_map(|c| c.id)
        {
            let Ok(found) = self.docker.inspect_container(&id, None).await else {
                continue;
            };
            let finished = found
                .state
                .and_then(|s| s.finished_at)
                .and_then(|t| drover_core::clock::parse_rfc3339(&t));
            let stopped_for =
                finished.and_then(|t| std::time::SystemTime::now().duration_since(t).ok());
            if stopped_for.is_some_and(|d| d > age) {
                old.push(id);
            }
        }
        Ok(old)
    }

    /// What `cluster`'s containers and volumes, and `images`, take on this engine.
    ///
    /// # Errors
    /// [`ContainerError::Docker`].
    pub async fn disk_use(
        &self,
        cluster: &str,
        images: &[String],
    ) -> Result<drover_model::DiskUse, ContainerError> {
        let mut image_bytes = 0;
        for image in images {
            if let Ok(found) = self.docker.inspect_image(image).await {
                image_bytes += found.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
            }
        }
        let filters = cluster_filter(super::runtime::LABEL_EXECUTOR, cluster);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .size(true)
            .filters(&filters)
            .build();
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(docker_err("list"))?;
        let volumes = self
            .volumes_with(&cluster_filter(super::runtime::LABEL_PARAMS_OF, cluster))
            .await?;
        Ok(drover_model::DiskUse {
            containers: containers.len() as u32,
            container_bytes: containers
                .iter()
                .filter_map(|c| c.size_rw)
                .map(|b| u64::try_from(b).unwrap_or(0))
                .sum(),
            volumes: volumes.len() as u32,
            image_bytes,
            measured_at: drover_core::clock::rfc3339(std::time::SystemTime::now()),
        })
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
        let list = self.containers(&label_filter(label, value), true).await?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    /// Containers matching `filters`; stopped ones too with `all`.
    async fn containers(
        &self,
        filters: &HashMap<String, Vec<String>>,
        all: bool,
    ) -> Result<Vec<ContainerSummary>, ContainerError> {
        let options = ListContainersOptionsBuilder::default()
            .all(all)
            .filters(filters)
            .build();
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(docker_err("list"))
    }
}
