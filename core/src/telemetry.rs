//! The process's one tracing subscriber.

use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

use crate::error::Error;

/// How log lines are written to stderr: `text` or `json` (any letter case when read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, coloured when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

impl FromStr for LogFormat {
    type Err = Error;

    /// Parses `text` or `json`, in any letter case.
    fn from_str(input: &str) -> Result<Self, Error> {
        match input.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(Error::UnknownLogFormat {
                input: input.to_owned(),
            }),
        }
    }
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Installs the global subscriber: `format` lines on stderr, filtered by
/// `RUST_LOG` (default `info`).
///
/// Call it once, at start-up, from the binary; libraries never do.
///
/// # Errors
///
/// - [`Error::InvalidLogFilter`] when `RUST_LOG` is set but not a valid filter.
/// - [`Error::TracingAlreadyInitialized`] when a subscriber is already
///   installed; nothing changes, so a caller that may run twice (a test
///   harness) can ignore it.
pub fn init_tracing(format: LogFormat) -> Result<(), Error> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env()
        .map_err(|source| Error::InvalidLogFilter { source })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|source| Error::TracingAlreadyInitialized { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_text_serde_and_parsing_agree() {
        for format in [LogFormat::Text, LogFormat::Json] {
            let json = serde_json::to_string(&format).unwrap();
            assert_eq!(json, format!("\"{format}\""));
            assert_eq!(serde_json::from_str::<LogFormat>(&json).unwrap(), format);
            let upper = format.to_string().to_uppercase();
            assert_eq!(upper.parse::<LogFormat>().unwrap(), format);
            let json = format!("\"{upper}\"");
            assert_eq!(serde_json::from_str::<LogFormat>(&json).unwrap(), format);
        }
        assert_eq!(LogFormat::default(), LogFormat::Text);
        let err = "xml".parse::<LogFormat>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown log format \"xml\": use `text` or `json`"
        );
    }

    #[test]
    fn a_second_init_is_an_error_not_a_panic() {
        // The first call may fail too if RUST_LOG is invalid where tests run;
        // the second must fail either way and must not panic.
        let _ = init_tracing(LogFormat::Json);
        assert!(init_tracing(LogFormat::Text).is_err());
    }
}
