//! Layered configuration: serde defaults, then a file, then `DROVER_` variables.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;

use ::config::{Config, ConfigError, Environment, File, FileFormat};
use serde::de::DeserializeOwned;

use crate::error::Error;

pub mod comma_separated;

/// Prefix of the environment variables that override configuration.
pub const ENV_PREFIX: &str = "DROVER_";

/// Separator between nesting levels in a variable name:
/// `DROVER_ZOOKEEPER__HOSTS` sets `zookeeper.hosts`.
pub const ENV_SEPARATOR: &str = "__";

/// How `config` names values that came from the environment.
const ENV_ORIGIN: &str = "the environment";

/// Loads a `T` from serde defaults, then `file`, then the `DROVER_` entries of `env`.
///
/// Each layer overrides the one before, key by key. The file's format follows
/// its extension: `.toml`, `.yaml`/`.yml` or `.json`. In `env`, a variable
/// `DROVER_A__B` sets key `a.b` (names are case-insensitive; empty values count
/// as unset). Environment values are strings, converted to the field's type;
/// lists can be written comma-separated with [`comma_separated`], durations
/// as `"10s"` with [`duration`](crate::duration).
///
/// Every `DROVER_` variable is configuration: with `#[serde(deny_unknown_fields)]`
/// (recommended) a misspelt variable is rejected like a misspelt file key, so
/// do not use the prefix for anything else.
///
/// # Errors
///
/// - [`Error::UnsupportedConfigFormat`], [`Error::ConfigFileRead`],
///   [`Error::ConfigFileParse`]: the file cannot be used; each names it.
/// - [`Error::InvalidConfig`]: a key is unknown or its value does not fit;
///   names the dotted key and where the value came from (file or variable).
/// - [`Error::MissingConfig`]: a required key is set nowhere.
pub fn load_config<T: DeserializeOwned>(
    file: Option<&Path>,
    env: &HashMap<String, String>,
) -> Result<T, Error> {
    let mut builder = Config::builder();
    if let Some(path) = file {
        let (format, _) = format_of(path)?;
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigFileRead {
            path: path.to_owned(),
            source,
        })?;
        builder = builder.add_source(File::from_str(&text, format));
    }
    let environment = Environment::with_prefix(ENV_PREFIX.trim_end_matches('_'))
        .prefix_separator("_")
        .separator(ENV_SEPARATOR)
        .ignore_empty(true)
        .source(Some(env.clone()));
    let layered = builder
        .add_source(environment)
        .build()
        .map_err(|err| build_error(file, err))?;
    serde_path_to_error::deserialize(layered).map_err(|err| value_error(file, env, err))
}

/// [`load_config`] with the `DROVER_` variables of this process's environment.
///
/// # Errors
///
/// As [`load_config`], plus [`Error::InvalidConfig`] when a `DROVER_`
/// variable's value is not valid UTF-8.
pub fn load_config_from_process_env<T: DeserializeOwned>(file: Option<&Path>) -> Result<T, Error> {
    let mut env = HashMap::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|name| strip_prefix(name).is_some()) else {
            continue;
        };
        let value = value.into_string().map_err(|_| Error::InvalidConfig {
            key: key_of(name),
            origin: format!("environment variable {name}"),
            detail: "the value is not valid UTF-8: set it to UTF-8 text".to_owned(),
        })?;
        env.insert(name.to_owned(), value);
    }
    load_config(file, &env)
}

/// The environment variable that sets a dotted `key`:
/// `zookeeper.hosts` gives `DROVER_ZOOKEEPER__HOSTS`.
pub fn env_var_name(key: &str) -> String {
    let key = key.split('[').next().unwrap_or_default();
    format!(
        "{ENV_PREFIX}{}",
        key.replace('.', ENV_SEPARATOR).to_ascii_uppercase()
    )
}

/// The file format named by the extension, and its name for messages.
fn format_of(path: &Path) -> Result<(FileFormat, &'static str), Error> {
    let extension = path
        .extension()
        .and_then(OsStr::to_str)
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("toml") => Ok((FileFormat::Toml, "TOML")),
        Some("yaml" | "yml") => Ok((FileFormat::Yaml, "YAML")),
        Some("json") => Ok((FileFormat::Json, "JSON")),
        _ => Err(Error::UnsupportedConfigFormat {
            path: path.to_owned(),
        }),
    }
}

/// Maps a failure to merge the sources: with a file, that is the file's syntax.
fn build_error(file: Option<&Path>, err: ConfigError) -> Error {
    let detail = match err {
        ConfigError::FileParse { cause, .. } => cause.to_string(),
        other => innermost(other).to_string(),
    }
    .trim_end()
    .to_owned();
    match file {
        Some(path) => Error::ConfigFileParse {
            path: path.to_owned(),
            format: format_of(path).map_or("", |(_, name)| name),
            detail,
        },
        None => Error::InvalidConfig {
            key: ".".to_owned(),
            origin: ENV_ORIGIN.to_owned(),
            detail,
        },
    }
}

/// Maps a failure to deserialize into an error naming the key and its source.
fn value_error(
    file: Option<&Path>,
    env: &HashMap<String, String>,
    err: serde_path_to_error::Error<ConfigError>,
) -> Error {
    let key = err.path().to_string();
    let cause = innermost(err.into_inner());
    if let ConfigError::NotFound(full_key) = cause {
        // `config` prefixes the missing field with its parents' keys itself.
        return Error::MissingConfig {
            env_var: env_var_name(&full_key),
            key: full_key,
        };
    }
    let origin = match (env_var_for(&key, env), file) {
        (Some(name), _) => format!("environment variable {name}"),
        (None, Some(path)) => path.display().to_string(),
        (None, None) => ENV_ORIGIN.to_owned(),
    };
    let mut detail = cause.to_string();
    if detail.starts_with("unknown field") {
        detail.push_str("; remove it or fix its spelling");
    }
    Error::InvalidConfig {
        key,
        origin,
        detail,
    }
}

/// The error without the `for key .. in ..` wrappers: we say that better.
fn innermost(err: ConfigError) -> ConfigError {
    match err {
        ConfigError::At { error, .. } => innermost(*error),
        ConfigError::Type {
            origin: _,
            unexpected,
            expected,
            key: _,
        } => ConfigError::Type {
            origin: None,
            unexpected,
            expected,
            key: None,
        },
        other => other,
    }
}

/// The variable in `env` that set `key` or a key below it, as the user spelt it.
///
/// The environment overrides the file, so such a variable is the culprit.
fn env_var_for(key: &str, env: &HashMap<String, String>) -> Option<String> {
    let key = key.split('[').next().unwrap_or_default();
    let below = format!("{key}.");
    env.iter()
        .filter(|(name, value)| !value.is_empty() && strip_prefix(name).is_some())
        .map(|(name, _)| name)
        .find(|name| {
            let set = key_of(name);
            set == key || set.starts_with(&below)
        })
        .cloned()
}

/// The rest of `name` after a case-insensitive `DROVER_`.
fn strip_prefix(name: &str) -> Option<&str> {
    let head = name.get(..ENV_PREFIX.len())?;
    head.eq_ignore_ascii_case(ENV_PREFIX)
        .then(|| &name[ENV_PREFIX.len()..])
}

/// The dotted key a `DROVER_` variable sets, as `config` derives it.
fn key_of(name: &str) -> String {
    strip_prefix(name)
        .unwrap_or(name)
        .to_lowercase()
        .replace(ENV_SEPARATOR, ".")
}

#[cfg(test)]
mod tests;
