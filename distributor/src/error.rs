//! The distributor's errors.

use drover_coordination::ZkError;

/// What stops a distributor, or one step of it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable; the message names the field.
    #[error("invalid configuration: {0}")]
    Config(drover_core::ConfigError),
    /// A ZooKeeper recipe failed.
    #[error(transparent)]
    Coordination(#[from] drover_coordination::Error),
    /// A ZooKeeper call failed.
    #[error("zookeeper {op} {path} failed: {source}")]
    Zk {
        /// The operation.
        op: &'static str,
        /// The node.
        path: String,
        /// What the client said.
        #[source]
        source: ZkError,
    },
}
