//! A job's log: fenced, capped appends and paged reads.

use std::borrow::Cow;
use std::sync::Arc;

use drover_core::{FencingToken, JobId};
use sqlx::{Connection, QueryBuilder};

use super::db::{on_reader, on_writer};
use super::decide::{refuse_write, Step};
use super::handle::{not_found, Store};
use super::lifecycle::{busy, current, RETRIES};
use super::record::JobRow;
use crate::error::Result;
use drover_model::{LogLine, LogPage, LogsAppended, StoredLogLine};

/// Rows per `INSERT` statement (4 parameters each, far below both databases' limits).
const ROWS_PER_INSERT: usize = 256;

/// Takes the row lock (PostgreSQL) and checks the fence in one statement; the
/// no-op `SET` makes concurrent appends to one job queue behind each other.
const LOCK_SQL: &str = "UPDATE jobs SET log_seq = log_seq \
    WHERE id = $1 AND fencing_token = $2 AND state = 'RUNNING' \
    RETURNING log_seq, log_bytes, log_truncated";
const COUNTERS_SQL: &str =
    "UPDATE jobs SET log_seq = $2, log_bytes = $3, log_truncated = $4 WHERE id = $1";
const READ_SQL: &str = "SELECT seq, stream, line FROM job_logs \
    WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";

/// What to store of a batch.
#[derive(Debug, PartialEq)]
struct Plan<'a> {
    rows: Vec<(i64, &'a str, Cow<'a, str>)>,
    seq: i64,
    bytes: i64,
    truncated: bool,
    accepted: usize,
}

/// The marker line stored once, when the cap is reached.
pub(crate) fn truncation_marker(cap: usize) -> String {
    format!("[drover] log truncated: the cap of {cap} bytes was reached")
}

/// Which lines of `lines` fit under `cap`, given what the job already stored.
fn plan<'a>(
    lines: &'a [LogLine],
    seq: i64,
    bytes: i64,
    truncated: bool,
    cap: usize,
    marker: &'a str,
) -> Plan<'a> {
    let mut plan = Plan {
        rows: Vec::with_capacity(lines.len()),
        seq,
        bytes,
        truncated,
        accepted: 0,
    };
    if truncated {
        return plan;
    }
    let cap = i64::try_from(cap).unwrap_or(i64::MAX);
    for line in lines {
        let len = i64::try_from(line.line.len()).unwrap_or(i64::MAX);
        if plan.bytes.saturating_add(len) > cap {
            plan.seq += 1;
            plan.rows.push((plan.seq, "drover", Cow::Borrowed(marker)));
            plan.truncated = true;
            break;
        }
        plan.seq += 1;
        plan.bytes += len;
        plan.accepted += 1;
        plan.rows
            .push((plan.seq, line.stream.as_str(), without_nul(&line.line)));
    }
    plan
}

/// PostgreSQL text cannot hold NUL: store U+FFFD instead (on both databases).
fn without_nul(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(text)
    }
}

impl Store {
    /// Appends `lines` for the holder of `token`, up to `cap` bytes per job.
    ///
    /// # Errors
    /// [`crate::Error::JobNotFound`]; 409s when `token` does not hold the running job;
    /// database errors.
    pub(crate) async fn append_logs(
        &self,
        id: JobId,
        token: FencingToken,
        lines: Vec<LogLine>,
        cap: usize,
    ) -> Result<LogsAppended> {
        let lines = Arc::new(lines);
        let marker = Arc::new(truncation_marker(cap));
        for _ in 0..RETRIES {
            let (sql, id_text) = (self.sql.clone(), id.to_string());
            let (lines, marker) = (lines.clone(), marker.clone());
            let step = on_writer!(&self.pools, move |conn| {
                // A transaction of its own (a savepoint inside SQLite's batch).
                let mut tx = conn.begin().await?;
                let head: Option<(i64, i64, bool)> = sqlx::query_as(LOCK_SQL)
                    .bind(&id_text)
                    .bind(token.get())
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some((seq, bytes, truncated)) = head else {
                    let step = match current!(&mut *tx, sql, id_text)? {
                        None => Step::Fail(not_found(id)),
                        Some(row) => refuse_write(&row, token, None),
                    };
                    tx.rollback().await?;
                    return Ok(Err(step));
                };
                let plan = plan(&lines, seq, bytes, truncated, cap, &marker);
                for chunk in plan.rows.chunks(ROWS_PER_INSERT) {
                    let mut insert =
                        QueryBuilder::new("INSERT INTO job_logs (job_id, seq, stream, line) ");
                    insert.push_values(chunk, |mut row, (seq, stream, line)| {
                        row.push_bind(&id_text)
                            .push_bind(*seq)
                            .push_bind(*stream)
                            .push_bind(line.as_ref());
                    });
                    insert.build().persistent(false).execute(&mut *tx).await?;
                }
                if !plan.rows.is_empty() {
                    sqlx::query(COUNTERS_SQL)
                        .bind(&id_text)
                        .bind(plan.seq)
                        .bind(plan.bytes)
                        .bind(plan.truncated)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok::<_, sqlx::Error>(Ok(LogsAppended {
                    accepted: plan.accepted,
                    truncated: plan.truncated,
                }))
            })?;
            match step {
                Ok(appended) => {
                    self.notify();
                    return Ok(appended);
                }
                Err(Step::Fail(err)) => return Err(err),
                Err(_) => {}
            }
        }
        Err(busy(id))
    }

    /// Up to `limit` lines after `after`; `finished` when the job was terminal before
    /// the lines were read (so an empty page then means the log is complete).
    ///
    /// # Errors
    /// [`crate::Error::JobNotFound`]; database errors.
    pub(crate) async fn read_logs(&self, id: JobId, after: i64, limit: u32) -> Result<LogPage> {
        let finished = self.row(id).await?.code()?.is_terminal();
        let rows: Vec<(i64, String, String)> = on_reader!(&self.pools, |pool| {
            sqlx::query_as(READ_SQL)
                .bind(id.to_string())
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        })?;
        let next = rows.last().map_or(after, |(seq, _, _)| *seq);
        let lines = rows
            .into_iter()
            .map(|(seq, stream, line)| StoredLogLine { seq, stream, line })
            .collect();
        Ok(LogPage {
            lines,
            next,
            finished,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(texts: &[&str]) -> Vec<LogLine> {
        texts
            .iter()
            .map(|t| LogLine {
                stream: "stdout".into(),
                line: (*t).into(),
            })
            .collect()
    }

    #[test]
    fn stores_what_fits_then_one_marker_then_nothing() {
        let marker = truncation_marker(10);
        let batch = lines(&["12345", "1234", "12", "x"]);
        let first = plan(&batch, 0, 0, false, 10, &marker);
        assert_eq!(first.accepted, 2);
        assert!(first.truncated);
        assert_eq!(first.rows.len(), 3);
        assert_eq!(first.rows[2].1, "drover");
        assert_eq!(first.rows[2].2, marker);
        assert_eq!((first.seq, first.bytes), (3, 9));
        let later = plan(&batch, first.seq, first.bytes, true, 10, &marker);
        assert_eq!((later.accepted, later.rows.len()), (0, 0));
    }

    #[test]
    fn nul_bytes_are_replaced() {
        assert_eq!(without_nul("a\0b"), "a\u{fffd}b");
        assert!(matches!(without_nul("ab"), Cow::Borrowed(_)));
    }
}
