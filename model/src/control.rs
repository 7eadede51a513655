//! Operators' orders to the cluster, kept in ZooKeeper under [`CONTROL`](crate::paths::CONTROL)
//! so that they survive restarts of every role and reach executors through a watch (they
//! have no inbound port): pauses ([`Pauses`]) and remote drains ([`DrainOrder`]), plus
//! what an executor publishes about its drain ([`DrainStatus`]) and the API's answers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Who paused, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pause {
    /// The token's name that paused.
    pub by: String,
    /// When, RFC 3339.
    pub since: String,
    /// What the operator said, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What is paused: the whole cluster, some actions, or nothing. Queued jobs of a paused
/// action wait (`WAITING_PAUSED`); running ones keep running.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pauses {
    /// Set when every action is paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<Pause>,
    /// Paused actions by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub actions: BTreeMap<String, Pause>,
}

impl Pauses {
    /// Why `action` may not start now, if it is paused (the cluster-wide pause first).
    pub fn of(&self, action: &str) -> Option<&Pause> {
        self.all.as_ref().or_else(|| self.actions.get(action))
    }

    /// Whether nothing is paused.
    pub fn is_empty(&self) -> bool {
        self.all.is_none() && self.actions.is_empty()
    }

    /// The status message of a queued job of `action` held by `pause`.
    pub fn message(action: &str, pause: &Pause, cluster_wide: bool) -> String {
        let what = if cluster_wide {
            "the cluster is paused".to_owned()
        } else {
            format!("action {action} is paused")
        };
        let why = pause
            .reason
            .as_deref()
            .map_or_else(String::new, |r| format!(" ({r})"));
        let resume = if cluster_wide {
            "drover resume".to_owned()
        } else {
            format!("drover resume {action}")
        };
        format!(
            "{what} by {} since {}{why}: it starts when `{resume}` lifts the pause",
            pause.by, pause.since
        )
    }
}

/// `POST /v1/control/pause` and `/v1/control/resume`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    /// The actions; none means the whole cluster (for resume: every pause).
    #[serde(default)]
    pub actions: Vec<String>,
    /// Why (shown in `drover status` and in the waiting jobs' status), for pause only.
    #[serde(default)]
    pub reason: Option<String>,
}

/// An order to one executor to drain as on SIGTERM and then stay registered, drained,
/// taking nothing, until the order is withdrawn (`drover undrain`) or the process restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrainOrder {
    /// The token's name that ordered it.
    pub by: String,
    /// When, RFC 3339.
    pub since: String,
    /// How long running jobs may still run before they are stopped and given back.
    pub deadline_ms: u64,
    /// When the executor process it is for started, in whole seconds since the Unix
    /// epoch: a restarted executor (another start) is not drained by an order for its
    /// previous run.
    pub executor_started_s: u64,
    /// Given by `prepare-for-reboot`.
    #[serde(default)]
    pub reboot: bool,
}

/// `POST /v1/executors/{id}/drain`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    /// How long running jobs may still run, in milliseconds (default 120 000, as on
    /// SIGTERM).
    #[serde(default)]
    pub deadline_ms: Option<u64>,
    /// For `prepare-for-reboot`.
    #[serde(default)]
    pub reboot: bool,
}

/// Where an executor is in a remote drain, as it publishes it in its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DrainPhase {
    /// Taking nothing; running jobs still run (until the deadline).
    Draining,
    /// Nothing of its runs any more; it takes nothing until undrained.
    Drained,
}

/// What an executor publishes about a drain it was ordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrainStatus {
    /// Draining or drained.
    pub phase: DrainPhase,
    /// Who ordered it.
    pub by: String,
    /// When it was ordered, RFC 3339.
    pub since: String,
    /// drover containers of this cluster still running on the executor's Docker engine
    /// (every executor's, not only its own), as last counted; `None` before the first count
    /// or without Docker.
    #[serde(default)]
    pub containers: Option<u32>,
}

/// An order to the executor that ran a finished job to remove what is left of it on its
/// Docker engine (containers, their volumes): `drover kill --cleanup`. The executor
/// withdraws the order once done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CleanupOrder {
    /// The executor that ran the job.
    pub executor: String,
    /// The token's name that ordered it.
    pub by: String,
    /// When, RFC 3339.
    pub since: String,
}

/// `POST /v1/jobs/{id}/cleanup`: the order given, or why none was needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cleaning {
    /// The order, now in ZooKeeper; `None` when there is nothing to order.
    pub order: Option<CleanupOrder>,
    /// What happens next, for people.
    pub message: String,
}

/// One run of a job: `GET /v1/jobs/{id}/attempts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attempt {
    /// 1 for the first run.
    pub attempt: u32,
    /// The executor that claimed it.
    pub executor: Option<String>,
    /// Its fencing token.
    pub token: Option<i64>,
    /// When it was claimed, RFC 3339.
    pub started_at: String,
    /// When it ended (a result, given back, taken over); `None` while it runs.
    pub ended_at: Option<String>,
    /// How: the job's status code then (`SUCCEEDED`, `ENQUEUED` when given back,
    /// `TAKEN_OVER` when another executor re-took its entry, ...).
    pub outcome: Option<String>,
    /// The job's status message then.
    pub message: Option<String>,
}

/// What drover's containers and volumes of this cluster take on an executor's Docker
/// engine, as it last measured (every five minutes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiskUse {
    /// Containers, running or stopped.
    pub containers: u32,
    /// What their writable layers take, in bytes.
    pub container_bytes: u64,
    /// Shared parameters volumes.
    pub volumes: u32,
    /// What the images of its catalogue's Docker actions take, in bytes (shared layers
    /// counted once per image).
    #[serde(default)]
    pub image_bytes: u64,
    /// When measured, RFC 3339.
    pub measured_at: String,
}

/// `GET /v1/control`: every order in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Orders {
    /// What is paused.
    pub pauses: Pauses,
    /// Drain orders by executor id.
    #[serde(default)]
    pub drains: BTreeMap<String, DrainOrder>,
    /// Clean-up orders by job id.
    #[serde(default)]
    pub cleanups: BTreeMap<String, CleanupOrder>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pause(by: &str) -> Pause {
        Pause {
            by: by.into(),
            since: "2026-12-04T10:00:00Z".into(),
            reason: Some("database upgrade".into()),
        }
    }

    #[test]
    fn the_cluster_wide_pause_holds_every_action() {
        let mut pauses = Pauses::default();
        assert!(pauses.is_empty() && pauses.of("noop").is_none());
        pauses.actions.insert("train".into(), pause("alice"));
        assert_eq!(pauses.of("train").map(|p| p.by.as_str()), Some("alice"));
        assert!(pauses.of("noop").is_none());
        pauses.all = Some(pause("ops"));
        assert_eq!(pauses.of("noop").map(|p| p.by.as_str()), Some("ops"));
        assert_eq!(pauses.of("train").map(|p| p.by.as_str()), Some("ops"));
    }

    #[test]
    fn a_waiting_job_says_who_paused_it_and_how_to_resume() {
        let text = Pauses::message("train", &pause("alice"), false);
        assert_eq!(
            text,
            "action train is paused by alice since 2026-12-04T10:00:00Z (database upgrade): it starts when `drover resume train` lifts the pause"
        );
        assert!(Pauses::message("train", &pause("ops"), true).contains("`drover resume`"));
    }

    #[test]
    fn empty_pauses_are_an_empty_object() {
        let json = serde_json::to_string(&Pauses::default()).unwrap();
        assert_eq!(json, "{}");
        let back: Pauses = serde_json::from_str(&json).unwrap();
        assert!(back.is_empty());
    }
}
