//! One local job: what it shares with the others, how it is made from an action, and
//! its run (record, executor, publication, record).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use drover_core::{JobId, Priority, State as JobState, StatusCode};
use drover_executor::local::{LocalExecutor, LocalFiles, LocalStop};
use drover_model::{CodeSnapshot, Job, LogLine, OutputFile};
use drover_pipeline::Action;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};

use crate::report::{Event, Options};
use crate::state::{Manifest, Record, State};

/// Log lines kept for a failed action's summary.
const TAIL_LINES: usize = 30;
/// A job's timeout when its action sets none (the API's `default_timeout`).
const DEFAULT_TIMEOUT_SECS: u64 = 3600;

/// What every job task shares.
pub(crate) struct Shared {
    pub(crate) executor: LocalExecutor,
    pub(crate) code: Option<(tempfile::NamedTempFile, CodeSnapshot)>,
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) state: State,
    pub(crate) manifest: Mutex<Manifest>,
    pub(crate) options: Options,
}

impl Shared {
    /// Records `record` for `action` and writes the manifest.
    pub(crate) fn record(&self, action: &str, record: Record) {
        let mut manifest = drover_core::lock(&self.manifest);
        manifest.actions.insert(action.to_owned(), record);
        if let Err(e) = self.state.save(&manifest) {
            tracing::warn!(error = %e, "cannot write the manifest");
        }
    }

    /// The outputs of `action`'s newest job.
    pub(crate) fn outputs_of(&self, action: &str) -> Vec<OutputFile> {
        drover_core::lock(&self.manifest)
            .actions
            .get(action)
            .map(|r| r.outputs.clone())
            .unwrap_or_default()
    }

    /// The outputs of `jobs` (each the newest of its action), by action then path.
    pub(crate) fn outputs_of_jobs(&self, jobs: &[JobId]) -> Vec<OutputFile> {
        let mut files: Vec<OutputFile> = drover_core::lock(&self.manifest)
            .actions
            .values()
            .filter(|r| jobs.contains(&r.job))
            .flat_map(|r| r.outputs.iter().cloned())
            .collect();
        files.sort_by(|a, b| (&a.action, &a.path).cmp(&(&b.action, &b.path)));
        files
    }
}

/// The job a local run makes for `action`: the API's action and params, with the run's
/// default limits where a `run:` action sets none.
pub(crate) fn job_for(action: &Action, options: &Options) -> Job {
    let (name, mut params) = action.job();
    if name == drover_pipeline::CONTAINER_ACTION {
        if let Some(object) = params.as_object_mut() {
            if action.cpus.is_none() {
                object.insert("cpus".into(), serde_json::json!(options.cpus));
            }
            if action.memory.is_none() {
                object.insert("memory".into(), serde_json::json!(options.memory));
            }
        }
    }
    let now = drover_core::clock::rfc3339_millis(std::time::SystemTime::now());
    Job {
        id: JobId::new(),
        action: name,
        params,
        priority: Priority::DEFAULT,
        state: JobState::Running,
        status_code: StatusCode::Preparing,
        status_message: String::new(),
        progress: 0,
        exit_code: None,
        attempts: 1,
        max_attempts: 1,
        timeout_secs: action
            .timeout
            .map_or(DEFAULT_TIMEOUT_SECS, |t| t.as_secs().max(1)),
        executor: None,
        fencing_token: None,
        queue_entry: None,
        last_heartbeat: None,
        created_at: now.clone(),
        started_at: Some(now),
        finished_at: None,
        idempotency_key: None,
        requires: action.requires.iter().cloned().collect(),
        enqueued: false,
        retry_of: None,
        cancel_requested: false,
        kill_requested: false,
        request_id: Some(JobId::new()),
        workspace: Some("local".to_owned()),
        pipeline_action: Some(action.name.clone()),
        stale: false,
    }
}

/// Runs one job: records it started, runs it, publishes its outputs on success, records
/// how it ended. Returns its index, its record and its last lines.
pub(crate) async fn run_job(
    shared: Arc<Shared>,
    index: usize,
    job: Job,
    inputs: Vec<OutputFile>,
    stop: LocalStop,
) -> (usize, Record, Vec<String>) {
    let action = job.pipeline_action.clone().unwrap_or_default();
    let previous = shared.outputs_of(&action);
    let mut record = Record {
        job: job.id,
        status_code: StatusCode::Executing,
        status_message: "running".to_owned(),
        exit_code: None,
        started_at: job.started_at.clone().unwrap_or_default(),
        finished_at: None,
        outputs: Vec::new(),
    };
    shared.record(&action, record.clone());
    let _ = shared
        .events
        .send(Event::Started {
            action: action.clone(),
            job: job.id,
        })
        .await;
    let staging = shared.state.staging(job.id);
    let code = shared
        .code
        .as_ref()
        .map(|(file, code)| (file.path().to_path_buf(), code.clone()));
    let files = LocalFiles::new(
        shared.state.root().to_path_buf(),
        code,
        inputs,
        staging.clone(),
        shared.options.release.clone(),
    );
    let (ran, tail) = execute(&shared, &job, &action, &files, &stop).await;
    record.status_code = ran.code;
    record.status_message = ran.message;
    record.exit_code = ran.exit_code;
    if ran.code == StatusCode::Succeeded {
        match crate::publish::publish(
            &shared.state,
            job.id,
            &action,
            &staging,
            files.collected(),
            &previous,
        ) {
            Ok(outputs) => record.outputs = outputs,
            Err(e) => {
                record.status_code = StatusCode::InternalError;
                record.status_message = format!("cannot publish the outputs: {e}");
            }
        }
    } else {
        let _ = std::fs::remove_dir_all(&staging);
    }
    record.finished_at = Some(drover_core::clock::rfc3339_millis(
        std::time::SystemTime::now(),
    ));
    shared.record(&action, record.clone());
    (index, record, tail)
}

/// Runs the job through the executor, writing its log and forwarding its lines and
/// status; returns how it ended and its last lines.
async fn execute(
    shared: &Shared,
    job: &Job,
    action: &str,
    files: &LocalFiles,
    stop: &LocalStop,
) -> (drover_executor::local::Ran, Vec<String>) {
    let (lines_tx, mut lines_rx) = mpsc::channel::<LogLine>(256);
    let (status_tx, mut status_rx) = watch::channel(StatusCode::Preparing);
    let log_path = shared.state.log_path(action);
    let events = shared.events.clone();
    let name = action.to_owned();
    let writer = tokio::spawn(async move {
        let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
        let mut log = tokio::fs::File::create(&log_path)
            .await
            .ok()
            .map(tokio::io::BufWriter::new);
        loop {
            tokio::select! {
                line = lines_rx.recv() => {
                    let Some(line) = line else { break };
                    if let Some(log) = &mut log {
                        let _ = log.write_all(format!("{}\n", line.line).as_bytes()).await;
                    }
                    if tail.len() == TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line.line.clone());
                    let _ = events.send(Event::Line { action: name.clone(), line }).await;
                }
                Ok(()) = status_rx.changed() => {
                    let code = *status_rx.borrow();
                    let _ = events.send(Event::Status { action: name.clone(), code }).await;
                }
            }
        }
        if let Some(log) = &mut log {
            let _ = log.flush().await;
        }
        Vec::from(tail)
    });
    let ran = shared
        .executor
        .run(job, files, lines_tx, status_tx, stop)
        .await;
    let tail = writer.await.unwrap_or_default();
    (ran, tail)
}
