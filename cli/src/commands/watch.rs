//! `drover top` (a live table of running jobs) and `drover inspect` (how to reach a job's
//! container on its executor's host, with the host's own `docker`: drover needs no
//! privileges there).

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::process::ExitCode;

use drover_client::{ApiClient, ListJobs};
use drover_core::State;
use drover_model::Job;
use futures::TryStreamExt;
use serde_json::json;

use crate::args::{InspectArgs, Output, TopArgs};
use crate::output;

/// `drover top`: running jobs with age, progress, executor and heartbeat, refreshed until
/// Ctrl-C (`--once`: one table).
pub(crate) async fn top(args: TopArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect::client(&args.client)?;
    let clear = std::io::stdout().is_terminal() && !args.once;
    loop {
        let jobs = running(&client).await?;
        match args.client.output {
            Output::Json => output::emit(&format!("{}\n", serde_json::to_string(&jobs)?))?,
            Output::Table => {
                let mut screen = String::new();
                if clear {
                    // Home and clear: the table redraws in place.
                    screen.push_str("\x1b[H\x1b[2J");
                }
                let _ = writeln!(
                    screen,
                    "{} running, {} stale (every {}; Ctrl-C to stop)",
                    jobs.len(),
                    jobs.iter().filter(|j| j.stale).count(),
                    humantime::format_duration(args.interval)
                );
                screen.push_str(&top_table(&jobs));
                output::emit(&screen)?;
            }
        }
        if args.once {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            () = tokio::time::sleep(args.interval) => {},
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

async fn running(client: &ApiClient) -> anyhow::Result<Vec<Job>> {
    let query = ListJobs {
        state: Some(State::Running),
        limit: Some(500),
        ..ListJobs::default()
    };
    let mut jobs: Vec<Job> = client.list_all(query).try_collect().await?;
    // Longest running first: the ones to look at.
    jobs.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    Ok(jobs)
}

fn top_table(jobs: &[Job]) -> String {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|job| {
            let since =
                |t: &Option<String>| t.as_deref().map_or_else(|| "-".to_owned(), output::age);
            vec![
                job.id.to_string()[..8].to_owned(),
                job.pipeline_action
                    .clone()
                    .unwrap_or_else(|| job.action.clone()),
                job.status_code.to_string(),
                job.executor.clone().unwrap_or_else(|| "-".to_owned()),
                since(&job.started_at),
                format!("{}%", job.progress),
                format!(
                    "{}{}",
                    since(&job.last_heartbeat),
                    if job.stale { " STALE" } else { "" }
                ),
                format!("{}/{}", job.attempts, job.max_attempts),
            ]
        })
        .collect();
    output::table(
        &[
            "ID",
            "ACTION",
            "STATUS",
            "EXECUTOR",
            "STARTED",
            "PROGRESS",
            "HEARTBEAT",
            "ATTEMPTS",
        ],
        &rows,
    )
}

/// `drover inspect ID`: the `docker` lines that reach the job's container on the host of
/// the executor that runs (or ran) it, found by label.
pub(crate) async fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect::client(&args.client)?;
    let job = super::connect::resolve(&client, &args.id).await?;
    let executors = client.executors().await.unwrap_or_default();
    let executor = job.executor.as_deref();
    let host = executor
        .and_then(|id| executors.iter().find(|e| e.id == id))
        .map(|e| e.host.clone());
    let filter = format!(
        "--filter label=drover.job={} --filter label=drover.attempt={}",
        job.id, job.attempts
    );
    let lines = [
        format!("docker ps -a {filter}"),
        format!("docker exec -it $(docker ps -q {filter}) sh"),
        format!(
            "docker cp $(docker ps -aq {filter}):/workspace ./{}-workspace",
            job.id
        ),
        format!("docker logs $(docker ps -aq {filter})"),
        format!("docker inspect $(docker ps -aq {filter})"),
    ];
    match args.client.output {
        Output::Json => output::emit(&output::json(&json!({
            "job": job.id, "state": job.state, "executor": executor, "host": host,
            "attempt": job.attempts, "commands": lines,
        }))?)?,
        Output::Table => {
            let mut text = String::new();
            let where_ = match (executor, &host) {
                (None, _) => "has not run yet: there is no container to reach".to_owned(),
                (Some(e), Some(h)) => {
                    format!("ran on executor {e}, host {h} (attempt {})", job.attempts)
                }
                (Some(e), None) => format!(
                    "ran on executor {e}, which is not registered now (attempt {})",
                    job.attempts
                ),
            };
            let _ = writeln!(
                text,
                "job {} is {} ({}) and {where_}",
                job.id, job.state, job.status_code
            );
            if executor.is_some() {
                if job.state.is_terminal() {
                    text.push_str("its container was removed when it ended, unless its executor keeps containers; these find it if it is still there:\n");
                }
                let _ = writeln!(
                    text,
                    "on {}, as a user who may run docker:",
                    host.as_deref().unwrap_or("that host")
                );
                for line in &lines {
                    let _ = writeln!(text, "  {line}");
                }
            }
            output::emit(&text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
