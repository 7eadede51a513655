//! Where a job's files come from and go to. On a cluster, the API: the inputs a held
//! job may read, and the outputs it uploads under its token. For `drover local-run`, a
//! project directory: the code snapshot and the needed actions' outputs on disk, and a
//! staging directory the outputs are written to (published by the caller once the job's
//! success is recorded). Staging (`stage.rs`) and collection (`collect.rs`) are the same
//! code for both; only these ends differ.

use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::Mutex;

use bytes::Bytes;
use drover_client::ApiClient;
use drover_core::{FencingToken, JobId};
use drover_model::{CodeSnapshot, JobInputs, OutputFile};
use drover_outputs::{FileReport, ReleaseRules};
use futures::{Stream, StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;

use crate::outcome::Outcome;

/// Bytes as they arrive, or why they stopped.
pub(crate) type Body = Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

/// The API end, for the job held by `token`.
#[derive(Debug, Clone)]
pub(crate) struct Destination<'a> {
    pub(crate) api: &'a ApiClient,
    pub(crate) job: JobId,
    pub(crate) token: FencingToken,
}

/// The project-directory end of a local run's job.
#[derive(Debug)]
pub struct LocalFiles {
    /// The project directory: the needed actions' outputs are read from it, at their
    /// paths.
    pub root: PathBuf,
    /// The code snapshot (a tar made by [`drover_outputs::snapshot`]) and its hash.
    pub code: Option<(PathBuf, CodeSnapshot)>,
    /// The outputs of the jobs this one needs, as recorded when they ran.
    pub inputs: Vec<OutputFile>,
    /// Where this job's outputs are written.
    pub staging: PathBuf,
    /// The release checks `moderately_sensitive` outputs go through.
    pub rules: ReleaseRules,
    collected: Mutex<Vec<Collected>>,
}

/// One output a local job wrote, with what its check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collected {
    /// Its path under `/workspace` (and under the staging directory).
    pub path: String,
    /// Its declared level.
    pub level: String,
    /// Size, SHA-256, CSV counts, why it is withheld.
    pub report: FileReport,
}

impl LocalFiles {
    /// A job's ends: inputs from `root` (and `code`), outputs into `staging`.
    pub fn new(
        root: PathBuf,
        code: Option<(PathBuf, CodeSnapshot)>,
        inputs: Vec<OutputFile>,
        staging: PathBuf,
        rules: ReleaseRules,
    ) -> LocalFiles {
        LocalFiles {
            root,
            code,
            inputs,
            staging,
            rules,
            collected: Mutex::new(Vec::new()),
        }
    }

    /// The outputs written so far, in the order they were read.
    pub fn collected(&self) -> Vec<Collected> {
        drover_core::lock(&self.collected).clone()
    }
}

/// A job's two ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Files<'a> {
    Api(&'a Destination<'a>),
    Local(&'a LocalFiles),
}

/// Opens inputs, from a task of its own.
#[derive(Debug, Clone)]
pub(crate) enum Opener {
    Api(ApiClient),
    Local(PathBuf),
}

impl Files<'_> {
    /// What `/workspace` starts from; an outcome when it cannot be known.
    pub(crate) async fn inputs(&self) -> Result<JobInputs, Outcome> {
        match self {
            Files::Api(to) => to
                .api
                .job_inputs(to.job, to.token)
                .await
                .map_err(|e| api_failed("read the job's inputs", &e)),
            Files::Local(local) => Ok(JobInputs {
                code: local.code.as_ref().map(|(_, code)| code.clone()),
                files: local.inputs.clone(),
                hidden: 0,
            }),
        }
    }

    /// The code snapshot's bytes.
    pub(crate) async fn code(&self, code: &CodeSnapshot) -> Result<Body, Outcome> {
        match self {
            Files::Api(to) => to
                .api
                .download_code(&code.sha256)
                .await
                .map(api_body)
                .map_err(|e| api_failed("download the code snapshot", &e)),
            Files::Local(local) => {
                let path = local.code.as_ref().map(|(path, _)| path.clone());
                let path = path.ok_or_else(|| internal("no code snapshot was made".into()))?;
                file_body(&path)
                    .await
                    .map_err(|e| internal(format!("cannot read the code snapshot: {e}")))
            }
        }
    }

    pub(crate) fn opener(&self) -> Opener {
        match self {
            Files::Api(to) => Opener::Api(to.api.clone()),
            Files::Local(local) => Opener::Local(local.root.clone()),
        }
    }

    /// The job these files belong to, for logs.
    pub(crate) fn label(&self) -> String {
        match self {
            Files::Api(to) => to.job.to_string(),
            Files::Local(local) => local
                .staging
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        }
    }

    /// Takes one output: uploads it, or writes it into the staging directory with its
    /// check. The error is the outcome the job ends with.
    pub(crate) async fn put(
        &self,
        path: &str,
        level: &str,
        body: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    ) -> Result<(), Outcome> {
        match self {
            Files::Api(to) => to
                .api
                .upload_output(to.job, to.token, path, level, body)
                .await
                .map(drop)
                .map_err(|e| upload_failed(path, &e)),
            Files::Local(local) => {
                let report = write_checked(local, path, level, body)
                    .await
                    .map_err(|e| internal(format!("cannot write output {path}: {e}")))?;
                drover_core::lock(&local.collected).push(Collected {
                    path: path.to_owned(),
                    level: level.to_owned(),
                    report,
                });
                Ok(())
            }
        }
    }
}

impl Opener {
    /// The bytes of a needed job's output.
    pub(crate) async fn output(&self, file: &OutputFile) -> Result<Body, String> {
        match self {
            Opener::Api(api) => api
                .download_output(file.job_id, &file.path)
                .await
                .map(api_body)
                .map_err(|e| format!("output {} of job {}: {e}", file.path, file.job_id)),
            Opener::Local(root) => {
                let path = relative(root, &file.path)?;
                file_body(&path).await.map_err(|e| {
                    format!(
                        "output {} of action {}: {e}",
                        file.path,
                        file.action.as_deref().unwrap_or("?")
                    )
                })
            }
        }
    }
}

fn api_body(body: drover_client::ByteStream) -> Body {
    Box::pin(body.map_err(|e| e.to_string()))
}

async fn file_body(path: &Path) -> std::io::Result<Body> {
    let file = tokio::fs::File::open(path).await?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
    Ok(Box::pin(stream.map_err(|e| e.to_string())))
}

/// `path` (a workspace path from a tar or a record) under `root`, refusing anything but
/// plain names.
fn relative(root: &Path, path: &str) -> Result<PathBuf, String> {
    let relative = Path::new(path);
    if path.is_empty()
        || !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(format!("{path:?} is not a plain relative path"));
    }
    Ok(root.join(relative))
}

async fn write_checked(
    local: &LocalFiles,
    path: &str,
    level: &str,
    body: impl Stream<Item = std::io::Result<Bytes>> + Send,
) -> Result<FileReport, String> {
    let target = relative(&local.staging, path)?;
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut file = tokio::fs::File::create(&target)
        .await
        .map_err(|e| e.to_string())?;
    let mut check = local.rules.check_for(level, path);
    tokio::pin!(body);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        check.feed(&chunk);
        file.write_all(&chunk).await.map_err(|e| e.to_string())?;
    }
    file.flush().await.map_err(|e| e.to_string())?;
    Ok(check.finish())
}

fn internal(message: String) -> Outcome {
    Outcome::Finished {
        code: drover_core::StatusCode::InternalError,
        exit_code: None,
        message,
    }
}

fn api_failed(what: &str, e: &drover_client::ClientError) -> Outcome {
    if e.is_conflict() {
        return Outcome::Abandoned(crate::stop::StopReason::Fenced);
    }
    Outcome::Released(format!("cannot {what}: {e}; the job runs again"))
}

fn upload_failed(path: &str, e: &drover_client::ClientError) -> Outcome {
    if e.is_conflict() {
        return Outcome::Abandoned(crate::stop::StopReason::Fenced);
    }
    if e.is_unavailable() {
        return Outcome::Released(format!(
            "cannot upload output {path}: {e}; the job runs again"
        ));
    }
    Outcome::Finished {
        code: drover_core::StatusCode::InternalError,
        exit_code: Some(0),
        message: format!("the API refused output {path}: {e}"),
    }
}
