//! Files from the API onto this machine, each checked against its SHA-256 (and size)
//! before it takes its name: `drover outputs --get` and `drover local-run --job` both
//! download through here.

use std::path::{Component, Path, PathBuf};

use drover_client::{ApiClient, ByteStream, ClientError};
use drover_model::OutputFile;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// Why a file could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The API named a path that would leave the directory.
    #[error("the API sent an output path that leaves the directory: {0:?}")]
    Path(String),
    /// The API could not be read.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The bytes are not the ones recorded.
    #[error("{what} arrived as {seen} bytes hashing to {got}, not {size} bytes hashing to {sha256}: download it again")]
    Mismatch {
        /// The file.
        what: String,
        /// Bytes seen.
        seen: u64,
        /// Their SHA-256.
        got: String,
        /// Bytes recorded.
        size: u64,
        /// The SHA-256 recorded.
        sha256: String,
    },
    /// Writing it failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// `dir` joined with an output's `path`, refusing one that would leave `dir`.
///
/// # Errors
/// [`FetchError::Path`].
pub fn destination(dir: &Path, path: &str) -> Result<PathBuf, FetchError> {
    let relative = Path::new(path);
    if path.is_empty()
        || !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(FetchError::Path(path.to_owned()));
    }
    Ok(dir.join(relative))
}

/// Downloads `file` into `dir` at its path; returns where it went.
///
/// # Errors
/// See [`FetchError`].
pub async fn output(api: &ApiClient, file: &OutputFile, dir: &Path) -> Result<PathBuf, FetchError> {
    let target = destination(dir, &file.path)?;
    let body = api.download_output(file.job_id, &file.path).await?;
    save(body, &target, &file.path, &file.sha256, file.size).await?;
    Ok(target)
}

/// Writes `body` to `target` (beside it first, renamed once its size and SHA-256
/// matched); `what` names it in errors.
///
/// # Errors
/// See [`FetchError`].
pub async fn save(
    mut body: ByteStream,
    target: &Path,
    what: &str,
    sha256: &str,
    size: u64,
) -> Result<(), FetchError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FetchError::Io { path, source }
    };
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(io(parent))?;
    }
    let partial = target.with_extension("drover-partial");
    let mut out = tokio::fs::File::create(&partial)
        .await
        .map_err(io(&partial))?;
    let (mut hash, mut seen) = (Sha256::new(), 0u64);
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        hash.update(&chunk);
        seen += chunk.len() as u64;
        out.write_all(&chunk).await.map_err(io(&partial))?;
    }
    out.flush().await.map_err(io(&partial))?;
    drop(out);
    let got = hex::encode(hash.finalize());
    if seen != size || got != sha256 {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(FetchError::Mismatch {
            what: what.to_owned(),
            seen,
            got,
            size,
            sha256: sha256.to_owned(),
        });
    }
    tokio::fs::rename(&partial, target)
        .await
        .map_err(io(target))
}
