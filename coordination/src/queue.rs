//! The locking queue, byte-compatible with kazoo's `LockingQueue`.
//!
//! ```text
//! <root>/entries/entry-PPP-NNNNNNNNNN          persistent sequential; data = the job UUID
//! <root>/entries/entry-PPP-<route>-NNNNNNNNNN  the same, naming what the job needs
//! <root>/taken/<entry name>                    ephemeral; data = the taker's 32-hex id
//! ```
//!
//! A route (`train+gpu`, see `drover_core::route`) lets a taker pass over entries it
//! cannot run without reading them: a handle [`Queue::taking_only`] some routes never
//! picks the others. kazoo's takers take every entry, routed or not.
//!
//! Takers read a shared [`QueueView`] instead of listing the queue (and leaving a watch)
//! on every take as kazoo does, so an idle taker costs nothing on the server, a process's
//! takers never race each other, and takers of different processes spread over the head
//! of the queue when they collide.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use drover_core::{FencingToken, JobId, Priority};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;
use zookeeper_client::{CreateMode, MultiReadResult};

use crate::entry;
use crate::error::{Error, Result, ZkError};
use crate::holdings;
use crate::queue_core::{Counters, QueueCore};
use crate::queue_view::{Picture, QueueView};
use crate::session::{Health, Session};
use crate::taken::Taken;

/// The largest entry payload accepted (ZooKeeper's own limit is 1 MiB per node).
const MAX_DATA: usize = 64 * 1024;

/// A taker and producer on one locking queue, on one session. Cheap to clone; clones
/// share the session, the taker id and the [`QueueView`].
#[derive(Clone, Debug)]
pub struct Queue {
    inner: Arc<QueueCore>,
    accepts: RouteFilter,
}

/// Which entries a taker takes, by the route segment of their names (`""` for a plain
/// entry). Every entry unless set.
#[derive(Clone)]
pub struct RouteFilter(Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl RouteFilter {
    /// Takes the entries whose route `accepts` says yes to.
    pub fn new(accepts: impl Fn(&str) -> bool + Send + Sync + 'static) -> RouteFilter {
        RouteFilter(Arc::new(accepts))
    }

    /// Takes every entry.
    pub fn any() -> RouteFilter {
        RouteFilter::new(|_| true)
    }

    /// Whether an entry of `route` is taken.
    pub fn accepts(&self, route: &str) -> bool {
        (self.0)(route)
    }
}

impl std::fmt::Debug for RouteFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouteFilter")
    }
}

/// What a queue handle's takers did since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Entries taken.
    pub taken: u64,
    /// Lock attempts lost to another taker (another process got there first).
    pub collisions: u64,
    /// Lock attempts on entries consumed before we could read them.
    pub vanished: u64,
}

impl Queue {
    /// Opens the queue at `root` (e.g. `/job`) with its own watched [`QueueView`].
    ///
    /// # Errors
    /// As [`QueueView::open`].
    pub async fn open(session: &Session, root: &str) -> Result<Queue> {
        let view = QueueView::open(session, root).await?;
        Ok(Queue::with_view(session, &view))
    }

    /// A handle that only puts: no watch, no listing, so a producer (the API) pays
    /// nothing for the takers' traffic. [`Queue::take`] on it is an error.
    ///
    /// # Errors
    /// As [`Queue::open`].
    pub async fn producer(session: &Session, root: &str) -> Result<Queue> {
        let view = QueueView::unwatched(session, root).await?;
        Ok(Queue::with_view(session, &view))
    }

    /// A queue handle taking on `session` and reading `view` (which may watch on another
    /// session): how several sessions in one process share one watch.
    pub fn with_view(session: &Session, view: &QueueView) -> Queue {
        let stop = CancellationToken::new();
        let view_shared = view.shared().clone();
        // A producer's handle holds nothing, so there is nothing to guard.
        if view_shared.watched {
            tokio::spawn(holdings::guard(
                view_shared.clone(),
                session.clone(),
                stop.clone(),
            ));
        }
        Queue {
            inner: Arc::new(QueueCore {
                view: view_shared,
                _watch: view.clone(),
                session: session.clone(),
                taker_id: uuid::Uuid::new_v4().simple().to_string(),
                stats: Counters::default(),
                background: TaskTracker::new(),
                _stop_guard: stop.drop_guard(),
            }),
            accepts: RouteFilter::any(),
        }
    }

    /// This handle (and its clones from now on) takes only entries whose route
    /// `filter` accepts; others stay for takers that accept them.
    #[must_use]
    pub fn taking_only(mut self, filter: RouteFilter) -> Queue {
        self.accepts = filter;
        self
    }

    fn picture(&self) -> &Picture {
        &self.inner.view
    }

    /// The session this handle takes on.
    pub fn session(&self) -> &Session {
        &self.inner.session
    }

    /// The queue's root path.
    pub fn path(&self) -> &str {
        &self.picture().root
    }

    /// This handle's taker id, written into the taken nodes it creates.
    pub fn taker_id(&self) -> &str {
        &self.inner.taker_id
    }

    /// Puts `data` on the queue with `priority`; returns the entry's node name.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty or oversized payload; ZooKeeper errors.
    pub async fn put(&self, data: &[u8], priority: Priority) -> Result<String> {
        self.put_routed(data, priority, None).await
    }

    /// Puts `data` on the queue with `priority` and, when given, a `route` segment in its
    /// name (`entry-PPP-<route>-NNNNNNNNNN`); returns the entry's node name.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty or oversized payload or a route that
    /// cannot go in a node name; ZooKeeper errors.
    pub async fn put_routed(
        &self,
        data: &[u8],
        priority: Priority,
        route: Option<&str>,
    ) -> Result<String> {
        check_data(data)?;
        if let Some(route) = route {
            entry::check_route(route).map_err(Error::InvalidArgument)?;
        }
        let prefix = entry::entry_prefix(priority, route);
        let path = format!("{}/{prefix}", self.picture().entries);
        let session = &self.inner.session;
        let options = session.create_options(CreateMode::PersistentSequential);
        let (_, seq) = session
            .client()
            .create(&path, data, &options)
            .await
            .map_err(|e| Error::zk("create", &path, e))?;
        Ok(format!("{prefix}{seq}"))
    }

    /// Puts a job id on the queue (the payload is its hyphenated UUID, as Nuvla's is).
    ///
    /// # Errors
    /// As [`Queue::put`].
    pub async fn put_job(&self, job: JobId, priority: Priority) -> Result<String> {
        self.put(job.to_string().as_bytes(), priority).await
    }

    /// Puts a job id on the queue under `route` (see [`Queue::put_routed`]).
    ///
    /// # Errors
    /// As [`Queue::put_routed`].
    pub async fn put_job_routed(
        &self,
        job: JobId,
        priority: Priority,
        route: &str,
    ) -> Result<String> {
        self.put_routed(job.to_string().as_bytes(), priority, Some(route))
            .await
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
            self.picture().entries,
            entry::entry_prefix(priority, None)
        );
        let session = &self.inner.session;
        let options = session.create_options(CreateMode::PersistentSequential);
        let client = session.client();
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
        let prefix = format!("{}/", self.picture().entries);
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
    /// [`Error::SessionLost`] once the session (or the view's) is over;
    /// [`Error::NotAuthorized`].
    ///
    /// # Cancellation safety
    /// Cancellation safe: if the future is dropped after an entry was locked, the entry is
    /// released in the background, never left held.
    pub async fn take(&self, timeout: Option<Duration>) -> Result<Option<Taken>> {
        if !self.picture().watched {
            return Err(Error::InvalidArgument(
                "this queue handle only puts (Queue::producer): open one with Queue::open to take"
                    .into(),
            ));
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut backoff = Duration::from_millis(20);
        loop {
            let notified = self.picture().changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Health::Lost(reason) = self.inner.session.health() {
                return Err(Error::SessionLost(reason));
            }
            let candidate = {
                let mut view = self.picture().lock();
                if let Some(reason) = view.closed() {
                    return Err(Error::SessionLost(reason));
                }
                let accepts = |route: &str| self.accepts.accepts(route);
                view.pick(&accepts, |n| fastrand::usize(..n))
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
        self.inner.background.spawn(async move {
            let result = Taken::lock(inner, name).await;
            // If the taker went away, the returned Taken is dropped here and released.
            let _ = tx.send(result);
        });
        rx.await.unwrap_or(Ok(None))
    }

    /// Waits, at most `limit`, for the background work of this handle's takers (lock
    /// attempts, releases of dropped entries) to end, so a process that stops leaves no
    /// marker to wait out its session. Whether everything ended in time.
    pub async fn settle(&self, limit: Duration) -> bool {
        let background = &self.inner.background;
        background.close();
        let settled = tokio::time::timeout(limit, background.wait()).await.is_ok();
        background.reopen();
        settled
    }

    /// Entries on the queue (taken or not) and taken markers, as the server counts them.
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn counts(&self) -> Result<(usize, usize)> {
        let client = self.inner.session.client();
        let count = |path: String| async move {
            client
                .check_stat(&path)
                .await
                .map_err(|e| Error::zk("stat", &path, e))
                .map(|s| s.map_or(0, |s| s.num_children as usize))
        };
        Ok((
            count(self.picture().entries.clone()).await?,
            count(self.picture().taken.clone()).await?,
        ))
    }

    /// What ZooKeeper shows of entry `name`, in one round trip: its taken marker's token
    /// and its payload. With `fresh`, the server is first synced with the leader, so a
    /// take made through another server is seen.
    ///
    /// # Errors
    /// ZooKeeper errors (a missing node is not one).
    pub async fn entry_state(&self, name: &str, fresh: bool) -> Result<EntryState> {
        let client = self.inner.session.client();
        let marker = format!("{}/{name}", self.picture().taken);
        let payload = format!("{}/{name}", self.picture().entries);
        if fresh {
            client
                .sync(&marker)
                .await
                .map_err(|e| Error::zk("sync", &marker, e))?;
        }
        let mut reader = client.new_multi_reader();
        for path in [&marker, &payload] {
            reader
                .add_get_data(path)
                .map_err(|e| Error::zk("get", path, e))?;
        }
        let results = reader
            .commit()
            .await
            .map_err(|e| Error::zk("get", &marker, e))?;
        let mut found = Vec::with_capacity(2);
        for (result, path) in results.into_iter().zip([&marker, &payload]) {
            found.push(match result {
                MultiReadResult::Data { data, stat } => Some((data, stat.czxid)),
                MultiReadResult::Error {
                    err: ZkError::NoNode,
                } => None,
                MultiReadResult::Error { err } => return Err(Error::zk("get", path, err)),
                _ => None,
            });
        }
        let mut found = found.into_iter();
        Ok(EntryState {
            taken: found
                .next()
                .flatten()
                .map(|(_, czxid)| FencingToken::new(czxid)),
            payload: found.next().flatten().map(|(data, _)| data),
        })
    }

    /// Wakes every taker waiting on this handle's view to look at it again: for a filter
    /// that now accepts what it refused (a lifted pause), since no entry changed.
    pub fn wake(&self) {
        self.picture().changed.notify_waiters();
    }

    /// Entries in the view (a hint; see [`Queue::counts`] for the server's).
    pub fn view_len(&self) -> usize {
        self.picture().lock().len()
    }

    /// What this handle's takers did so far.
    pub fn stats(&self) -> QueueStats {
        let c = &self.inner.stats;
        QueueStats {
            taken: c.taken.load(Ordering::Relaxed),
            collisions: c.collisions.load(Ordering::Relaxed),
            vanished: c.vanished.load(Ordering::Relaxed),
        }
    }

    /// Entries held through this handle's session right now.
    pub fn held(&self) -> usize {
        self.picture()
            .lock()
            .held_by(self.inner.session.client().session_id().0)
    }
}

/// What ZooKeeper shows of one queue entry ([`Queue::entry_state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryState {
    /// The token of its taken marker (the marker's creation zxid), if it is taken.
    pub taken: Option<FencingToken>,
    /// Its payload, if the entry exists.
    pub payload: Option<Vec<u8>>,
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
