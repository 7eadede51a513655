//! Reading pipeline requests back: one with its jobs, the newest ones, by id prefix.

use std::collections::HashMap;

use drover_core::{JobId, State};

use super::db::on_reader;
use super::handle::Store;
use super::record::{JobRow, JOB_COLUMNS};
use crate::error::{Error, Result};
use drover_model::{Job, Progress};

/// A stored request.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct RequestRow {
    pub(crate) id: String,
    pub(crate) workspace: String,
    pub(crate) file_name: String,
    pub(crate) requested: String,
    pub(crate) force_run: bool,
    pub(crate) created_us: i64,
}

/// The request an idempotency key already names, as it was submitted.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct KeyedRequest {
    pub(crate) id: String,
    pub(crate) workspace: String,
    pub(crate) requested: String,
    pub(crate) force_run: bool,
    pub(crate) project: String,
    pub(crate) code_sha256: Option<String>,
}

const REQUEST_COLUMNS: &str = "id, workspace, file_name, requested, force_run, created_us";

impl Store {
    /// The request and its jobs, in creation order.
    ///
    /// # Errors
    /// [`Error::RequestNotFound`]; database errors.
    pub(crate) async fn request(&self, id: JobId) -> Result<(RequestRow, Vec<Job>)> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE id = $1");
        let jobs_sql =
            format!("SELECT {JOB_COLUMNS} FROM jobs WHERE request_id = $1 ORDER BY created_us, id");
        let (row, jobs): (Option<RequestRow>, Vec<JobRow>) = on_reader!(&self.pools, |pool| {
            let row = sqlx::query_as(&sql)
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?;
            let jobs = sqlx::query_as(&jobs_sql)
                .bind(id.to_string())
                .fetch_all(pool)
                .await?;
            Ok::<_, sqlx::Error>((row, jobs))
        })?;
        let row = row.ok_or_else(|| Error::RequestNotFound { id: id.to_string() })?;
        let jobs = jobs
            .into_iter()
            .map(JobRow::into_job)
            .collect::<Result<_>>()?;
        Ok((row, jobs))
    }

    /// Requests newest first, at most `limit`, optionally of one workspace, each with its
    /// jobs counted by state (one query for all of them).
    ///
    /// # Errors
    /// Database errors; a stored state this API never writes.
    pub(crate) async fn requests(
        &self,
        workspace: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(RequestRow, Progress)>> {
        let newest = "FROM requests WHERE ($1 = '' OR workspace = $1) \
             ORDER BY created_us DESC, id DESC LIMIT $2";
        let sql = format!("SELECT {REQUEST_COLUMNS} {newest}");
        let counts_sql = format!(
            "SELECT request_id, state, COUNT(*) FROM jobs \
             WHERE request_id IN (SELECT id {newest}) GROUP BY request_id, state"
        );
        let workspace = workspace.unwrap_or("");
        let (rows, counts): (Vec<RequestRow>, Vec<(String, String, i64)>) =
            on_reader!(&self.pools, |pool| {
                let rows = sqlx::query_as(&sql)
                    .bind(workspace)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                let counts = sqlx::query_as(&counts_sql)
                    .bind(workspace)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                Ok::<_, sqlx::Error>((rows, counts))
            })?;
        let mut progress: HashMap<String, Progress> = HashMap::new();
        for (id, state, n) in counts {
            let state: State =
                state
                    .parse()
                    .map_err(|e: drover_core::UnknownState| Error::Corrupt {
                        id: id.clone(),
                        detail: e.to_string(),
                    })?;
            let entry = progress.entry(id).or_default();
            for _ in 0..n {
                entry.add(state);
            }
        }
        Ok(rows
            .into_iter()
            .map(|row| {
                let counted = progress.remove(&row.id).unwrap_or_default();
                (row, counted)
            })
            .collect())
    }

    /// Requests whose id starts with `fragment` (lowercase hex and hyphens), newest first.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn resolve_request(&self, fragment: &str) -> Result<Vec<RequestRow>> {
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM requests WHERE id >= $1 AND id < $2 \
             ORDER BY created_us DESC, id DESC LIMIT 21"
        );
        let upper = format!("{fragment}g");
        let rows = on_reader!(&self.pools, |pool| {
            sqlx::query_as(&sql)
                .bind(fragment)
                .bind(&upper)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows)
    }
}
