//! drover's job model and start-up plumbing, with no IO but reading a config file.
//!
//! - [`JobId`]: a job's identity, a v4 UUID written hyphenated.
//! - [`Priority`]: queue priority `0..=999`, lower runs first; the `PPP` of a queue entry.
//! - [`FencingToken`]: the taken node's creation zxid; newer tokens win at the API.
//! - [`State`] and [`StatusCode`]: a job's coarse state and precise status code.
//! - [`check_transition`]: the one table of legal status moves; everything else asks it.
//! - [`ConfigError`]: an unusable configuration value, by key.
//! - [`load_config`]: serde defaults, then a TOML/YAML/JSON file, then `DROVER_` variables.
//! - [`init_tracing`]: the process's tracing subscriber, text or JSON on stderr.
//! - [`Backoff`]: retry delays, doubling to a ceiling; [`Backoff::RECONNECT`] for
//!   ZooKeeper sessions and leaders' steps.
//! - [`clock`]: times as RFC 3339 text (written and read one way); [`lock`]: a mutex
//!   lock that outlives a panic.
//! - [`names`]: what action and distribution names and process ids may look like.
//! - [`route`]: what a job needs of an executor ([`Route`]) and what one offers ([`Offer`]).
//! - [`Error`]: every failure above, each saying what was wrong and how to fix it.

mod backoff;
pub mod clock;
mod config;
mod config_error;
mod error;
mod fencing;
mod job_id;
pub mod names;
mod priority;
pub mod route;
mod state;
mod status;
mod sync;
mod telemetry;
mod transition;

pub use crate::config::{
    comma_separated, env_var_name, load_config, load_config_from_process_env, ENV_PREFIX,
    ENV_SEPARATOR,
};
pub use backoff::Backoff;
pub use config_error::ConfigError;
pub use error::Error;
pub use fencing::FencingToken;
pub use job_id::JobId;
pub use priority::Priority;
pub use route::{Offer, Route};
pub use state::{State, UnknownState};
pub use status::{StatusCode, UnknownStatusCode};
pub use sync::lock;
pub use telemetry::{init_tracing, init_tracing_at, LogFormat};
pub use transition::{allowed_transitions, can_transition, check_transition};

/// Serde helpers for durations written like `"10s"`, `"2m"` or `"1h 30m"`.
///
/// `#[serde(with = "drover_core::duration")]` on a `Duration` field,
/// `#[serde(with = "drover_core::duration::option", default)]` on an `Option<Duration>`.
pub use humantime_serde as duration;
