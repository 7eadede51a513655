//! A job's declared outputs (#15): files collected from its container's `/workspace`,
//! kept per sensitivity level in the API's artifact store.

use drover_core::JobId;
use serde::{Deserialize, Serialize};

/// One published output file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutputFile {
    /// The job that made it.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub job_id: JobId,
    /// The project's action that made it, for a pipeline job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Its path under `/workspace`.
    pub path: String,
    /// The level it was declared at: `highly_sensitive`, `moderately_sensitive` or
    /// `minimally_sensitive`.
    pub level: String,
    /// Bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of its bytes.
    pub sha256: String,
    /// Data rows of a CSV file (the header not counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv_rows: Option<u64>,
    /// Columns of a CSV file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv_columns: Option<u64>,
    /// Why a `moderately_sensitive` file failed the release checks: it is kept at
    /// `highly_sensitive` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withheld: Option<String>,
}

impl OutputFile {
    /// The level it may be read at: its own, or `highly_sensitive` when withheld.
    #[must_use]
    pub fn readable_at(&self) -> &str {
        if self.withheld.is_some() {
            "highly_sensitive"
        } else {
            &self.level
        }
    }
}

/// `GET /v1/jobs/{id}/outputs` and `GET /v1/workspaces/{name}/outputs`: the files the
/// caller's token may read, and how many it may not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutputList {
    /// Path order (a workspace's: by action, then path).
    pub files: Vec<OutputFile>,
    /// Files above the token's level, left out (never named).
    pub hidden: u64,
}

/// A stored code snapshot: a tar of a project directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CodeSnapshot {
    /// Lower-case hex SHA-256 of the tar.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// `GET /v1/jobs/{id}/inputs`: what a pipeline job's `/workspace` holds before it
/// starts: its request's code snapshot, then the outputs of the jobs it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobInputs {
    /// The code snapshot, when the request came with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<CodeSnapshot>,
    /// The published outputs of every job it needs, by action and path.
    pub files: Vec<OutputFile>,
    /// Files left out because the caller's token may not read them (`GET
    /// /v1/jobs/{id}/sources`; always 0 for the job's holder).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hidden: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}
