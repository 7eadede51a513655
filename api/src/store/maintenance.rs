//! The queries behind the reconciler and job cleanup.
//!
//! Reads that find candidates (QUEUED records that may have no queue entry, RUNNING jobs
//! whose heartbeat is stale, which job ids exist) and the batched delete of old finished
//! jobs with their logs. The decisions are made by the reconciler (`crate::reconcile`);
//! the moves themselves reuse the fenced lifecycle (release, mark enqueued).

use std::collections::HashMap;

use drover_core::{FencingToken, JobId, Route, State, StatusCode};

use super::db::{on_reader, on_writer};
use super::handle::Store;
use super::record::{now_us, stored_priority, QueuedRecord};
use crate::error::{Error, Result};

/// How many ids one `IN (...)` list binds (well under SQLite's and PostgreSQL's limits).
pub(crate) const ID_CHUNK: usize = 500;

/// A RUNNING job whose heartbeat is older than the threshold.
#[derive(Debug, Clone)]
pub(crate) struct StaleRun {
    pub(crate) id: JobId,
    pub(crate) token: Option<FencingToken>,
    pub(crate) executor: Option<String>,
    pub(crate) last_heartbeat_us: Option<i64>,
}

/// What one cleanup batch deleted.
#[derive(Debug, Clone)]
pub(crate) struct Deleted {
    pub(crate) jobs: u64,
    pub(crate) log_lines: u64,
    /// The artifact-store objects of the deleted outputs (the caller removes them).
    pub(crate) objects: Vec<String>,
}

/// `$first, $first+1, ...` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_id(text: &str) -> Result<JobId> {
    text.parse()
        .map_err(|err: drover_core::Error| Error::Corrupt {
            id: text.to_owned(),
            detail: err.to_string(),
        })
}

impl Store {
    /// QUEUED records ready to run (`CREATED` or `ENQUEUED`, not waiting on
    /// dependencies) created before `before_us`, at most `limit`: those never enqueued
    /// first (so a long backlog cannot hide them), then oldest first.
    ///
    /// # Errors
    /// Database errors; a stored id that is not a UUID.
    pub(crate) async fn queued_before(
        &self,
        before_us: i64,
        limit: i64,
    ) -> Result<Vec<QueuedRecord>> {
        let sql = format!(
            "SELECT id, priority, enqueued, action, requires FROM jobs WHERE state = '{queued}' \
             AND status_code IN ('{created}', '{enqueued}') AND COALESCE(ready_us, created_us) < $1 \
             ORDER BY enqueued, created_us LIMIT $2",
            queued = State::Queued,
            created = StatusCode::Created,
            enqueued = StatusCode::Enqueued,
        );
        let rows: Vec<(String, i64, bool, String, String)> = on_reader!(&self.pools, |pool| {
            sqlx::query_as(&sql)
                .bind(before_us)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter()
            .map(|(id, priority, enqueued, action, requires)| {
                let corrupt = |detail| Error::Corrupt {
                    id: id.clone(),
                    detail,
                };
                let priority = stored_priority(priority).map_err(corrupt)?;
                let route = Route::new(&action, requires.split_whitespace()).map_err(corrupt)?;
                Ok(QueuedRecord {
                    id: parse_id(&id)?,
                    priority,
                    enqueued,
                    route,
                })
            })
            .collect()
    }

    /// The actions of ENQUEUED jobs created before `before_us`.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn queued_actions(&self, before_us: i64) -> Result<Vec<String>> {
        let sql = format!(
            "SELECT DISTINCT action FROM jobs WHERE state = '{queued}' \
             AND status_code = '{enqueued}' AND created_us < $1",
            queued = State::Queued,
            enqueued = StatusCode::Enqueued,
        );
        Ok(on_reader!(&self.pools, |pool| {
            sqlx::query_scalar(&sql)
                .bind(before_us)
                .fetch_all(pool)
                .await
        })?)
    }

    /// Ends the ENQUEUED jobs of `action` created before `before_us` with
    /// `UNKNOWN_ACTION` and `message`; returns their ids.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn fail_unknown(
        &self,
        action: &str,
        before_us: i64,
        message: &str,
    ) -> Result<Vec<JobId>> {
        debug_assert!(drover_core::can_transition(
            StatusCode::Enqueued,
            StatusCode::UnknownAction
        ));
        let sql = format!(
            "UPDATE jobs SET state = '{failed}', status_code = '{unknown}', status_message = $1, \
             finished_us = $2 WHERE action = $3 AND state = '{queued}' \
             AND status_code = '{enqueued}' AND created_us < $4 RETURNING id",
            failed = State::Failed,
            unknown = StatusCode::UnknownAction,
            queued = State::Queued,
            enqueued = StatusCode::Enqueued,
        );
        let (action, message) = (action.to_owned(), message.to_owned());
        let ids: Vec<String> = on_writer!(&self.pools, move |conn| {
            sqlx::query_scalar(&sql)
                .bind(&message)
                .bind(now_us())
                .bind(&action)
                .bind(before_us)
                .fetch_all(&mut *conn)
                .await
        })?;
        if !ids.is_empty() {
            self.notify();
        }
        ids.iter().map(|id| parse_id(id)).collect()
    }

    /// RUNNING jobs whose last heartbeat is before `before_us` (or missing), at most
    /// `limit`.
    ///
    /// # Errors
    /// Database errors; a stored id that is not a UUID.
    pub(crate) async fn running_stale(&self, before_us: i64, limit: i64) -> Result<Vec<StaleRun>> {
        let sql = format!(
            "SELECT id, fencing_token, executor, last_heartbeat_us FROM jobs \
             WHERE state = '{running}' AND (last_heartbeat_us IS NULL OR last_heartbeat_us < $1) \
             ORDER BY last_heartbeat_us LIMIT $2",
            running = State::Running,
        );
        type Row = (String, Option<i64>, Option<String>, Option<i64>);
        let rows: Vec<Row> = on_reader!(&self.pools, |pool| {
            sqlx::query_as(&sql)
                .bind(before_us)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter()
            .map(|(id, token, executor, last_heartbeat_us)| {
                Ok(StaleRun {
                    id: parse_id(&id)?,
                    token: token.map(FencingToken::new),
                    executor,
                    last_heartbeat_us,
                })
            })
            .collect()
    }

    /// The state of each of `ids` that exists; absent ids have no record.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn states_of(&self, ids: &[JobId]) -> Result<HashMap<JobId, State>> {
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(ID_CHUNK) {
            let sql = format!(
                "SELECT id, state FROM jobs WHERE id IN ({})",
                placeholders(1, chunk.len())
            );
            let texts: Vec<String> = chunk.iter().map(JobId::to_string).collect();
            let rows: Vec<(String, String)> = on_reader!(&self.pools, |pool| {
                let mut query = sqlx::query_as(&sql);
                for id in &texts {
                    query = query.bind(id);
                }
                query.fetch_all(pool).await
            })?;
            for (id, state) in rows {
                let state =
                    state
                        .parse()
                        .map_err(|err: drover_core::UnknownState| Error::Corrupt {
                            id: id.clone(),
                            detail: err.to_string(),
                        })?;
                found.insert(parse_id(&id)?, state);
            }
        }
        Ok(found)
    }

    /// Deletes up to `batch` finished jobs (SUCCESS, FAILED, CANCELED) that finished
    /// before `before_us`, oldest first, with their log lines and outputs, in one
    /// transaction. A workspace's newest succeeded job of each action is kept, whatever
    /// its age: its outputs are the workspace's, and the next request skips it. Retries
    /// of a deleted job keep running but lose their `retry_of` link.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn delete_finished(&self, before_us: i64, batch: u32) -> Result<Deleted> {
        let select = format!(
            "SELECT id FROM jobs WHERE state IN ('{success}', '{failed}', '{canceled}') \
             AND finished_us < $1 AND NOT (workspace IS NOT NULL AND state = '{success}' \
             AND id = (SELECT n.id FROM jobs n WHERE n.workspace = jobs.workspace \
             AND n.pipeline_action = jobs.pipeline_action AND n.state = '{success}' \
             ORDER BY n.created_us DESC, n.id DESC LIMIT 1)) \
             ORDER BY finished_us, id LIMIT $2",
            success = State::Success,
            failed = State::Failed,
            canceled = State::Canceled,
        );
        let deleted = on_writer!(&self.pools, move |conn| {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let ids: Vec<String> = sqlx::query_scalar(&select)
                .bind(before_us)
                .bind(i64::from(batch))
                .fetch_all(&mut *tx)
                .await?;
            if ids.is_empty() {
                return Ok(Deleted {
                    jobs: 0,
                    log_lines: 0,
                    objects: Vec::new(),
                });
            }
            let list = placeholders(1, ids.len());
            let objects_sql = format!(
                "SELECT object FROM job_outputs WHERE job_id IN ({list}) AND object IS NOT NULL"
            );
            let mut objects = sqlx::query_scalar::<_, String>(&objects_sql);
            for id in &ids {
                objects = objects.bind(id);
            }
            let objects = objects.fetch_all(&mut *tx).await?;
            let statements = [
                format!("UPDATE jobs SET retry_of = NULL WHERE retry_of IN ({list})"),
                format!("DELETE FROM job_logs WHERE job_id IN ({list})"),
                format!("DELETE FROM job_outputs WHERE job_id IN ({list})"),
                format!("DELETE FROM jobs WHERE id IN ({list})"),
            ];
            let mut affected = [0u64; 4];
            for (sql, count) in statements.iter().zip(affected.iter_mut()) {
                let mut query = sqlx::query(sql);
                for id in &ids {
                    query = query.bind(id);
                }
                *count = query.execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Deleted {
                jobs: affected[3],
                log_lines: affected[1],
                objects,
            })
        })?;
        if deleted.jobs > 0 {
            self.notify();
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_from_first() {
        assert_eq!(placeholders(1, 3), "$1, $2, $3");
        assert_eq!(placeholders(4, 1), "$4");
    }
}
