//! The `cleanup_jobs` built-in action: deletes finished jobs older than a retention,
//! and their logs, through the API, one batch (one transaction) per call.

use std::time::Duration;

use drover_actions::Builtin;
use drover_core::StatusCode;
use drover_model::{Cleanup, Job, LogLine};

use crate::outcome::{stopped, Outcome, RunEnv};
use crate::reporter::Reporter;
use crate::stop::Stop;

/// Batches one run deletes at most: a run always ends, and the next tick goes on.
const MAX_BATCHES: u32 = 10_000;

/// Runs `cleanup_jobs` for `job`: batches until one comes back short, the stop signal
/// trips or the timeout passes.
pub(crate) async fn run(
    env: &RunEnv,
    job: &Job,
    reporter: &Reporter,
    stop: &Stop,
    timeout: Duration,
) -> Outcome {
    let failed = |code, message: String| Outcome::Finished {
        code,
        exit_code: None,
        message,
    };
    let params = job.params.as_object().cloned().unwrap_or_default();
    let params = match Builtin::cleanup_params(&params) {
        Ok(params) => params,
        Err(message) => {
            return Outcome::Finished {
                code: StatusCode::NonzeroExit,
                exit_code: Some(2),
                message,
            }
        }
    };
    let Some(api) = &env.api else {
        return failed(
            StatusCode::NonzeroExit,
            "cleanup_jobs deletes a cluster's old jobs through its API, and a local run has none"
                .to_owned(),
        );
    };
    reporter.set_status(StatusCode::Executing);
    let request = Cleanup {
        older_than_secs: params.older_than.as_secs().max(1),
        batch: Some(params.batch),
    };
    let lines = reporter.lines();
    let work = async {
        let (mut jobs, mut log_lines) = (0u64, 0u64);
        for batch in 1..=MAX_BATCHES {
            let done = match api.cleanup(&request).await {
                Ok(done) => done,
                Err(e) => {
                    return failed(
                        StatusCode::InternalError,
                        format!(
                            "cleanup_jobs: batch {batch} failed after deleting {jobs} jobs: {e}"
                        ),
                    )
                }
            };
            jobs += done.deleted_jobs;
            log_lines += done.deleted_log_lines;
            let _ = lines
                .send(LogLine {
                    stream: "stdout".into(),
                    line: format!(
                        "batch {batch}: deleted {} jobs and {} log lines that finished before {}",
                        done.deleted_jobs, done.deleted_log_lines, done.cutoff
                    ),
                })
                .await;
            if !done.more {
                break;
            }
        }
        Outcome::Finished {
            code: StatusCode::Succeeded,
            exit_code: Some(0),
            message: format!(
                "deleted {jobs} finished jobs older than {} and {log_lines} log lines",
                humantime_serde::re::humantime::format_duration(params.older_than)
            ),
        }
    };
    tokio::select! {
        outcome = work => outcome,
        () = tokio::time::sleep(timeout) => stopped(crate::stop::StopReason::Timeout(timeout), None),
        reason = stop.tripped() => stopped(reason, None),
    }
}
