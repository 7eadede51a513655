//! The local scheduler: plans the request against `.drover/`, then runs each planned
//! action once what it waits for succeeded, at most `concurrency` at once, through the
//! executor's runner. A failure ends what waits on it (`DEPENDENCY_FAILED`, the API's
//! message) and, unless `continue_on_error`, stops new starts.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use drover_core::{JobId, Priority, State as JobState, StatusCode};
use drover_executor::local::{LocalExecutor, LocalFiles, LocalStop};
use drover_model::{CodeSnapshot, Job, LogLine, OutputFile};
use drover_outputs::ReleaseRules;
use drover_pipeline::{Action, Project};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::plan::{local_plan, Planned};
use crate::state::{Manifest, Record, State};
use crate::Error;

/// Log lines kept for a failed action's summary.
const TAIL_LINES: usize = 30;
/// A job's timeout when its action sets none (the API's `default_timeout`).
const DEFAULT_TIMEOUT_SECS: u64 = 3600;

/// What to run and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The project directory.
    pub root: PathBuf,
    /// The project file (`drover.yaml`, or `project.yaml`).
    pub file: PathBuf,
    /// The actions asked for, or `run_all`.
    pub actions: Vec<String>,
    /// `-f`: rerun dependencies that succeeded.
    pub force: bool,
    /// Jobs at once.
    pub concurrency: usize,
    /// Go on after a failure with what does not depend on it.
    pub continue_on_error: bool,
    /// Keep containers and volumes (`--debug`).
    pub keep: bool,
    /// Default limits for `run:` actions that set none.
    pub cpus: Option<f64>,
    /// Default memory limit, bytes.
    pub memory: Option<u64>,
    /// Action files (`<name>.toml`), as an executor's `actions_dir`.
    pub actions_dir: Option<PathBuf>,
    /// The release checks.
    pub release: ReleaseRules,
    /// Bytes of outputs one job may write.
    pub max_output_bytes: u64,
}

/// What a run tells its caller as it goes.
#[derive(Debug, Clone)]
pub enum Event {
    /// Each action of the plan: name, whether it runs, why.
    Plan(Vec<(String, bool, String)>),
    /// A job started.
    Started {
        /// Its action.
        action: String,
        /// Its id.
        job: JobId,
    },
    /// Its status moved on.
    Status {
        /// Its action.
        action: String,
        /// `EXECUTING`, `FINALIZING`.
        code: StatusCode,
    },
    /// A line of its output.
    Line {
        /// Its action.
        action: String,
        /// The line.
        line: LogLine,
    },
    /// It ended.
    Ended(ActionReport),
}

/// How one action of the plan ended.
#[derive(Debug, Clone)]
pub struct ActionReport {
    /// The action.
    pub action: String,
    /// Whether the run ended it (ran it, or ended it `DEPENDENCY_FAILED`); else it was
    /// skipped or never started.
    pub ran: bool,
    /// Its record: status, message, outputs (none for an action never started).
    pub record: Option<Record>,
    /// Why it was skipped or not started.
    pub why: String,
    /// Its log file.
    pub log: PathBuf,
    /// Its last lines, when it failed.
    pub tail: Vec<String>,
}

/// A whole run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every action of the plan, in plan order.
    pub actions: Vec<ActionReport>,
    /// Containers left on the engine (`--debug`), to remove with `docker rm -f -v`.
    pub kept: Vec<String>,
}

impl Report {
    /// Whether every action of the plan stands succeeded: each run succeeded, and none
    /// was left unstarted.
    pub fn succeeded(&self) -> bool {
        self.actions.iter().all(|a| {
            a.record
                .as_ref()
                .is_some_and(|r| r.status_code == StatusCode::Succeeded)
        })
    }
}

/// Runs `options.actions` of the project; `events` hears about each step, `cancel`
/// stops the running jobs (Ctrl-C).
///
/// # Errors
/// What stops a run before any job: the project file, an unknown action, the state
/// directory, no Docker engine.
pub async fn run(
    options: &Options,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
) -> Result<Report, Error> {
    let project = read_project(options)?;
    let state = State::open(&options.root)?;
    let mut manifest = state.load()?;
    if manifest.settle_interrupted() {
        state.save(&manifest)?;
    }
    let planned = local_plan(
        &project,
        &options.actions,
        options.force,
        &manifest,
        &options.root,
    )
    .map_err(Error::Actions)?;
    let lines = planned
        .iter()
        .map(|p| (p.action.name.clone(), p.runs, p.why.clone()))
        .collect();
    let _ = events.send(Event::Plan(lines)).await;
    let mut scheduler = Scheduler::new(&state, &planned, manifest);
    if planned.iter().any(|p| p.runs) {
        let executor = connect(options, &state).await?;
        let code = snapshot(options, &project).await?;
        let shared = Arc::new(Shared {
            executor,
            code,
            events,
            state,
            manifest: Mutex::new(scheduler.manifest.clone()),
            options: options.clone(),
        });
        scheduler.drive(&shared, &cancel).await;
        shared.executor.finish().await;
        if options.keep {
            scheduler.report.kept = shared.executor.containers().await.unwrap_or_default();
        }
    }
    Ok(scheduler.report)
}

fn read_project(options: &Options) -> Result<Project, Error> {
    let text = std::fs::read_to_string(&options.file).map_err(|source| Error::ProjectFile {
        path: options.file.clone(),
        source,
    })?;
    let name = options
        .file
        .file_name()
        .map_or_else(|| "drover.yaml".to_owned(), |n| n.to_string_lossy().into_owned());
    Ok(Project::parse(&name, &text)?)
}

/// The executor id of a project's local runs: one per project directory, so a run
/// removes only what an earlier run of the same project left.
pub fn executor_id(root: &std::path::Path) -> String {
    use sha2::Digest;
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let hash = sha2::Sha256::digest(root.to_string_lossy().as_bytes());
    format!("local-{}", &hex::encode(hash)[..12])
}

pub(crate) async fn connect(options: &Options, state: &State) -> Result<LocalExecutor, Error> {
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let mut catalogue = drover_actions::Catalogue::load(options.actions_dir.as_deref(), &env)
        .map_err(|e| Error::Catalogue(e.to_string()))?;
    catalogue.or_insert(drover_pipeline::CONTAINER_ACTION, &["*"]);
    let executor = LocalExecutor::connect(
        &executor_id(state.root()),
        catalogue,
        options.keep,
        options.max_output_bytes,
    )
    .await
    .map_err(|e| Error::NoDocker(e.to_string()))?;
    executor.remove_leftovers().await;
    Ok(executor)
}

/// The project directory as a code snapshot, as `drover run` sends it.
async fn snapshot(
    options: &Options,
    project: &Project,
) -> Result<Option<(tempfile::NamedTempFile, CodeSnapshot)>, Error> {
    let leave_out = project.declared_patterns();
    let root = options.root.clone();
    let made = tokio::task::spawn_blocking(move || {
        drover_outputs::snapshot(&root, &leave_out, drover_outputs::MAX_SNAPSHOT_BYTES)
    })
    .await
    .map_err(|e| Error::Catalogue(format!("the snapshot task failed: {e}")))?
    .map_err(|e| Error::Catalogue(format!("cannot snapshot the project directory: {e}")))?;
    let code = CodeSnapshot {
        sha256: made.sha256.clone(),
        size: made.size,
    };
    Ok(Some((made.file, code)))
}

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
    fn record(&self, action: &str, record: Record) {
        let mut manifest = self
            .manifest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        manifest.actions.insert(action.to_owned(), record);
        if let Err(e) = self.state.save(&manifest) {
            tracing::warn!(error = %e, "cannot write the manifest");
        }
    }

    fn outputs_of(&self, action: &str) -> Vec<OutputFile> {
        let manifest = self
            .manifest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        manifest
            .actions
            .get(action)
            .map(|r| r.outputs.clone())
            .unwrap_or_default()
    }

    fn outputs_of_job(&self, job: JobId) -> Vec<OutputFile> {
        let manifest = self
            .manifest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        manifest
            .actions
            .values()
            .find(|r| r.job == job)
            .map(|r| r.outputs.clone())
            .unwrap_or_default()
    }
}

/// Where each planned action is.
#[derive(Debug, Clone, PartialEq)]
enum Slot {
    Waiting,
    Running,
    Ended(StatusCode, JobId),
    NotRun,
}

struct Scheduler<'a> {
    planned: &'a [Planned<'a>],
    slots: Vec<Slot>,
    manifest: Manifest,
    report: Report,
    stopping: Option<String>,
    interrupted: bool,
}

impl<'a> Scheduler<'a> {
    fn new(state: &State, planned: &'a [Planned<'a>], manifest: Manifest) -> Self {
        let report = Report {
            actions: planned
                .iter()
                .map(|p| ActionReport {
                    action: p.action.name.clone(),
                    ran: false,
                    record: (!p.runs)
                        .then(|| manifest.actions.get(&p.action.name).cloned())
                        .flatten(),
                    why: p.why.clone(),
                    log: state.log_path(&p.action.name),
                    tail: Vec::new(),
                })
                .collect(),
            kept: Vec::new(),
        };
        let slots = planned
            .iter()
            .map(|p| if p.runs { Slot::Waiting } else { Slot::NotRun })
            .collect();
        Scheduler {
            planned,
            slots,
            manifest,
            report,
            stopping: None,
            interrupted: false,
        }
    }

    /// Starts what is ready, waits for an end, until nothing runs or waits.
    async fn drive(&mut self, shared: &Arc<Shared>, cancel: &CancellationToken) {
        let mut running: JoinSet<(usize, Record, Vec<String>)> = JoinSet::new();
        let stops: Vec<LocalStop> = self.planned.iter().map(|_| LocalStop::default()).collect();
        loop {
            self.settle_failed_needs(shared).await;
            while running.len() < shared.options.concurrency.max(1) && self.stopping.is_none() {
                let Some(i) = self.next_ready() else { break };
                self.slots[i] = Slot::Running;
                self.report.actions[i].ran = true;
                let job = job_for(self.planned[i].action, &shared.options);
                let inputs = self.inputs_of(i, shared);
                running.spawn(run_job(shared.clone(), i, job, inputs, stops[i].clone()));
            }
            if running.is_empty() {
                break;
            }
            tokio::select! {
                Some(done) = running.join_next() => {
                    if let Ok((i, record, tail)) = done {
                        self.ended(i, record, tail, shared).await;
                    }
                }
                () = cancel.cancelled(), if self.stopping.is_none() => {
                    self.stopping = Some("the run was interrupted".to_owned());
                    self.interrupted = true;
                    stops.iter().for_each(LocalStop::cancel);
                }
            }
        }
        self.not_started();
    }

    fn next_ready(&self) -> Option<usize> {
        (0..self.planned.len()).find(|&i| {
            self.slots[i] == Slot::Waiting
                && self.planned[i]
                    .waits_for
                    .iter()
                    .all(|&n| matches!(self.slots[n], Slot::Ended(StatusCode::Succeeded, _)))
        })
    }

    fn inputs_of(&self, i: usize, shared: &Shared) -> Vec<OutputFile> {
        let planned = &self.planned[i];
        let mut files: Vec<OutputFile> = planned
            .waits_for
            .iter()
            .flat_map(|&n| shared.outputs_of(&self.planned[n].action.name))
            .collect();
        for job in &planned.reads_from {
            files.extend(shared.outputs_of_job(*job));
        }
        files.sort_by(|a, b| (&a.action, &a.path).cmp(&(&b.action, &b.path)));
        files
    }

    async fn ended(&mut self, i: usize, record: Record, tail: Vec<String>, shared: &Shared) {
        let code = record.status_code;
        self.slots[i] = Slot::Ended(code, record.job);
        self.manifest
            .actions
            .insert(self.planned[i].action.name.clone(), record.clone());
        let report = &mut self.report.actions[i];
        report.record = Some(record);
        if code != StatusCode::Succeeded {
            report.tail = tail;
            if !shared.options.continue_on_error && self.stopping.is_none() {
                self.stopping = Some(format!(
                    "the run stopped at the first failure (`{}` ended {code}); \
                     --continue-on-error runs what does not depend on it",
                    self.planned[i].action.name
                ));
            }
        }
        let _ = shared.events.send(Event::Ended(report.clone())).await;
    }

    /// Ends every waiting action one of whose needs did not succeed, as the API does.
    async fn settle_failed_needs(&mut self, shared: &Shared) {
        // an interrupted run leaves what waits not started (it runs next time)
        while !self.interrupted {
            let failed = (0..self.planned.len()).find_map(|i| {
                if self.slots[i] != Slot::Waiting {
                    return None;
                }
                self.planned[i].waits_for.iter().find_map(|&n| match self.slots[n] {
                    Slot::Ended(code, job) if code != StatusCode::Succeeded => {
                        Some((i, n, code, job))
                    }
                    _ => None,
                })
            });
            let Some((i, n, code, job)) = failed else {
                return;
            };
            let message = drover_pipeline::dependency_failed(
                &self.planned[n].action.name,
                &job.to_string(),
                code,
            );
            let now = drover_core::clock::rfc3339_millis(std::time::SystemTime::now());
            let record = Record {
                job: JobId::new(),
                status_code: StatusCode::DependencyFailed,
                status_message: message,
                exit_code: None,
                started_at: now.clone(),
                finished_at: Some(now),
                outputs: Vec::new(),
            };
            shared.record(&self.planned[i].action.name, record.clone());
            self.report.actions[i].ran = true;
            self.ended(i, record, Vec::new(), shared).await;
        }
    }

    fn not_started(&mut self) {
        let why = self.stopping.clone().unwrap_or_default();
        for (i, slot) in self.slots.iter().enumerate() {
            if *slot == Slot::Waiting {
                self.report.actions[i].why.clone_from(&why);
            }
        }
    }
}

/// The job a local run makes for `action`: the API's action and params, with the run's
/// default limits where a `run:` action sets none.
fn job_for(action: &Action, options: &Options) -> Job {
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
        let mut log = tokio::fs::File::create(&log_path).await.ok();
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
