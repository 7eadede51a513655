//! Draining: the slots stop taking entries, running jobs get until a deadline, then they
//! are stopped and given back to the queue. On SIGTERM the process then leaves; on a
//! remote order (`drover drain`, `prepare-for-reboot`, through `/control/drains/<id>`)
//! it stays registered as drained, taking nothing, until the order is withdrawn
//! (`drover undrain`) or the process restarts, and counts the cluster's containers still
//! running on its Docker engine so that `prepare-for-reboot` knows when the host is clear.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use drover_model::{DrainOrder, DrainPhase, DrainStatus, Orders};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config;
use crate::slot::{self, Phase, SlotContext};
use crate::Shutdown;

/// How often a drained executor counts the containers still running on its engine.
const RECOUNT_EVERY: Duration = Duration::from_secs(1);

/// This process, as a drain order names it.
#[derive(Debug, Clone)]
pub(crate) struct Me {
    pub(crate) id: String,
    /// Whole seconds since the Unix epoch of this process's start.
    pub(crate) started_s: u64,
}

impl Me {
    pub(crate) fn new(id: &str, started: SystemTime) -> Me {
        Me {
            id: id.to_owned(),
            started_s: crate::supervisor::started_s(started),
        }
    }
}

/// Runs the slots until SIGTERM, draining and resuming on remote orders in between;
/// returns once the final drain is done.
pub(crate) async fn serve(
    context: &Arc<SlotContext>,
    shutdown: &Shutdown,
    mut orders: watch::Receiver<Orders>,
    me: &Me,
) {
    loop {
        let phase = Phase::default();
        let tracker = TaskTracker::new();
        for index in 0..context.config.slot_count() {
            tracker.spawn(slot::run_slot(context.clone(), index, phase.clone()));
        }
        tracker.close();
        let order = tokio::select! {
            () = shutdown.drain.cancelled() => None,
            order = ordered(&mut orders, me) => Some(order),
        };
        let Some(order) = order else {
            let timeout = context.config.drain_timeout;
            drain(context, &tracker, &phase, timeout, shutdown, false).await;
            return;
        };
        info!(by = %order.by, deadline_ms = order.deadline_ms, reboot = order.reboot, "drain ordered: stopped taking entries");
        set_status(context, &order, DrainPhase::Draining, None);
        let deadline = Duration::from_millis(order.deadline_ms);
        drain(context, &tracker, &phase, deadline, shutdown, true).await;
        let containers = count_containers(context).await;
        set_status(context, &order, DrainPhase::Drained, containers);
        info!(
            containers,
            "drained: registered and taking nothing until undrained"
        );
        if !stay_drained(context, shutdown, &mut orders, me, &order).await {
            return;
        }
        context.published.send_modify(|p| p.drain = None);
        info!("undrained: taking entries again");
    }
}

/// Waits for a drain order for this process (one for an earlier run with this id is not:
/// the supervisor withdraws it when it attaches).
async fn ordered(orders: &mut watch::Receiver<Orders>, me: &Me) -> DrainOrder {
    loop {
        let order = orders.borrow_and_update().drains.get(&me.id).cloned();
        if let Some(order) = order.filter(|o| o.executor_started_s == me.started_s) {
            return order;
        }
        if orders.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Keeps a drained executor drained, recounting the containers, until its order is
/// withdrawn (true) or SIGTERM (false: it leaves).
async fn stay_drained(
    context: &SlotContext,
    shutdown: &Shutdown,
    orders: &mut watch::Receiver<Orders>,
    me: &Me,
    order: &DrainOrder,
) -> bool {
    loop {
        let holds = orders
            .borrow_and_update()
            .drains
            .get(&me.id)
            .is_some_and(|o| o.executor_started_s == me.started_s);
        if !holds {
            return true;
        }
        tokio::select! {
            () = shutdown.drain.cancelled() => return false,
            changed = orders.changed() => if changed.is_err() {
                // No more orders can come on this watch: stay drained until SIGTERM.
                shutdown.drain.cancelled().await;
                return false;
            },
            () = tokio::time::sleep(RECOUNT_EVERY) => {
                let containers = count_containers(context).await;
                set_status(context, order, DrainPhase::Drained, containers);
            },
        }
    }
}

fn set_status(
    context: &SlotContext,
    order: &DrainOrder,
    phase: DrainPhase,
    containers: Option<u32>,
) {
    let status = DrainStatus {
        phase,
        by: order.by.clone(),
        since: order.since.clone(),
        containers,
    };
    context.published.send_if_modified(|p| {
        let changed = p.drain.as_ref() != Some(&status);
        p.drain = Some(status);
        changed
    });
}

/// The cluster's containers running on this executor's Docker engine; `None` without
/// Docker or a cluster id, or when Docker does not answer.
async fn count_containers(context: &SlotContext) -> Option<u32> {
    let docker = context.env.docker.as_ref()?;
    let cluster = context.env.cluster.get()?;
    match docker.running_in_cluster(cluster).await {
        Ok(n) => Some(n as u32),
        Err(e) => {
            warn!(error = %e, "cannot count the containers still running");
            None
        }
    }
}

/// The drain: the phase's slots take nothing more; running jobs get until `timeout`
/// (SIGTERM during a remote drain cuts it to the executor's `drain_timeout`); then they
/// are stopped and given back.
pub(crate) async fn drain(
    shared: &SlotContext,
    tracker: &TaskTracker,
    phase: &Phase,
    timeout: Duration,
    shutdown: &Shutdown,
    remote: bool,
) {
    phase.drain.cancel();
    let running = shared.busy.load(Ordering::Relaxed);
    info!(
        running,
        ?timeout,
        "drain: stopped taking entries; waiting for running jobs"
    );
    let mut until = Instant::now() + timeout;
    let mut sigterm_seen = !remote;
    let left = || shared.busy.load(Ordering::Relaxed);
    loop {
        tokio::select! {
            () = tracker.wait() => {
                info!("drain: every running job finished");
                break;
            },
            () = tokio::time::sleep_until(until) => {
                info!(left = left(), "drain: deadline reached; stopping the remaining jobs and giving them back to the queue");
                break;
            },
            () = shutdown.force.cancelled() => {
                info!(left = left(), "drain: second signal; stopping the remaining jobs and giving them back to the queue");
                break;
            },
            () = shutdown.drain.cancelled(), if !sigterm_seen => {
                sigterm_seen = true;
                until = until.min(Instant::now() + shared.config.drain_timeout);
            },
        }
    }
    phase.deadline.cancel();
    let grace = shared.config.stop_grace + config::STOP_MARGIN;
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        warn!("drain: some jobs did not stop in time");
    } else {
        info!("drain: all slots stopped");
    }
}
