//! drover's action catalogue, loaded once when an executor starts.
//!
//! - [`Catalogue`] — every action by name: built-in ones and Docker actions from
//!   `*.toml` files in the actions directory; malformed files stop start-up with the file,
//!   the line and what is wrong.
//! - [`Builtin`] — actions compiled in: `noop`, `sleep`, `cleanup_jobs` ([`CleanupParams`]).
//! - [`DockerAction`] — what an action file declares (image, command, limits, network,
//!   pull policy, user, read-only root, secrets), or the images a job may name
//!   (`images`, for a project file's `run:` lines: [`DockerSpec::for_job`]).
//! - [`params_env`] / [`PARAMS_PATH`] — how parameters reach a container, never through a
//!   shell command line.
//! - [`Secret`] — secrets from the executor's environment or files, each at least 4 bytes
//!   (and so is each line of a multi-line one).
//! - [`redact`] / [`LineRedactor`] — secret values (and their lines) kept out of status
//!   messages and job logs, also when a long line is cut in the middle of one.

mod builtin;
mod catalogue;
mod docker;
mod error;
mod images;
mod memory;
mod params;
mod redact;
mod secret;

pub use builtin::{Builtin, CleanupParams};
pub use catalogue::{Action, Catalogue, DockerSpec};
pub use docker::{DockerAction, PullPolicy};
pub use error::Error;
pub use memory::parse_memory;
pub use params::{params_env, PARAMS_PATH};
pub use redact::{mask_credentials, redact, LineRedactor};
pub use secret::{Secret, SecretSource, MIN_SECRET_BYTES};

/// Checks an action name: 1–128 characters of `[A-Za-z0-9_.-]`.
///
/// # Errors
/// A message saying what is wrong with it.
pub fn check_name(name: &str) -> Result<(), String> {
    drover_core::names::check_name("action", name)
}
