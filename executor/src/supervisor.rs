//! Keeps the executor attached to ZooKeeper: a session, the queue, the membership record
//! and the operators' orders (pauses, a drain for it), rebuilt whenever the session
//! expires.

use std::time::{Duration, SystemTime};

use drover_coordination::{
    Control, Ended, ExecutorInfo, Membership, Queue, QueueView, Registration, Role, Session,
    SessionEnd, ZkSettings,
};
use drover_model::{DrainStatus, Orders};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::routing::Routing;

/// Who this executor is, as published in `/executors/<id>`.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) id: String,
    /// The host it says it runs on.
    pub(crate) host: String,
    pub(crate) slots: usize,
    /// Set once from ZooKeeper at the first attach: the cluster's id, for container
    /// labels.
    pub(crate) cluster: std::sync::Arc<std::sync::OnceLock<String>>,
    /// What it offers (published) and takes (its queue handle's filter).
    pub(crate) routing: std::sync::Arc<Routing>,
    /// When this process started (published; a drain order names it).
    pub(crate) started: SystemTime,
    /// Its jobs' heartbeat interval (published: what makes a job stale).
    pub(crate) heartbeat: Duration,
}

/// `started` as a drain order names a process: whole seconds since the Unix epoch.
pub(crate) fn started_s(started: SystemTime) -> u64 {
    started
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Throttle of the busy-count publication: at most once a second.
const BUSY_EVERY: Duration = Duration::from_secs(1);

/// What the executor publishes in its record beyond who it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Published {
    /// Jobs running now.
    pub(crate) busy: usize,
    /// Where a remote drain is, if one was ordered.
    pub(crate) drain: Option<DrainStatus>,
    /// What drover takes on the Docker engine, as last measured.
    pub(crate) disk: Option<drover_model::DiskUse>,
}

/// What the supervisor shares with the rest of the executor, across sessions.
#[derive(Debug)]
pub(crate) struct Channels {
    /// The queue of the current session.
    pub(crate) queue: watch::Sender<Option<Queue>>,
    /// The orders as last read (kept while no session is attached).
    pub(crate) orders: watch::Sender<Orders>,
    /// What to publish in the record.
    pub(crate) published: watch::Receiver<Published>,
}

/// Runs until `stop`, then deregisters.
pub(crate) async fn supervise(
    zk: ZkSettings,
    queue_path: String,
    identity: Identity,
    channels: Channels,
    stop: CancellationToken,
) {
    let mut role = Attachment {
        queue_path,
        identity,
        channels,
    };
    drover_coordination::supervise(&zk, &mut role, stop).await;
    role.channels.queue.send_replace(None);
}

/// The executor's role on each session: the queue its slots take from, its membership
/// record and the orders it follows.
struct Attachment {
    queue_path: String,
    identity: Identity,
    channels: Channels,
}

impl Role for Attachment {
    type Parts = (Queue, Registration, watch::Receiver<Orders>);

    fn name(&self) -> &'static str {
        "executor"
    }

    async fn attach(
        &mut self,
        session: &Session,
    ) -> Result<Self::Parts, drover_coordination::Error> {
        // The pauses are known before the first take.
        let control = Control::new(session);
        let orders = control.watch().await?;
        let stale = orders
            .borrow()
            .drains
            .get(&self.identity.id)
            .is_some_and(|o| o.executor_started_s != started_s(self.identity.started));
        if stale {
            // A drain ends with the process it was for.
            info!("withdrawing the drain order of an earlier run of this executor");
            control.withdraw_drain(&self.identity.id).await?;
        }
        self.identity.routing.set_pauses(&orders.borrow().pauses);
        self.channels.orders.send_replace(orders.borrow().clone());
        let published = self.channels.published.borrow().clone();
        let (queue, registration) =
            attach(session, &self.queue_path, &self.identity, &published).await?;
        Ok((queue, registration, orders))
    }

    async fn live(
        &mut self,
        (queue, mut registration, orders): Self::Parts,
        _session: &Session,
        end: &SessionEnd,
    ) {
        self.channels.queue.send_replace(Some(queue.clone()));
        let follow = follow_orders(orders, &self.identity, &queue, &self.channels.orders);
        let ended = tokio::select! {
            ended = publish(&mut registration, &mut self.channels.published, end) => ended,
            () = follow => end.wait().await,
        };
        self.channels.queue.send_replace(None);
        match ended {
            Ended::Shutdown => {
                if let Err(e) = registration.deregister().await {
                    warn!(error = %e, "cannot deregister");
                }
            }
            Ended::Lost => {
                warn!("zookeeper session lost; running jobs on it are stopped");
            }
        }
    }
}

/// Applies every change of the orders: pauses to the queue filter (waking the takers when
/// they change), the whole picture to the executor (its drain). Returns when the watch
/// ends (its session is over).
async fn follow_orders(
    mut orders: watch::Receiver<Orders>,
    identity: &Identity,
    queue: &Queue,
    out: &watch::Sender<Orders>,
) {
    while orders.changed().await.is_ok() {
        let now = orders.borrow_and_update().clone();
        if identity.routing.set_pauses(&now.pauses) {
            info!(paused = ?now.pauses, "pauses changed");
            queue.wake();
        }
        out.send_replace(now);
    }
}

/// Publishes the busy count and drain status (a count at most every [`BUSY_EVERY`], a
/// drain change at once) until the session ends.
async fn publish(
    registration: &mut Registration,
    published: &mut watch::Receiver<Published>,
    end: &SessionEnd,
) -> Ended {
    let mut due: Option<Instant> = None;
    let mut shown = published.borrow().clone();
    loop {
        let publish = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ended = end.wait() => return ended,
            changed = published.changed(), if due.is_none() => {
                if changed.is_err() {
                    return end.wait().await;
                }
                let at_once = published.borrow().drain != shown.drain;
                due = Some(Instant::now() + if at_once { Duration::ZERO } else { BUSY_EVERY });
            },
            () = publish => {
                due = None;
                shown = published.borrow_and_update().clone();
                tokio::select! {
                    ended = end.wait() => return ended,
                    done = registration.publish(shown.busy as u32, shown.drain.clone(), shown.disk.clone()) => {
                        if let Err(e) = done {
                            warn!(error = %e, "cannot publish the busy count and drain status");
                        }
                    },
                }
            },
        }
    }
}

async fn attach(
    session: &Session,
    queue_path: &str,
    identity: &Identity,
    published: &Published,
) -> Result<(Queue, Registration), drover_coordination::Error> {
    if identity.cluster.get().is_none() {
        let cluster = Membership::new(session).cluster_id().await?;
        let _ = identity.cluster.set(cluster);
    }
    let view = QueueView::open(session, queue_path).await?;
    let queue = Queue::with_view(session, &view).taking_only(identity.routing.filter());
    let offer = identity.routing.offer();
    let info = ExecutorInfo {
        id: identity.id.clone(),
        host: identity.host.clone(),
        slots: identity.slots as u32,
        busy: published.busy as u32,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started: identity.started,
        actions: offer
            .actions
            .iter()
            .map(|(name, needs)| (name.clone(), needs.iter().cloned().collect()))
            .collect(),
        tags: offer.tags.iter().cloned().collect(),
        drain: published.drain.clone(),
        heartbeat_ms: Some(identity.heartbeat.as_millis() as u64),
        disk: published.disk.clone(),
    };
    // A restarted executor may find its previous session's record until that session
    // expires: wait for it rather than fail.
    let membership = Membership::new(session);
    let deadline = tokio::time::Instant::now() + session.timeout() * 2 + Duration::from_secs(1);
    let registration = loop {
        match membership.register(info.clone()).await {
            Ok(r) => break r,
            Err(drover_coordination::Error::InvalidArgument(m))
                if m.contains("another live process") && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e),
        }
    };
    info!(session = %session.id(), queue = queue_path, "registered; taking from the queue");
    Ok((queue, registration))
}
