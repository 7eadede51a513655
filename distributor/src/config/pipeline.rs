//! A distribution that runs a pipeline (#14): each tick submits one request of a project
//! file, keyed by the tick, instead of one job.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use drover_core::Priority;
use drover_pipeline::{Project, RUN_ALL};
use serde::{Deserialize, Serialize};

use drover_core::ConfigError;

/// `[distributor.distributions.pipeline]`: what each tick's request runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The project file (`drover.yaml` or OpenSAFELY's `project.yaml`), read and checked
    /// when the distributor starts; a change needs a restart.
    pub file: PathBuf,
    /// The actions to run (and what they need); default `["run_all"]`.
    #[serde(default = "run_all")]
    pub actions: Vec<String>,
    /// The workspace whose state decides what is skipped; default the distribution's name.
    #[serde(default)]
    pub workspace: Option<String>,
    /// Rerun every dependency each tick, even those that succeeded.
    #[serde(default)]
    pub force_run_dependencies: bool,
}

fn run_all() -> Vec<String> {
    vec![RUN_ALL.to_owned()]
}

/// A checked pipeline: the file's text and what to ask of it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PipelineWork {
    pub(crate) project: Arc<str>,
    pub(crate) file_name: String,
    pub(crate) actions: Vec<String>,
    pub(crate) workspace: String,
    pub(crate) force: bool,
    /// The jobs' queue priority (the distribution's `priority`).
    pub(crate) priority: Option<Priority>,
    /// What `drover distributions` shows as the action: `pipeline drover.yaml: a, b`.
    pub(crate) shown: String,
}

impl PipelineConfig {
    /// Checks the settings of distribution `name` (`None`: it has none) that sets
    /// `job_field` (a field only a job distribution may set, if any); with `read`, also
    /// reads and parses the file and resolves the actions in it, as the API would.
    pub(crate) fn work(
        &self,
        field: &str,
        name: Option<&str>,
        job_field: Option<&str>,
        read: bool,
    ) -> Result<PipelineWork, ConfigError> {
        if let Some(other) = job_field {
            return Err(ConfigError::new(
                format!("{field}.{other}"),
                "is set with pipeline: a pipeline's jobs take their action, params, attempts, timeout and tags from the project file; remove it",
            ));
        }
        let Some(name) = name else {
            return Err(ConfigError::new(
                format!("{field}.name"),
                "is required with pipeline: it names the election, the requests' idempotency keys and (by default) the workspace",
            ));
        };
        let file_name = self
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if file_name.is_empty() {
            return Err(ConfigError::new(
                format!("{field}.pipeline.file"),
                "names no file: give the project file's path, e.g. \"/etc/drover/nightly/drover.yaml\"",
            ));
        }
        if self.actions.is_empty() {
            return Err(ConfigError::new(
                format!("{field}.pipeline.actions"),
                format!("is empty: name the actions to run, or leave it out for [\"{RUN_ALL}\"]"),
            ));
        }
        let workspace = self.workspace.clone().unwrap_or_else(|| name.to_owned());
        drover_core::names::check_name("workspace", &workspace)
            .map_err(|e| ConfigError::new(format!("{field}.pipeline.workspace"), e.to_string()))?;
        let project: Arc<str> = if read {
            read_project(&self.file, &file_name, &self.actions, field)?.into()
        } else {
            Arc::from("")
        };
        Ok(PipelineWork {
            project,
            shown: format!("pipeline {file_name}: {}", self.actions.join(", ")),
            file_name,
            actions: self.actions.clone(),
            workspace,
            force: self.force_run_dependencies,
            priority: None,
        })
    }
}

/// The file's text, once it parsed and has every action asked for.
fn read_project(
    path: &Path,
    file_name: &str,
    actions: &[String],
    field: &str,
) -> Result<String, ConfigError> {
    let field = format!("{field}.pipeline.file");
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            field.clone(),
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let project = Project::parse(file_name, &text)
        .map_err(|e| ConfigError::new(field.clone(), format!("{}: {e}", path.display())))?;
    project
        .resolve(actions)
        .map_err(|e| ConfigError::new(field, format!("{}: {e}", path.display())))?;
    Ok(text)
}
