//! The enqueuer: puts jobs whose dependencies just succeeded on the queue, right after
//! the operation that released them committed. What it cannot put (no ZooKeeper
//! session, a crash) stays `CREATED` with `enqueued = false`, for the reconciler.

use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::coordinator::Coordinator;
use crate::store::QueuedRecord;
use crate::store::Store;

/// Puts at most this many entries at once (a fan-out of hundreds goes out in parallel).
const IN_FLIGHT: usize = 64;

/// Runs until `shutdown`, or until the store's ready channel closes.
pub(crate) async fn run(
    store: Store,
    zk: Coordinator,
    mut ready: mpsc::UnboundedReceiver<QueuedRecord>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let tasks = TaskTracker::new();
    loop {
        let record = tokio::select! {
            record = ready.recv() => record,
            () = shutdown.cancelled() => break,
        };
        let Some(record) = record else { break };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (store, zk) = (store.clone(), zk.clone());
        tasks.spawn(async move {
            let _slot = slot;
            put(&store, &zk, &record).await;
        });
    }
    tasks.close();
    tasks.wait().await;
}

async fn put(store: &Store, zk: &Coordinator, record: &QueuedRecord) {
    if let Err(reason) = zk.enqueue(record.id, record.priority, &record.route).await {
        warn!(job_id = %record.id, %reason, "a job whose dependencies succeeded is not on the queue yet; the reconciler will enqueue it");
        return;
    }
    match store.mark_enqueued(record.id).await {
        Ok(_) => debug!(job_id = %record.id, "dependencies succeeded; enqueued"),
        Err(err) => warn!(job_id = %record.id, error = %err, "job enqueued but not marked so"),
    }
}
