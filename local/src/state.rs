//! A local run's state, in the project directory's `.drover/`:
//!
//! ```text
//! .drover/lock                    held (flock) by the one local run of this project
//! .drover/manifest.json           the newest job of each action: status, outputs
//! .drover/logs/<action>.log       that job's log
//! .drover/staging/<job id>/       its outputs while it runs (published on success)
//! .drover/levels/<level>/<path>   the outputs a token of that level could read on a
//!                                 cluster (hard links into the project directory)
//! ```
//!
//! The manifest is rewritten whole (a new file renamed over the old) whenever a job
//! starts or ends, so a run killed at any moment leaves the last written state: a job
//! recorded as started but never ended was interrupted, and the next run treats it as
//! not done.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use drover_core::{JobId, StatusCode};
use drover_model::OutputFile;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::Error;

/// The state directory under a project directory.
pub const STATE_DIR: &str = ".drover";

/// What `.drover/manifest.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The newest job of each action, by (expanded) action name.
    pub actions: BTreeMap<String, Record>,
}

/// One action's newest job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Its id (in its log, its container's labels and name).
    pub job: JobId,
    /// Its status: `EXECUTING` while it runs (or when it was interrupted), else how it
    /// ended.
    pub status_code: StatusCode,
    /// For people, as a cluster would record it.
    pub status_message: String,
    /// The action's exit code, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Its outputs, once it succeeded: paths relative to the project directory.
    #[serde(default)]
    pub outputs: Vec<OutputFile>,
}

/// The state directory of a project, locked for one run.
#[derive(Debug)]
pub struct State {
    root: PathBuf,
    dir: PathBuf,
    _lock: Flock<File>,
}

impl State {
    /// Opens (creating) `root/.drover` and takes its lock.
    ///
    /// # Errors
    /// [`Error::Busy`] when another local run holds it; I/O errors.
    pub fn open(root: &Path) -> Result<State, Error> {
        let dir = root.join(STATE_DIR);
        std::fs::create_dir_all(dir.join("logs")).map_err(Error::io(&dir))?;
        let lock_path = dir.join("lock");
        let file = File::create(&lock_path).map_err(Error::io(&lock_path))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|_| Error::Busy(root.to_path_buf()))?;
        // what a killed run was writing: no run uses it now (the lock is ours)
        let _ = std::fs::remove_dir_all(dir.join("staging"));
        Ok(State {
            root: root.to_path_buf(),
            dir,
            _lock: lock,
        })
    }

    /// The project directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `.drover/` itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where an action's log is written.
    pub fn log_path(&self, action: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{action}.log"))
    }

    /// Where a job's outputs are written while it runs.
    pub fn staging(&self, job: JobId) -> PathBuf {
        self.dir.join("staging").join(job.to_string())
    }

    /// The level views' directory.
    pub fn levels(&self) -> PathBuf {
        self.dir.join("levels")
    }

    /// The manifest; empty when there is none yet.
    ///
    /// # Errors
    /// An unreadable or malformed manifest (it says which file, and that deleting it
    /// forgets what ran).
    pub fn load(&self) -> Result<Manifest, Error> {
        let path = self.dir.join("manifest.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Manifest {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(e) => Err(Error::io(&path)(e)),
        }
    }

    /// Writes `manifest` (a new file renamed over the old one).
    ///
    /// # Errors
    /// I/O errors.
    pub fn save(&self, manifest: &Manifest) -> Result<(), Error> {
        let path = self.dir.join("manifest.json");
        let next = self.dir.join("manifest.json.next");
        let bytes = serde_json::to_vec_pretty(manifest).map_err(|e| Error::Manifest {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut file = File::create(&next).map_err(Error::io(&next))?;
        file.write_all(&bytes).map_err(Error::io(&next))?;
        file.sync_data().map_err(Error::io(&next))?;
        std::fs::rename(&next, &path).map_err(Error::io(&path))
    }
}

/// The message a job that was running when its local run died is recorded with.
pub const INTERRUPTED: &str =
    "interrupted: the local run that ran it stopped before it ended; it runs again";

impl Manifest {
    /// Marks jobs recorded as running (their run was killed) as interrupted; whether
    /// there were any.
    pub fn settle_interrupted(&mut self) -> bool {
        let mut any = false;
        for record in self.actions.values_mut() {
            if !record.status_code.is_terminal() {
                record.status_code = StatusCode::InternalError;
                record.status_message = INTERRUPTED.to_owned();
                record.outputs.clear();
                any = true;
            }
        }
        any
    }
}
