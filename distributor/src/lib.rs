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

use drover_client::ApiClient;
use drover_coordination::{supervise, Ended, Role, Session, SessionEnd, ZkError, ZkSettings};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use config::{DistributionConfig, DistributorConfig, PipelineConfig, MIN_INTERVAL, RECONCILE};
pub use error::Error;
pub use schedule::{CatchUp, MAX_REPLAY};

use crate::config::Plan;
use crate::lead::Context;

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
    let mut role = Distributing {
        plans,
        api,
        id: id.clone(),
    };
    supervise(&zk, &mut role, shutdown).await;
    info!(distributor = %id, "distributor stopped");
    Ok(())
}

/// The distributor's role on each session: every distribution's campaign, leadership
/// and ticks.
struct Distributing {
    plans: Vec<Plan>,
    api: ApiClient,
    id: String,
}

impl Role for Distributing {
    type Parts = ();

    fn name(&self) -> &'static str {
        "distributor"
    }

    async fn attach(&mut self, _session: &Session) -> drover_coordination::Result<()> {
        Ok(())
    }

    async fn live(&mut self, (): (), session: &Session, end: &SessionEnd) {
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        for plan in &self.plans {
            let ctx = Context {
                session: session.clone(),
                api: self.api.clone(),
                id: self.id.clone(),
                stop: stop.clone(),
            };
            tracker.spawn(lead::run(ctx, plan.clone()));
        }
        tracker.close();
        let ended = end.wait().await;
        match ended {
            Ended::Shutdown => info!("stopping: resigning every leadership"),
            Ended::Lost => warn!("zookeeper session lost: every leadership ended"),
        }
        stop.cancel();
        if tokio::time::timeout(STOP_TIMEOUT, tracker.wait())
            .await
            .is_err()
        {
            warn!("some distributions did not stop in time");
        }
        if ended == Ended::Shutdown {
            withdraw_all(session, &self.plans).await;
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
            let election = drover_model::paths::election(&plan.name);
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
