//! Why an executor could not start.

/// Start-up failures; once running, an executor retries instead of failing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `[executor]` settings are invalid.
    #[error("invalid configuration: {0}")]
    Config(drover_core::ConfigError),
    /// The action catalogue could not be loaded.
    #[error("cannot load the actions: {0}")]
    Actions(drover_actions::Error),
    /// Docker actions are configured but no Docker engine answers.
    #[error("Docker actions are configured but {0}")]
    Docker(crate::container::ContainerError),
    /// The metrics endpoint could not be served.
    #[error("{0}")]
    Metrics(String),
    /// The watchdog process could not be started.
    #[error("{0}")]
    Watchdog(String),
}
