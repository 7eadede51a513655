//! Secrets named in action files, taken from the executor's environment or files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where a secret's value comes from: exactly one of `env` or `file`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// An environment variable of the executor.
    #[serde(default)]
    pub env: Option<String>,
    /// A file readable by the executor (e.g. a mounted Kubernetes secret).
    #[serde(default)]
    pub file: Option<PathBuf>,
}

/// A resolved secret: the container variable and its value. Its `Debug` never shows the
/// value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// The container's environment variable.
    pub variable: String,
    value: String,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({}=***)", self.variable)
    }
}

impl Secret {
    /// The value, for the container's environment only.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl SecretSource {
    /// Describes the source for error messages (never the value).
    pub(crate) fn describe(&self) -> String {
        match (&self.env, &self.file) {
            (Some(var), None) => format!("environment variable {var}"),
            (None, Some(path)) => format!("file {}", path.display()),
            _ => "an invalid source".to_owned(),
        }
    }

    /// Reads the value now (executors resolve secrets once, at start-up).
    pub(crate) fn resolve(
        &self,
        env: &HashMap<String, String>,
        base: &Path,
    ) -> Result<String, String> {
        match (&self.env, &self.file) {
            (Some(var), None) => env
                .get(var)
                .cloned()
                .ok_or_else(|| format!("set {var} in the executor's environment")),
            (None, Some(path)) => {
                let path = if path.is_relative() {
                    base.join(path)
                } else {
                    path.clone()
                };
                std::fs::read_to_string(&path)
                    .map(|v| v.trim_end_matches(['\n', '\r']).to_owned())
                    .map_err(|e| format!("{e}"))
            }
            _ => Err("give exactly one of env = \"VAR\" or file = \"/path\"".to_owned()),
        }
    }

    pub(crate) fn into_secret(variable: &str, value: String) -> Secret {
        Secret {
            variable: variable.to_owned(),
            value,
        }
    }
}

/// Replaces every secret value in `text` with `***`, for logs and status messages.
pub fn redact(text: &str, secrets: &[Secret]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        // Very short values would redact ordinary text; they are still never logged by us.
        if secret.value.len() >= 4 {
            out = out.replace(&secret.value, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_redact_hide_values() {
        let s = SecretSource::into_secret("API_KEY", "hunter22".into());
        assert_eq!(format!("{s:?}"), "Secret(API_KEY=***)");
        assert_eq!(
            redact("token hunter22 rejected", &[s]),
            "token *** rejected"
        );
    }

    #[test]
    fn sources_resolve_or_say_what_to_set() {
        let env = HashMap::from([("K".to_owned(), "v".to_owned())]);
        let from_env = SecretSource {
            env: Some("K".into()),
            file: None,
        };
        assert_eq!(from_env.resolve(&env, Path::new("/")), Ok("v".into()));
        let missing = SecretSource {
            env: Some("NOPE".into()),
            file: None,
        };
        assert!(missing
            .resolve(&env, Path::new("/"))
            .unwrap_err()
            .contains("set NOPE"));
        let both = SecretSource {
            env: Some("K".into()),
            file: Some("/x".into()),
        };
        assert!(both
            .resolve(&env, Path::new("/"))
            .unwrap_err()
            .contains("exactly one"));
    }
}
