//! A distribution's status in ZooKeeper, `/distributions/<name>`: written by its leader,
//! read by the next leader (where the last one stopped) and by the API.

use std::time::SystemTime;

use drover_coordination::{Session, ZkError};
use drover_model::{Distribution, DISTRIBUTIONS_PATH};
use tracing::debug;

use crate::config::Plan;
use crate::error::Error;
use crate::schedule::{parse_rfc3339, rfc3339};

/// What a leader publishes, and what it reads back at election.
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    /// The last tick handled.
    pub(crate) last_tick: Option<SystemTime>,
    /// The job the last tick created or found.
    pub(crate) last_job: Option<String>,
    /// The tick the leader waits for.
    pub(crate) next_tick: Option<SystemTime>,
}

fn path(name: &str) -> String {
    format!("{DISTRIBUTIONS_PATH}/{name}")
}

/// Reads the last published progress of `plan` (none if never published or unreadable).
///
/// # Errors
/// ZooKeeper errors other than a missing node.
pub(crate) async fn read(session: &Session, name: &str) -> Result<Progress, ZkError> {
    match session.client().get_data(&path(name)).await {
        Ok((data, _)) => {
            let status: Option<Distribution> = serde_json::from_slice(&data).ok();
            Ok(status.map_or_else(Progress::default, |s| Progress {
                last_tick: s.last_tick.as_deref().and_then(parse_rfc3339),
                last_job: s.last_job,
                next_tick: s.next_tick.as_deref().and_then(parse_rfc3339),
            }))
        }
        Err(ZkError::NoNode) => Ok(Progress::default()),
        Err(e) => Err(e),
    }
}

/// Publishes `progress` as the leader `id` of `plan`.
///
/// # Errors
/// ZooKeeper errors; the caller logs them (status is informative, never load-bearing
/// beyond the next leader's `catch_up = "all"`).
pub(crate) async fn publish(
    session: &Session,
    plan: &Plan,
    id: &str,
    progress: &Progress,
) -> Result<(), Error> {
    let status = Distribution {
        name: plan.name.clone(),
        action: plan.action().to_owned(),
        schedule: plan.schedule.to_string(),
        catch_up: plan.catch_up.to_string(),
        leader: Some(id.to_owned()),
        published_by: id.to_owned(),
        last_tick: progress.last_tick.map(rfc3339),
        last_job: progress.last_job.clone(),
        next_tick: progress.next_tick.map(rfc3339),
        updated_at: rfc3339(SystemTime::now()),
        stuck: None,
    };
    let data = serde_json::to_vec(&status).unwrap_or_default();
    let path = path(&plan.name);
    session.ensure_path(&path).await?;
    session
        .client()
        .set_data(&path, &data, None)
        .await
        .map_err(|source| drover_coordination::Error::zk("set", path.clone(), source))?;
    debug!(distribution = %plan.name, "status published");
    Ok(())
}
