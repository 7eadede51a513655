//! A job's outputs (#15): rows written per attempt while the job runs, visible once the
//! job succeeded under that attempt's token.

use drover_core::{FencingToken, JobId};
use drover_model::OutputFile;
use sqlx::FromRow;

use super::db::{on_reader, on_writer};
use super::decide::{refuse_write, Step};
use super::handle::{not_found, Store};
use super::lifecycle::current;
use super::record::{now_us, JobRow};
use crate::error::{Error, Result};

/// Records a file for the holder of `token` of running job `$1`; nothing when the fence
/// does not hold (the caller then reads the row to say why).
const INSERT_SQL: &str = "INSERT INTO job_outputs \
    (job_id, token, path, level, size, sha256, csv_rows, csv_columns, withheld, created_us, object) \
    SELECT id, fencing_token, $3, $4, $5, $6, $7, $8, $9, $10, $11 FROM jobs \
    WHERE id = $1 AND fencing_token = $2 AND state = 'RUNNING' \
    ON CONFLICT (job_id, token, path) DO UPDATE SET level = excluded.level, \
    size = excluded.size, sha256 = excluded.sha256, csv_rows = excluded.csv_rows, \
    csv_columns = excluded.csv_columns, withheld = excluded.withheld, \
    created_us = excluded.created_us, object = excluded.object";

/// The columns of a published output, with its job's action and where its bytes are.
const SELECT: &str = "SELECT o.job_id, j.pipeline_action, o.path, o.level, o.size, o.sha256, \
    o.csv_rows, o.csv_columns, o.withheld, o.object FROM job_outputs o JOIN jobs j ON j.id = o.job_id \
    AND o.token = j.fencing_token AND j.state = 'SUCCESS'";

/// A file as uploaded, before it is recorded.
#[derive(Debug, Clone)]
pub(crate) struct NewOutput {
    pub(crate) path: String,
    pub(crate) level: String,
    pub(crate) size: u64,
    pub(crate) sha256: String,
    pub(crate) csv: Option<(u64, u64)>,
    pub(crate) withheld: Option<String>,
    /// Its object in the artifact store.
    pub(crate) object: String,
}

#[derive(Debug, FromRow)]
struct OutputRow {
    job_id: String,
    pipeline_action: Option<String>,
    path: String,
    level: String,
    size: i64,
    sha256: String,
    csv_rows: Option<i64>,
    csv_columns: Option<i64>,
    withheld: Option<String>,
    /// `None` for rows written before objects were named (their bytes are by SHA-256).
    object: Option<String>,
}

impl OutputRow {
    fn into_file(self) -> Result<OutputFile> {
        let unsigned = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(OutputFile {
            job_id: self
                .job_id
                .parse()
                .map_err(|e| Error::Internal(format!("stored output job id: {e}")))?,
            action: self.pipeline_action,
            path: self.path,
            level: self.level,
            size: unsigned(self.size),
            sha256: self.sha256,
            csv_rows: self.csv_rows.map(unsigned),
            csv_columns: self.csv_columns.map(unsigned),
            withheld: self.withheld,
        })
    }
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    /// Records `file` for the holder of `token`; a second upload of one path in one
    /// attempt replaces the first.
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; 409s when `token` does not hold the running job; database
    /// errors.
    pub(crate) async fn record_output(
        &self,
        id: JobId,
        token: FencingToken,
        file: NewOutput,
    ) -> Result<()> {
        let (sql, id_text) = (self.sql.clone(), id.to_string());
        let step = on_writer!(&self.pools, move |conn| {
            let done = sqlx::query(INSERT_SQL)
                .bind(&id_text)
                .bind(token.get())
                .bind(&file.path)
                .bind(&file.level)
                .bind(signed(file.size))
                .bind(&file.sha256)
                .bind(file.csv.map(|(rows, _)| signed(rows)))
                .bind(file.csv.map(|(_, columns)| signed(columns)))
                .bind(&file.withheld)
                .bind(now_us())
                .bind(&file.object)
                .execute(&mut *conn)
                .await?;
            if done.rows_affected() > 0 {
                return Ok(Ok(()));
            }
            let row: Option<JobRow> = current!(&mut *conn, sql, id_text)?;
            Ok::<_, sqlx::Error>(Err(match row {
                None => Step::Fail(not_found(id)),
                Some(row) => refuse_write(&row, token, None),
            }))
        })?;
        match step {
            Ok(()) => Ok(()),
            Err(Step::Fail(e)) => Err(e),
            Err(_) => Err(Error::Internal(
                "an output of a running job was neither recorded nor refused".into(),
            )),
        }
    }

    /// Checks that `token` holds running job `id` (before an upload starts).
    ///
    /// # Errors
    /// As [`Store::record_output`].
    pub(crate) async fn check_holder(&self, id: JobId, token: FencingToken) -> Result<()> {
        let row = self.row(id).await?;
        match refuse_write(&row, token, None) {
            Step::Fail(e) => Err(e),
            _ => Ok(()),
        }
    }

    /// The published outputs of job `id`, by path.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn job_outputs(&self, id: JobId) -> Result<Vec<OutputFile>> {
        let sql = format!("{SELECT} WHERE o.job_id = $1 ORDER BY o.path");
        let rows: Vec<OutputRow> = on_reader!(&self.pools, |pool| {
            sqlx::query_as(&sql)
                .bind(id.to_string())
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(OutputRow::into_file).collect()
    }

    /// A workspace's outputs: for each action, those of its newest succeeded job.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn workspace_outputs(&self, workspace: &str) -> Result<Vec<OutputFile>> {
        let sql = format!(
            "{SELECT} WHERE j.workspace = $1 AND j.id = (SELECT n.id FROM jobs n \
             WHERE n.workspace = j.workspace AND n.pipeline_action = j.pipeline_action \
             AND n.state = 'SUCCESS' ORDER BY n.created_us DESC, n.id DESC LIMIT 1) \
             ORDER BY j.pipeline_action, o.path"
        );
        let rows: Vec<OutputRow> = on_reader!(&self.pools, |pool| {
            sqlx::query_as(&sql)
                .bind(workspace.to_owned())
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(OutputRow::into_file).collect()
    }

    /// What job `id` starts from: its request's code snapshot, and the published outputs
    /// of the jobs it needs (by action, then path).
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn job_inputs(&self, id: JobId) -> Result<(Option<String>, Vec<OutputFile>)> {
        let sql = format!(
            "{SELECT} WHERE o.job_id IN (SELECT needs_id FROM job_needs WHERE job_id = $1) \
             ORDER BY j.pipeline_action, o.path"
        );
        let id_text = id.to_string();
        let (code, rows) = on_reader!(&self.pools, |pool| {
            let code: Option<(Option<String>,)> = sqlx::query_as(
                "SELECT r.code_sha256 FROM jobs j JOIN requests r ON r.id = j.request_id \
                 WHERE j.id = $1",
            )
            .bind(&id_text)
            .fetch_optional(pool)
            .await?;
            let rows: Vec<OutputRow> = sqlx::query_as(&sql).bind(&id_text).fetch_all(pool).await?;
            Ok::<_, sqlx::Error>((code.and_then(|(c,)| c), rows))
        })?;
        let files = rows
            .into_iter()
            .map(OutputRow::into_file)
            .collect::<Result<_>>()?;
        Ok((code, files))
    }

    /// Where the bytes of job `id`'s published output `path` are, with the file.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn output_object(
        &self,
        id: JobId,
        path: &str,
    ) -> Result<Option<(OutputFile, Option<String>)>> {
        let sql = format!("{SELECT} WHERE o.job_id = $1 AND o.path = $2");
        let (id_text, path) = (id.to_string(), path.to_owned());
        let row: Option<OutputRow> = on_reader!(&self.pools, |pool| {
            sqlx::query_as(&sql)
                .bind(&id_text)
                .bind(&path)
                .fetch_optional(pool)
                .await
        })?;
        row.map(|mut r| {
            let object = r.object.take();
            Ok((r.into_file()?, object))
        })
        .transpose()
    }
}
