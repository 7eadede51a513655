//! `drover submit ACTION [-p key=value]... [--wait]`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use drover_core::{State, StatusCode};
use drover_model::SubmitJob;

use crate::args::{Output, SubmitArgs};
use crate::exit::{self, UsageError};
use crate::output;

/// Submits the job and prints its id; with `--wait`, follows it to the end and exits
/// with its outcome.
pub(crate) async fn run(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect::client(&args.client)?;
    let request = SubmitJob {
        action: args.action,
        params: params(args.params)?,
        priority: args.priority,
        max_attempts: args.max_attempts,
        timeout_secs: args.timeout.map(|timeout| timeout.as_secs()),
        idempotency_key: args.idempotency_key,
        requires: args.requires,
    };
    let submitted = client
        .submit(&request)
        .await
        .context("cannot submit the job")?;
    let job = submitted.job;
    if !submitted.created {
        eprintln!(
            "job {} already has idempotency key {:?}: it was not submitted again",
            job.id,
            job.idempotency_key.as_deref().unwrap_or_default()
        );
    }
    if job.status_code == StatusCode::WaitingOnWorkers {
        eprintln!(
            "warning: job {} waits: {}",
            job.id,
            output::printable(&job.status_message)
        );
    }
    let output = args.client.output;
    if output == Output::Table {
        output::emit(&format!("{}\n", job.id))?;
    }
    if !args.wait {
        if output == Output::Json {
            output::emit(&output::json(&job)?)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(job) = super::wait::until_finished(&client, job).await? else {
        return Ok(ExitCode::from(exit::INTERRUPTED));
    };
    match output {
        Output::Json => output::emit(&output::json(&job)?)?,
        Output::Table => output::emit(&format!("{}\n", output::job_summary(&job)))?,
    }
    Ok(match job.state {
        State::Success => ExitCode::SUCCESS,
        _ => ExitCode::from(exit::FAILED),
    })
}

/// The `-p` pairs as the params object; a key given twice is a mistake, not an override.
fn params(
    pairs: Vec<(String, serde_json::Value)>,
) -> Result<BTreeMap<String, serde_json::Value>, UsageError> {
    let mut params = BTreeMap::new();
    for (key, value) in pairs {
        if params.contains_key(&key) {
            return Err(UsageError(format!(
                "parameter {key:?} is given twice: give each -p key once"
            )));
        }
        params.insert(key, value);
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_key_given_twice_is_a_usage_error() {
        let pairs = vec![("a".to_owned(), json!(1)), ("b".to_owned(), json!("x"))];
        assert_eq!(params(pairs).unwrap().len(), 2);
        let pairs = vec![("a".to_owned(), json!(1)), ("a".to_owned(), json!(2))];
        assert!(params(pairs).unwrap_err().to_string().contains("\"a\""));
    }
}
