//! Actions compiled into the executor.

use std::time::Duration;

/// A built-in action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// Does nothing and succeeds (for benchmarks and smoke tests).
    Noop,
    /// Sleeps `seconds` (a number, 0–86400; default 1) and succeeds.
    Sleep,
    /// Deletes finished jobs older than `older_than` (default `7d`) and their logs
    /// through the API, `batch` (1–10000, default 1000) at a time.
    CleanupJobs,
}

/// The parameters of `cleanup_jobs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupParams {
    /// Jobs that finished longer ago than this are deleted.
    pub older_than: Duration,
    /// Jobs deleted per API call (one transaction each).
    pub batch: u32,
}

impl Default for CleanupParams {
    fn default() -> Self {
        CleanupParams {
            older_than: Duration::from_secs(7 * 86_400),
            batch: 1000,
        }
    }
}

impl Builtin {
    /// Every built-in action.
    pub const ALL: &'static [Builtin] = &[Builtin::Noop, Builtin::Sleep, Builtin::CleanupJobs];

    /// The name jobs use.
    pub const fn name(self) -> &'static str {
        match self {
            Builtin::Noop => "noop",
            Builtin::Sleep => "sleep",
            Builtin::CleanupJobs => "cleanup_jobs",
        }
    }

    /// The built-in action called `name`.
    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.iter().copied().find(|b| b.name() == name)
    }

    /// Whether the action maintains drover itself rather than doing a user's work
    /// (`cleanup_jobs` deletes history through the API with the executor's token): the
    /// API lets only admins and distributors submit it.
    pub const fn is_maintenance(self) -> bool {
        matches!(self, Builtin::CleanupJobs)
    }

    /// The parameters of `cleanup_jobs`: `older_than` a duration such as `"7d"` or
    /// `"12h"` (at least `1s`; default `7d`), `batch` 1–10000 (default 1000); nothing else.
    ///
    /// # Errors
    /// A message naming the bad parameter and what would be valid.
    pub fn cleanup_params(
        params: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<CleanupParams, String> {
        let mut out = CleanupParams::default();
        for (key, value) in params {
            match key.as_str() {
                "older_than" => {
                    let text = value.as_str().ok_or_else(|| {
                        format!("cleanup_jobs: older_than = {value} is not a duration string such as \"7d\" or \"12h\"")
                    })?;
                    let duration = humantime::parse_duration(text).map_err(|e| {
                        format!("cleanup_jobs: older_than = {text:?} is not a duration ({e}): write e.g. \"7d\" or \"12h\"")
                    })?;
                    if duration < Duration::from_secs(1) {
                        return Err(format!(
                            "cleanup_jobs: older_than = {text:?} is too short: give at least 1s"
                        ));
                    }
                    out.older_than = duration;
                }
                "batch" => {
                    out.batch = value
                        .as_u64()
                        .filter(|b| (1..=10_000).contains(b))
                        .and_then(|b| u32::try_from(b).ok())
                        .ok_or_else(|| {
                            format!("cleanup_jobs: batch = {value} is not a whole number between 1 and 10000")
                        })?;
                }
                other => {
                    return Err(format!(
                        "cleanup_jobs: unknown parameter {other:?}: it takes older_than (e.g. \"7d\") and batch (1 to 10000)"
                    ))
                }
            }
        }
        Ok(out)
    }

    /// How long `sleep` sleeps for `params`.
    ///
    /// # Errors
    /// A message naming the bad `seconds` value.
    pub fn sleep_duration(
        params: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Duration, String> {
        match params.get("seconds") {
            None => Ok(Duration::from_secs(1)),
            Some(v) => match v.as_f64() {
                Some(s) if (0.0..=86_400.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
                _ => Err(format!(
                    "sleep: seconds = {v} is not a number between 0 and 86400"
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_seconds() {
        let p = |v: serde_json::Value| v.as_object().unwrap().clone();
        assert_eq!(
            Builtin::sleep_duration(&p(serde_json::json!({}))),
            Ok(Duration::from_secs(1))
        );
        assert_eq!(
            Builtin::sleep_duration(&p(serde_json::json!({"seconds": 0.5}))),
            Ok(Duration::from_millis(500))
        );
        assert!(Builtin::sleep_duration(&p(serde_json::json!({"seconds": "x"}))).is_err());
        assert!(Builtin::sleep_duration(&p(serde_json::json!({"seconds": -1}))).is_err());
    }

    #[test]
    fn cleanup_params_default_and_validate() {
        let p = |v: serde_json::Value| v.as_object().unwrap().clone();
        assert_eq!(
            Builtin::cleanup_params(&p(serde_json::json!({}))),
            Ok(CleanupParams::default())
        );
        assert_eq!(
            Builtin::cleanup_params(&p(serde_json::json!({"older_than": "12h", "batch": 50}))),
            Ok(CleanupParams {
                older_than: Duration::from_secs(12 * 3600),
                batch: 50
            })
        );
        for (bad, needle) in [
            (serde_json::json!({"older_than": 7}), "older_than"),
            (serde_json::json!({"older_than": "soon"}), "older_than"),
            (serde_json::json!({"older_than": "0s"}), "older_than"),
            (serde_json::json!({"batch": 0}), "batch"),
            (serde_json::json!({"batch": "many"}), "batch"),
            (serde_json::json!({"retention": "7d"}), "retention"),
        ] {
            let err = Builtin::cleanup_params(&p(bad)).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
        assert_eq!(
            Builtin::from_name("cleanup_jobs"),
            Some(Builtin::CleanupJobs)
        );
        assert_eq!(Builtin::from_name("nope"), None);
        let maintenance: Vec<_> = Builtin::ALL.iter().filter(|b| b.is_maintenance()).collect();
        assert_eq!(maintenance, [&Builtin::CleanupJobs]);
    }
}
