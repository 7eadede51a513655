//! Actions compiled into the executor.

use std::time::Duration;

/// A built-in action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// Does nothing and succeeds (for benchmarks and smoke tests).
    Noop,
    /// Sleeps `seconds` (a number, 0–86400; default 1) and succeeds.
    Sleep,
}

impl Builtin {
    /// Every built-in action.
    pub const ALL: &'static [Builtin] = &[Builtin::Noop, Builtin::Sleep];

    /// The name jobs use.
    pub const fn name(self) -> &'static str {
        match self {
            Builtin::Noop => "noop",
            Builtin::Sleep => "sleep",
        }
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
}
