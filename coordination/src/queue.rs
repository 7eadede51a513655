//! The locking queue, byte-compatible with kazoo's `LockingQueue`.
//!
//! ```text
//! <root>/entries/entry-PPP-NNNNNNNNNN   persistent sequential; data = the job UUID
//! <root>/taken/entry-PPP-NNNNNNNNNN     ephemeral; data = the taker's 32-hex id
//! ```
//!
//! Unlike kazoo, one recursive watch per queue handle feeds a shared [`View`] that all of
//! the process's takers read, so an idle taker costs nothing on the server and takers do
//! not all race for the head entry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use drover_core::{FencingToken, JobId, Priority};
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, warn};
use zookeeper_client::{CreateMode, MultiWriteError};

use crate::entry;
use crate::error::{Error, LostReason, Result, ZkError};
use crate::lost::LostSignal;
use crate::session::Session;
use crate::view::View;
use crate::watcher;

/// The largest entry payload accepted (ZooKeeper's own limit is 1 MiB per node).
const MAX_DATA: usize = 64 * 1024;

/// A handle on one locking queue; cheap to clone, all clones share one watch and view.
#[derive(Clone, Debug)]
pub struct Queue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    _stop_watch: DropGuard,
}

/// What the watch task and the takers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) session: Session,
    pub(crate) entries: String,
    pub(crate) taken: String,
    root: String,
    taker_id: String,
    pub(crate) view: Mutex<View>,
    /// Woken whenever an entry may have become free (or the view closed).
    pub(crate) changed: Notify,
    stats: Counters,
}

/// Counters of what takers did, for metrics and benchmarks.
#[derive(Debug, Default)]
struct Counters {
    taken: AtomicU64,
    collisions: AtomicU64,
    vanished: AtomicU64,
}

/// What this queue handle's takers did since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Entries taken.
    pub taken: u64,
    /// Lock attempts lost to another taker (another process got there first).
    pub collisions: u64,
    /// Lock attempts on entries consumed before we could read them.
    pub vanished: u64,
}

impl Shared {
    pub(crate) fn view(&self) -> MutexGuard<'_, View> {
        // A panic while holding the lock leaves plain data; keep going.
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An entry this process holds: its payload, its fencing token and a lost signal.
///
/// Finish it with [`Taken::consume`] or [`Taken::release`]; dropping it releases the entry
/// in the background so it is never stuck.
#[derive(Debug)]
pub struct Taken {
    queue: Arc<Inner>,
    name: String,
    data: Vec<u8>,
    token: FencingToken,
    lost: LostSignal,
    done: bool,
}

impl Queue {
    /// Opens the queue at `root` (e.g. `/job`), creating its nodes if needed, and starts
    /// the watch that keeps the local view.
    ///
    /// # Errors
    /// [`Error::NotAuthorized`] if the ACLs forbid it; [`Error::Zk`] otherwise.
    pub async fn open(session: &Session, root: &str) -> Result<Queue> {
        let root = root.trim_end_matches('/').to_owned();
        if !root.starts_with('/') || root.len() < 2 {
            return Err(Error::InvalidArgument(format!(
                "queue path {root:?} must be absolute, like /job"
            )));
        }
        let shared = Arc::new(Shared {
            session: session.clone(),
            entries: format!("{root}/entries"),
            taken: format!("{root}/taken"),
            taker_id: uuid::Uuid::new_v4().simple().to_string(),
            root,
            view: Mutex::new(View::default()),
            changed: Notify::new(),
            stats: Counters::default(),
        });
        session.ensure_path(&shared.entries).await?;
        session.ensure_path(&shared.taken).await?;
        let stop = CancellationToken::new();
        watcher::start(shared.clone(), stop.clone()).await?;
        Ok(Queue {
            inner: Arc::new(Inner {
                shared,
                _stop_watch: stop.drop_guard(),
            }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The queue's root path.
    pub fn path(&self) -> &str {
        &self.shared().root
    }

    /// This handle's taker id, written into the taken nodes it creates.
    pub fn taker_id(&self) -> &str {
        &self.shared().taker_id
    }

    /// Puts `data` on the queue with `priority`; returns the entry's node name.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty or oversized payload; ZooKeeper errors.
    pub async fn put(&self, data: &[u8], priority: Priority) -> Result<String> {
        check_data(data)?;
        let path = format!(
            "{}/{}",
            self.shared().entries,
            entry::entry_prefix(priority)
        );
        let options = self
            .shared()
            .session
            .create_options(CreateMode::PersistentSequential);
        let (_, seq) = self
            .shared()
            .session
            .client()
            .create(&path, data, &options)
            .await
            .map_err(|e| Error::zk("create", &path, e))?;
        Ok(format!("{}{seq}", entry::entry_prefix(priority)))
    }

    /// Puts a job id on the queue (the payload is its hyphenated UUID, as Nuvla's is).
    ///
    /// # Errors
    /// As [`Queue::put`].
    pub async fn put_job(&self, job: JobId, priority: Priority) -> Result<String> {
        self.put(job.to_string().as_bytes(), priority).await
    }

    /// Puts every payload with one `priority` in a single transaction: all or none.
    ///
    /// # Errors
    /// As [`Queue::put`]; nothing is put if any payload is invalid.
    pub async fn put_all<I, D>(&self, items: I, priority: Priority) -> Result<Vec<String>>
    where
        I: IntoIterator<Item = D>,
        D: AsRef<[u8]>,
    {
        let path = format!(
            "{}/{}",
            self.shared().entries,
            entry::entry_prefix(priority)
        );
        let options = self
            .shared()
            .session
            .create_options(CreateMode::PersistentSequential);
        let client = self.shared().session.client();
        let mut multi = client.new_multi_writer();
        let mut count = 0;
        for item in items {
            check_data(item.as_ref())?;
            multi
                .add_create(&path, item.as_ref(), &options)
                .map_err(|e| Error::zk("multi", &path, e))?;
            count += 1;
        }
        if count == 0 {
            return Ok(Vec::new());
        }
        let results = multi
            .commit()
            .await
            .map_err(|e| Error::zk("multi", &path, e.into()))?;
        let prefix = format!("{}/", self.shared().entries);
        Ok(results
            .into_iter()
            .filter_map(|r| match r {
                zookeeper_client::MultiWriteResult::Create { path, .. } => {
                    Some(path.strip_prefix(&prefix).unwrap_or(&path).to_owned())
                }
                _ => None,
            })
            .collect())
    }

    /// Takes the first free entry, waiting up to `timeout` (forever with `None`) for one.
    ///
    /// Returns `Ok(None)` when the timeout passes with nothing to take. Transient
    /// connection trouble is retried inside the wait.
    ///
    /// # Errors
    /// [`Error::SessionLost`] once the session is over; [`Error::NotAuthorized`].
    ///
    /// # Cancellation safety
    /// Cancellation safe: if the future is dropped after an entry was locked, the entry is
    /// released in the background, never left held.
    pub async fn take(&self, timeout: Option<Duration>) -> Result<Option<Taken>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut backoff = Duration::from_millis(20);
        loop {
            let notified = self.shared().changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let candidate = {
                let mut view = self.shared().view();
                if let Some(reason) = view.closed() {
                    return Err(Error::SessionLost(reason));
                }
                view.pick(|n| fastrand::usize(..n))
            };
            let wait = match candidate {
                Some(name) => match self.attempt(name).await {
                    Ok(Some(taken)) => return Ok(Some(taken)),
                    Ok(None) => continue,
                    Err(e) if e.is_transient() => {
                        debug!(error = %e, "queue take failed; retrying");
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                        Some(backoff)
                    }
                    Err(e) => return Err(e),
                },
                None => None,
            };
            let sleep = async {
                match (wait, deadline) {
                    (Some(w), Some(d)) => tokio::time::sleep_until(d.min(Instant::now() + w)).await,
                    (Some(w), None) => tokio::time::sleep(w).await,
                    (None, Some(d)) => tokio::time::sleep_until(d).await,
                    (None, None) => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut notified => {},
                () = sleep => {},
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
        }
    }

    /// Tries to lock `name`; runs to completion in its own task so that dropping `take`
    /// cannot leave a taken node behind.
    async fn attempt(&self, name: String) -> Result<Option<Taken>> {
        let (tx, rx) = oneshot::channel();
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let result = lock_entry(inner, name).await;
            // If the taker went away, the returned Taken is dropped here and released.
            let _ = tx.send(result);
        });
        rx.await.unwrap_or(Ok(None))
    }

    /// Entries on the queue (taken or not) and taken markers, as the server counts them.
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn counts(&self) -> Result<(usize, usize)> {
        let client = self.shared().session.client();
        let count = |path: String| async move {
            client
                .check_stat(&path)
                .await
                .map_err(|e| Error::zk("stat", &path, e))
                .map(|s| s.map_or(0, |s| s.num_children as usize))
        };
        Ok((
            count(self.shared().entries.clone()).await?,
            count(self.shared().taken.clone()).await?,
        ))
    }

    /// Entries in this process's view (a hint; see [`Queue::counts`] for the server's).
    pub fn view_len(&self) -> usize {
        self.shared().view().len()
    }

    /// What this handle's takers did so far.
    pub fn stats(&self) -> QueueStats {
        let c = &self.shared().stats;
        QueueStats {
            taken: c.taken.load(Ordering::Relaxed),
            collisions: c.collisions.load(Ordering::Relaxed),
            vanished: c.vanished.load(Ordering::Relaxed),
        }
    }

    /// Entries this handle holds right now.
    pub fn held(&self) -> usize {
        self.shared().view().held()
    }
}

fn check_data(data: &[u8]) -> Result<()> {
    if data.is_empty() {
        return Err(Error::InvalidArgument(
            "a queue entry needs a payload (the job id)".into(),
        ));
    }
    if data.len() > MAX_DATA {
        return Err(Error::InvalidArgument(format!(
            "a queue entry payload is {} bytes; the limit is {MAX_DATA}: put the job's id, not the job",
            data.len()
        )));
    }
    Ok(())
}

/// Creates the taken marker for `name` and reads the entry's payload.
async fn lock_entry(inner: Arc<Inner>, name: String) -> Result<Option<Taken>> {
    let shared = &inner.shared;
    let client = shared.session.client();
    let taken_path = format!("{}/{name}", shared.taken);
    let options = shared.session.create_options(CreateMode::Ephemeral);
    let stat = match client
        .create(&taken_path, shared.taker_id.as_bytes(), &options)
        .await
    {
        Ok((stat, _)) => stat,
        Err(ZkError::NodeExists) => {
            shared.stats.collisions.fetch_add(1, Ordering::Relaxed);
            shared.view().collided(&name);
            return Ok(None);
        }
        Err(ZkError::NoNode) => {
            // The taken directory was removed under us; put it back and try again.
            shared.view().abandoned(&name, false);
            shared.session.ensure_path(&shared.taken).await?;
            return Ok(None);
        }
        Err(e) => {
            shared.view().abandoned(&name, false);
            return Err(Error::zk("create", taken_path, e));
        }
    };
    let lost = LostSignal::new();
    shared.view().acquired(&name, lost.clone());
    let taken = Taken {
        queue: inner.clone(),
        name,
        data: Vec::new(),
        token: FencingToken::new(stat.czxid),
        lost,
        done: false,
    };
    let entry_path = format!("{}/{}", shared.entries, taken.name);
    let mut taken = taken;
    match client.get_data(&entry_path).await {
        Ok((data, _)) => {
            taken.data = data;
            shared.stats.taken.fetch_add(1, Ordering::Relaxed);
            Ok(Some(taken))
        }
        Err(ZkError::NoNode) => {
            // Consumed by someone between our listing and our lock: drop our marker.
            shared.stats.vanished.fetch_add(1, Ordering::Relaxed);
            shared.view().abandoned(&taken.name, true);
            taken.release().await.ok();
            Ok(None)
        }
        Err(e) => {
            drop(taken); // released in the background
            Err(Error::zk("get", entry_path, e))
        }
    }
}

impl Taken {
    /// The entry's node name, `entry-PPP-NNNNNNNNNN`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The payload put on the queue.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The payload read as a job id.
    ///
    /// # Errors
    /// [`Error::Malformed`] if the payload is not a UUID.
    pub fn job_id(&self) -> Result<JobId> {
        let text =
            std::str::from_utf8(&self.data).map_err(|_| self.malformed("payload is not UTF-8"))?;
        text.trim()
            .parse()
            .map_err(|_| self.malformed(&format!("payload {text:?} is not a job UUID")))
    }

    fn malformed(&self, reason: &str) -> Error {
        Error::Malformed {
            path: format!("{}/{}", self.queue.shared.entries, self.name),
            reason: reason.into(),
        }
    }

    /// The fencing token: the taken node's creation zxid. A later take of the same entry
    /// always has a larger one.
    pub fn token(&self) -> FencingToken {
        self.token
    }

    /// The signal that trips if this entry stops being ours.
    pub fn lost(&self) -> &LostSignal {
        &self.lost
    }

    fn not_held(&self, reason: LostReason) -> Error {
        Error::NotHeld {
            entry: self.name.clone(),
            reason,
        }
    }

    /// Removes the entry from the queue for good (one transaction deleting the marker and
    /// the entry).
    ///
    /// # Errors
    /// [`Error::NotHeld`] if the entry was lost (session expired, marker deleted): the
    /// queue is left as it is, and the caller must not report the work as its own.
    pub async fn consume(mut self) -> Result<()> {
        self.finish(true).await
    }

    /// Gives the entry back to the queue for someone else to take.
    ///
    /// # Errors
    /// [`Error::NotHeld`] if it was lost already (then it is back on the queue anyway).
    pub async fn release(mut self) -> Result<()> {
        self.finish(false).await
    }

    async fn finish(&mut self, consume: bool) -> Result<()> {
        self.done = true;
        let shared = &self.queue.shared;
        if let Some(reason) = self.lost.reason() {
            return Err(self.not_held(reason));
        }
        if !shared.view().finishing(&self.name) {
            return Err(self.not_held(self.lost.reason().unwrap_or(LostReason::NodeDeleted)));
        }
        let outcome = self.commit_finish(consume).await;
        if let Err(Error::Zk { .. } | Error::NotAuthorized { .. } | Error::InvalidArgument(_)) =
            &outcome
        {
            // Nothing changed on the server: the entry is still ours.
            shared.view().unfinished(&self.name);
            self.done = false;
            return outcome;
        }
        shared
            .view()
            .finished(&self.name, consume && outcome.is_ok());
        shared.changed.notify_waiters();
        outcome
    }
}

impl Taken {
    /// The transaction behind consume (delete marker and entry) or release (delete the
    /// marker). A connection loss leaves it unknown whether the transaction happened, so
    /// it is retried once the session is back, and a retry that finds the nodes already
    /// gone counts as done.
    async fn commit_finish(&self, consume: bool) -> Result<()> {
        let shared = &self.queue.shared;
        let client = shared.session.client();
        let op = if consume { "consume" } else { "release" };
        let taken_path = format!("{}/{}", shared.taken, self.name);
        let entry_path = format!("{}/{}", shared.entries, self.name);
        let mut uncertain = false;
        loop {
            let mut multi = client.new_multi_writer();
            multi
                .add_delete(&taken_path, None)
                .map_err(|e| Error::zk(op, &taken_path, e))?;
            if consume {
                multi
                    .add_delete(&entry_path, None)
                    .map_err(|e| Error::zk(op, &entry_path, e))?;
            }
            let error = match multi.commit().await {
                Ok(_) => return Ok(()),
                Err(MultiWriteError::OperationFailed {
                    index: 0,
                    source: ZkError::NoNode,
                }) => {
                    if uncertain && (!consume || !exists(client, &entry_path).await?) {
                        return Ok(()); // our earlier attempt went through
                    }
                    return Err(
                        self.not_held(self.lost.reason().unwrap_or(LostReason::NodeDeleted))
                    );
                }
                Err(MultiWriteError::OperationFailed {
                    index: 1,
                    source: ZkError::NoNode,
                }) => {
                    // The entry was removed by hand or by the reconciler; drop our marker.
                    warn!(entry = %self.name, "consumed entry was already gone; removing its taken marker");
                    return match client.delete(&taken_path, None).await {
                        Ok(()) | Err(ZkError::NoNode) => Ok(()),
                        Err(e) => Err(Error::zk("delete", &taken_path, e)),
                    };
                }
                Err(e) => ZkError::from(e),
            };
            match Error::zk(op, &taken_path, error) {
                Error::SessionLost(reason) => return Err(self.not_held(reason)),
                e if e.is_transient() => {
                    debug!(entry = %self.name, error = %e, "queue {op} interrupted; retrying once reconnected");
                    uncertain = true;
                    if let Err(Error::SessionLost(reason)) = shared.session.wait_connected().await {
                        return Err(self.not_held(reason));
                    }
                }
                e => return Err(e),
            }
        }
    }
}

async fn exists(client: &zookeeper_client::Client, path: &str) -> Result<bool> {
    client
        .check_stat(path)
        .await
        .map(|s| s.is_some())
        .map_err(|e| Error::zk("stat", path, e))
}

impl Drop for Taken {
    fn drop(&mut self) {
        if self.done || self.lost.is_lost() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut orphan = Taken {
            queue: self.queue.clone(),
            name: std::mem::take(&mut self.name),
            data: Vec::new(),
            token: self.token,
            lost: self.lost.clone(),
            done: false,
        };
        runtime.spawn(async move {
            let mut backoff = Duration::from_millis(50);
            loop {
                match orphan.finish(false).await {
                    Err(e) if e.is_transient() => {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    },
                    Err(e) => {
                        debug!(entry = %orphan.name, error = %e, "background release of a dropped entry failed");
                        break;
                    },
                    Ok(()) => break,
                }
            }
        });
    }
}
