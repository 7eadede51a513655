//! Keeps the executor attached to ZooKeeper: a session, the queue and the membership
//! record, rebuilt whenever the session expires.

use std::time::{Duration, SystemTime};

use drover_coordination::{
    ExecutorInfo, Health, Membership, Queue, QueueView, Registration, Session, ZkSettings,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Who this executor is, as published in `/executors/<id>`.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) id: String,
    pub(crate) slots: usize,
    /// Set once from ZooKeeper at the first attach: the cluster's id, for container
    /// labels.
    pub(crate) cluster: std::sync::Arc<std::sync::OnceLock<String>>,
}

/// Runs until `stop`, then deregisters.
pub(crate) async fn supervise(
    zk: ZkSettings,
    queue_path: String,
    identity: Identity,
    queue_tx: watch::Sender<Option<Queue>>,
    mut busy: watch::Receiver<usize>,
    stop: CancellationToken,
) {
    let started = SystemTime::now();
    let mut delay = Duration::from_millis(200);
    loop {
        let attached = tokio::select! {
            () = stop.cancelled() => return,
            attached = attach(&zk, &queue_path, &identity, started, *busy.borrow()) => attached,
        };
        let (session, queue, mut registration) = match attached {
            Ok(parts) => parts,
            Err(e) => {
                warn!(error = %e, retry_in = ?delay, "cannot attach to zookeeper");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(delay) => {},
                }
                delay = (delay * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        delay = Duration::from_millis(200);
        queue_tx.send_replace(Some(queue));
        let mut health = session.health_watch();
        loop {
            tokio::select! {
                () = stop.cancelled() => {
                    queue_tx.send_replace(None);
                    if let Err(e) = registration.deregister().await {
                        warn!(error = %e, "cannot deregister");
                    }
                    return;
                },
                changed = health.changed() => {
                    if changed.is_err() || matches!(*health.borrow(), Health::Lost(_)) {
                        warn!("zookeeper session lost; running jobs on it are stopped; starting a new session");
                        queue_tx.send_replace(None);
                        break;
                    }
                },
                changed = busy.changed() => {
                    if changed.is_ok() {
                        // publish at most once a second
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        let now = *busy.borrow_and_update();
                        if let Err(e) = registration.set_busy(now as u32).await {
                            warn!(error = %e, "cannot publish the busy count");
                        }
                    }
                },
            }
        }
    }
}

async fn attach(
    zk: &ZkSettings,
    queue_path: &str,
    identity: &Identity,
    started: SystemTime,
    busy: usize,
) -> Result<(Session, Queue, Registration), drover_coordination::Error> {
    let session = Session::connect(zk).await?;
    if identity.cluster.get().is_none() {
        let cluster = Membership::new(&session).cluster_id().await?;
        let _ = identity.cluster.set(cluster);
    }
    let view = QueueView::open(&session, queue_path).await?;
    let queue = Queue::with_view(&session, &view);
    let info = ExecutorInfo {
        id: identity.id.clone(),
        host: hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        slots: identity.slots as u32,
        busy: busy as u32,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started,
    };
    // A restarted executor may find its previous session's record until that session
    // expires: wait for it rather than fail.
    let membership = Membership::new(&session);
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
    info!(session = %session.id(), queue = queue_path, "attached to zookeeper");
    Ok((session, queue, registration))
}
