//! Reaping what executors that are gone left on this node's Docker daemon.
//!
//! An executor removes its own leftovers at start-up, by its id. Under Kubernetes the id
//! is the pod name, which changes when a pod is replaced, so a SIGKILLed pod's
//! containers and parameters volumes would stay forever. Every executor therefore also
//! removes drover's containers and volumes (by label, nothing else) whose executor is not
//! registered in ZooKeeper, among those labelled with this cluster's id (another
//! cluster's executors may share the daemon): their jobs were lost with that executor's session, and
//! another holder may run them now.
//!
//! Docker is listed before ZooKeeper: an executor registers before it takes work, so
//! anything listed belongs to an executor that was registered when it made it; if it is
//! not registered at the later listing, it is gone (or lost its session, which stops
//! its work anyway).

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use drover_coordination::{Membership, Queue};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::container::{DockerRuntime, LABEL_EXECUTOR, LABEL_PARAMS_OF};
use crate::slot::SlotContext;

/// How often a running executor looks: twice the session timeout (a gone executor's
/// registration lasts that long at most), at least every 5 s.
fn every(session_timeout: Duration) -> Duration {
    (session_timeout * 2).max(Duration::from_secs(5))
}

/// How often the executor measures what drover takes on its Docker engine.
const MEASURE_EVERY: Duration = Duration::from_secs(300);

/// Reaps at once, then every [`every`], while a session is attached, until `stop`: what
/// gone executors left, and any stopped container of the cluster older than
/// `reap_after`; measures the disk use every [`MEASURE_EVERY`].
pub(crate) async fn run(context: Arc<SlotContext>, docker: DockerRuntime, stop: CancellationToken) {
    let own = context.env.executor_id.clone();
    let cluster: &Arc<OnceLock<String>> = &context.env.cluster;
    let mut queues = context.queue.clone();
    let mut measured: Option<tokio::time::Instant> = None;
    loop {
        let queue = queues.borrow_and_update().clone();
        let mut wait = every(Duration::from_secs(10));
        if let (Some(queue), Some(cluster)) = (queue, cluster.get()) {
            reap(&docker, &queue, &own, cluster).await;
            reap_stopped(&docker, cluster, context.config.reap_after).await;
            if measured.is_none_or(|at| at.elapsed() >= MEASURE_EVERY) {
                measured = Some(tokio::time::Instant::now());
                match docker
                    .disk_use(cluster, &context.catalogue.docker_images())
                    .await
                {
                    Ok(disk) => context.published.send_modify(|p| p.disk = Some(disk)),
                    Err(e) => warn!(error = %e, "cannot measure drover's disk use"),
                }
            }
            wait = every(queue.session().timeout());
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {},
            changed = queues.changed() => if changed.is_err() { return },
        }
    }
}

/// Carries out the clean-up orders for this executor (`drover kill --cleanup`): removes
/// what is left of the job on this daemon (its containers, their volumes) and withdraws
/// the order. The API orders it only once the job is finished, which this executor
/// records only after its container stopped. Until `stop`.
pub(crate) async fn follow_cleanups(
    docker: DockerRuntime,
    own: String,
    queues: watch::Receiver<Option<Queue>>,
    mut orders: watch::Receiver<drover_model::Orders>,
    stop: CancellationToken,
) {
    loop {
        let mine: Vec<String> = orders
            .borrow_and_update()
            .cleanups
            .iter()
            .filter(|(_, order)| order.executor == own)
            .map(|(job, _)| job.clone())
            .collect();
        let queue = queues.borrow().clone();
        for job in mine {
            let Some(queue) = &queue else { break };
            if let Ok(id) = job.parse::<drover_core::JobId>() {
                docker.kill_job_leftovers(id).await;
            }
            match drover_coordination::Control::new(queue.session())
                .withdraw_cleanup(&job)
                .await
            {
                Ok(_) => info!(%job, "cleaned up what was left of the job"),
                Err(e) => warn!(%job, error = %e, "cannot withdraw the clean-up order"),
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            changed = orders.changed() => if changed.is_err() { return },
            // No session when the order came: look again soon.
            () = tokio::time::sleep(Duration::from_secs(1)), if queue.is_none() => {},
        }
    }
}

/// Removes the cluster's containers stopped for longer than `after` (a crash between a
/// container's stop and its removal); only drover's labels, any executor's.
async fn reap_stopped(docker: &DockerRuntime, cluster: &str, after: Duration) {
    match docker.stopped_before(cluster, after).await {
        Ok(old) => {
            for id in old {
                info!(container = %id, ?after, "removing a drover container stopped for longer than reap_after");
                docker.remove(&id).await;
            }
        }
        Err(e) => warn!(error = %e, "cannot list stopped drover containers"),
    }
}

/// One pass; returns how many containers and volume owners were reaped.
pub(crate) async fn reap(
    docker: &DockerRuntime,
    queue: &Queue,
    own: &str,
    cluster: &str,
) -> (usize, usize) {
    let (containers, volume_owners) = match (
        docker.owners_of(LABEL_EXECUTOR, cluster).await,
        docker.params_owners(cluster).await,
    ) {
        (Ok(c), Ok(v)) => (c, v),
        (Err(e), _) | (_, Err(e)) => {
            warn!(error = %e, "cannot list drover's containers to reap those of gone executors");
            return (0, 0);
        }
    };
    let holders = docker
        .owners_of(LABEL_PARAMS_OF, cluster)
        .await
        .unwrap_or_default();
    if containers.is_empty() && volume_owners.is_empty() && holders.is_empty() {
        return (0, 0);
    }
    let registered: HashSet<String> = match Membership::new(queue.session()).list().await {
        Ok(list) => list.into_iter().map(|e| e.id).collect(),
        Err(e) => {
            warn!(error = %e, "cannot list the registered executors; reaping nothing");
            return (0, 0);
        }
    };
    let gone = |owner: &String| owner != own && !registered.contains(owner);
    let mut reaped = 0;
    for (id, owner) in containers.iter().filter(|(_, owner)| gone(owner)) {
        info!(container = %id, executor = %owner, "removing a container of an executor that is no longer registered");
        docker.kill(id).await;
        docker.remove(id).await;
        reaped += 1;
    }
    let owners: HashSet<&String> = volume_owners
        .iter()
        .chain(holders.iter().map(|(_, owner)| owner))
        .filter(|owner| gone(owner))
        .collect();
    for owner in &owners {
        match docker.remove_params_leftovers(owner).await {
            Ok(count) => {
                info!(executor = %owner, volumes = count, "removed the parameters volumes of an executor that is no longer registered")
            }
            Err(e) => {
                warn!(executor = %owner, error = %e, "cannot remove the parameters volumes of a gone executor")
            }
        }
    }
    (reaped, owners.len())
}
