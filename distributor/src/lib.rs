//! drover's distributors: scheduled job generation with one leader per distribution.
//!
//! - [`run`] — connects to ZooKeeper, runs every distribution's election on one session,
//!   reconnects when the session is lost, and on shutdown resigns every leadership.
//! - [`DistributorConfig`] / [`DistributionConfig`] — the `[distributor]` settings and
//!   their start-up validation (errors name the field).
//! - [`CatchUp`] — what a new leader does about ticks that passed without one.
//! - `schedule.rs` computes tick times (`every` since the Unix epoch, `cron` in UTC) so
//!   every distributor agrees on them; `lead.rs` campaigns, leads and acts (a job
//!   submitted with a key naming the tick, or a reconcile run); `status.rs` publishes
//!   each distribution's status at `/distributions/<name>`.

mod config;
mod error;
mod lead;
mod schedule;
mod status;

use std::time::Duration;

use drover_api::client::ApiClient;
use drover_coordination::{Health, Session, ZkError, ZkSettings};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use config::{DistributionConfig, DistributorConfig, MIN_INTERVAL, RECONCILE};
pub use error::Error;
pub use schedule::{CatchUp, MAX_REPLAY};

use crate::config::Plan;
use crate::lead::Context;

/// Backoff between connection attempts: first and largest.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(5));
/// How long stopping may wait for the distributions' tasks to resign.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a distributor until `shutdown` is cancelled.
///
/// # Errors
/// [`Error::Config`] for an invalid configuration (checked before anything else);
/// invalid ZooKeeper settings. Once running, ZooKeeper and API trouble is retried,
/// never fatal.
///
/// # Cancellation safety
/// Cancel `shutdown` instead of dropping the future: leaders then resign and every
/// election node of this distributor is withdrawn before it returns.
pub async fn run(
    config: DistributorConfig,
    zk: ZkSettings,
    api: ApiClient,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let plans = config.plans().map_err(Error::Config)?;
    zk.validate()?;
    let id = config.distributor_id();
    if plans.is_empty() {
        warn!("no distributions are enabled and reconcile is off: this distributor does nothing");
    }
    let names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
    info!(distributor = %id, distributions = ?names, api = %api.url(), "distributor starting");
    let mut backoff = BACKOFF.0;
    loop {
        let connected = tokio::select! {
            () = shutdown.cancelled() => break,
            connected = Session::connect(&zk) => connected,
        };
        let session = match connected {
            Ok(session) => session,
            Err(e) => {
                warn!(error = %e, "cannot reach zookeeper; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {},
                }
                backoff = (backoff * 2).min(BACKOFF.1);
                continue;
            }
        };
        backoff = BACKOFF.0;
        let stop = shutdown.child_token();
        let tracker = TaskTracker::new();
        for plan in &plans {
            let ctx = Context {
                session: session.clone(),
                api: api.clone(),
                id: id.clone(),
                stop: stop.clone(),
            };
            tracker.spawn(lead::run(ctx, plan.clone()));
        }
        tracker.close();
        tokio::select! {
            () = shutdown.cancelled() => {
                info!("stopping: resigning every leadership");
                stop.cancel();
                if tokio::time::timeout(STOP_TIMEOUT, tracker.wait()).await.is_err() {
                    warn!("some distributions did not stop in time");
                }
                withdraw_all(&session, &plans).await;
                break;
            }
            () = session_lost(&session) => {
                warn!("zookeeper session lost: every leadership ended; connecting a new session");
                stop.cancel();
                if tokio::time::timeout(STOP_TIMEOUT, tracker.wait()).await.is_err() {
                    warn!("some distributions did not stop in time");
                }
            }
        }
    }
    info!(distributor = %id, "distributor stopped");
    Ok(())
}

/// Completes when the session is over.
async fn session_lost(session: &Session) {
    let mut health = session.health_watch();
    loop {
        if matches!(*health.borrow_and_update(), Health::Lost(_)) {
            return;
        }
        if health.changed().await.is_err() {
            return;
        }
    }
}

/// Deletes every election node this session still owns (contenders that were waiting
/// when the distributor stopped), so other distributors never wait for our session to
/// expire.
async fn withdraw_all(session: &Session, plans: &[Plan]) {
    let client = session.client();
    let owner = client.session_id().0;
    let work = async {
        for plan in plans {
            let election = format!("/election/{}", plan.name);
            let Ok(children) = client.list_children(&election).await else {
                continue;
            };
            for child in children {
                let path = format!("{election}/{child}");
                if let Ok(Some(stat)) = client.check_stat(&path).await {
                    if stat.ephemeral_owner == owner {
                        match client.delete(&path, None).await {
                            Ok(()) | Err(ZkError::NoNode) => {}
                            Err(e) => warn!(%path, error = %e, "cannot withdraw from an election"),
                        }
                    }
                }
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .is_err()
    {
        warn!("withdrawing from the elections timed out; the nodes go with the session");
    }
}
