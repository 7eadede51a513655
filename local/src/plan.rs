//! What a local run does with each action: the cluster's planner
//! ([`drover_pipeline::plan`]) over the manifest's records, where a success counts only
//! while its outputs are still in the project directory as it left them.

use std::collections::BTreeSet;
use std::path::Path;

use drover_core::{JobId, State as JobState, StatusCode};
use drover_pipeline::{plan, Action, Need, Project, Standing, Step};

use crate::state::{Manifest, Record};

/// One action of a local run, and why it runs or not.
#[derive(Debug, Clone)]
pub struct Planned<'a> {
    /// The action.
    pub action: &'a Action,
    /// Whether it runs (else it is skipped).
    pub runs: bool,
    /// The indices of the planned actions it waits for.
    pub waits_for: Vec<usize>,
    /// The jobs (skipped successes) whose outputs it starts from besides those.
    pub reads_from: Vec<JobId>,
    /// Why: "requested", "never ran", "its output output/x.csv is missing", ...
    pub why: String,
}

/// Why an action's last success does not count, or `None` when it does.
fn outputs_changed(root: &Path, record: &Record) -> Option<String> {
    record
        .outputs
        .iter()
        .find_map(|file| match std::fs::metadata(root.join(&file.path)) {
            Ok(meta) if meta.len() == file.size => None,
            Ok(_) => Some(format!("its output {} changed since it ran", file.path)),
            Err(_) => Some(format!("its output {} is missing", file.path)),
        })
}

/// Where `record` leaves its action: as the cluster sees a workspace (cancelled runs do
/// not count), with a success whose outputs changed counted as a failure.
fn standing(root: &Path, record: Option<&Record>) -> (Standing<JobId>, String) {
    let Some(record) = record else {
        return (Standing::Never, "never ran".to_owned());
    };
    match record.status_code.state() {
        JobState::Success => match outputs_changed(root, record) {
            None => (
                Standing::Succeeded(record.job),
                format!(
                    "succeeded at {} (job {})",
                    record.finished_at.as_deref().unwrap_or("?"),
                    record.job
                ),
            ),
            Some(why) => (Standing::Failed(record.job), why),
        },
        JobState::Canceled => (Standing::Never, "its last run was cancelled".to_owned()),
        _ if record.status_code == StatusCode::InternalError
            && record.status_message == crate::state::INTERRUPTED =>
        {
            (
                Standing::Failed(record.job),
                "its last run was interrupted".to_owned(),
            )
        }
        _ => (
            Standing::Failed(record.job),
            format!("its last run ended {}", record.status_code),
        ),
    }
}

/// Plans `requested` (action names or `run_all`) of `project` against `manifest`.
///
/// # Errors
/// An unknown action, naming the valid ones.
pub fn local_plan<'a>(
    project: &'a Project,
    requested: &[String],
    force: bool,
    manifest: &Manifest,
    root: &Path,
) -> Result<Vec<Planned<'a>>, String> {
    let order = project.resolve(requested)?;
    let asked: BTreeSet<String> = requested
        .iter()
        .filter(|a| *a != drover_pipeline::RUN_ALL)
        .cloned()
        .collect();
    let standings: Vec<(Standing<JobId>, String)> = order
        .iter()
        .map(|action| standing(root, manifest.actions.get(&action.name)))
        .collect();
    let steps = plan(&order, &asked, force, |name| {
        order
            .iter()
            .position(|a| a.name == name)
            .map_or(Standing::Never, |i| standings[i].0.clone())
    });
    Ok(order
        .iter()
        .zip(steps)
        .zip(standings)
        .map(|((action, step), (_, why))| {
            let requested_here = asked.contains(&action.name) || asked.contains(&action.template);
            match step {
                Step::Create { needs } => {
                    let why = if requested_here {
                        "requested".to_owned()
                    } else if force && why.starts_with("succeeded") {
                        "rerun by --force-run-dependencies".to_owned()
                    } else {
                        why
                    };
                    let (mut waits_for, mut reads_from) = (Vec::new(), Vec::new());
                    for need in needs {
                        match need {
                            Need::New(i) => waits_for.push(i),
                            Need::Done(id) | Need::Existing(id) => reads_from.push(id),
                        }
                    }
                    Planned {
                        action,
                        runs: true,
                        waits_for,
                        reads_from,
                        why,
                    }
                }
                Step::Skip(_) | Step::Reuse(_) => Planned {
                    action,
                    runs: false,
                    waits_for: Vec::new(),
                    reads_from: Vec::new(),
                    why,
                },
            }
        })
        .collect())
}
