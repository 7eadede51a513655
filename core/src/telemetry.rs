//! The process's one tracing subscriber.

use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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

/// Crates whose debug output is every HTTP request and answer: bollard's shows each
/// container's create request, its environment (secrets included) and all.
const CHATTY: [&str; 5] = ["bollard", "hyper", "hyper_util", "reqwest", "h2"];

/// Caps the [`CHATTY`] crates that `rust_log` does not name at `info`; a crate it names
/// (`bollard=debug`, `hyper_util::client=trace`) is left to it.
fn quieted(rust_log: &str) -> Targets {
    let targets: Vec<&str> = rust_log
        .split(',')
        .filter_map(|directive| directive.split(['=', '[']).next())
        .map(str::trim)
        .collect();
    let named = |krate: &str| {
        targets.iter().any(|t| {
            t.strip_prefix(krate)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
    };
    // a named crate gets a directive of its own too: `hyper` would match `hyper_util`
    CHATTY.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |targets, &krate| {
            let level = if named(krate) {
                LevelFilter::TRACE
            } else {
                LevelFilter::INFO
            };
            targets.with_target(krate, level)
        },
    )
}

/// Installs the global subscriber: `format` lines on stderr, filtered by
/// `RUST_LOG` (default `info`). The HTTP and Docker client crates stay at `info`
/// unless `RUST_LOG` names them: their debug output carries request bodies.
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
    init_tracing_at(format, LevelFilter::INFO)
}

/// [`init_tracing`] with `default` as the level when `RUST_LOG` is unset: a command
/// whose own output is the point (`drover local-run`) shows only warnings.
///
/// # Errors
/// As [`init_tracing`].
pub fn init_tracing_at(format: LogFormat, default: LevelFilter) -> Result<(), Error> {
    let filter = EnvFilter::builder()
        .with_default_directive(default.into())
        .from_env()
        .map_err(|source| Error::InvalidLogFilter { source })?;
    let rust_log = std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_default();
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(quieted(&rust_log));
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => subscriber
            .with(lines.with_ansi(std::io::stderr().is_terminal()))
            .try_init(),
        LogFormat::Json => subscriber.with(lines.json()).try_init(),
    };
    installed.map_err(|source| Error::TracingAlreadyInitialized {
        source: Box::new(source),
    })
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
    fn http_and_docker_clients_stay_quiet_unless_named() {
        use tracing_subscriber::filter::Targets;

        let level = |targets: &Targets, target: &str| {
            [LevelFilter::TRACE, LevelFilter::DEBUG, LevelFilter::INFO]
                .into_iter()
                .find(|l| targets.would_enable(target, &l.into_level().expect("a level")))
                .unwrap_or(LevelFilter::WARN)
        };
        let debug = quieted("debug");
        for krate in [
            "bollard::docker",
            "hyper::proto",
            "hyper_util::client",
            "reqwest::connect",
            "h2::codec",
        ] {
            assert_eq!(level(&debug, krate), LevelFilter::INFO, "{krate}");
        }
        assert_eq!(level(&debug, "drover_executor::runner"), LevelFilter::TRACE);
        let named = quieted("debug,bollard=debug, hyper_util::client[conn]=trace");
        assert_eq!(level(&named, "bollard::docker"), LevelFilter::TRACE);
        assert_eq!(level(&named, "hyper_util::client"), LevelFilter::TRACE);
        assert_eq!(level(&named, "hyper::proto"), LevelFilter::INFO);
        assert_eq!(
            level(&quieted("bollardx=debug"), "bollard"),
            LevelFilter::INFO
        );
        assert_eq!(level(&quieted(""), "reqwest"), LevelFilter::INFO);
    }

    #[test]
    fn a_second_init_is_an_error_not_a_panic() {
        // The first call may fail too if RUST_LOG is invalid where tests run;
        // the second must fail either way and must not panic.
        let _ = init_tracing(LogFormat::Json);
        assert!(init_tracing(LogFormat::Text).is_err());
    }
}
