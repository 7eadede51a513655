//! The subcommands: the `api` role, and the client commands that talk to the API.
//!
//! Each returns the process's exit code or an error that [`crate::exit`] maps to one.

mod api;
mod control;
mod distributions;
mod distributor;
mod executor;
mod executors;
mod jobs;
mod logs;
mod signals;
mod submit;
mod wait;

use std::process::ExitCode;
use std::time::Duration;

use drover_client::{ApiClient, Resolved};
use drover_model::Job;

use crate::args::{ClientArgs, Command};
use crate::exit::{AmbiguousId, UsageError};

/// Runs `command`; `log_format` is the `--log-format` flag.
pub(crate) async fn run(
    command: Command,
    log_format: Option<drover_core::LogFormat>,
) -> anyhow::Result<ExitCode> {
    match command {
        Command::Api(args) => api::run(args, log_format).await,
        Command::Executor(args) => executor::run(args, log_format).await,
        Command::Distributor(args) => distributor::run(args, log_format).await,
        Command::Submit(args) => submit::run(args).await,
        Command::Ls(args) => jobs::list(args).await,
        Command::Show(args) => jobs::show(args).await,
        Command::Logs(args) => logs::run(args).await,
        Command::Cancel(args) => control::run(control::Verb::Cancel, args).await,
        Command::Retry(args) => control::run(control::Verb::Retry, args).await,
        Command::Kill(args) => control::run(control::Verb::Kill, args).await,
        Command::Executors(args) => executors::run(args).await,
        Command::Distributions(args) => distributions::run(args).await,
        Command::ExecutorWatchdog(args) => {
            drover_executor::watchdog::run(
                args.executor,
                args.dir,
                std::time::Duration::from_millis(args.silence_ms),
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// How long a client command waits for one answer: a person waits at the terminal,
/// maybe over a slow link, so longer than the executors' default (10 s).
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// The API client the flags describe.
fn client(args: &ClientArgs) -> anyhow::Result<ApiClient> {
    let builder = ApiClient::builder(&args.url).timeout(CLI_TIMEOUT);
    let builder = match &args.token {
        Some(token) => builder.token(token.clone()),
        None => builder,
    };
    Ok(builder.build()?)
}

/// The job a (possibly partial) id names.
///
/// # Errors
///
/// [`UsageError`] for text that cannot be part of an id, [`AmbiguousId`] when several
/// jobs match, the API's 404 when none does.
async fn resolve(client: &ApiClient, id: &str) -> anyhow::Result<Job> {
    let fragment = id_fragment(id)?;
    // The API's 404 message names the fragment and says what to do: no context needed.
    match client.resolve(&fragment).await? {
        Resolved::Job(job) => Ok(job),
        Resolved::Ambiguous(candidates) => Err(AmbiguousId {
            fragment,
            candidates,
        }
        .into()),
    }
}

/// `id` lowercased, if it can be part of a job id (hex digits and hyphens).
fn id_fragment(id: &str) -> Result<String, UsageError> {
    let fragment = id.trim().to_ascii_lowercase();
    if fragment.is_empty() {
        return Err(UsageError(
            "the job id is empty: give a job id or a unique part of one".into(),
        ));
    }
    if !fragment.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(UsageError(format!(
            "{id:?} is not a job id: ids are hexadecimal UUIDs like 67e55044-10b1-...; see `drover ls`"
        )));
    }
    Ok(fragment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_are_hex_and_hyphens() {
        assert_eq!(id_fragment(" 67E5-50 ").unwrap(), "67e5-50");
        for bad in ["", "  ", "xyz", "67e5/..", "67e5 50"] {
            assert!(id_fragment(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn client_commands_wait_longer_than_executors() {
        let args = ClientArgs {
            url: "http://127.0.0.1:8080".into(),
            token: Some("s3cret-token".into()),
            output: crate::args::Output::Table,
        };
        let client = client(&args).unwrap();
        assert_eq!(client.timeout(), CLI_TIMEOUT);
        assert!(CLI_TIMEOUT > drover_client::DEFAULT_TIMEOUT);
    }
}
