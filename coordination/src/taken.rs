//! An entry a taker holds, and how it leaves the queue (consume) or goes back (release).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use drover_core::{FencingToken, JobId};
use tracing::{debug, warn};
use zookeeper_client::{CreateMode, MultiWriteError};

use crate::error::{connection_lost, Error, LostReason, Result, ZkError};
use crate::lost::LostSignal;
use crate::queue_core::QueueCore;
use crate::session::Session;

/// An entry this process holds: its payload, its fencing token and a lost signal.
///
/// Finish it with [`Taken::consume`] or [`Taken::release`]; dropping it releases the entry
/// in the background so it is never stuck.
#[derive(Debug)]
pub struct Taken {
    pub(crate) queue: Arc<QueueCore>,
    pub(crate) name: String,
    pub(crate) data: Vec<u8>,
    pub(crate) token: FencingToken,
    pub(crate) lost: LostSignal,
    pub(crate) done: bool,
    /// The background copy a dropped handle leaves to release the entry; never copied
    /// again (a runtime shutting down drops it without running it).
    pub(crate) orphan: bool,
}

impl Taken {
    /// The entry's node name, `entry-PPP-NNNNNNNNNN` or `entry-PPP-<route>-NNNNNNNNNN`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The route segment of the entry's name; empty for a plain (kazoo-shaped) entry.
    pub fn route(&self) -> &str {
        crate::entry::route_of(&self.name)
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
            path: format!("{}/{}", self.queue.view.entries, self.name),
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
        self.finish(Finish::Consume).await.map(drop)
    }

    /// Gives the entry back to the queue for someone else to take.
    ///
    /// # Errors
    /// [`Error::NotHeld`] if it was lost already (then it is back on the queue anyway).
    pub async fn release(mut self) -> Result<()> {
        self.finish(Finish::Release).await.map(drop)
    }

    /// Replaces the entry, in one transaction, by one with the same payload and priority
    /// under `route` (for a plain entry whose job a taker read and cannot run: takers that
    /// can then find it by name). Returns the new entry's name; `None` if the entry was
    /// gone already (consumed by hand or by the reconciler).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a route that cannot go in a node name;
    /// [`Error::NotHeld`] as [`Taken::release`].
    pub async fn reroute(mut self, route: &str) -> Result<Option<String>> {
        crate::entry::check_route(route).map_err(Error::InvalidArgument)?;
        let band = crate::entry::parse(&self.name).map_or("100", |p| p.band);
        let prefix = format!("entry-{band}-{route}-");
        self.finish(Finish::Reroute(prefix)).await
    }

    async fn finish(&mut self, how: Finish) -> Result<Option<String>> {
        let consume = how.removes_entry();
        self.done = true;
        let shared = &self.queue.view;
        if !shared.lock().finishing(&self.name) {
            // Given up (a long disconnection, a deletion seen in the view): the marker
            // may still be ours on the server, and then it must go, or it would keep
            // the entry from everyone for as long as the session lives.
            let reason = self.lost.reason().unwrap_or(LostReason::NodeDeleted);
            if !self.marker_is_ours().await? {
                return Err(self.not_held(reason));
            }
            debug!(entry = %self.name, %reason, "the marker of an entry given up is still ours; finishing it");
        }
        let outcome = self.commit_finish(&how).await;
        if let Err(Error::Zk { .. } | Error::NotAuthorized { .. } | Error::InvalidArgument(_)) =
            &outcome
        {
            // Nothing changed on the server: the entry is still ours.
            shared.lock().unfinished(&self.name);
            self.done = false;
            return outcome;
        }
        shared
            .lock()
            .finished(&self.name, consume && outcome.is_ok());
        shared.changed.notify_waiters();
        outcome
    }
}

impl Taken {
    /// Whether the server still has our marker: created at our token, owned by our
    /// session. Waits out disconnections; `false` once the session is gone. A loss the
    /// [`LostSignal`] has not reported yet (a process resumed after its session expired
    /// learns it only once it reconnects) is found here.
    ///
    /// # Errors
    /// A ZooKeeper error other than a disconnection or a lost session.
    pub async fn marker_is_ours(&self) -> Result<bool> {
        let path = format!("{}/{}", self.queue.view.taken, self.name);
        let marker = own_marker(&self.queue.session, &path).await?;
        Ok(marker.is_some_and(|stat| stat.czxid == self.token.get()))
    }

    /// The transaction behind consume (delete marker and entry) or release (delete the
    /// marker). A connection loss leaves it unknown whether the transaction happened, so
    /// it is retried once the session is back, and a retry that finds the nodes already
    /// gone counts as done.
    async fn commit_finish(&self, how: &Finish) -> Result<Option<String>> {
        let shared = &self.queue.view;
        let client = self.queue.session.client();
        let consume = how.removes_entry();
        let op = how.op();
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
            if let Finish::Reroute(prefix) = how {
                let path = format!("{}/{prefix}", shared.entries);
                let options = self
                    .queue
                    .session
                    .create_options(CreateMode::PersistentSequential);
                multi
                    .add_create(&path, &self.data, &options)
                    .map_err(|e| Error::zk(op, &path, e))?;
            }
            let error = match multi.commit().await {
                Ok(results) => return Ok(created_name(results, &shared.entries)),
                Err(MultiWriteError::OperationFailed {
                    index: 0,
                    source: ZkError::NoNode,
                }) => {
                    if uncertain && (!consume || !exists(client, &entry_path).await?) {
                        // our earlier attempt went through (a rerouted entry's new name
                        // is not known, but it is on the queue)
                        return Ok(None);
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
                    warn!(entry = %self.name, "{op}d entry was already gone; removing its taken marker");
                    return match client.delete(&taken_path, None).await {
                        Ok(()) | Err(ZkError::NoNode) => Ok(None),
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
                    if let Err(Error::SessionLost(reason)) =
                        self.queue.session.wait_connected().await
                    {
                        return Err(self.not_held(reason));
                    }
                }
                e => return Err(e),
            }
        }
    }
}

/// The name of the entry a finishing transaction created (a reroute's), if any.
fn created_name(results: Vec<zookeeper_client::MultiWriteResult>, entries: &str) -> Option<String> {
    results.into_iter().find_map(|r| match r {
        zookeeper_client::MultiWriteResult::Create { path, .. } => Some(
            path.strip_prefix(entries)
                .map_or(path.as_str(), |p| p.trim_start_matches('/'))
                .to_owned(),
        ),
        _ => None,
    })
}

/// How a held entry is finished.
enum Finish {
    /// Deleted with its marker.
    Consume,
    /// Its marker deleted: back on the queue.
    Release,
    /// Deleted with its marker, and put again under this name prefix.
    Reroute(String),
}

impl Finish {
    fn removes_entry(&self) -> bool {
        !matches!(self, Finish::Release)
    }

    fn op(&self) -> &'static str {
        match self {
            Finish::Consume => "consume",
            Finish::Release => "release",
            Finish::Reroute(_) => "reroute",
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

impl Taken {
    /// Creates the taken marker for `name` and reads the entry's payload.
    pub(crate) async fn lock(inner: Arc<QueueCore>, name: String) -> Result<Option<Taken>> {
        let (view, session) = (&inner.view, &inner.session);
        let client = session.client();
        let taken_path = format!("{}/{name}", view.taken);
        let options = session.create_options(CreateMode::Ephemeral);
        let stat = match client
            .create(&taken_path, inner.taker_id.as_bytes(), &options)
            .await
        {
            Ok((stat, _)) => stat,
            Err(ZkError::NodeExists) => {
                inner.stats.collisions.fetch_add(1, Ordering::Relaxed);
                view.lock().collided(&name);
                return Ok(None);
            }
            Err(ZkError::NoNode) => {
                // The taken directory was removed under us; put it back and try again.
                view.lock().abandoned(&name, false);
                session.ensure_path(&view.taken).await?;
                return Ok(None);
            }
            // The connection broke with the create in flight: the server may have made
            // the marker. Left there, it would lock the entry for as long as this session
            // lives with nobody holding it, so find out (#11). In flight, no other taker
            // of this view may lock the entry: a marker of this session is this attempt's.
            Err(e) if connection_lost(&e) || e == ZkError::Timeout => {
                match own_marker(session, &taken_path).await {
                    Ok(Some(stat)) => {
                        debug!(entry = %name, "a take's answer was lost; its marker is ours");
                        stat
                    }
                    unknown_or_not => {
                        view.lock().abandoned(&name, false);
                        unknown_or_not?;
                        return Err(Error::zk("create", taken_path, e));
                    }
                }
            }
            Err(e) => {
                view.lock().abandoned(&name, false);
                return Err(Error::zk("create", taken_path, e));
            }
        };
        let lost = LostSignal::new();
        view.lock()
            .acquired(&name, lost.clone(), client.session_id().0, stat.czxid);
        let mut taken = Taken {
            queue: inner.clone(),
            name,
            data: Vec::new(),
            token: FencingToken::new(stat.czxid),
            lost,
            done: false,
            orphan: false,
        };
        let entry_path = format!("{}/{}", view.entries, taken.name);
        match client.get_data(&entry_path).await {
            Ok((data, _)) => {
                taken.data = data;
                inner.stats.taken.fetch_add(1, Ordering::Relaxed);
                Ok(Some(taken))
            }
            Err(ZkError::NoNode) => {
                // Consumed by someone between our listing and our lock: drop our marker.
                inner.stats.vanished.fetch_add(1, Ordering::Relaxed);
                view.lock().abandoned(&taken.name, true);
                taken.release().await.ok();
                Ok(None)
            }
            Err(e) => {
                drop(taken); // released in the background
                Err(Error::zk("get", entry_path, e))
            }
        }
    }
}

/// The marker at `path` if it exists and this session made it (an ephemeral node's
/// owner); `None` if not, or once the session is lost (its ephemeral nodes die with it).
/// Asks again, once the connection is back, while the answer is unknown.
async fn own_marker(session: &Session, path: &str) -> Result<Option<zookeeper_client::Stat>> {
    let mut backoff = Duration::from_millis(50);
    loop {
        if session.wait_connected().await.is_err() {
            return Ok(None);
        }
        let client = session.client();
        match client.check_stat(path).await {
            Ok(stat) => return Ok(stat.filter(|s| s.ephemeral_owner == client.session_id().0)),
            Err(e) => match Error::zk("stat", path, e) {
                Error::SessionLost(_) => return Ok(None),
                e if e.is_transient() => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                e => return Err(e),
            },
        }
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        // A lost entry is released too: if its marker is still ours (the session came
        // back), it must not stay locked for as long as the session lives.
        if self.done || self.orphan {
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
            orphan: true,
        };
        let background = self.queue.background.clone();
        background.spawn_on(async move {
            let mut backoff = Duration::from_millis(50);
            loop {
                match orphan.finish(Finish::Release).await {
                    Err(e) if e.is_transient() => {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    },
                    Err(e) => {
                        debug!(entry = %orphan.name, error = %e, "background release of a dropped entry failed");
                        break;
                    },
                    Ok(_) => break,
                }
            }
        }, &runtime);
    }
}
