//! Why a local run cannot start: each says what to do.

use std::path::{Path, PathBuf};

/// A local run that cannot start (a job that fails is not an error: it is reported).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The project file is wrong: printed exactly as the API prints it.
    #[error("{0}")]
    Project(#[from] drover_pipeline::ProjectError),
    /// An action that is not in the project, with the valid names.
    #[error("{0}")]
    Actions(String),
    /// The project file cannot be read.
    #[error("cannot read the project file {path}: {source}; run in the project's directory, or pass --project-dir or --file")]
    ProjectFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No Docker engine answers.
    #[error("no Docker engine answers ({0}): start Docker, or set DOCKER_HOST to one that runs")]
    NoDocker(String),
    /// Another local run of this project holds `.drover/lock`.
    #[error("another drover local-run is running in {0}: wait for it to end, or stop it")]
    Busy(PathBuf),
    /// `.drover/manifest.json` cannot be read.
    #[error("{path} is not a local-run manifest ({reason}): delete it to forget what ran (every action runs again)")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The action catalogue (`--actions DIR`) cannot be loaded.
    #[error("{0}")]
    Catalogue(String),
    /// A cluster job cannot be re-created.
    #[error("{0}")]
    Recreate(String),
    /// An I/O error, on `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an I/O error on `path`.
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
