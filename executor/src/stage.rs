//! Staging a pipeline job's inputs (#15): before its container starts, `/workspace`
//! gets the request's code snapshot, then the outputs of every job it needs. Bytes go
//! from the API (or, for `drover local-run`, the project directory) into the container
//! through the Docker API as they arrive (never onto this host's disk, never held
//! whole), each file's size and SHA-256 checked on the way.
//!
//! It is one archive upload (Docker unpacks each in a helper process, tens of
//! milliseconds of its CPU): extracted at `/`, it holds `drover/params.json` (which the
//! create left out, see [`DockerRuntime::create_deferring`]), then the code and the
//! files under `workspace/`; for a read-only container, whose parameters were copied at
//! create, it is extracted at `/workspace`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use drover_model::OutputFile;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tracing::info;

use crate::collect::{receiver_stream, WORKSPACE};
use crate::container::DockerRuntime;
use crate::files::{Body, Files, Opener};
use crate::outcome::{stopped, Outcome};
use crate::stop::Stop;

/// What went wrong while a stream was fed to Docker (the stream itself just ends).
type Problem = Arc<Mutex<Option<String>>>;

fn note(problem: &Problem, what: String) {
    drover_core::lock(problem).get_or_insert(what);
}

fn taken(problem: &Problem) -> Option<String> {
    drover_core::lock(problem).take()
}

/// Puts the job's inputs (and `params`, when the create deferred them) into created
/// container `container`; `None` when all went in, else the outcome the job ends with
/// (the container is not started).
pub(crate) async fn stage(
    docker: &DockerRuntime,
    container: &str,
    params: Option<Vec<u8>>,
    files: Files<'_>,
    stop: &Stop,
) -> Option<Outcome> {
    tokio::select! {
        failed = stage_inputs(docker, container, params, files) => failed,
        reason = stop.tripped() => Some(stopped(reason, None)),
    }
}

/// What goes into the one archive.
struct Parts {
    params: Option<Vec<u8>>,
    code: Option<(Body, String)>,
    opener: Opener,
    files: Vec<OutputFile>,
    /// `workspace/` when the archive is extracted at `/`, else empty.
    prefix: &'static str,
}

async fn stage_inputs(
    docker: &DockerRuntime,
    container: &str,
    params: Option<Vec<u8>>,
    files: Files<'_>,
) -> Option<Outcome> {
    let started = Instant::now();
    let inputs = match files.inputs().await {
        Ok(inputs) => inputs,
        Err(outcome) => return Some(outcome),
    };
    let code = match &inputs.code {
        Some(code) => match files.code(code).await {
            Ok(body) => Some((body, code.sha256.clone())),
            Err(outcome) => return Some(outcome),
        },
        None => None,
    };
    let (count, bytes) = (
        inputs.files.len(),
        inputs.files.iter().map(|f| f.size).sum::<u64>(),
    );
    if params.is_none() && code.is_none() && count == 0 {
        return None;
    }
    let (path, prefix) = if params.is_some() {
        ("/", "workspace/")
    } else {
        (WORKSPACE, "")
    };
    let parts = Parts {
        params,
        code,
        opener: files.opener(),
        files: inputs.files,
        prefix,
    };
    let problem = Problem::default();
    let copied = docker
        .upload(container, path, archive(parts, problem.clone()))
        .await;
    if let Some(failed) = judge(copied, &problem) {
        return Some(failed);
    }
    info!(job = %files.label(), code = inputs.code.is_some(), files = count, bytes, elapsed = ?started.elapsed(), "inputs staged");
    None
}

/// The outcome of the copy into the container: a problem on our side of the stream
/// first (Docker only saw it end early).
fn judge(
    copied: Result<(), crate::container::ContainerError>,
    problem: &Problem,
) -> Option<Outcome> {
    if let Some(why) = taken(problem) {
        return Some(Outcome::Released(format!(
            "cannot stage the job's inputs: {why}; the job runs again"
        )));
    }
    copied.err().map(|e| Outcome::Finished {
        code: drover_core::StatusCode::InternalError,
        exit_code: None,
        message: format!("cannot copy the job's inputs into the container: {e}"),
    })
}

/// The archive of `parts`, made as Docker reads it; it ends early (and `problem` says
/// why) on a transport error, a hash or size that does not match, or a snapshot that
/// is not a tar.
fn archive(parts: Parts, problem: Problem) -> impl futures::Stream<Item = Bytes> + Send + 'static {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        if let Err(why) = write_archive(parts, &tx).await {
            note(&problem, why);
        }
    });
    receiver_stream(rx)
}

async fn write_archive(parts: Parts, tx: &mpsc::Sender<Bytes>) -> Result<(), String> {
    let closed = |_| "Docker stopped reading".to_owned();
    if let Some(params) = &parts.params {
        let entries = params_entries(params).map_err(|e| format!("the parameters: {e}"))?;
        tx.send(Bytes::from(entries)).await.map_err(closed)?;
    }
    if let Some((body, sha256)) = parts.code {
        let checked = checked(body, sha256);
        let tx = tx.clone();
        let prefix = parts.prefix;
        tokio::task::spawn_blocking(move || crate::stage_tar::rewrite(checked, prefix, &tx))
            .await
            .map_err(|e| format!("the code snapshot: {e}"))?
            .map_err(|e| format!("the code snapshot: {e}"))?;
    }
    write_files(&parts.opener, parts.files, parts.prefix, tx).await?;
    // the end of the archive: two zero blocks
    tx.send(Bytes::from(vec![0; 1024])).await.map_err(closed)
}

/// `drover/params.json` (with its directory) as tar entries, without the end blocks.
fn params_entries(params: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_size(0);
    dir.set_mode(0o755);
    dir.set_mtime(0);
    builder.append_data(&mut dir, "drover/", std::io::empty())?;
    let mut header = tar::Header::new_gnu();
    header.set_size(params.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    builder.append_data(&mut header, "drover/params.json", params)?;
    Ok(std::mem::take(builder.get_mut()))
}

/// `body` as plain chunks, hashed; it ends with an error when the bytes do not hash to
/// `sha256` (or the transport fails).
fn checked(
    mut body: Body,
    sha256: String,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::spawn(async move {
        let mut hash = Sha256::new();
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(why) => {
                    let _ = tx.send(Err(std::io::Error::other(why))).await;
                    return;
                }
            };
            hash.update(&chunk);
            if tx.send(Ok(chunk)).await.is_err() {
                return;
            }
        }
        let got = hex::encode(hash.finalize());
        if got != sha256 {
            let why = format!("it hashes to {got}, not {sha256}");
            let _ = tx.send(Err(std::io::Error::other(why))).await;
        }
    });
    Box::pin(receiver_stream(rx))
}

/// Sends `body`'s chunks on `tx`, hashing them.
async fn forward(
    mut body: Body,
    hash: &mut Sha256,
    tx: &mpsc::Sender<Bytes>,
) -> Result<u64, String> {
    let mut seen = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        hash.update(&chunk);
        seen += chunk.len() as u64;
        tx.send(chunk)
            .await
            .map_err(|_| "Docker stopped reading".to_owned())?;
    }
    Ok(seen)
}

/// Each of `files` as a tar entry under `prefix`, downloaded as the stream reaches it
/// and checked against its size and SHA-256.
async fn write_files(
    opener: &Opener,
    files: Vec<OutputFile>,
    prefix: &str,
    tx: &mpsc::Sender<Bytes>,
) -> Result<(), String> {
    let closed = |_| "Docker stopped reading".to_owned();
    // headers only: each file's bytes are sent between them, as they arrive
    let mut headers = tar::Builder::new(Vec::new());
    for file in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_size(file.size);
        headers
            .append_data(
                &mut header,
                format!("{prefix}{}", file.path),
                std::io::empty(),
            )
            .map_err(|e| format!("output {}: {e}", file.path))?;
        tx.send(Bytes::from(std::mem::take(headers.get_mut())))
            .await
            .map_err(closed)?;
        let body = opener.output(&file).await?;
        let mut hash = Sha256::new();
        let seen = forward(body, &mut hash, tx)
            .await
            .map_err(|e| format!("output {}: {e}", file.path))?;
        let got = hex::encode(hash.finalize());
        if seen != file.size || got != file.sha256 {
            return Err(format!(
                "output {} of job {} arrived as {seen} bytes hashing to {got}, not {} bytes hashing to {}",
                file.path, file.job_id, file.size, file.sha256
            ));
        }
        let pad = (512 - file.size % 512) % 512;
        if pad > 0 {
            tx.send(Bytes::from(vec![0; pad as usize]))
                .await
                .map_err(closed)?;
        }
    }
    Ok(())
}
