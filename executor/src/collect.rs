//! Collecting a job's declared outputs (#15): after its container exited 0, the files
//! under `/workspace` that match the action's patterns are read out of the container
//! through the Docker API (one tar stream, never a path on this host, never following a
//! link) and streamed to the API, one upload per file. They become visible only when the
//! job's success is recorded under this attempt's token, so a run that dies half-way
//! through shows nothing.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use drover_core::StatusCode;
use drover_outputs::Pattern;
use futures::TryStreamExt;
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};
use tracing::info;

use crate::container::DockerRuntime;
use crate::files::Files;
use crate::outcome::Outcome;

/// Where a job's files live in its container.
pub(crate) const WORKSPACE: &str = "/workspace";
/// Bytes read from the container per chunk sent on.
const CHUNK: usize = 256 * 1024;
/// Unmatched files remembered for the "did you mean" hint.
const MAX_UNCLAIMED: usize = 1000;

/// An action's declared outputs: `(level, pattern)`, from the job's `outputs` param
/// (`{level: {name: pattern}}`, as the API writes it for a project's action).
#[derive(Debug)]
pub(crate) struct Declared {
    patterns: Vec<(String, Pattern)>,
}

impl Declared {
    /// The declared outputs in `params`, `None` when it declares none.
    ///
    /// # Errors
    /// A malformed `outputs` param, or a pattern the project parser would refuse.
    pub(crate) fn of(params: &serde_json::Value) -> Result<Option<Declared>, String> {
        let Some(outputs) = params.get("outputs") else {
            return Ok(None);
        };
        let bad = || {
            format!(
                "params.outputs is {outputs}: give {{\"level\": {{\"name\": \"path/pattern.csv\"}}}}"
            )
        };
        let levels = outputs.as_object().ok_or_else(bad)?;
        let mut patterns = Vec::new();
        for (level, named) in levels {
            for pattern in named.as_object().ok_or_else(bad)?.values() {
                let text = pattern.as_str().ok_or_else(bad)?;
                let parsed = Pattern::parse(text).map_err(|e| format!("{e}: {}", e.hint()))?;
                patterns.push((level.clone(), parsed));
            }
        }
        Ok((!patterns.is_empty()).then_some(Declared { patterns }))
    }

    /// The level of the first pattern `path` matches, most sensitive level first.
    fn level_of(&self, path: &str, matched: &mut [bool]) -> Option<String> {
        let mut level: Option<&str> = None;
        for (i, (l, pattern)) in self.patterns.iter().enumerate() {
            if pattern.matches(path) {
                matched[i] = true;
                if level.is_none_or(|current| rank(l) > rank(current)) {
                    level = Some(l);
                }
            }
        }
        level.map(str::to_owned)
    }
}

fn rank(level: &str) -> u8 {
    match level {
        "highly_sensitive" => 2,
        "moderately_sensitive" => 1,
        _ => 0,
    }
}

/// What the walk over the tar stream saw.
#[derive(Debug, Default)]
struct Walked {
    matched: Vec<bool>,
    unclaimed: Vec<String>,
    refused: Vec<String>,
    files: usize,
    bytes: u64,
    /// The total that went past the limit, and the limit.
    over: Option<(u64, u64)>,
}

/// A matched file to upload: its bytes arrive on `body`.
struct Upload {
    path: String,
    level: String,
    body: mpsc::Receiver<std::io::Result<Bytes>>,
}

/// Collects `container`'s outputs into `files`, at most `max_bytes`; `None` when all
/// went well, else the outcome the job ends with.
pub(crate) async fn collect(
    docker: &DockerRuntime,
    container: &str,
    declared: Arc<Declared>,
    files: Files<'_>,
    max_bytes: u64,
) -> Option<Outcome> {
    let tar = Box::pin(
        docker
            .download(container, WORKSPACE)
            .map_err(std::io::Error::other),
    );
    let reader = SyncIoBridge::new(StreamReader::new(tar));
    let (uploads, mut next) = mpsc::channel::<Upload>(1);
    let walking = {
        let declared = declared.clone();
        tokio::task::spawn_blocking(move || walk(reader, &declared, &uploads, max_bytes))
    };
    let mut failed = None;
    while let Some(upload) = next.recv().await {
        if failed.is_some() {
            continue;
        }
        let body = receiver_stream(upload.body);
        if let Err(outcome) = files.put(&upload.path, &upload.level, body).await {
            failed = Some(outcome);
        }
    }
    let walked = match walking.await {
        Ok(Ok(walked)) => walked,
        Ok(Err(e)) => {
            return Some(internal(format!(
                "cannot read the outputs out of the container: {e}"
            )))
        }
        Err(e) => return Some(internal(format!("the output walk failed: {e}"))),
    };
    if let Some(outcome) = failed {
        return Some(outcome);
    }
    let outcome = judge(&declared, walked);
    if outcome.is_none() {
        info!(job = %files.label(), "outputs collected");
    }
    outcome
}

/// The receiving end of a channel as a stream (a body to send on, chunk by chunk).
pub(crate) fn receiver_stream<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn internal(message: String) -> Outcome {
    Outcome::Finished {
        code: StatusCode::InternalError,
        exit_code: Some(0),
        message,
    }
}

/// Reads the tar stream of `/workspace`: matched regular files go to `uploads`, matched
/// links are refused, other files are remembered for the hint.
fn walk(
    reader: impl Read,
    declared: &Declared,
    uploads: &mpsc::Sender<Upload>,
    max_bytes: u64,
) -> std::io::Result<Walked> {
    let mut archive = tar::Archive::new(reader);
    let mut walked = Walked {
        matched: vec![false; declared.patterns.len()],
        ..Walked::default()
    };
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.to_string_lossy().into_owned();
        // the archive's paths start with the directory asked for: `workspace/…`
        let Some((_, path)) = raw.split_once('/') else {
            continue;
        };
        let path = path.trim_end_matches('/').to_owned();
        let kind = entry.header().entry_type();
        if path.is_empty() || kind.is_dir() {
            continue;
        }
        let Some(level) = declared.level_of(&path, &mut walked.matched) else {
            if kind.is_file() && walked.unclaimed.len() < MAX_UNCLAIMED {
                walked.unclaimed.push(path);
            }
            continue;
        };
        if !kind.is_file() {
            walked.refused.push(refusal(&path, &entry));
            continue;
        }
        let size = entry.header().size()?;
        if walked.bytes + size > max_bytes {
            walked.over = Some((walked.bytes + size, max_bytes));
            break;
        }
        walked.bytes += size;
        walked.files += 1;
        send_file(&mut entry, path, level, uploads)?;
    }
    Ok(walked)
}

fn refusal(path: &str, entry: &tar::Entry<'_, impl Read>) -> String {
    let target = entry
        .link_name()
        .ok()
        .flatten()
        .map(|t| t.to_string_lossy().into_owned());
    let kind = entry.header().entry_type();
    match target {
        Some(target) if kind.is_symlink() => format!(
            "`{path}` is a symbolic link to `{target}`: outputs are never followed through links; write the file itself there"
        ),
        Some(target) => format!(
            "`{path}` is a hard link to `{target}`: write the file itself there"
        ),
        None => format!("`{path}` is not a regular file"),
    }
}

/// Streams one entry's bytes to a new upload.
fn send_file(
    entry: &mut impl Read,
    path: String,
    level: String,
    uploads: &mpsc::Sender<Upload>,
) -> std::io::Result<()> {
    let (chunks, body) = mpsc::channel(4);
    if uploads.blocking_send(Upload { path, level, body }).is_err() {
        return Err(std::io::Error::other("the uploader stopped"));
    }
    let mut buf = vec![0; CHUNK];
    loop {
        let n = entry.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        if chunks
            .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
            .is_err()
        {
            // the upload ended early (refused): the uploader reports why
            return Ok(());
        }
    }
}

/// The job's end when its outputs are not what it declared, `None` when they are.
fn judge(declared: &Declared, walked: Walked) -> Option<Outcome> {
    let fail = |message: String| {
        Some(Outcome::Finished {
            code: StatusCode::UnmatchedPatterns,
            exit_code: Some(0),
            message,
        })
    };
    if let Some((total, limit)) = walked.over {
        return fail(format!(
            "the outputs are over {total} bytes, more than the {limit} this executor collects per job (executor.max_output_bytes): declare fewer or smaller outputs"
        ));
    }
    if !walked.refused.is_empty() {
        return fail(format!("outputs refused: {}", walked.refused.join("; ")));
    }
    let unmatched: Vec<&Pattern> = declared
        .patterns
        .iter()
        .zip(&walked.matched)
        .filter(|(_, m)| !**m)
        .map(|((_, p), _)| p)
        .collect();
    if unmatched.is_empty() {
        return None;
    }
    let names: Vec<&str> = unmatched.iter().map(|p| p.as_str()).collect();
    let unclaimed: Vec<&str> = walked.unclaimed.iter().map(String::as_str).collect();
    let mut message = format!(
        "no file matched the output pattern{} {}",
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    );
    if let Some(hint) = drover_outputs::did_you_mean(&unmatched, &unclaimed) {
        message.push_str(&format!("; {hint}"));
    }
    fail(message)
}
