//! A job's precise status code.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::state::State;

/// Precisely where a job is, in the spirit of OpenSAFELY's job-runner.
///
/// Each code belongs to exactly one coarse [`State`] ([`StatusCode::state`]).
/// Which code may follow which is decided by
/// [`check_transition`](crate::check_transition) alone.
/// Written in `SCREAMING_SNAKE_CASE` in text and serde: `WAITING_ON_DEPENDENCIES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatusCode {
    /// `QUEUED`: the record exists; its queue entry may not be written yet
    /// (the reconciler enqueues it if that failed).
    Created,
    /// `QUEUED`: held back until the jobs it `needs` have succeeded.
    WaitingOnDependencies,
    /// `QUEUED`: its id is on the ZooKeeper queue, waiting for an executor.
    Enqueued,
    /// `QUEUED`: on the queue, but no registered executor offers its action with every
    /// tag it requires. Worked out when the job is read, from the live membership (never
    /// stored), so it is never stale: the job runs as soon as a capable executor registers.
    WaitingOnWorkers,
    /// `QUEUED`: on the queue, but its action (or the whole cluster) is paused by an
    /// operator (`drover pause`). Worked out when the job is read, from the pauses in
    /// ZooKeeper (never stored): the job runs as soon as the pause is lifted.
    WaitingPaused,
    /// `RUNNING`: claimed; the executor is preparing (pulling the image,
    /// writing inputs).
    Preparing,
    /// `RUNNING`: the action is executing.
    Executing,
    /// `RUNNING`: the action has exited; outputs are being checked and logs shipped.
    Finalizing,
    /// `SUCCESS`: the action succeeded.
    Succeeded,
    /// `FAILED`: the action exited with a non-zero code.
    NonzeroExit,
    /// `FAILED`: the action ran past its timeout and was stopped.
    TimedOut,
    /// `FAILED`: the action did not produce the outputs it declared.
    UnmatchedPatterns,
    /// `FAILED`: a job it `needs` failed or was canceled.
    DependencyFailed,
    /// `FAILED`: no executor knows the action.
    UnknownAction,
    /// `FAILED`: drover itself went wrong (the message is redacted).
    InternalError,
    /// `FAILED`: returned to the queue (drain, lost executor) too many times.
    AttemptsExhausted,
    /// `CANCELED`: a user canceled it.
    CancelledByUser,
    /// `CANCELED`: an operator killed it.
    KilledByAdmin,
}

impl StatusCode {
    /// Every status code, grouped by state in life order.
    pub const ALL: &'static [Self] = &[
        Self::Created,
        Self::WaitingOnDependencies,
        Self::Enqueued,
        Self::WaitingOnWorkers,
        Self::WaitingPaused,
        Self::Preparing,
        Self::Executing,
        Self::Finalizing,
        Self::Succeeded,
        Self::NonzeroExit,
        Self::TimedOut,
        Self::UnmatchedPatterns,
        Self::DependencyFailed,
        Self::UnknownAction,
        Self::InternalError,
        Self::AttemptsExhausted,
        Self::CancelledByUser,
        Self::KilledByAdmin,
    ];

    /// The coarse state this code belongs to.
    pub const fn state(self) -> State {
        match self {
            Self::Created
            | Self::WaitingOnDependencies
            | Self::Enqueued
            | Self::WaitingOnWorkers
            | Self::WaitingPaused => State::Queued,
            Self::Preparing | Self::Executing | Self::Finalizing => State::Running,
            Self::Succeeded => State::Success,
            Self::NonzeroExit
            | Self::TimedOut
            | Self::UnmatchedPatterns
            | Self::DependencyFailed
            | Self::UnknownAction
            | Self::InternalError
            | Self::AttemptsExhausted => State::Failed,
            Self::CancelledByUser | Self::KilledByAdmin => State::Canceled,
        }
    }

    /// Whether the code's state is terminal: nothing may follow it.
    pub const fn is_terminal(self) -> bool {
        self.state().is_terminal()
    }

    /// The upper-case name, as in serde: `"WAITING_ON_DEPENDENCIES"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Created => "CREATED",
            Self::WaitingOnDependencies => "WAITING_ON_DEPENDENCIES",
            Self::Enqueued => "ENQUEUED",
            Self::WaitingOnWorkers => "WAITING_ON_WORKERS",
            Self::WaitingPaused => "WAITING_PAUSED",
            Self::Preparing => "PREPARING",
            Self::Executing => "EXECUTING",
            Self::Finalizing => "FINALIZING",
            Self::Succeeded => "SUCCEEDED",
            Self::NonzeroExit => "NONZERO_EXIT",
            Self::TimedOut => "TIMED_OUT",
            Self::UnmatchedPatterns => "UNMATCHED_PATTERNS",
            Self::DependencyFailed => "DEPENDENCY_FAILED",
            Self::UnknownAction => "UNKNOWN_ACTION",
            Self::InternalError => "INTERNAL_ERROR",
            Self::AttemptsExhausted => "ATTEMPTS_EXHAUSTED",
            Self::CancelledByUser => "CANCELLED_BY_USER",
            Self::KilledByAdmin => "KILLED_BY_ADMIN",
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl State {
    /// The status codes that belong to this state.
    pub fn codes(self) -> impl Iterator<Item = StatusCode> {
        StatusCode::ALL
            .iter()
            .copied()
            .filter(move |code| code.state() == self)
    }
}

/// A name that is no status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown status code {input:?}: use one of {}",
    code_list(StatusCode::ALL)
)]
pub struct UnknownStatusCode {
    /// The rejected input.
    pub input: String,
}

impl FromStr for StatusCode {
    type Err = UnknownStatusCode;

    /// Parses a code name in any letter case (`"timed_out"`, `"TIMED_OUT"`).
    fn from_str(input: &str) -> Result<Self, UnknownStatusCode> {
        let wanted = input.trim();
        Self::ALL
            .iter()
            .copied()
            .find(|code| code.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownStatusCode {
                input: input.to_owned(),
            })
    }
}

/// `"A, B, C"`, for messages.
pub(crate) fn code_list(codes: &[StatusCode]) -> String {
    let names: Vec<&str> = codes.iter().map(|code| code.as_str()).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_code_once() {
        for (i, a) in StatusCode::ALL.iter().enumerate() {
            for b in &StatusCode::ALL[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Adding a variant without listing it here breaks this match.
        let listed = |code: StatusCode| match code {
            StatusCode::Created
            | StatusCode::WaitingOnDependencies
            | StatusCode::Enqueued
            | StatusCode::WaitingOnWorkers
            | StatusCode::WaitingPaused
            | StatusCode::Preparing
            | StatusCode::Executing
            | StatusCode::Finalizing
            | StatusCode::Succeeded
            | StatusCode::NonzeroExit
            | StatusCode::TimedOut
            | StatusCode::UnmatchedPatterns
            | StatusCode::DependencyFailed
            | StatusCode::UnknownAction
            | StatusCode::InternalError
            | StatusCode::AttemptsExhausted
            | StatusCode::CancelledByUser
            | StatusCode::KilledByAdmin => StatusCode::ALL.contains(&code),
        };
        assert!(StatusCode::ALL.iter().all(|&code| listed(code)));
        assert_eq!(StatusCode::ALL.len(), 18);
    }

    #[test]
    fn text_serde_and_parsing_agree() {
        for &code in StatusCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{code}\""));
            assert_eq!(serde_json::from_str::<StatusCode>(&json).unwrap(), code);
            let lower = code.as_str().to_lowercase();
            assert_eq!(lower.parse::<StatusCode>().unwrap(), code);
        }
    }

    #[test]
    fn codes_map_to_the_documented_states() {
        use State::*;
        let expected = [
            ("CREATED", Queued),
            ("WAITING_ON_DEPENDENCIES", Queued),
            ("ENQUEUED", Queued),
            ("WAITING_ON_WORKERS", Queued),
            ("WAITING_PAUSED", Queued),
            ("PREPARING", Running),
            ("EXECUTING", Running),
            ("FINALIZING", Running),
            ("SUCCEEDED", Success),
            ("NONZERO_EXIT", Failed),
            ("TIMED_OUT", Failed),
            ("UNMATCHED_PATTERNS", Failed),
            ("DEPENDENCY_FAILED", Failed),
            ("UNKNOWN_ACTION", Failed),
            ("INTERNAL_ERROR", Failed),
            ("ATTEMPTS_EXHAUSTED", Failed),
            ("CANCELLED_BY_USER", Canceled),
            ("KILLED_BY_ADMIN", Canceled),
        ];
        assert_eq!(expected.len(), StatusCode::ALL.len());
        for (name, state) in expected {
            let code: StatusCode = name.parse().unwrap();
            assert_eq!(code.state(), state, "{code}");
            assert_eq!(code.is_terminal(), state.is_terminal(), "{code}");
        }
    }

    #[test]
    fn unknown_names_list_the_choices() {
        let message = "RUNNING".parse::<StatusCode>().unwrap_err().to_string();
        assert!(message.starts_with("unknown status code \"RUNNING\": use one of CREATED, "));
        assert!(message.ends_with("KILLED_BY_ADMIN"), "{message}");
    }
}
