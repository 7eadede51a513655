//! What every handler can reach: the store, the configuration, the tokens, the
//! ZooKeeper session, the metrics and the reconciler.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::ApiConfig;
use crate::coordinator::Coordinator;
use crate::metrics::Metrics;
use crate::reconcile::Reconciler;
use crate::store::Store;
use crate::tokens::Tokens;

/// What every handler can reach. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    pub(crate) store: Store,
    /// Output files' bytes.
    pub(crate) artifacts: crate::artifacts::Artifacts,
    pub(crate) config: Arc<ApiConfig>,
    pub(crate) tokens: Arc<Tokens>,
    pub(crate) zk: Coordinator,
    pub(crate) metrics: Metrics,
    /// The reconciler's cache of queue entries, shared by its runs.
    pub(crate) reconciler: Arc<Reconciler>,
    /// Cancelled when the API stops: log followers end their streams.
    pub(crate) shutdown: CancellationToken,
}
