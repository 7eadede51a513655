//! A configuration value that is unusable: which key, and why.

/// An unusable configuration value. Shown as `<key>: <reason>`; the reason says how to
/// fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    /// The dotted key, such as `executor.slots` or `distributor.distributions[1].jitter`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub reason: String,
}

impl ConfigError {
    /// The error for `key`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            key: key.into(),
            reason: reason.into(),
        }
    }
}
