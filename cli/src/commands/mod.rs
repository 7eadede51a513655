//! The subcommands: the roles (`api`, `executor`, `distributor`, in [`crate::roles`])
//! and the client commands that talk to the API.
//!
//! Each returns the process's exit code or an error that [`crate::exit`] maps to one.

mod code;
mod connect;
mod control;
mod distributions;
mod executors;
mod jobs;
mod kill;
mod local;
mod logs;
mod metadata;
mod operate;
mod outputs;
mod requests;
mod submit;
mod wait;
mod watch;

use std::process::ExitCode;

use crate::args::Command;
use crate::roles::{api, distributor, executor};

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
        Command::Run(args) => requests::run(args).await,
        Command::LocalRun(args) => local::run(args).await,
        Command::Requests(args) => requests::list(args).await,
        Command::Request(args) => requests::show(args).await,
        Command::CancelRequest(args) => requests::cancel(args).await,
        Command::Ls(args) => jobs::list(args).await,
        Command::Show(args) => jobs::show(args).await,
        Command::Logs(args) => logs::run(args).await,
        Command::Cancel(args) => control::run(control::Verb::Cancel, args).await,
        Command::Retry(args) => control::run(control::Verb::Retry, args).await,
        Command::Kill(args) => kill::run(args).await,
        Command::Outputs(args) => outputs::run(args).await,
        Command::Executors(args) => executors::run(args).await,
        Command::Distributions(args) => distributions::run(args).await,
        Command::Status(args) => operate::status(args).await,
        Command::Top(args) => watch::top(args).await,
        Command::Inspect(args) => watch::inspect(args).await,
        Command::Pause(args) => operate::pause(args).await,
        Command::Resume(args) => operate::resume(args).await,
        Command::Drain(args) => operate::drain(args).await,
        Command::Undrain(args) => operate::undrain(args).await,
        Command::PrepareForReboot(args) => operate::prepare_for_reboot(args).await,
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
