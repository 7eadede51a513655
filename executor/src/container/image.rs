//! Images: present, pulled as the action's policy says, remembered for a while.

use std::collections::HashMap;
use std::time::Instant;

use bollard::query_parameters::CreateImageOptionsBuilder;
use drover_actions::PullPolicy;
use futures::StreamExt;
use tracing::{info, warn};

use super::runtime::{locked, ContainerError, DockerRuntime, IMAGE_PRESENT_FOR};

impl DockerRuntime {
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

    pub(super) fn images(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        locked(&self.present)
    }

    pub(super) fn recently_present(&self, image: &str) -> bool {
        self.images()
            .get(image)
            .is_some_and(|seen| seen.elapsed() < IMAGE_PRESENT_FOR)
    }

    pub(super) fn seen_present(&self, image: &str) {
        self.images().insert(image.to_owned(), Instant::now());
    }

    /// Forgets that `image` was present (a create did not find it).
    pub fn forget_image(&self, image: &str) {
        self.images().remove(image);
    }
}
