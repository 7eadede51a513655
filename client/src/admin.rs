//! The maintenance endpoints: the reconciler (role distributor or admin), job cleanup
//! (role executor or admin) and the distributions' status (any role).

use reqwest::Method;

use crate::{ApiClient, ClientError};
use drover_model::{CleanedUp, Cleanup, Distribution, Reconcile, Reconciled};

impl ApiClient {
    /// `POST /v1/admin/reconcile`: one reconcile run; the answer says what it repaired.
    /// Bounded by at least [`MAINTENANCE_TIMEOUT`](super::MAINTENANCE_TIMEOUT).
    ///
    /// # Errors
    ///
    /// 503 ([`ClientError::is_unavailable`]) when the API has no ZooKeeper session;
    /// 403 without the distributor or admin role.
    pub async fn reconcile(&self, request: &Reconcile) -> Result<Reconciled, ClientError> {
        let client = self.for_maintenance();
        client
            .call(
                client
                    .request(Method::POST, &["v1", "admin", "reconcile"])
                    .json(request),
            )
            .await
    }

    /// `POST /v1/admin/cleanup`: deletes one batch of finished jobs older than the
    /// retention, with their logs; call again while the answer says `more`. Bounded by at
    /// least [`MAINTENANCE_TIMEOUT`](super::MAINTENANCE_TIMEOUT).
    ///
    /// # Errors
    ///
    /// 400 for a retention or batch out of range; 403 without the executor or admin role.
    pub async fn cleanup(&self, request: &Cleanup) -> Result<CleanedUp, ClientError> {
        let client = self.for_maintenance();
        client
            .call(
                client
                    .request(Method::POST, &["v1", "admin", "cleanup"])
                    .json(request),
            )
            .await
    }

    /// `GET /v1/distributions`: every distribution's status with its current leader.
    ///
    /// # Errors
    ///
    /// 503 when the API has no ZooKeeper session, transport errors.
    pub async fn distributions(&self) -> Result<Vec<Distribution>, ClientError> {
        self.call(self.request(Method::GET, &["v1", "distributions"]))
            .await
    }
}
