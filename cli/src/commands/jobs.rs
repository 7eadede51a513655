//! `drover ls` and `drover show`.

use std::process::ExitCode;

use drover_client::ListJobs;
use drover_model::Job;
use futures::TryStreamExt;

use crate::args::{JobArgs, LsArgs, Output};
use crate::output;

/// The page size of `ls --all`: the API's maximum.
const ALL_PAGE: u32 = 500;

/// `drover ls`: the newest jobs, or every job with `--all`.
pub(crate) async fn list(args: LsArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect::client(&args.client)?;
    let request = match &args.request {
        // any unique prefix, as `drover request` takes
        Some(prefix) => Some(client.request_detail(prefix).await?.request.id),
        None => None,
    };
    let mut query = ListJobs {
        state: if args.stale {
            Some(drover_core::State::Running)
        } else {
            args.state
        },
        action: args.action,
        request,
        workspace: args.workspace,
        limit: Some(args.limit),
        cursor: None,
    };
    let (mut jobs, more): (Vec<Job>, bool) = if args.all || args.stale {
        query.limit = Some(ALL_PAGE);
        (client.list_all(query).try_collect().await?, false)
    } else {
        let page = client.list(&query).await?;
        (page.jobs, page.next_cursor.is_some())
    };
    if args.stale {
        jobs.retain(|job| job.stale);
    }
    match args.client.output {
        Output::Json => output::emit(&output::json(&jobs)?)?,
        Output::Table if jobs.is_empty() && args.stale => eprintln!("no stale jobs"),
        Output::Table if jobs.is_empty() => eprintln!("no jobs"),
        Output::Table => output::emit(&output::jobs_table(&jobs, args.no_trunc))?,
    }
    if more && args.client.output == Output::Table {
        eprintln!(
            "the newest {} are shown and more match: use --all, or --limit up to 500",
            jobs.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `drover show ID`.
pub(crate) async fn show(args: JobArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect::client(&args.client)?;
    let job = super::connect::resolve(&client, &args.id).await?;
    // The history is a help, not the answer: an API without it still shows the job.
    let attempts = client.attempts(job.id).await.unwrap_or_default();
    let chain = retried_from(&client, &job).await;
    match args.client.output {
        Output::Json => {
            let mut value = serde_json::to_value(&job)?;
            value["attempt_history"] = serde_json::to_value(&attempts)?;
            value["retried_from"] = serde_json::to_value(&chain)?;
            output::emit(&output::json(&value)?)?;
        }
        Output::Table => {
            let mut text = output::job_details(&job);
            text.push_str(&output::history(&attempts, &chain));
            output::emit(&text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The jobs `job` retries, nearest first (at most [`CHAIN`]): why it was run again.
async fn retried_from(client: &drover_client::ApiClient, job: &Job) -> Vec<Job> {
    const CHAIN: usize = 5;
    let mut chain: Vec<Job> = Vec::new();
    let mut next = job.retry_of;
    while let Some(id) = next.filter(|_| chain.len() < CHAIN) {
        let Ok(earlier) = client.get(id).await else {
            break;
        };
        next = earlier.retry_of;
        chain.push(earlier);
    }
    chain
}
