//! The artifact store (#15): output files' bytes, content-addressed by SHA-256, in an
//! object store — a local directory by default, any S3-compatible store when the API
//! runs as several replicas. Bytes stream through in both directions; nothing holds a
//! whole file.
//!
//! Each output file is an object of its own (`outputs/<uuid>`, named in its row), so
//! removing a superseded job's files can never take bytes another row names. A code
//! snapshot is kept once by its SHA-256 (`code/ab/<sha>`): an unchanged project is not
//! sent twice. Either exists whole or not at all.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::startup::{StartError, StartResult};

/// `[api.artifacts]`: where output files are kept, and how much a job may upload.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArtifactsConfig {
    /// A local directory; default `<database file>.artifacts` beside a SQLite database,
    /// else `artifacts` in the working directory. One API process only: replicas on
    /// PostgreSQL need `s3`.
    pub dir: Option<PathBuf>,
    /// An S3-compatible store instead of `dir`.
    pub s3: Option<S3Config>,
    /// Bytes one output file may hold (default 10 GiB); a job's total is capped by its
    /// executor (`executor.max_output_bytes`).
    pub max_job_bytes: u64,
    /// Bytes of one code snapshot (default 256 MiB).
    pub max_code_bytes: u64,
    /// The release checks `moderately_sensitive` files must pass.
    pub release: drover_outputs::ReleaseRules,
}

impl Default for ArtifactsConfig {
    fn default() -> Self {
        ArtifactsConfig {
            dir: None,
            s3: None,
            max_job_bytes: 10 << 30,
            max_code_bytes: 256 << 20,
            release: drover_outputs::ReleaseRules::default(),
        }
    }
}

impl fmt::Debug for ArtifactsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArtifactsConfig")
            .field("dir", &self.dir)
            .field("s3", &self.s3)
            .field("max_job_bytes", &self.max_job_bytes)
            .field("max_code_bytes", &self.max_code_bytes)
            .finish_non_exhaustive()
    }
}

/// `[api.artifacts.s3]`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket (it must exist).
    pub bucket: String,
    /// `https://s3.eu-west-2.amazonaws.com`, or a compatible server's URL.
    pub endpoint: Option<String>,
    /// Default `us-east-1`.
    #[serde(default = "default_region")]
    pub region: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret; best given as `DROVER_API__ARTIFACTS__S3__SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// Allow an `http://` endpoint (a server on a private network).
    #[serde(default)]
    pub allow_http: bool,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .finish_non_exhaustive()
    }
}

/// Which blobs: outputs (read by level) and code snapshots (read by anyone who may read
/// jobs) are kept apart, so knowing an output's hash never reads it through the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Space {
    Outputs,
    Code,
}

/// Bytes buffered per part of an upload (S3's smallest part but the last).
const PART_BYTES: usize = 5 << 20;

/// How much one upload may hold, and what to say past it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limit {
    pub(crate) bytes: u64,
    pub(crate) what: &'static str,
    pub(crate) hint: &'static str,
}

/// The open store. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Artifacts {
    store: Arc<dyn ObjectStore>,
}

fn start_error(key: &str, reason: impl fmt::Display) -> StartError {
    StartError::InvalidConfig {
        key: format!("api.artifacts.{key}"),
        reason: reason.to_string(),
    }
}

impl Artifacts {
    /// Opens the configured store (creating a local directory).
    ///
    /// # Errors
    /// [`StartError::InvalidConfig`] naming the key and what is wrong.
    pub(crate) fn open(config: &ArtifactsConfig, database_url: &str) -> StartResult<Artifacts> {
        config
            .release
            .validate()
            .map_err(|e| start_error("release", e))?;
        let store: Arc<dyn ObjectStore> = match &config.s3 {
            Some(s3) => {
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_access_key_id(&s3.access_key_id)
                    .with_secret_access_key(&s3.secret_access_key)
                    .with_allow_http(s3.allow_http);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false);
                }
                Arc::new(builder.build().map_err(|e| start_error("s3", e))?)
            }
            None => {
                let dir = config
                    .dir
                    .clone()
                    .unwrap_or_else(|| default_dir(database_url));
                std::fs::create_dir_all(&dir).map_err(|e| {
                    start_error("dir", format!("cannot create {}: {e}", dir.display()))
                })?;
                let local =
                    LocalFileSystem::new_with_prefix(&dir).map_err(|e| start_error("dir", e))?;
                Arc::new(local)
            }
        };
        Ok(Artifacts { store })
    }

    /// Streams `body` into the store through `check`, at most `limit.bytes`, each chunk
    /// within `idle` of the last; returns what the check found and the object's name. A
    /// code snapshot whose bytes do not hash to `expected` is refused and not kept.
    /// An output gets an object of its own (`outputs/<uuid>`: deleting one row's object
    /// can never take another's bytes); a code snapshot is written under `tmp/` while it
    /// is hashed, then kept once by its SHA-256 (`code/ab/<sha>`). Nothing is visible
    /// at an object's name unless the whole body arrived.
    ///
    /// # Errors
    /// [`Error::TooLarge`] past `limit`; [`Error::BodyTimeout`] for a stalled body;
    /// [`Error::Unavailable`] when the store fails.
    pub(crate) async fn ingest<S, E>(
        &self,
        space: Space,
        expected: Option<&str>,
        body: S,
        mut check: drover_outputs::FileCheck,
        limit: Limit,
        idle: Duration,
    ) -> Result<(drover_outputs::FileReport, String)>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: fmt::Display,
    {
        let first = match space {
            Space::Outputs => Path::from(format!("outputs/{}", uuid::Uuid::new_v4())),
            Space::Code => Path::from(format!("tmp/{}", uuid::Uuid::new_v4())),
        };
        // S3's smallest part, two in flight: an upload holds ~15 MiB at most, whatever
        // its size (the defaults, 10 MiB × 8, let one upload hold 90 MiB)
        let mut writer = BufWriter::with_capacity(self.store.clone(), first.clone(), PART_BYTES)
            .with_max_concurrency(2);
        let written = self
            .copy_in(body, &mut check, &mut writer, limit, idle)
            .await;
        if let Err(e) = written {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.shutdown().await.map_err(store_error)?;
        let report = check.finish();
        if space == Space::Outputs {
            return Ok((report, first.to_string()));
        }
        if expected.is_some_and(|sha| sha != report.sha256) {
            // never kept under a name nobody asked for
            let _ = self.store.delete(&first).await;
            return Err(Error::InvalidInput {
                field: "body".into(),
                reason: format!(
                    "the bytes hash to {}, not {}: send the snapshot the path names",
                    report.sha256,
                    expected.unwrap_or_default()
                ),
            });
        }
        let blob = blob_path(space, &report.sha256);
        let kept = match self.store.head(&blob).await {
            Ok(_) => self.store.delete(&first).await,
            Err(object_store::Error::NotFound { .. }) => self.store.rename(&first, &blob).await,
            Err(e) => Err(e),
        };
        kept.map_err(store_error)?;
        Ok((report, blob.to_string()))
    }

    async fn copy_in<S, E>(
        &self,
        mut body: S,
        check: &mut drover_outputs::FileCheck,
        writer: &mut BufWriter,
        limit: Limit,
        idle: Duration,
    ) -> Result<()>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: fmt::Display,
    {
        let mut seen: u64 = 0;
        loop {
            let chunk = match tokio::time::timeout(idle, body.next()).await {
                Err(_) => return Err(Error::BodyTimeout { timeout: idle }),
                Ok(None) => return Ok(()),
                Ok(Some(Err(e))) => {
                    return Err(Error::InvalidInput {
                        field: "body".into(),
                        reason: format!("the upload broke off: {e}"),
                    })
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            seen += chunk.len() as u64;
            if seen > limit.bytes {
                return Err(Error::TooLarge {
                    what: limit.what,
                    limit: usize::try_from(limit.bytes).unwrap_or(usize::MAX),
                    hint: limit.hint,
                });
            }
            check.feed(&chunk);
            writer.write_all(&chunk).await.map_err(store_error)?;
        }
    }

    /// The size of blob `sha256`, when the store has it.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store fails.
    pub(crate) async fn size_of(&self, space: Space, sha256: &str) -> Result<Option<u64>> {
        match self.store.head(&blob_path(space, sha256)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    /// The bytes of blob `sha256` of `space`, streamed.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store fails or the blob is missing.
    pub(crate) async fn read(
        &self,
        space: Space,
        sha256: &str,
    ) -> Result<BoxStream<'static, std::result::Result<Bytes, object_store::Error>>> {
        self.read_object(blob_path(space, sha256).as_ref()).await
    }

    /// The bytes of object `name` (as [`Artifacts::ingest`] named it), streamed.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store fails or the object is missing.
    pub(crate) async fn read_object(
        &self,
        name: &str,
    ) -> Result<BoxStream<'static, std::result::Result<Bytes, object_store::Error>>> {
        let got = self
            .store
            .get(&Path::from(name))
            .await
            .map_err(store_error)?;
        Ok(got.into_stream())
    }

    /// Deletes object `name`; one already gone is no error.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store fails.
    pub(crate) async fn delete_object(&self, name: &str) -> Result<()> {
        match self.store.delete(&Path::from(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }
}

/// `<file>.artifacts` beside a SQLite database file, else `artifacts`.
fn default_dir(database_url: &str) -> PathBuf {
    let file = database_url
        .trim()
        .strip_prefix("sqlite://")
        .map(|rest| rest.split('?').next().unwrap_or(rest))
        .filter(|file| !file.is_empty() && !file.starts_with(':'));
    match file {
        Some(file) => PathBuf::from(format!("{file}.artifacts")),
        None => PathBuf::from("artifacts"),
    }
}

/// Where blob `sha256` lives: `blobs/ab/abcdef…` (an output), `code/ab/abcdef…`.
fn blob_path(space: Space, sha256: &str) -> Path {
    let prefix = sha256.get(..2).unwrap_or("00");
    let top = match space {
        Space::Outputs => "blobs",
        Space::Code => "code",
    };
    Path::from(format!("{top}/{prefix}/{sha256}"))
}

fn store_error(e: impl fmt::Display) -> Error {
    Error::Unavailable {
        dependency: "the artifact store",
        detail: e.to_string(),
    }
}
