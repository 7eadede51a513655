//! Docker actions: what an action file declares.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::memory::parse_memory;
use crate::secret::SecretSource;

/// A Docker action, as declared in `<name>.toml` in the actions directory.
///
/// ```toml
/// name = "resize"
/// image = "drover/busybox:latest"
/// command = ["sh", "-c", "echo resizing $DROVER_PARAM_WIDTH"]
/// timeout = "10m"
/// memory = "128m"
/// cpus = 0.5
/// network = "none"        # none (default) | bridge | host | <network name>
/// pull = "if-not-present" # if-not-present (default) | always | never
/// read_only = true
/// requires = ["gpu"]      # only executors with every one of these tags run it
/// [env]
/// LANG = "C.UTF-8"
/// [secrets]
/// API_KEY = { env = "RESIZE_API_KEY" }
/// ```
///
/// An action with `images` instead of `image` runs the image each job names (a project
/// file's `run:` line: params `image` and `args`), when it matches one of the patterns
/// (`*` matches any run of characters): `images = ["drover/busybox:*", "python:3.*"]`.
/// Its `cpus` and `memory` are the defaults and the ceilings of what a job may ask for.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerAction {
    /// The action's name (what jobs name).
    pub name: String,
    /// The image to run (empty when the action lists `images`).
    #[serde(default)]
    pub image: String,
    /// The images a job may name (glob patterns with `*`), instead of one `image`.
    #[serde(default)]
    pub images: Vec<String>,
    /// Replaces the image's entrypoint, if given.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// The command (the image's default when empty). Parameters are never interpolated
    /// into it: they arrive as `/drover/params.json` and `DROVER_PARAM_*` variables.
    #[serde(default)]
    pub command: Vec<String>,
    /// Fixed environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory in the container.
    #[serde(default)]
    pub workdir: Option<String>,
    /// How long a run may take; the job's own timeout wins when it is shorter.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// CPU limit in cores (e.g. `0.5`).
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Memory limit (`64m`, `1g`, or bytes).
    #[serde(default, deserialize_with = "memory_field")]
    pub memory: Option<u64>,
    /// Network mode; `none` unless the action needs the network.
    #[serde(default = "default_network")]
    pub network: String,
    /// When to pull the image.
    #[serde(default)]
    pub pull: PullPolicy,
    /// User to run as (`uid[:gid]` or a name the image knows).
    #[serde(default)]
    pub user: Option<String>,
    /// Mount the container's root filesystem read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Tags an executor must carry (`[executor] tags`) to run this action; an executor
    /// without them neither offers nor takes it.
    #[serde(default)]
    pub requires: Vec<String>,
    /// Secrets passed as environment variables: variable name → where its value comes from.
    /// A value, and each non-blank line of a multi-line one, must be at least
    /// [`MIN_SECRET_BYTES`](crate::MIN_SECRET_BYTES) long, to be redacted from logs.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSource>,
}

/// When the executor pulls an action's image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    /// Pull only when the image is not present locally.
    #[default]
    IfNotPresent,
    /// Pull before every run.
    Always,
    /// Never pull: a missing image fails the job.
    Never,
}

fn default_network() -> String {
    "none".to_owned()
}

fn memory_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Memory {
        Bytes(u64),
        Text(String),
    }
    match Option::<Memory>::deserialize(d)? {
        None => Ok(None),
        Some(Memory::Bytes(b)) => Ok(Some(b)),
        Some(Memory::Text(t)) => parse_memory(&t).map(Some).map_err(serde::de::Error::custom),
    }
}

impl DockerAction {
    /// Checks what serde cannot: names, ranges, combinations; the error names the field.
    pub(crate) fn validate(&self) -> Result<(), String> {
        crate::check_name(&self.name)?;
        match (self.image.trim().is_empty(), self.images.is_empty()) {
            (true, true) => {
                return Err(
                    "image is empty: name the image to run, e.g. \"drover/busybox:latest\", \
                     or list the images a job may name in images = [\"python:3.*\"]"
                        .into(),
                )
            }
            (false, false) => {
                return Err(
                    "both image and images are set: keep image (one image for every job) \
                     or images (the images a job may name)"
                        .into(),
                )
            }
            (true, false) if !self.command.is_empty() => {
                return Err(
                    "command is set with images: a job's arguments are its command \
                     (a run: line's words after the image); remove command"
                        .into(),
                )
            }
            _ => {}
        }
        if let Some(bad) = self
            .images
            .iter()
            .find(|p| p.is_empty() || p.chars().any(char::is_whitespace))
        {
            return Err(format!(
                "images: {bad:?} is not an image pattern: use a name with `*` where anything may stand, e.g. \"python:3.*\""
            ));
        }
        if let Some(cpus) = self.cpus {
            if !(cpus > 0.0 && cpus <= 1024.0) {
                return Err(format!(
                    "cpus = {cpus} is out of range: use a positive number of cores like 0.5"
                ));
            }
        }
        if self.memory.is_some_and(|m| m < 4 * 1024 * 1024) {
            return Err("memory is below Docker's minimum of 4m: use e.g. \"64m\"".into());
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err("timeout is zero: use e.g. \"10m\", or leave it out".into());
        }
        if self.network.trim().is_empty() {
            return Err(
                "network is empty: use \"none\", \"bridge\", \"host\" or a network's name".into(),
            );
        }
        for key in self.env.keys().chain(self.secrets.keys()) {
            if key.is_empty() || key.contains('=') || key.starts_with("DROVER_PARAM_") {
                return Err(format!(
                    "environment variable name {key:?} is not allowed (empty, contains '=', or uses the DROVER_PARAM_ prefix reserved for parameters)"
                ));
            }
        }
        if let Some(dup) = self.env.keys().find(|k| self.secrets.contains_key(*k)) {
            return Err(format!("{dup} is both in [env] and in [secrets]: keep one"));
        }
        drover_core::route::tag_set(&self.requires).map_err(|e| format!("requires: {e}"))?;
        Ok(())
    }
}
