//! A job's runs, as the triggers of migration 0009 record them in `job_attempts`.

use drover_core::JobId;

use super::db::on_reader;
use super::handle::Store;
use super::record::rfc3339;
use crate::error::Result;
use drover_model::Attempt;

const ATTEMPTS_SQL: &str =
    "SELECT attempt, executor, token, started_us, ended_us, outcome, message \
    FROM job_attempts WHERE job_id = $1 ORDER BY attempt";

/// One stored row of `job_attempts`.
type AttemptRow = (
    i64,
    Option<String>,
    Option<i64>,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
);

impl Store {
    /// Every run of job `id`, first first.
    ///
    /// # Errors
    /// [`crate::Error::JobNotFound`]; database errors.
    pub(crate) async fn attempts(&self, id: JobId) -> Result<Vec<Attempt>> {
        self.row(id).await?;
        let rows: Vec<AttemptRow> = on_reader!(&self.pools, |pool| {
            sqlx::query_as(ATTEMPTS_SQL)
                .bind(id.to_string())
                .fetch_all(pool)
                .await
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(attempt, executor, token, started_us, ended_us, outcome, message)| Attempt {
                    attempt: u32::try_from(attempt).unwrap_or_default(),
                    executor,
                    token,
                    started_at: rfc3339(started_us),
                    ended_at: ended_us.map(rfc3339),
                    outcome,
                    message,
                },
            )
            .collect())
    }
}
