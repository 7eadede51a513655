//! The one error type of `drover-core`.

use std::num::ParseIntError;
use std::path::PathBuf;

use crate::state::UnknownState;
use crate::status::{StatusCode, UnknownStatusCode};

/// Everything that can go wrong in `drover-core`.
///
/// Each message says what was wrong and how to fix it, so callers can show it
/// to a user as is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A string is not a job id.
    #[error(
        "invalid job id {input:?}: expected a UUID such as 67e55044-10b1-426f-9247-bb680e5fe0c8"
    )]
    InvalidJobId {
        /// The rejected input.
        input: String,
        /// Why `uuid` rejected it.
        #[source]
        source: uuid::Error,
    },

    /// A priority is outside `0..=999`.
    #[error("priority {value} is out of range: use 0 (runs first) to 999")]
    InvalidPriority {
        /// The rejected value.
        value: u64,
    },

    /// A string is not a priority number.
    #[error("invalid priority {input:?}: use a whole number from 0 (runs first) to 999")]
    UnparsablePriority {
        /// The rejected input.
        input: String,
        /// Why it is not a number.
        #[source]
        source: ParseIntError,
    },

    /// A string is not a fencing token.
    #[error("invalid fencing token {input:?}: expected the decimal zxid of the taken node")]
    InvalidFencingToken {
        /// The rejected input.
        input: String,
        /// Why it is not a number.
        #[source]
        source: ParseIntError,
    },

    /// A string names no job state.
    #[error(transparent)]
    UnknownState(#[from] UnknownState),

    /// A string names no status code.
    #[error(transparent)]
    UnknownStatusCode(#[from] UnknownStatusCode),

    /// The transition table forbids moving a job from one status code to another.
    #[error(
        "illegal transition from {from} ({}) to {to} ({}): {reason}; {}",
        .from.state(),
        .to.state(),
        crate::transition::describe_allowed(.from, .allowed)
    )]
    IllegalTransition {
        /// The job's current status code.
        from: StatusCode,
        /// The refused target.
        to: StatusCode,
        /// Why the table refuses it.
        reason: &'static str,
        /// Every code the job may move to from `from` (empty when terminal).
        allowed: Vec<StatusCode>,
    },

    /// A string names no log format.
    #[error("unknown log format {input:?}: use `text` or `json`")]
    UnknownLogFormat {
        /// The rejected input.
        input: String,
    },

    /// `RUST_LOG` holds an invalid filter.
    #[error("RUST_LOG is not a valid log filter: fix it or unset it (example: RUST_LOG=info,drover=debug)")]
    InvalidLogFilter {
        /// What `tracing-subscriber` rejected.
        #[source]
        source: tracing_subscriber::filter::FromEnvError,
    },

    /// A global tracing subscriber (or `log` logger) is already installed.
    #[error("tracing is already initialised in this process: call init_tracing once, at start-up")]
    TracingAlreadyInitialized {
        /// What `tracing-subscriber` reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The configuration file could not be read.
    #[error("cannot read configuration file {}: check the path and its permissions", path.display())]
    ConfigFileRead {
        /// The file as given.
        path: PathBuf,
        /// The IO failure.
        #[source]
        source: std::io::Error,
    },

    /// The configuration file's extension names no supported format.
    #[error("configuration file {} has no supported extension: name it .toml, .yaml, .yml or .json", path.display())]
    UnsupportedConfigFormat {
        /// The file as given.
        path: PathBuf,
    },

    /// The configuration file is not valid TOML, YAML or JSON.
    #[error("configuration file {} is not valid {format}: {detail}", path.display())]
    ConfigFileParse {
        /// The file as given.
        path: PathBuf,
        /// `TOML`, `YAML` or `JSON`.
        format: &'static str,
        /// The parser's message, with line and column where it gives them.
        detail: String,
    },

    /// A configuration key is unknown or its value does not fit its type.
    #[error("invalid configuration key `{key}` (from {origin}): {detail}")]
    InvalidConfig {
        /// Dotted path of the key, such as `zookeeper.hosts`.
        key: String,
        /// Where the value came from: the file path or the environment variable.
        origin: String,
        /// What is wrong and how to fix it.
        detail: String,
    },

    /// A required configuration key is set nowhere.
    #[error("missing configuration key `{key}`: set it in the configuration file or with the environment variable {env_var}")]
    MissingConfig {
        /// Dotted path of the key, such as `zookeeper.hosts`.
        key: String,
        /// The variable that would set it, such as `DROVER_ZOOKEEPER__HOSTS`.
        env_var: String,
    },
}
