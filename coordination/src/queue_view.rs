//! The one watch that keeps a process's picture of a queue, shared by all its takers.
//!
//! A persistent recursive watch on the queue root reports every entry and taken marker
//! created or deleted. Events are applied as they come; after every reconnection (when
//! ZooKeeper may have dropped events, ZOOKEEPER-4698) and periodically, the picture is
//! rebuilt from a fresh listing, so an event is a hint and the listing the truth.
//!
//! Every session watching a queue costs the server one notification per entry change, so
//! a process keeps one [`QueueView`] per queue and hands it to all its [`Queue`] handles,
//! whatever session each takes on (kazoo instead leaves a watch per waiting `get`).
//!
//! [`Queue`]: crate::Queue

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, info, warn};
use zookeeper_client::{AddWatchMode, EventType, MultiReadResult, PersistentWatcher, SessionState};

use crate::error::{Error, LostReason, Result};
use crate::session::Session;
use crate::view::{View, NO_ZXID};

/// How often the picture is rebuilt from a listing even when nothing seems wrong.
const RESYNC_EVERY: Duration = Duration::from_secs(30);

/// A process's shared, watched picture of one queue. Cheap to clone.
#[derive(Clone, Debug)]
pub struct QueueView {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Picture>,
    _stop_watch: DropGuard,
}

/// What the watch task and the takers share.
#[derive(Debug)]
pub(crate) struct Picture {
    /// The session the watch runs on.
    pub(crate) session: Session,
    pub(crate) root: String,
    pub(crate) entries: String,
    pub(crate) taken: String,
    view: Mutex<View>,
    /// Whether a watch keeps `view` current (false for a producer's handle).
    pub(crate) watched: bool,
    /// Woken whenever an entry may have become free (or the view closed).
    pub(crate) changed: Notify,
    /// Bumped when the view names new suspects (see [`View::take_suspects`]) for their
    /// holders' sessions to check.
    pub(crate) suspects: tokio::sync::watch::Sender<u64>,
}

impl Picture {
    pub(crate) fn lock(&self) -> MutexGuard<'_, View> {
        // A panic while holding the lock leaves plain data; keep going.
        drover_core::lock(&self.view)
    }
}

impl QueueView {
    /// Watches the queue at `root` (e.g. `/job`) on `session`, creating its nodes if needed.
    /// If `session` ends, so does the view: takers using it get [`Error::SessionLost`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a relative path; [`Error::NotAuthorized`] if the ACLs
    /// forbid it; [`Error::Zk`] otherwise.
    pub async fn open(session: &Session, root: &str) -> Result<QueueView> {
        let shared = Self::paths(session, root, true).await?;
        let client = session.client();
        let watcher = client
            .watch(&shared.root, AddWatchMode::PersistentRecursive)
            .await
            .map_err(|e| Error::zk("watch", &shared.root, e))?;
        resync(&shared).await?;
        let stop = CancellationToken::new();
        let shutdown = session.shutdown();
        tokio::spawn({
            let (shared, stop) = (shared.clone(), stop.clone());
            async move {
                tokio::select! {
                    () = keep(shared, watcher) => {},
                    () = stop.cancelled() => {},
                    () = shutdown.cancelled() => {},
                }
            }
        });
        Ok(QueueView {
            inner: Arc::new(Inner {
                shared,
                _stop_watch: stop.drop_guard(),
            }),
        })
    }

    /// A view that never watches nor lists: for a process that only puts (the API),
    /// which then pays nothing for the queue's traffic. Taking through it is refused.
    ///
    /// # Errors
    /// As [`QueueView::open`].
    pub async fn unwatched(session: &Session, root: &str) -> Result<QueueView> {
        let shared = Self::paths(session, root, false).await?;
        Ok(QueueView {
            inner: Arc::new(Inner {
                shared,
                _stop_watch: CancellationToken::new().drop_guard(),
            }),
        })
    }

    /// Checks `root`, creates the queue's nodes, and returns the empty picture.
    async fn paths(session: &Session, root: &str, watched: bool) -> Result<Arc<Picture>> {
        let root = root.trim_end_matches('/').to_owned();
        if !root.starts_with('/') || root.len() < 2 {
            return Err(Error::InvalidArgument(format!(
                "queue path {root:?} must be absolute, like /job"
            )));
        }
        let shared = Arc::new(Picture {
            session: session.clone(),
            entries: format!("{root}/entries"),
            taken: format!("{root}/taken"),
            root,
            view: Mutex::new(View::default()),
            watched,
            changed: Notify::new(),
            suspects: tokio::sync::watch::Sender::new(0),
        });
        session.ensure_path(&shared.entries).await?;
        session.ensure_path(&shared.taken).await?;
        Ok(shared)
    }

    pub(crate) fn shared(&self) -> &Arc<Picture> {
        &self.inner.shared
    }

    /// The queue's root path.
    pub fn path(&self) -> &str {
        &self.inner.shared.root
    }

    /// Entries in the picture, taken or not (a hint; the server's count is
    /// [`Queue::counts`](crate::Queue::counts)).
    pub fn len(&self) -> usize {
        self.inner.shared.lock().len()
    }

    /// Whether the picture holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Rebuilds the picture from one atomic listing of entries and taken markers.
async fn resync(shared: &Picture) -> Result<()> {
    let client = shared.session.client();
    let mut reader = client.new_multi_reader();
    for path in [&shared.entries, &shared.taken] {
        reader
            .add_get_children(path)
            .map_err(|e| Error::zk("list", path, e))?;
    }
    // The taken directory's pzxid orders the listing against our own takes.
    reader
        .add_get_data(&shared.taken)
        .map_err(|e| Error::zk("get", &shared.taken, e))?;
    let results = reader
        .commit()
        .await
        .map_err(|e| Error::zk("list", &shared.root, e))?;
    let mut pzxid = NO_ZXID;
    let mut lists = Vec::with_capacity(2);
    for result in results {
        match result {
            MultiReadResult::Children { children } => lists.push(children),
            MultiReadResult::Data { stat, .. } => pzxid = stat.pzxid,
            MultiReadResult::Error { err } => return Err(Error::zk("list", &shared.root, err)),
            _ => {}
        }
    }
    let mut lists = lists.into_iter();
    let entries = lists.next().unwrap_or_default();
    let taken = lists.next().unwrap_or_default();
    debug!(
        entries = entries.len(),
        taken = taken.len(),
        "queue view rebuilt"
    );
    if shared.lock().reset(entries, taken, pzxid) {
        shared.suspects.send_modify(|n| *n += 1);
    }
    shared.changed.notify_waiters();
    Ok(())
}

/// Applies watch events until the watch session ends.
async fn keep(shared: Arc<Picture>, mut watcher: PersistentWatcher) {
    let entries_dir = format!("{}/", shared.entries);
    let taken_dir = format!("{}/", shared.taken);
    let mut next_resync = Instant::now() + RESYNC_EVERY;
    let mut connected = true;
    loop {
        let event = tokio::select! {
            event = watcher.changed() => event,
            () = tokio::time::sleep_until(next_resync), if connected => {
                next_resync = match resync(&shared).await {
                    Ok(()) => Instant::now() + RESYNC_EVERY,
                    Err(e) => {
                        warn!(error = %e, "queue view rebuild failed; retrying");
                        Instant::now() + Duration::from_millis(200)
                    },
                };
                continue;
            },
        };
        match event.event_type {
            EventType::Session => match event.session_state {
                SessionState::Disconnected => connected = false,
                SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                    connected = true;
                    // events may have been dropped while away: rebuild now
                    next_resync = Instant::now();
                }
                state => {
                    let reason = if state == SessionState::Expired {
                        LostReason::SessionExpired
                    } else {
                        LostReason::SessionClosed
                    };
                    info!(%reason, queue = %shared.root, "queue watch ends with its session");
                    shared.lock().close(reason);
                    shared.changed.notify_waiters();
                    return; // the watcher panics if polled after a terminal state
                }
            },
            EventType::NodeCreated => {
                if let Some(name) = event.path.strip_prefix(&entries_dir) {
                    shared.lock().entry_created(name);
                    shared.changed.notify_waiters();
                } else if let Some(name) = event.path.strip_prefix(&taken_dir) {
                    shared.lock().taken_created(name);
                }
            }
            EventType::NodeDeleted => {
                if let Some(name) = event.path.strip_prefix(&entries_dir) {
                    shared.lock().entry_deleted(name);
                } else if let Some(name) = event.path.strip_prefix(&taken_dir) {
                    if shared.lock().taken_deleted(name, event.zxid) {
                        shared.suspects.send_modify(|n| *n += 1);
                    }
                    shared.changed.notify_waiters();
                }
            }
            _ => {}
        }
    }
}
