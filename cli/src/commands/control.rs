//! `drover cancel` and `drover retry` (`drover kill` is in `kill.rs`).

use std::process::ExitCode;

use anyhow::Context;
use drover_model::Job;

use crate::args::{JobArgs, Output};
use crate::output;

/// What to do to the job.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Verb {
    Cancel,
    Retry,
}

/// Resolves the id, applies `verb` and prints what happened.
pub(crate) async fn run(verb: Verb, args: JobArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect::client(&args.client)?;
    let job = match super::connect::resolve(&client, &args.id).await {
        Ok(job) => job,
        // `drover cancel` also takes a pipeline request's id: it cancels its jobs.
        Err(err) if matches!(verb, Verb::Cancel) && not_found(&err) => {
            let Ok(detail) = client.cancel_request(&args.id).await else {
                return Err(err);
            };
            super::requests::print_detail(&detail, args.client.output)?;
            return Ok(ExitCode::SUCCESS);
        }
        Err(err) => return Err(err),
    };
    let (name, answer) = match verb {
        Verb::Cancel => ("cancel", client.cancel(job.id).await),
        Verb::Retry => ("retry", client.retry(job.id).await),
    };
    let answer = answer.with_context(|| format!("cannot {name} job {}", job.id))?;
    match args.client.output {
        Output::Json => output::emit(&output::json(&answer)?)?,
        Output::Table => output::emit(&format!("{}\n", describe(verb, &answer)))?,
    }
    Ok(ExitCode::SUCCESS)
}

fn not_found(err: &anyhow::Error) -> bool {
    err.downcast_ref::<drover_client::ClientError>()
        .is_some_and(drover_client::ClientError::is_not_found)
}

/// One line for people; `retry` prints only the new id, for scripts.
fn describe(verb: Verb, job: &Job) -> String {
    match verb {
        Verb::Retry => job.id.to_string(),
        Verb::Cancel if job.state.is_terminal() => output::job_summary(job),
        Verb::Cancel => format!(
            "job {} is {}: cancellation requested, its executor will stop it",
            job.id, job.state
        ),
    }
}
