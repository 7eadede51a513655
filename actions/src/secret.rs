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

/// The shortest secret value, and the shortest non-blank line of a multi-line one: what
/// is shorter cannot be redacted from logs without hiding ordinary text.
pub const MIN_SECRET_BYTES: usize = 4;

/// A resolved secret: the container variable and its value (at least
/// [`MIN_SECRET_BYTES`], and so is every non-blank line of it). Its `Debug` never shows
/// the value.
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

    /// A value to hide that no container receives: one of the executor's own (its API
    /// token, a variable it was told is secret), named `label` in messages.
    ///
    /// # Errors
    /// Why the value is too short to redact (never showing it).
    pub fn hidden(label: &str, value: String) -> Result<Secret, String> {
        SecretSource::check_value(&value).map_err(|why| format!("{label}: {why}"))?;
        Ok(SecretSource::into_secret(label, value))
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

    /// Why `value` cannot be a secret: too short to redact (under [`MIN_SECRET_BYTES`]), or
    /// with a line that is. Never names the value.
    pub(crate) fn check_value(value: &str) -> Result<(), String> {
        let fix = format!(
            "redaction needs at least {MIN_SECRET_BYTES} bytes (a shorter value would hide ordinary text in the logs, so it would not be hidden at all): use a longer value, or move it to [env] if it is not secret"
        );
        if value.trim().is_empty() {
            return Err(format!("its value is empty; {fix}"));
        }
        if value.len() < MIN_SECRET_BYTES {
            return Err(format!("its value is {} bytes; {fix}", value.len()));
        }
        let lines: Vec<&str> = value.lines().map(str::trim).collect();
        if lines.len() > 1 {
            if let Some((n, line)) = lines
                .iter()
                .enumerate()
                .find(|(_, l)| !l.is_empty() && l.len() < MIN_SECRET_BYTES)
            {
                return Err(format!(
                    "line {} of its value is {} bytes; each line of a multi-line secret is hidden on its own, and {fix} per line (or blank lines)",
                    n + 1,
                    line.len()
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn into_secret(variable: &str, value: String) -> Secret {
        Secret {
            variable: variable.to_owned(),
            value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_values() {
        let s = SecretSource::into_secret("API_KEY", "hunter22".into());
        assert_eq!(format!("{s:?}"), "Secret(API_KEY=***)");
    }

    #[test]
    fn values_too_short_to_redact_are_refused_without_being_shown() {
        assert_eq!(SecretSource::check_value("abcd"), Ok(()));
        assert_eq!(
            SecretSource::check_value("line one\n\n  line two\r\n"),
            Ok(())
        );
        for (value, says) in [
            ("", "its value is empty"),
            ("   ", "its value is empty"),
            ("abc", "its value is 3 bytes"),
            ("line one\nab\nline three", "line 2 of its value is 2 bytes"),
        ] {
            let reason = SecretSource::check_value(value).unwrap_err();
            assert!(
                reason.contains(says) && reason.contains("at least 4 bytes"),
                "{value:?}: {reason}"
            );
            if !value.trim().is_empty() {
                assert!(!reason.contains(value.trim()), "{reason}");
            }
        }
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
