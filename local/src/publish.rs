//! A local job's outputs, once it succeeded: moved from its staging directory to their
//! paths in the project directory (what the previous run of the action left and this
//! one did not make is removed), and linked into the level views of `.drover/levels/`:
//! `highly_sensitive/` holds every output, `moderately_sensitive/` what a token of that
//! level could read on a cluster (moderately and minimally sensitive files that pass
//! the release checks), `minimally_sensitive/` only minimally sensitive ones.

use std::path::{Path, PathBuf};

use drover_core::JobId;
use drover_executor::local::Collected;
use drover_model::OutputFile;
use drover_pipeline::Level;

use crate::state::State;

fn rank(level: &str) -> u8 {
    match level {
        "highly_sensitive" => 2,
        "moderately_sensitive" => 1,
        _ => 0,
    }
}

/// The level views `file` appears in.
fn views(file: &OutputFile) -> impl Iterator<Item = &'static str> + '_ {
    Level::ALL
        .into_iter()
        .map(Level::key)
        .filter(move |view| rank(file.readable_at()) <= rank(view))
}

fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn placed(path: &Path) -> std::io::Result<&Path> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    Ok(path)
}

/// Publishes `collected` (written under `staging`) as job `job` of `action`, replacing
/// `previous` (the outputs of the action's last success); returns the records.
///
/// # Errors
/// I/O errors, with the path.
pub fn publish(
    state: &State,
    job: JobId,
    action: &str,
    staging: &Path,
    collected: Vec<Collected>,
    previous: &[OutputFile],
) -> Result<Vec<OutputFile>, String> {
    let at = |path: &Path| {
        let path: PathBuf = path.to_path_buf();
        move |e: std::io::Error| format!("{}: {e}", path.display())
    };
    let levels = state.levels();
    for old in previous {
        for view in Level::ALL.map(Level::key) {
            let link = levels.join(view).join(&old.path);
            remove(&link).map_err(at(&link))?;
        }
        if !collected.iter().any(|c| c.path == old.path) {
            let file = state.root().join(&old.path);
            remove(&file).map_err(at(&file))?;
        }
    }
    let mut files = Vec::with_capacity(collected.len());
    for c in collected {
        let from = staging.join(&c.path);
        let to = state.root().join(&c.path);
        std::fs::rename(&from, placed(&to).map_err(at(&to))?).map_err(at(&from))?;
        let file = OutputFile {
            job_id: job,
            action: Some(action.to_owned()),
            path: c.path,
            level: c.level,
            size: c.report.size,
            sha256: c.report.sha256,
            csv_rows: c.report.csv.map(|s| s.rows),
            csv_columns: c.report.csv.map(|s| s.columns),
            withheld: c.report.withheld,
        };
        for view in views(&file) {
            let link = levels.join(view).join(&file.path);
            remove(&link).map_err(at(&link))?;
            let link = placed(&link).map_err(at(&link))?;
            if std::fs::hard_link(&to, link).is_err() {
                std::fs::copy(&to, link).map_err(at(link))?;
            }
        }
        files.push(file);
    }
    let _ = std::fs::remove_dir_all(staging);
    Ok(files)
}
