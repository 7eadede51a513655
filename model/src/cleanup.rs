//! Deleting history: one batch of finished jobs past a retention.

use serde::{Deserialize, Serialize};

/// `POST /v1/admin/cleanup`: delete one batch of finished jobs older than a retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cleanup {
    /// Jobs that finished more than this many seconds ago are deleted (at least 1).
    pub older_than_secs: u64,
    /// At most this many jobs in this call (1–10000, default 1000).
    #[serde(default)]
    pub batch: Option<u32>,
}

/// What one cleanup batch deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CleanedUp {
    /// Jobs deleted.
    pub deleted_jobs: u64,
    /// Their log lines, deleted with them.
    pub deleted_log_lines: u64,
    /// Their output files, deleted from the artifact store (a workspace's newest
    /// succeeded job of each action is kept, whatever its age).
    #[serde(default)]
    pub deleted_outputs: u64,
    /// The batch was full: call again for the next one.
    pub more: bool,
    /// Jobs that finished before this time (RFC 3339) were eligible.
    pub cutoff: String,
}
