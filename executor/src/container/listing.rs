//! Finding containers by label: a job's, an executor's, the cluster's.

use bollard::query_parameters::ListContainersOptionsBuilder;

use super::runtime::*;

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
