//! Staging a pipeline job's inputs (#15): before its container starts, `/workspace`
//! gets the request's code snapshot, then the outputs of every job it needs. Bytes go
//! from the API (or, for `drover local-run`, the project directory) into the container
//! through the Docker API as they arrive (never onto this host's disk, never held
//! whole), each file's size and SHA-256 checked on the way.

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
    let mut slot = problem
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    slot.get_or_insert(what);
}

fn taken(problem: &Problem) -> Option<String> {
    problem
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
}

/// Puts the job's inputs into created container `container`; `None` when all went in,
/// else the outcome the job ends with (the container is not started).
pub(crate) async fn stage(
    docker: &DockerRuntime,
    container: &str,
    files: Files<'_>,
    stop: &Stop,
) -> Option<Outcome> {
    tokio::select! {
        failed = stage_inputs(docker, container, files) => failed,
        reason = stop.tripped() => Some(stopped(reason, None)),
    }
}

async fn stage_inputs(
    docker: &DockerRuntime,
    container: &str,
    files: Files<'_>,
) -> Option<Outcome> {
    let started = Instant::now();
    let inputs = match files.inputs().await {
        Ok(inputs) => inputs,
        Err(outcome) => return Some(outcome),
    };
    if let Some(code) = &inputs.code {
        let body = match files.code(code).await {
            Ok(body) => body,
            Err(outcome) => return Some(outcome),
        };
        let problem = Problem::default();
        let tar = checked(
            body,
            "the code snapshot",
            code.sha256.clone(),
            problem.clone(),
        );
        let copied = docker.upload(container, WORKSPACE, tar).await;
        if let Some(failed) = judge(copied, &problem, "the code snapshot") {
            return Some(failed);
        }
    }
    let (count, bytes) = (
        inputs.files.len(),
        inputs.files.iter().map(|f| f.size).sum::<u64>(),
    );
    if count > 0 {
        let problem = Problem::default();
        let tar = files_tar(files.opener(), inputs.files, problem.clone());
        let copied = docker.upload(container, WORKSPACE, tar).await;
        if let Some(failed) = judge(copied, &problem, "the needed actions' outputs") {
            return Some(failed);
        }
    }
    info!(job = %files.label(), code = inputs.code.is_some(), files = count, bytes, elapsed = ?started.elapsed(), "inputs staged");
    None
}

/// The outcome of one copy into the container: a problem on our side of the stream
/// first (Docker only saw it end early).
fn judge(
    copied: Result<(), crate::container::ContainerError>,
    problem: &Problem,
    what: &str,
) -> Option<Outcome> {
    if let Some(why) = taken(problem) {
        return Some(Outcome::Released(format!(
            "cannot stage {what}: {why}; the job runs again"
        )));
    }
    copied.err().map(|e| Outcome::Finished {
        code: drover_core::StatusCode::InternalError,
        exit_code: None,
        message: format!("cannot copy {what} into the container: {e}"),
    })
}

/// `body` as plain chunks, hashed; it ends early (and `problem` says why) on a transport
/// error or when the bytes do not hash to `sha256`.
fn checked(
    body: Body,
    what: &'static str,
    sha256: String,
    problem: Problem,
) -> impl futures::Stream<Item = Bytes> + Send + 'static {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let mut hash = Sha256::new();
        if let Err(why) = forward(body, &mut hash, &tx).await {
            return note(&problem, format!("{what}: {why}"));
        }
        let got = hex::encode(hash.finalize());
        if got != sha256 {
            note(&problem, format!("{what} hashes to {got}, not {sha256}"));
        }
    });
    receiver_stream(rx)
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

/// A tar of `files`, each downloaded from the API as the stream reaches it and checked
/// against its size and SHA-256.
fn files_tar(
    opener: Opener,
    files: Vec<OutputFile>,
    problem: Problem,
) -> impl futures::Stream<Item = Bytes> + Send + 'static {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        if let Err(why) = write_files(&opener, files, &tx).await {
            note(&problem, why);
        }
    });
    receiver_stream(rx)
}

async fn write_files(
    opener: &Opener,
    files: Vec<OutputFile>,
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
            .append_data(&mut header, &file.path, std::io::empty())
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
    let trailer = headers.into_inner().map_err(|e| e.to_string())?;
    tx.send(Bytes::from(trailer)).await.map_err(closed)
}
