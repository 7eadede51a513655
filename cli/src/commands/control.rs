//! `drover cancel`, `drover retry` and `drover kill`.

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
    Kill,
}

/// Resolves the id, applies `verb` and prints what happened.
pub(crate) async fn run(verb: Verb, args: JobArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect::client(&args.client)?;
    let job = super::connect::resolve(&client, &args.id).await?;
    let (name, answer) = match verb {
        Verb::Cancel => ("cancel", client.cancel(job.id).await),
        Verb::Retry => ("retry", client.retry(job.id).await),
        Verb::Kill => ("kill", client.kill(job.id).await),
    };
    let answer = answer.with_context(|| format!("cannot {name} job {}", job.id))?;
    match args.client.output {
        Output::Json => output::emit(&output::json(&answer)?)?,
        Output::Table => output::emit(&format!("{}\n", describe(verb, &answer)))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// One line for people; `retry` prints only the new id, for scripts.
fn describe(verb: Verb, job: &Job) -> String {
    match verb {
        Verb::Retry => job.id.to_string(),
        Verb::Cancel | Verb::Kill if job.state.is_terminal() => output::job_summary(job),
        Verb::Cancel => format!(
            "job {} is {}: cancellation requested, its executor will stop it",
            job.id, job.state
        ),
        Verb::Kill => format!(
            "job {} is {}: kill requested, its executor will stop it",
            job.id, job.state
        ),
    }
}
