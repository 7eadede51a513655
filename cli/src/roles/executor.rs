//! `drover executor`: the executor role.

use std::process::ExitCode;

use anyhow::Context;
use drover_client::ApiClient;
use drover_core::LogFormat;
use drover_executor::Shutdown;
use tracing::{info, warn};

use super::signals::Signals;
use crate::args::RoleArgs;
use crate::config::Config;

/// Loads the configuration and runs an executor. The first SIGTERM (or SIGINT) drains
/// it: no new jobs, running ones get `executor.drain_timeout`; a second signal stops and
/// releases them at once.
pub(crate) async fn run(args: RoleArgs, log_format: Option<LogFormat>) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    drover_core::init_tracing(log_format.unwrap_or(config.log_format))?;
    let url = config
        .url
        .clone()
        .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
    let api = ApiClient::new(&url, config.token.clone())?;
    let shutdown = Shutdown::default();
    tokio::spawn(drain_on_signal(shutdown.clone()));
    info!(api = %url, zookeeper = %config.zookeeper.hosts, "starting the executor role");
    drover_executor::run(config.executor, config.zookeeper, api, shutdown)
        .await
        .context("the executor could not start")?;
    Ok(ExitCode::SUCCESS)
}

/// First SIGTERM/SIGINT: drain. Second: skip the wait.
async fn drain_on_signal(shutdown: Shutdown) {
    let Some(mut signals) = Signals::listen("executor") else {
        return;
    };
    let name = signals.next().await;
    info!(
        signal = name,
        "drain requested: no new jobs; a second signal stops running jobs now"
    );
    shutdown.drain.cancel();
    let name = signals.next().await;
    warn!(
        signal = name,
        "second signal: stopping running jobs and giving them back"
    );
    shutdown.force.cancel();
}
