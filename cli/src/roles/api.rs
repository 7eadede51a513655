//! `drover api`: the API role.

use std::process::ExitCode;

use anyhow::Context;
use drover_core::LogFormat;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::signals::stop_on_signal;
use crate::args::RoleArgs;
use crate::config::Config;

/// Loads and validates the configuration, sets up tracing and runs the API until
/// SIGTERM or SIGINT; a second signal exits at once.
pub(crate) async fn run(args: RoleArgs, log_format: Option<LogFormat>) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    drover_core::init_tracing(log_format.unwrap_or(config.log_format))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(
        shutdown.clone(),
        "api",
        "shutting down: finishing requests in flight",
        i32::from(crate::exit::INTERRUPTED),
    ));
    info!(listen = %config.api.listen, "starting the api role");
    drover_api::run(config.api, config.zookeeper, shutdown)
        .await
        .context("the api role stopped")?;
    info!("the api role stopped");
    Ok(ExitCode::SUCCESS)
}
