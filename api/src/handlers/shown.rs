//! How a job is shown: what the stored record says, plus what only the live cluster
//! knows (never stored, so never stale): why a queued job waits (`WAITING_PAUSED`,
//! `WAITING_ON_WORKERS`) and whether a running one is stale.

use crate::coordinator::Offers;
use crate::state::AppState;
use crate::store::ENQUEUED_MESSAGE;
use drover_model::Job;

/// `job` as users see it: an enqueued job that no registered executor can run is
/// `WAITING_ON_WORKERS`, with a message naming what is missing. Worked out from the
/// live membership on every read, never stored.
pub(crate) fn shown(state: &AppState, job: Job) -> Job {
    shown_with(state.zk.offers().as_ref(), job)
}

/// [`shown`] against one snapshot of the offers (`None`: unknown, shown as stored). A
/// paused action's job is `WAITING_PAUSED` (the operator's pause says more than a missing
/// executor).
pub(crate) fn shown_with(offers: Option<&Offers>, mut job: Job) -> Job {
    if job.state == drover_core::State::Running {
        let silent = job
            .last_heartbeat
            .as_deref()
            .and_then(drover_core::clock::parse_rfc3339)
            .and_then(|at| std::time::SystemTime::now().duration_since(at).ok());
        if let (Some(offers), Some(silent)) = (offers, silent) {
            job.stale = offers.stale(job.executor.as_deref(), silent);
        }
        return job;
    }
    if job.status_code != drover_core::StatusCode::Enqueued {
        return job;
    }
    let (Some(offers), Ok(route)) = (offers, job.route()) else {
        return job;
    };
    let (code, why) = match offers.why_paused(&route.action) {
        Some(why) => (drover_core::StatusCode::WaitingPaused, Some(why)),
        None => (
            drover_core::StatusCode::WaitingOnWorkers,
            offers.why_waiting(&route),
        ),
    };
    if let Some(why) = why {
        job.status_code = code;
        // Keep what the stored message says beyond "enqueued" (why a run was given back).
        job.status_message = if job.status_message == ENQUEUED_MESSAGE {
            why
        } else {
            format!("{why}; before that: {}", job.status_message)
        };
    }
    job
}
