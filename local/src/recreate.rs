//! `drover local-run --job ID`: a cluster job run again on this machine, as its executor
//! ran it. Its definition (action, params, config, limits, timeout) comes from the API's
//! record; its code snapshot and the outputs of the jobs it needed from
//! `GET /v1/jobs/{id}/sources` (as far as the token may read them), each checked
//! against its SHA-256 on the way to disk; secrets never come from the API: the
//! action files of `--actions-dir` name them, and they are read from this machine's
//! environment or files (a missing one stops the run, naming it).

use std::path::Path;
use std::sync::{Arc, Mutex};

use drover_client::ApiClient;
use drover_core::{JobId, StatusCode};
use drover_executor::local::LocalStop;
use drover_model::{CodeSnapshot, Job, OutputFile};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::run::{ActionReport, Event, Options, Report};
use crate::state::State;
use crate::Error;

/// A cluster job, with what it starts from on disk.
#[derive(Debug)]
pub struct Recreated {
    /// The job as the API has it.
    pub job: Job,
    /// Its code snapshot, downloaded.
    pub code: Option<(tempfile::NamedTempFile, CodeSnapshot)>,
    /// The outputs it needed, now at their paths under the project directory.
    pub inputs: Vec<OutputFile>,
}

/// Fetches `job`'s code and inputs into `root`.
///
/// # Errors
/// [`Error::Recreate`]: the API cannot be read, a file the token may not read, a file
/// whose bytes do not match its hash.
pub async fn prepare(api: &ApiClient, job: Job, root: &Path) -> Result<Recreated, Error> {
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        Error::Recreate(format!("cannot {what} of job {}: {e}", job.id))
    };
    let sources = api
        .job_sources(job.id)
        .await
        .map_err(|e| failed("read what it started from", &e))?;
    if sources.hidden > 0 {
        return Err(Error::Recreate(format!(
            "job {} started from {} file(s) this token may not read: re-create it with a token whose level reads them",
            job.id, sources.hidden
        )));
    }
    tokio::fs::create_dir_all(root)
        .await
        .map_err(Error::io(root))?;
    let code = match &sources.code {
        Some(code) => {
            let file = tempfile::NamedTempFile::new().map_err(Error::io(root))?;
            let body = api
                .download_code(&code.sha256)
                .await
                .map_err(|e| failed("download the code snapshot", &e))?;
            crate::fetch::save(
                body,
                file.path(),
                "the code snapshot",
                &code.sha256,
                code.size,
            )
            .await
            .map_err(|e| failed("download the code snapshot", &e))?;
            Some((file, code.clone()))
        }
        None => None,
    };
    for file in &sources.files {
        crate::fetch::output(api, file, root)
            .await
            .map_err(|e| failed(&format!("download input {}", file.path), &e))?;
    }
    Ok(Recreated {
        job,
        code,
        inputs: sources.files,
    })
}

/// Runs `recreated` in `options.root` as a fresh local job of the same action and
/// params (its record is the project directory's `.drover/`, under the job's action).
///
/// # Errors
/// The state directory, no Docker engine, the action files.
pub async fn run(
    options: &Options,
    recreated: Recreated,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
) -> Result<Report, Error> {
    let state = State::open(&options.root)?;
    let mut manifest = state.load()?;
    manifest.settle_interrupted();
    let executor = crate::run::connect(options, &state).await?;
    let mut job = recreated.job;
    let original = job.id;
    let name = job
        .pipeline_action
        .clone()
        .unwrap_or_else(|| job.action.clone());
    job.pipeline_action = Some(name.clone());
    job.id = JobId::new();
    job.attempts = 1;
    let log = state.log_path(&name);
    let shared = Arc::new(crate::job::Shared {
        executor,
        code: recreated.code,
        events,
        state,
        manifest: Mutex::new(manifest),
        options: options.clone(),
    });
    let stop = LocalStop::default();
    let running = tokio::spawn(crate::job::run_job(
        shared.clone(),
        0,
        job,
        recreated.inputs,
        stop.clone(),
    ));
    let watcher = tokio::spawn(async move {
        cancel.cancelled().await;
        stop.cancel();
    });
    let ended = running.await;
    watcher.abort();
    let (_, mut record, tail) =
        ended.map_err(|e| Error::Recreate(format!("the job's task failed: {e}")))?;
    shared.executor.finish().await;
    record.status_message = format!("{} (re-creates job {original})", record.status_message);
    let failed = record.status_code != StatusCode::Succeeded;
    let mut report = Report {
        actions: vec![ActionReport {
            action: name,
            ran: true,
            record: Some(record),
            why: format!("re-creates job {original}"),
            log,
            tail: if failed { tail } else { Vec::new() },
        }],
        kept: Vec::new(),
    };
    if options.keep {
        report.kept = shared.executor.containers().await.unwrap_or_default();
    }
    let _ = shared
        .events
        .send(Event::Ended(report.actions[0].clone()))
        .await;
    Ok(report)
}
