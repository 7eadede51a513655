//! A job's coarse state.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a job is in its life, coarsely; the [`StatusCode`](crate::StatusCode) says
/// precisely.
///
/// Written `QUEUED`, `RUNNING`, `SUCCESS`, `FAILED`, `CANCELED` in text and serde.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// Waiting to run: not yet taken by an executor.
    Queued,
    /// An executor has claimed it and is working on it.
    Running,
    /// Finished and did what it was asked.
    Success,
    /// Finished without doing what it was asked.
    Failed,
    /// Stopped on request before it finished.
    Canceled,
}

impl State {
    /// Every state, in life order.
    pub const ALL: &'static [Self] = &[
        Self::Queued,
        Self::Running,
        Self::Success,
        Self::Failed,
        Self::Canceled,
    ];

    /// The upper-case name, as in serde: `"QUEUED"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Running => "RUNNING",
            Self::Success => "SUCCESS",
            Self::Failed => "FAILED",
            Self::Canceled => "CANCELED",
        }
    }

    /// Whether the job is finished for good (`SUCCESS`, `FAILED`, `CANCELED`).
    ///
    /// Nothing follows a terminal state: running the job again means a retry,
    /// which creates a new job.
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Success | Self::Failed | Self::Canceled)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no job state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job state {input:?}: use one of QUEUED, RUNNING, SUCCESS, FAILED, CANCELED")]
pub struct UnknownState {
    /// The rejected input.
    pub input: String,
}

impl FromStr for State {
    type Err = UnknownState;

    /// Parses a state name in any letter case (`"queued"`, `"QUEUED"`).
    fn from_str(input: &str) -> Result<Self, UnknownState> {
        let wanted = input.trim();
        Self::ALL
            .iter()
            .copied()
            .find(|state| state.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownState {
                input: input.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_serde_and_parsing_agree() {
        for &state in State::ALL {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{state}\""));
            assert_eq!(serde_json::from_str::<State>(&json).unwrap(), state);
            assert_eq!(state.as_str().parse::<State>().unwrap(), state);
            let lower = state.as_str().to_lowercase();
            assert_eq!(lower.parse::<State>().unwrap(), state);
        }
    }

    #[test]
    fn unknown_names_list_the_choices() {
        let err = "DONE".parse::<State>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown job state \"DONE\": use one of QUEUED, RUNNING, SUCCESS, FAILED, CANCELED"
        );
    }

    #[test]
    fn only_finished_states_are_terminal() {
        let terminal: Vec<_> = State::ALL.iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(
            terminal,
            [&State::Success, &State::Failed, &State::Canceled]
        );
    }

    #[test]
    fn every_state_has_a_status_code() {
        for &state in State::ALL {
            assert!(state.codes().next().is_some(), "{state} has no code");
        }
    }
}
