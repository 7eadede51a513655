//! `drover`: every role of the job engine and the client commands, in one binary.
//!
//! The binary only parses arguments, sets up tracing, loads configuration and calls
//! the role's `run` (or a client command, which talks to the API).
//!
//! - `args` — the command line (clap).
//! - `config` — the configuration every role reads: file, then `DROVER_*` variables.
//! - `commands` — one module per subcommand.
//! - `output` — tables, job details and JSON on stdout.
//! - `exit` — the exit codes, and the one mapping from a failure to its code.

mod args;
mod commands;
mod config;
mod exit;
mod output;
mod roles;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use drover_core::LogFormat;

use crate::args::{Cli, Command};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Exits 2 on a usage error, 0 for --help and --version.
    let cli = Cli::parse();
    let is_role = matches!(
        cli.command,
        Command::Api(_) | Command::Executor(_) | Command::Distributor(_)
    );
    if !is_role {
        // A role sets up tracing once its configuration is loaded (it may say json).
        let level = if matches!(cli.command, Command::LocalRun(_)) {
            tracing::level_filters::LevelFilter::WARN
        } else {
            tracing::level_filters::LevelFilter::INFO
        };
        let format = cli.log_format.unwrap_or(LogFormat::Text);
        if let Err(err) = drover_core::init_tracing_at(format, level) {
            return exit::report(&anyhow::Error::new(err));
        }
    }
    let runtime = if is_role {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    }
    .enable_all()
    .build()
    .context("cannot start the tokio runtime");
    let outcome = match runtime {
        Ok(runtime) => runtime.block_on(commands::run(cli.command, cli.log_format)),
        Err(err) => Err(err),
    };
    match outcome {
        Ok(code) => code,
        Err(err) if exit::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => exit::report(&err),
    }
}
