//! The distributor's errors.

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
}
