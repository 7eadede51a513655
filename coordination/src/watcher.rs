//! The one watch per queue handle that keeps the shared [`View`](crate::view::View) current.
//!
//! A persistent recursive watch on the queue root reports every entry and taken marker
//! created or deleted. Events are applied as they come; after every reconnection (when
//! ZooKeeper may have dropped events, ZOOKEEPER-4698) and periodically, the view is rebuilt
//! from a fresh listing, so an event is a hint and the listing the truth.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use zookeeper_client::{AddWatchMode, EventType, MultiReadResult, PersistentWatcher, SessionState};

use crate::error::{Error, LostReason, Result};
use crate::queue::Shared;

/// How often the view is rebuilt from a listing even when nothing seems wrong.
const RESYNC_EVERY: Duration = Duration::from_secs(30);

/// Adds the watch, builds the first view and spawns the task that keeps it.
pub(crate) async fn start(shared: Arc<Shared>, stop: CancellationToken) -> Result<()> {
    let root = shared
        .entries
        .rsplit_once('/')
        .map(|(root, _)| root.to_owned())
        .unwrap_or_default();
    let client = shared.session.client();
    let watcher = client
        .watch(&root, AddWatchMode::PersistentRecursive)
        .await
        .map_err(|e| Error::zk("watch", &root, e))?;
    resync(&shared).await?;
    let shutdown = shared.session.shutdown();
    tokio::spawn(async move {
        tokio::select! {
            () = keep(shared, watcher) => {},
            () = stop.cancelled() => {},
            () = shutdown.cancelled() => {},
        }
    });
    Ok(())
}

/// Rebuilds the view from one atomic listing of entries and taken markers.
async fn resync(shared: &Shared) -> Result<()> {
    let client = shared.session.client();
    let mut reader = client.new_multi_reader();
    reader
        .add_get_children(&shared.entries)
        .map_err(|e| Error::zk("list", &shared.entries, e))?;
    reader
        .add_get_children(&shared.taken)
        .map_err(|e| Error::zk("list", &shared.taken, e))?;
    let results = reader
        .commit()
        .await
        .map_err(|e| Error::zk("list", &shared.entries, e))?;
    let mut lists = results.into_iter().map(|r| match r {
        MultiReadResult::Children { children } => Ok(children),
        MultiReadResult::Error { err } => Err(err),
        _ => Ok(Vec::new()),
    });
    let entries = lists
        .next()
        .unwrap_or(Ok(Vec::new()))
        .map_err(|e| Error::zk("list", &shared.entries, e))?;
    let taken = lists
        .next()
        .unwrap_or(Ok(Vec::new()))
        .map_err(|e| Error::zk("list", &shared.taken, e))?;
    debug!(
        entries = entries.len(),
        taken = taken.len(),
        "queue view rebuilt"
    );
    shared.view().reset(entries, taken);
    shared.changed.notify_waiters();
    Ok(())
}

/// Applies watch events until the session ends.
async fn keep(shared: Arc<Shared>, mut watcher: PersistentWatcher) {
    let entries_dir = format!("{}/", shared.entries);
    let taken_dir = format!("{}/", shared.taken);
    let timeout = shared.session.timeout();
    // While disconnected: when to give up on what we hold (before the server can have
    // expired the session: the client notices silence after ~2/5 of the timeout).
    let mut suspended_until: Option<Instant> = None;
    // Entries we gave up while suspended; their markers are deleted once we reconnect.
    let mut orphans: Vec<String> = Vec::new();
    let mut next_resync = Instant::now() + RESYNC_EVERY;
    let mut needs_resync = false;
    loop {
        let give_up = async {
            match suspended_until {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let resync_at = if needs_resync {
            Instant::now() + Duration::from_millis(200)
        } else {
            next_resync
        };
        let event = tokio::select! {
            event = watcher.changed() => event,
            () = give_up => {
                suspended_until = None;
                orphans.extend(shared.view().lose_all(LostReason::Suspended));
                continue;
            },
            () = tokio::time::sleep_until(resync_at), if suspended_until.is_none() => {
                needs_resync = match resync(&shared).await {
                    Ok(()) => false,
                    Err(e) => {
                        warn!(error = %e, "queue view rebuild failed; retrying");
                        true
                    },
                };
                next_resync = Instant::now() + RESYNC_EVERY;
                continue;
            },
        };
        match event.event_type {
            EventType::Session => match event.session_state {
                SessionState::Disconnected => {
                    suspended_until = Some(Instant::now() + timeout / 2);
                }
                SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                    suspended_until = None;
                    needs_resync = resync(&shared).await.is_err();
                    release_orphans(&shared, std::mem::take(&mut orphans)).await;
                }
                state => {
                    let reason = if state == SessionState::Expired {
                        LostReason::SessionExpired
                    } else {
                        LostReason::SessionClosed
                    };
                    info!(%reason, "queue watch ends with the session");
                    shared.view().close(reason);
                    shared.changed.notify_waiters();
                    return; // the watcher panics if polled after a terminal state
                }
            },
            EventType::NodeCreated => {
                if let Some(name) = event.path.strip_prefix(&entries_dir) {
                    shared.view().entry_created(name);
                    shared.changed.notify_waiters();
                } else if let Some(name) = event.path.strip_prefix(&taken_dir) {
                    shared.view().taken_created(name);
                }
            }
            EventType::NodeDeleted => {
                if let Some(name) = event.path.strip_prefix(&entries_dir) {
                    shared.view().entry_deleted(name);
                } else if let Some(name) = event.path.strip_prefix(&taken_dir) {
                    shared.view().taken_deleted(name);
                    shared.changed.notify_waiters();
                }
            }
            _ => {}
        }
    }
}

/// Deletes the markers of entries given up during a long disconnection, if they are still
/// ours, so the entries go back to the queue instead of staying locked by a taker that
/// stopped working on them.
async fn release_orphans(shared: &Shared, orphans: Vec<String>) {
    let client = shared.session.client();
    let session = client.session_id();
    for name in orphans {
        let path = format!("{}/{name}", shared.taken);
        match client.check_stat(&path).await {
            Ok(Some(stat)) if stat.ephemeral_owner == session.0 => {
                if let Err(e) = client.delete(&path, Some(stat.version)).await {
                    warn!(entry = %name, error = %e, "cannot release an entry given up while disconnected");
                } else {
                    info!(entry = %name, "released an entry given up while disconnected");
                }
            }
            Ok(_) => {}
            Err(e) => {
                warn!(entry = %name, error = %e, "cannot check an entry given up while disconnected")
            }
        }
    }
}
