//! `drover api`: the API role.

use std::process::ExitCode;

use anyhow::Context;
use drover_core::LogFormat;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::args::RoleArgs;
use crate::config::Config;

/// Loads and validates the configuration, sets up tracing and runs the API until
/// SIGTERM or SIGINT; a second signal exits at once.
pub(crate) async fn run(args: RoleArgs, log_format: Option<LogFormat>) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    drover_core::init_tracing(log_format.unwrap_or(config.log_format))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    info!(listen = %config.api.listen, "starting the api role");
    drover_api::run(config.api, config.zookeeper, shutdown)
        .await
        .context("the api role stopped")?;
    info!("the api role stopped");
    Ok(ExitCode::SUCCESS)
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT; exits the process on the second.
async fn stop_on_signal(shutdown: CancellationToken) {
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot listen for SIGTERM and SIGINT: stop the api with SIGKILL");
        return;
    };
    let name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    info!(signal = name, "shutting down: finishing requests in flight");
    shutdown.cancel();
    let name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    warn!(signal = name, "second signal: exiting now");
    std::process::exit(i32::from(crate::exit::INTERRUPTED));
}
