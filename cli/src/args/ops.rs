//! The operator's commands: pause and resume, drain, undrain and prepare-for-reboot,
//! status.

use std::time::Duration;

use clap::Args;

use super::client::ClientArgs;

/// `drover pause`.
#[derive(Debug, Args)]
pub(crate) struct PauseArgs {
    /// The actions to pause; none pauses the whole cluster. Queued jobs wait as
    /// WAITING_PAUSED; running ones keep running.
    #[arg(value_name = "ACTION")]
    pub(crate) actions: Vec<String>,
    /// Why (shown by `drover status` and in the waiting jobs' status).
    #[arg(long, value_name = "TEXT")]
    pub(crate) reason: Option<String>,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// `drover resume`.
#[derive(Debug, Args)]
pub(crate) struct ResumeArgs {
    /// The actions to resume; none lifts every pause (the cluster's and each action's).
    #[arg(value_name = "ACTION")]
    pub(crate) actions: Vec<String>,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// Which executors: one by id, or every one on a host.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct Target {
    /// The executor's id (`drover executors` lists them).
    #[arg(value_name = "EXECUTOR")]
    pub(crate) executor: Option<String>,
    /// Every executor registered from this host.
    #[arg(long, value_name = "HOST")]
    pub(crate) host: Option<String>,
}

/// `drover drain`.
#[derive(Debug, Args)]
pub(crate) struct DrainArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    /// How long running jobs may still run before they are stopped and given back to the
    /// queue (they rerun elsewhere).
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_deadline)]
    pub(crate) deadline: Duration,
    /// Wait until every targeted executor is drained.
    #[arg(long)]
    pub(crate) wait: bool,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// `drover undrain`.
#[derive(Debug, Args)]
pub(crate) struct UndrainArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// `drover prepare-for-reboot`.
#[derive(Debug, Args)]
pub(crate) struct RebootArgs {
    /// The host to clear.
    #[arg(long, value_name = "HOST")]
    pub(crate) host: String,
    /// How long running jobs may still run before they are stopped and given back.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_deadline)]
    pub(crate) deadline: Duration,
    /// Give up waiting (exit 1) after this long beyond the deadline.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_deadline)]
    pub(crate) timeout: Duration,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// `drover top`.
#[derive(Debug, Args)]
pub(crate) struct TopArgs {
    /// How often the table is read again.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_interval)]
    pub(crate) interval: Duration,
    /// Print the table once and exit.
    #[arg(long)]
    pub(crate) once: bool,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// `drover inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The job's id, or any unique part of it.
    pub(crate) id: String,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

fn parse_interval(input: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(input)
        .map_err(|err| format!("{input:?} is not a duration ({err}): write e.g. 1s, 5s"))?;
    if duration < Duration::from_millis(200) {
        return Err(format!("{input:?} is too short: give at least 200ms"));
    }
    Ok(duration)
}

/// A drain deadline: `0s` (give everything back now) up to a day.
fn parse_deadline(input: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(input)
        .map_err(|err| format!("{input:?} is not a duration ({err}): write e.g. 30s, 2m, 1h"))?;
    if duration > Duration::from_secs(86_400) {
        return Err(format!("{input:?} is too long: give at most 24h"));
    }
    Ok(duration)
}
