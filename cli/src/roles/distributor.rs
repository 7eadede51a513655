//! `drover distributor`: the distributor role.

use std::process::ExitCode;

use anyhow::Context;
use drover_client::ApiClient;
use drover_core::LogFormat;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::signals::stop_on_signal;
use crate::args::RoleArgs;
use crate::config::Config;
use crate::exit::UsageError;

/// Loads and validates the configuration (an invalid distribution stops start-up with
/// the field named) and runs a distributor until SIGTERM or SIGINT, which resign every
/// leadership and exit 0; a second signal exits at once.
pub(crate) async fn run(args: RoleArgs, log_format: Option<LogFormat>) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    let distributor = config.distributor_config();
    // Now with the actions directory: a distribution of an unknown action is an error.
    distributor
        .validate()
        .map_err(|err| UsageError(format!("invalid configuration {err}")))?;
    drover_core::init_tracing(log_format.unwrap_or(config.log_format))?;
    let url = config
        .url
        .clone()
        .unwrap_or_else(|| drover_client::DEFAULT_URL.to_owned());
    let api = ApiClient::new(&url, config.token.clone())?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(
        shutdown.clone(),
        "distributor",
        "stopping: resigning every leadership",
        1,
    ));
    info!(api = %url, zookeeper = %config.zookeeper.hosts, "starting the distributor role");
    drover_distributor::run(distributor, config.zookeeper, api, shutdown)
        .await
        .context("the distributor could not start")?;
    Ok(ExitCode::SUCCESS)
}
