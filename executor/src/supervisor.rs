//! Keeps the executor attached to ZooKeeper: a session, the queue and the membership
//! record, rebuilt whenever the session expires.

use std::time::{Duration, SystemTime};

use drover_coordination::{
    Ended, ExecutorInfo, Membership, Queue, QueueView, Registration, Role, Session, SessionEnd,
    ZkSettings,
};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::routing::Routing;

/// Who this executor is, as published in `/executors/<id>`.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) id: String,
    pub(crate) slots: usize,
    /// Set once from ZooKeeper at the first attach: the cluster's id, for container
    /// labels.
    pub(crate) cluster: std::sync::Arc<std::sync::OnceLock<String>>,
    /// What it offers (published) and takes (its queue handle's filter).
    pub(crate) routing: std::sync::Arc<Routing>,
}

/// Throttle of the busy-count publication: at most once a second.
const BUSY_EVERY: Duration = Duration::from_secs(1);

/// Runs until `stop`, then deregisters.
pub(crate) async fn supervise(
    zk: ZkSettings,
    queue_path: String,
    identity: Identity,
    queue_tx: watch::Sender<Option<Queue>>,
    busy: watch::Receiver<usize>,
    stop: CancellationToken,
) {
    let mut role = Attachment {
        queue_path,
        identity,
        started: SystemTime::now(),
        queue_tx,
        busy,
    };
    drover_coordination::supervise(&zk, &mut role, stop).await;
    role.queue_tx.send_replace(None);
}

/// The executor's role on each session: the queue its slots take from and its
/// membership record.
struct Attachment {
    queue_path: String,
    identity: Identity,
    started: SystemTime,
    queue_tx: watch::Sender<Option<Queue>>,
    busy: watch::Receiver<usize>,
}

impl Role for Attachment {
    type Parts = (Queue, Registration);

    fn name(&self) -> &'static str {
        "executor"
    }

    async fn attach(
        &mut self,
        session: &Session,
    ) -> Result<(Queue, Registration), drover_coordination::Error> {
        let busy = *self.busy.borrow();
        attach(
            session,
            &self.queue_path,
            &self.identity,
            self.started,
            busy,
        )
        .await
    }

    async fn live(
        &mut self,
        (queue, mut registration): (Queue, Registration),
        _session: &Session,
        end: &SessionEnd,
    ) {
        self.queue_tx.send_replace(Some(queue));
        let ended = publish_busy(&mut registration, &mut self.busy, end).await;
        self.queue_tx.send_replace(None);
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

/// Publishes the busy count (at most every [`BUSY_EVERY`]) until the session ends.
async fn publish_busy(
    registration: &mut Registration,
    busy: &mut watch::Receiver<usize>,
    end: &SessionEnd,
) -> Ended {
    let mut due: Option<Instant> = None;
    loop {
        let publish = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ended = end.wait() => return ended,
            changed = busy.changed(), if due.is_none() => {
                if changed.is_err() {
                    return end.wait().await;
                }
                due = Some(Instant::now() + BUSY_EVERY);
            },
            () = publish => {
                due = None;
                let now = *busy.borrow_and_update() as u32;
                tokio::select! {
                    ended = end.wait() => return ended,
                    published = registration.set_busy(now) => if let Err(e) = published {
                        warn!(error = %e, "cannot publish the busy count");
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
    started: SystemTime,
    busy: usize,
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
        host: hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        slots: identity.slots as u32,
        busy: busy as u32,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started,
        actions: offer
            .actions
            .iter()
            .map(|(name, needs)| (name.clone(), needs.iter().cloned().collect()))
            .collect(),
        tags: offer.tags.iter().cloned().collect(),
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
