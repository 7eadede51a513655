//! The local scheduler: plans the request against `.drover/`, then runs each planned
//! action once what it waits for succeeded, at most `concurrency` at once, through the
//! executor's runner. A failure ends what waits on it (`DEPENDENCY_FAILED`, the API's
//! message) and, unless `continue_on_error`, stops new starts.

use std::sync::{Arc, Mutex};

use drover_core::{JobId, StatusCode};
use drover_executor::local::{LocalExecutor, LocalStop};
use drover_model::{CodeSnapshot, OutputFile};
use drover_pipeline::Project;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::job::{job_for, run_job, Shared};
use crate::plan::{local_plan, Planned};
pub use crate::report::{ActionReport, Event, Options, Report};
use crate::state::{Manifest, Record, State};
use crate::Error;

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
    let mut scheduler = Scheduler::new(&state, &planned, &manifest);
    if planned.iter().any(|p| p.runs) {
        let executor = connect(options, &state).await?;
        let code = snapshot(options, &project).await?;
        let shared = Arc::new(Shared {
            executor,
            code,
            events,
            state,
            manifest: Mutex::new(manifest),
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
    let name = options.file.file_name().map_or_else(
        || "drover.yaml".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );
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
    report: Report,
    stopping: Option<String>,
    interrupted: bool,
}

impl<'a> Scheduler<'a> {
    fn new(state: &State, planned: &'a [Planned<'a>], manifest: &Manifest) -> Self {
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

    /// What job `i` starts from: the outputs of the jobs it waited for (they
    /// succeeded) and of the successes it reads from.
    fn inputs_of(&self, i: usize, shared: &Shared) -> Vec<OutputFile> {
        let planned = &self.planned[i];
        let mut jobs = planned.reads_from.clone();
        jobs.extend(
            planned
                .waits_for
                .iter()
                .filter_map(|&n| match self.slots[n] {
                    Slot::Ended(_, job) => Some(job),
                    _ => None,
                }),
        );
        shared.outputs_of_jobs(&jobs)
    }

    async fn ended(&mut self, i: usize, record: Record, tail: Vec<String>, shared: &Shared) {
        let code = record.status_code;
        self.slots[i] = Slot::Ended(code, record.job);
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
                self.planned[i]
                    .waits_for
                    .iter()
                    .find_map(|&n| match self.slots[n] {
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
