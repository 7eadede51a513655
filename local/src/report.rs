//! What a local run is asked to do, and what it tells and returns.

use std::path::PathBuf;

use drover_core::{JobId, StatusCode};
use drover_model::LogLine;
use drover_outputs::ReleaseRules;

use crate::state::Record;

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
