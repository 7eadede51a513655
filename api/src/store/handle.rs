//! The store handle: opening the database, and creating, reading, listing and resolving
//! records.

use std::sync::Arc;

use drover_core::{JobId, Priority, State};
use tokio::sync::{mpsc, watch};

use super::db::{on_reader, on_writer, Pools};
use super::record::{now_us, JobRow, QueuedRecord, JOB_COLUMNS};
use super::statements::{self, Statements};
use crate::config::ApiConfig;
use crate::error::{Error, Result};
use crate::startup::StartResult;
use drover_model::Job;

/// How many candidates a partial id lists.
pub(crate) const MAX_CANDIDATES: usize = 20;

/// The job store on SQLite or PostgreSQL. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    pub(crate) pools: Pools,
    pub(crate) sql: Arc<Sql>,
    /// Bumped after every log append and every move to a terminal state, so log
    /// followers in this process wake up at once (others poll).
    changes: Arc<watch::Sender<u64>>,
    /// Jobs that became ready for the queue (their dependencies succeeded) in a
    /// committed operation; the API's enqueuer puts them on it.
    ready: mpsc::UnboundedSender<QueuedRecord>,
    ready_rx: Arc<std::sync::Mutex<Option<mpsc::UnboundedReceiver<QueuedRecord>>>>,
}

/// SQL texts built once.
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) fenced: Statements,
    pub(crate) insert: String,
    pub(crate) cas: String,
    pub(crate) request_cancel: String,
    pub(crate) request_kill: String,
    pub(crate) get: String,
    pub(crate) by_key: String,
    pub(crate) prefix: String,
    pub(crate) substring: String,
    /// List queries by which filters are set: `[none, state, action, both]`.
    pub(crate) list: [String; 16],
}

/// The status message of a job committed but not yet put on the queue.
pub(crate) const CREATED_MESSAGE: &str = "committed; not yet on the queue";

/// The status message of a job its submit (or the reconciler) put on the queue.
pub(crate) const ENQUEUED_MESSAGE: &str = "on the queue, waiting for an executor";

/// A record to create.
#[derive(Debug, Clone)]
pub(crate) struct NewJob {
    pub(crate) action: String,
    /// The parameters as JSON text.
    pub(crate) params: String,
    pub(crate) priority: Priority,
    pub(crate) max_attempts: u32,
    pub(crate) timeout_secs: u64,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) retry_of: Option<JobId>,
    /// Tags an executor must carry, sorted.
    pub(crate) requires: Vec<String>,
}

/// What a create did.
#[derive(Debug)]
pub(crate) enum Created {
    /// A new record.
    New(Job),
    /// The idempotency key was taken: the existing record.
    Existing(Job),
}

/// Which jobs to list.
#[derive(Debug, Default, Clone)]
pub(crate) struct ListFilter {
    pub(crate) state: Option<State>,
    pub(crate) action: Option<String>,
    /// Only the jobs of this pipeline request (its whole id).
    pub(crate) request: Option<String>,
    /// Only the pipeline jobs of this workspace.
    pub(crate) workspace: Option<String>,
    /// Only jobs strictly after this position (newest first).
    pub(crate) after: Option<(i64, String)>,
    pub(crate) limit: u32,
}

impl Store {
    /// Opens the configured database, migrated.
    ///
    /// # Errors
    /// As [`Pools::open`].
    pub(crate) async fn open(config: &ApiConfig) -> StartResult<Store> {
        let pools = Pools::open(config).await?;
        // One statement per combination of filters (bit 0 state, 1 action, 2 request,
        // 3 workspace), each filter's value bound in that order after the cursor.
        let list_sql = |mask: usize| {
            let mut sql = format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE (created_us < $1 OR (created_us = $1 AND id < $2))"
            );
            let columns = ["state", "action", "request_id", "workspace"];
            let mut n = 3;
            for (bit, column) in columns.iter().enumerate() {
                if mask & (1 << bit) != 0 {
                    n += 1;
                    sql.push_str(&format!(" AND {column} = ${n}"));
                }
            }
            sql.push_str(" ORDER BY created_us DESC, id DESC LIMIT $3");
            sql
        };
        let sql = Sql {
            fenced: Statements::new(),
            insert: statements::insert(),
            cas: statements::transition_cas(),
            request_cancel: statements::request("cancel_requested"),
            request_kill: statements::request("kill_requested"),
            get: format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"),
            by_key: format!("SELECT {JOB_COLUMNS} FROM jobs WHERE idempotency_key = $1"),
            prefix: format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE id >= $1 AND id < $2 \
                 ORDER BY created_us DESC, id DESC LIMIT $3"
            ),
            substring: format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE id LIKE $1 \
                 ORDER BY created_us DESC, id DESC LIMIT $2"
            ),
            list: std::array::from_fn(list_sql),
        };
        let (ready, ready_rx) = mpsc::unbounded_channel();
        Ok(Store {
            pools,
            sql: Arc::new(sql),
            changes: Arc::new(watch::channel(0).0),
            ready,
            ready_rx: Arc::new(std::sync::Mutex::new(Some(ready_rx))),
        })
    }

    /// Closes the pools.
    pub(crate) async fn close(&self) {
        self.pools.close().await;
    }

    /// Whether the database answers.
    pub(crate) async fn ping(&self) -> Result<()> {
        self.pools.ping().await
    }

    /// A receiver that changes after log appends and terminal moves.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub(crate) fn notify(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Hands committed ready jobs to the enqueuer (see [`Store::take_ready`]).
    pub(crate) fn ready(&self, records: Vec<QueuedRecord>) {
        for record in records {
            // Without an enqueuer (it stopped), the reconciler enqueues them.
            let _ = self.ready.send(record);
        }
    }

    /// The receiving end of [`Store::ready`], once: the API's enqueuer owns it.
    pub(crate) fn take_ready(&self) -> Option<mpsc::UnboundedReceiver<QueuedRecord>> {
        drover_core::lock(&self.ready_rx).take()
    }

    /// Commits a new record, `CREATED` and not enqueued; with a taken idempotency
    /// key, answers the existing record instead.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn create(&self, new: &NewJob) -> Result<Created> {
        let retry_of = new.retry_of.map(|id| id.to_string());
        let (sql, new) = (self.sql.clone(), new.clone());
        let created = on_writer!(&self.pools, move |conn| {
            let inserted = sqlx::query_as::<_, JobRow>(&sql.insert)
                .bind(JobId::new().to_string())
                .bind(&new.action)
                .bind(&new.params)
                .bind(i64::from(new.priority.get()))
                .bind(CREATED_MESSAGE)
                .bind(i64::from(new.max_attempts))
                .bind(i64::try_from(new.timeout_secs).unwrap_or(i64::MAX))
                .bind(now_us())
                .bind(&new.idempotency_key)
                .bind(&retry_of)
                .bind(new.requires.join(" "))
                .fetch_optional(&mut *conn)
                .await?;
            if let Some(row) = inserted {
                return Ok((row, true));
            }
            // The key is taken (the insert did nothing): the record that holds it. Read
            // on the writing connection, which sees it even within the same batch.
            let existing = sqlx::query_as::<_, JobRow>(&sql.by_key)
                .bind(&new.idempotency_key)
                .fetch_one(&mut *conn)
                .await?;
            Ok::<_, sqlx::Error>((existing, false))
        })?;
        Ok(match created {
            (row, true) => Created::New(row.into_job()?),
            (row, false) => Created::Existing(row.into_job()?),
        })
    }

    /// Records that the job's id is on the queue (`CREATED` → `ENQUEUED`).
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; database errors.
    pub(crate) async fn mark_enqueued(&self, id: JobId) -> Result<Job> {
        let (sql, id_text) = (self.sql.clone(), id.to_string());
        let row = on_writer!(&self.pools, move |conn| {
            sqlx::query_as::<_, JobRow>(&sql.fenced.mark_enqueued)
                .bind(&id_text)
                .bind(ENQUEUED_MESSAGE)
                .fetch_optional(&mut *conn)
                .await
        })?;
        row.ok_or_else(|| not_found(id))?.into_job()
    }

    /// The stored row.
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; database errors.
    pub(crate) async fn row(&self, id: JobId) -> Result<JobRow> {
        let row: Option<JobRow> = on_reader!(&self.pools, |pool| {
            sqlx::query_as(&self.sql.get)
                .bind(id.to_string())
                .fetch_optional(pool)
                .await
        })?;
        row.ok_or_else(|| not_found(id))
    }

    /// The job.
    ///
    /// # Errors
    /// As [`Store::row`].
    pub(crate) async fn get(&self, id: JobId) -> Result<Job> {
        self.row(id).await?.into_job()
    }

    /// Jobs newest first, and the position of the last one when there may be more.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn list(
        &self,
        filter: &ListFilter,
    ) -> Result<(Vec<Job>, Option<(i64, String)>)> {
        let (before_us, before_id) = filter.after.clone().unwrap_or((i64::MAX, String::new()));
        let state = filter.state.map(State::as_str);
        let filters = [
            state,
            filter.action.as_deref(),
            filter.request.as_deref(),
            filter.workspace.as_deref(),
        ];
        let which = filters
            .iter()
            .enumerate()
            .filter(|(_, f)| f.is_some())
            .map(|(bit, _)| 1 << bit)
            .sum::<usize>();
        let sql = &self.sql.list[which];
        let limit = i64::from(filter.limit);
        let rows: Vec<JobRow> = on_reader!(&self.pools, |pool| {
            let mut query = sqlx::query_as(sql)
                .bind(before_us)
                .bind(&before_id)
                .bind(limit + 1);
            for value in filters.iter().flatten() {
                query = query.bind(*value);
            }
            query.fetch_all(pool).await
        })?;
        let more = rows.len() > usize::try_from(filter.limit).unwrap_or(usize::MAX);
        let mut jobs = Vec::with_capacity(rows.len());
        let mut last = None;
        for row in rows.into_iter().take(filter.limit as usize) {
            last = Some((row.created_us, row.id.clone()));
            jobs.push(row.into_job()?);
        }
        Ok((jobs, if more { last } else { None }))
    }

    /// Jobs whose id starts with `fragment` or, when none does, contains it; newest
    /// first, at most [`MAX_CANDIDATES`] + 1 (so callers can tell "more").
    ///
    /// `fragment` must be lowercase hex digits and hyphens (the caller checks).
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn resolve(&self, fragment: &str) -> Result<Vec<Job>> {
        let limit = i64::try_from(MAX_CANDIDATES + 1).unwrap_or(21);
        // 'g' sorts after every character of an id, so [fragment, fragment+"g") is
        // exactly the ids starting with it (byte order; PostgreSQL ids are COLLATE "C").
        let upper = format!("{fragment}g");
        let mut rows: Vec<JobRow> = on_reader!(&self.pools, |pool| {
            sqlx::query_as(&self.sql.prefix)
                .bind(fragment)
                .bind(&upper)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        if rows.is_empty() {
            let pattern = format!("%{fragment}%");
            rows = on_reader!(&self.pools, |pool| {
                sqlx::query_as(&self.sql.substring)
                    .bind(&pattern)
                    .bind(limit)
                    .fetch_all(pool)
                    .await
            })?;
        }
        rows.into_iter().map(JobRow::into_job).collect()
    }

    /// How many jobs are in each state (every state listed, zeros included).
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn count_by_state(&self) -> Result<Vec<(State, i64)>> {
        let rows: Vec<(String, i64)> = on_reader!(&self.pools, |pool| {
            sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state")
                .fetch_all(pool)
                .await
        })?;
        Ok(State::ALL
            .iter()
            .map(|&state| {
                let n = rows
                    .iter()
                    .find(|(name, _)| name == state.as_str())
                    .map_or(0, |(_, n)| *n);
                (state, n)
            })
            .collect())
    }
}

/// The 404 for `id`.
pub(crate) fn not_found(id: JobId) -> Error {
    Error::JobNotFound { id: id.to_string() }
}
