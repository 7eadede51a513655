//! SQLite's single writer with group commit.
//!
//! SQLite allows one writer at a time, and each commit writes every page it touched to
//! the WAL. Writes are therefore queued to one task owning the one write connection,
//! which runs whatever is queued (up to [`MAX_BATCH`] operations) in one transaction and
//! answers each caller only once that transaction has committed. Under load a commit
//! carries many operations (far fewer WAL pages and syscalls per write); alone, an
//! operation runs as its own transaction with no added delay.
//!
//! An operation is a `'static` closure over the connection: it runs to completion even if
//! its caller goes away (a client disconnecting never leaves half a batch), and its reads
//! see the writes made before it in the same batch.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use crate::error::{Error, Result};

/// Most operations committed together.
const MAX_BATCH: usize = 128;
/// Queued operations before callers wait to enqueue more.
const QUEUE: usize = 4096;

/// Called with the outcome of the commit that carried the operation.
type Deliver = Box<dyn FnOnce(Result<(), String>) + Send>;
/// One queued operation: runs on the connection, then waits for the commit.
type Op =
    Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, (Deliver, bool)> + Send>;

/// Handle on the writer task. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct SqliteWriter {
    ops: mpsc::Sender<Op>,
    stop: CancellationToken,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl SqliteWriter {
    /// Starts the writer task on `conn`.
    pub(crate) fn start(conn: SqliteConnection) -> SqliteWriter {
        let (ops, queue) = mpsc::channel(QUEUE);
        let stop = CancellationToken::new();
        let task = tokio::spawn(write_loop(conn, queue, stop.clone()));
        SqliteWriter {
            ops,
            stop,
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    /// Runs `op` on the write connection and answers its result once committed.
    ///
    /// # Errors
    /// The operation's own database error, or [`Error::Unavailable`] when the commit
    /// failed or the writer has stopped.
    ///
    /// # Cancellation safety
    /// Dropping the future does not stop the operation: it runs and commits regardless.
    pub(crate) async fn run<T, F>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>
            + Send
            + 'static,
    {
        let (answer, answered) = oneshot::channel::<Result<T>>();
        let queued: Op = Box::new(move |conn| {
            Box::pin(async move {
                let result = op(conn).await;
                // A failure that may have ended SQLite's transaction: commit what ran so far.
                let poisoned = result
                    .as_ref()
                    .err()
                    .is_some_and(|err| !is_statement_error(err));
                let deliver: Deliver = Box::new(move |commit| {
                    let outcome = match (result, commit) {
                        (Err(err), _) => Err(Error::Database(err)),
                        (Ok(value), Ok(())) => Ok(value),
                        (Ok(_), Err(detail)) => Err(Error::Unavailable {
                            dependency: "database",
                            detail: format!("the write could not be committed: {detail}"),
                        }),
                    };
                    let _ = answer.send(outcome);
                });
                (deliver, poisoned)
            })
        });
        let stopped = || Error::Unavailable {
            dependency: "database",
            detail: "the API is shutting down".into(),
        };
        self.ops.send(queued).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// Runs what is queued, then closes the connection.
    pub(crate) async fn close(&self) {
        self.stop.cancel();
        let task = drover_core::lock(&self.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// Whether SQLite rolled back only the failing statement (constraints), so the batch's
/// transaction is intact.
fn is_statement_error(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => matches!(
            db.kind(),
            sqlx::error::ErrorKind::UniqueViolation
                | sqlx::error::ErrorKind::ForeignKeyViolation
                | sqlx::error::ErrorKind::NotNullViolation
                | sqlx::error::ErrorKind::CheckViolation
        ),
        sqlx::Error::RowNotFound | sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            true
        }
        _ => false,
    }
}

async fn write_loop(
    mut conn: SqliteConnection,
    mut queue: mpsc::Receiver<Op>,
    stop: CancellationToken,
) {
    let mut pending: VecDeque<Op> = VecDeque::new();
    loop {
        if pending.is_empty() {
            let first = tokio::select! {
                op = queue.recv() => op,
                () = stop.cancelled() => {
                    queue.close();
                    queue.recv().await
                }
            };
            let Some(first) = first else { break };
            pending.push_back(first);
        }
        while pending.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(op) => pending.push_back(op),
                Err(_) => break,
            }
        }
        let batch = AssertUnwindSafe(run_batch(&mut conn, &mut pending)).catch_unwind();
        if batch.await.is_err() {
            // The open transaction rolls back as it unwinds; its callers get an error
            // when their answer channels drop. Keep serving the others.
            error!("a write operation panicked; its batch was rolled back");
        }
    }
    if let Err(err) = conn.close().await {
        warn!(error = %err, "closing the sqlite write connection failed");
    }
    debug!("sqlite writer stopped");
}

/// Runs up to [`MAX_BATCH`] operations from `pending` in one transaction and delivers
/// each its outcome; operations after one that may have ended the transaction stay
/// pending for the next batch.
async fn run_batch(conn: &mut SqliteConnection, pending: &mut VecDeque<Op>) {
    if pending.len() == 1 {
        // Alone: its own statements commit themselves; no BEGIN/COMMIT round trips.
        if let Some(op) = pending.pop_front() {
            let (deliver, _) = op(conn).await;
            deliver(Ok(()));
        }
        return;
    }
    if let Err(err) = run_in_transaction(conn, pending).await {
        // Cannot open a transaction (the file is locked by another process beyond the
        // busy timeout, or IO failed): run one operation on its own, which answers its
        // own error, so the queue keeps moving.
        warn!(error = %err, "sqlite writer cannot begin a transaction");
        if let Some(op) = pending.pop_front() {
            let (deliver, _) = op(conn).await;
            deliver(Ok(()));
        }
    }
}

/// The batch itself; fails only when no transaction could be opened.
async fn run_in_transaction(
    conn: &mut SqliteConnection,
    pending: &mut VecDeque<Op>,
) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    let mut delivers = Vec::with_capacity(pending.len());
    while let Some(op) = pending.pop_front() {
        let (deliver, poisoned) = op(&mut tx).await;
        delivers.push(deliver);
        if poisoned || delivers.len() >= MAX_BATCH {
            break;
        }
    }
    let committed = tx.commit().await.map_err(|err| err.to_string());
    if let Err(err) = &committed {
        warn!(error = %err, operations = delivers.len(), "sqlite batch commit failed");
    }
    for deliver in delivers {
        deliver(committed.clone());
    }
    Ok(())
}
