//! Exit codes, and the one place that maps a failure to its code and message.

use std::fmt;
use std::process::ExitCode;

use drover_client::ClientError;
use drover_model::Job;

use crate::output;

/// The job did not succeed (`submit --wait`), or a role stopped with an error.
pub(crate) const FAILED: u8 = 1;
/// Bad usage or input (clap uses 2 for its own errors too).
pub(crate) const USAGE: u8 = 2;
/// The API cannot be reached.
pub(crate) const UNREACHABLE: u8 = 3;
/// The API refused the request (4xx), or the job id is ambiguous.
pub(crate) const REFUSED: u8 = 4;
/// The API failed (5xx) or answered something this client does not understand.
pub(crate) const API_FAILED: u8 = 5;
/// Interrupted (Ctrl-C) while waiting for a job, which goes on; 128 + SIGINT.
pub(crate) const INTERRUPTED: u8 = 130;

/// Input the user must fix; exits [`USAGE`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub(crate) String);

/// A server this command needs does not answer (no Docker engine); exits
/// [`UNREACHABLE`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Unreachable(pub(crate) String);

/// A partial job id that matches several jobs; exits [`REFUSED`].
#[derive(Debug)]
pub(crate) struct AmbiguousId {
    /// What the user typed.
    pub(crate) fragment: String,
    /// The jobs it matches, newest first.
    pub(crate) candidates: Vec<Job>,
}

impl fmt::Display for AmbiguousId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "job id {:?} is ambiguous: it matches {} jobs; give more of the id",
            self.fragment,
            self.candidates.len()
        )?;
        f.write_str(output::candidates_table(&self.candidates).trim_end())
    }
}

impl std::error::Error for AmbiguousId {}

/// The exit code for `error`: the first error in its chain that says.
pub(crate) fn code_of(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if cause.is::<UsageError>() || cause.is::<drover_core::Error>() {
            return USAGE;
        }
        if cause.is::<AmbiguousId>() {
            return REFUSED;
        }
        if cause.is::<Unreachable>() {
            return UNREACHABLE;
        }
        if let Some(client) = cause.downcast_ref::<ClientError>() {
            return match client {
                ClientError::InvalidUrl { .. } => USAGE,
                ClientError::Connect { .. }
                | ClientError::Timeout { .. }
                | ClientError::Transport { .. } => UNREACHABLE,
                ClientError::Api { status, .. } if status.is_client_error() => REFUSED,
                ClientError::Api { .. } | ClientError::Decode { .. } => API_FAILED,
            };
        }
    }
    FAILED
}

/// The message for `error`: its chain joined with `: `, down to a client error, whose
/// message already says what happened and what to do (the transport errors below it
/// only repeat it less clearly). A cause whose text the message already holds (an error
/// that shows its source and also chains it) is said once.
pub(crate) fn message_of(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
        if cause.is::<ClientError>() {
            break;
        }
    }
    message
}

/// Whether `error` is stdout's reader going away (`drover ls | head`): a quiet end.
pub(crate) fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints `error` on stderr and gives its exit code.
pub(crate) fn report(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", message_of(error));
    ExitCode::from(code_of(error))
}

#[cfg(test)]
mod tests {
    use anyhow::Context;
    use drover_client::StatusCode;
    use drover_model::ApiError;

    use super::*;

    fn api_error(status: StatusCode, message: &str) -> ClientError {
        ClientError::Api {
            status,
            body: ApiError {
                error: "test".into(),
                message: message.into(),
                state: None,
                status_code: None,
            },
        }
    }

    #[test]
    fn codes_follow_the_first_cause_that_says() {
        let usage = anyhow::Error::new(UsageError("bad".into())).context("while parsing");
        assert_eq!(code_of(&usage), USAGE);
        assert_eq!(message_of(&usage), "while parsing: bad");

        let ambiguous = anyhow::Error::new(AmbiguousId {
            fragment: "ab".into(),
            candidates: Vec::new(),
        });
        assert_eq!(code_of(&ambiguous), REFUSED);

        let refused = Err::<(), _>(api_error(StatusCode::NOT_FOUND, "no job matches \"ab\""))
            .context("cannot show ab")
            .unwrap_err();
        assert_eq!(code_of(&refused), REFUSED);
        assert_eq!(
            message_of(&refused),
            "cannot show ab: no job matches \"ab\""
        );
        assert_eq!(code_of(&anyhow::anyhow!("role failed")), FAILED);
        let failed = api_error(StatusCode::INTERNAL_SERVER_ERROR, "oops");
        assert_eq!(code_of(&anyhow::Error::new(failed)), API_FAILED);
        let bad_url = drover_client::ApiClient::new("nope", None).unwrap_err();
        assert_eq!(code_of(&anyhow::Error::new(bad_url)), USAGE);
    }

    #[test]
    fn a_cause_the_message_already_shows_is_said_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("x.toml:3: memory size \"lots\" is not understood")]
        struct Inner;
        #[derive(Debug, thiserror::Error)]
        #[error("cannot load the actions: {0}")]
        struct Outer(#[source] Inner);
        let error = anyhow::Error::new(Outer(Inner)).context("the executor could not start");
        assert_eq!(
            message_of(&error),
            "the executor could not start: cannot load the actions: x.toml:3: memory size \"lots\" is not understood"
        );
    }
}
