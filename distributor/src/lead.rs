//! One distribution on one session: campaign, lead (tick, act, publish), and campaign
//! again after a loss, until the session ends or the distributor stops.
//!
//! A leader acts only while its [`Leadership`] holds: every wait races the lost signal
//! (which trips at the first disconnection, before anyone else can be elected), an
//! in-flight submit is dropped when it trips, and right before each tick acts, a round
//! trip to ZooKeeper proves the election node is still this session's. A tick's job
//! carries an idempotency key naming the distribution and the tick, so a submit that
//! races a leader change finds the other leader's job instead of making a second one.

use std::time::{Duration, SystemTime};

use drover_client::ApiClient;
use drover_coordination::{Election, Health, Leadership, LostReason, Session};
use drover_core::Backoff;
use drover_model::{Reconcile, SubmitJob, SubmitRequest};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::{PipelineWork, Plan, Work};
use crate::schedule::{rfc3339, CatchUp};
use crate::status::{self, Progress};

/// Longest single sleep: the wall clock is re-read at least this often.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// What every distribution's task shares.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub(crate) session: Session,
    pub(crate) api: ApiClient,
    pub(crate) id: String,
    /// Cancelled when the distributor stops (or the session is replaced).
    pub(crate) stop: CancellationToken,
}

/// Why a leadership ended.
enum Ended {
    Stop,
    Lost(LostReason),
}

/// What one tick did.
enum Acted {
    /// Handled (done, or refused for good): move on. The job id, if one was made or found.
    Done(Option<String>),
    /// The API or ZooKeeper could not answer: try again after a backoff.
    Retry,
    Ended(Ended),
}

/// The idempotency key of `plan`'s job for `tick`: the same on every distributor.
pub(crate) fn tick_key(name: &str, tick: SystemTime) -> String {
    format!("distribution/{name}/{}", rfc3339(tick))
}

/// Campaigns for `plan` and leads it whenever elected, until `ctx.stop` or the session
/// ends. On stop, a leader resigns (deletes its node) so another distributor leads at once.
pub(crate) async fn run(ctx: Context, plan: Plan) {
    let election = match Election::new(&ctx.session, &plan.name, ctx.id.clone()) {
        Ok(election) => election,
        Err(e) => {
            error!(distribution = %plan.name, error = %e, "cannot join the election");
            return;
        }
    };
    let mut backoff = Backoff::RECONNECT;
    loop {
        if ctx.stop.is_cancelled() || matches!(ctx.session.health(), Health::Lost(_)) {
            return;
        }
        let campaign = tokio::select! {
            campaign = election.campaign() => campaign,
            () = ctx.stop.cancelled() => return,
        };
        let leadership = match campaign {
            Ok(leadership) => leadership,
            Err(e) => {
                if matches!(ctx.session.health(), Health::Lost(_)) {
                    return;
                }
                debug!(distribution = %plan.name, error = %e, "campaign failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_delay()) => {},
                    () = ctx.stop.cancelled() => return,
                }
                continue;
            }
        };
        backoff.reset();
        info!(distribution = %plan.name, leader = %ctx.id, node = %leadership.node(), "leading the distribution");
        match lead(&ctx, &plan, &leadership).await {
            Ended::Stop => {
                leadership.resign().await;
                info!(distribution = %plan.name, "resigned the leadership");
                return;
            }
            Ended::Lost(reason) => {
                warn!(distribution = %plan.name, %reason, "leadership lost; stopped generating, campaigning again");
            }
        }
    }
}

/// Leads until the leadership is lost or the distributor stops.
async fn lead(ctx: &Context, plan: &Plan, leadership: &Leadership) -> Ended {
    let lost = leadership.lost();
    let read = tokio::select! {
        read = status::read(&ctx.session, &plan.name) => read,
        reason = lost.tripped() => return Ended::Lost(reason),
        () = ctx.stop.cancelled() => return Ended::Stop,
    };
    let mut progress = read.unwrap_or_else(|e| {
        warn!(distribution = %plan.name, error = %e, "cannot read the last status; starting afresh");
        Progress::default()
    });
    let now = SystemTime::now();
    let mut handled = match plan.catch_up {
        CatchUp::None => Some(progress.last_tick.map_or(now, |t| t.max(now))),
        CatchUp::Latest | CatchUp::All => progress.last_tick,
    };
    let mut planned: Option<(SystemTime, Instant)> = None;
    let mut backoff = Backoff::RECONNECT;
    publish(ctx, plan, &progress).await;
    loop {
        let now = SystemTime::now();
        let due = plan.schedule.due(plan.catch_up, handled, now);
        if due.is_empty() {
            let next = plan
                .schedule
                .next_after(handled.map_or(now, |h| h.max(now)));
            if progress.next_tick != next {
                progress.next_tick = next;
                publish(ctx, plan, &progress).await;
            }
            let wake = wake_for(next, plan.jitter, &mut planned, now);
            tokio::select! {
                () = tokio::time::sleep_until(wake) => continue,
                reason = lost.tripped() => return Ended::Lost(reason),
                () = ctx.stop.cancelled() => return Ended::Stop,
            }
        }
        let mut retry = false;
        for tick in due {
            match act(ctx, plan, leadership, tick).await {
                Acted::Done(job) => {
                    backoff.reset();
                    handled = Some(tick);
                    progress.last_tick = Some(tick);
                    progress.last_job = job;
                }
                Acted::Retry => {
                    retry = true;
                    break;
                }
                Acted::Ended(ended) => return ended,
            }
        }
        progress.next_tick =
            handled.and_then(|h| plan.schedule.next_after(h.max(SystemTime::now())));
        publish(ctx, plan, &progress).await;
        if retry {
            tokio::select! {
                () = tokio::time::sleep(backoff.next_delay()) => {},
                reason = lost.tripped() => return Ended::Lost(reason),
                () = ctx.stop.cancelled() => return Ended::Stop,
            }
        }
    }
}

/// When to look again, waiting for tick `next` (none: no tick ahead): its time plus a
/// jitter drawn once per tick (kept in `planned`), and never more than [`MAX_SLEEP`] away
/// so a changed wall clock is noticed.
fn wake_for(
    next: Option<SystemTime>,
    max_jitter: Duration,
    planned: &mut Option<(SystemTime, Instant)>,
    now: SystemTime,
) -> Instant {
    let longest = Instant::now() + MAX_SLEEP;
    let Some(next) = next else {
        return longest;
    };
    let fire_at = match *planned {
        Some((tick, at)) if tick == next => Some(at),
        _ => {
            let wait = next.duration_since(now).unwrap_or_default();
            // Checked: an instant too far to represent is looked at again after
            // MAX_SLEEP rather than panicking.
            let at = wait
                .checked_add(jitter(max_jitter))
                .and_then(|delay| Instant::now().checked_add(delay));
            *planned = at.map(|at| (next, at));
            at
        }
    };
    fire_at
        .map_or(longest, |at| at.min(longest))
        .max(Instant::now() + Duration::from_millis(1))
}

/// A random delay up to `max`.
fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    max.mul_f64(fastrand::f64())
}

/// Whether this process still leads: the lost signal has not tripped, and ZooKeeper
/// answers that the election node exists and belongs to this session. After a pause
/// (SIGSTOP, a long GC, a frozen VM) the signal may not have tripped yet when timers
/// fire; the round trip cannot succeed on an expired session.
async fn still_leader(ctx: &Context, leadership: &Leadership) -> bool {
    if !leadership.is_leader() {
        return false;
    }
    let client = ctx.session.client();
    let check = tokio::time::timeout(
        ctx.session.timeout() / 2,
        client.check_stat(leadership.node()),
    );
    match check.await {
        Ok(Ok(Some(stat))) => {
            stat.ephemeral_owner == client.session_id().0 && leadership.is_leader()
        }
        _ => false,
    }
}

/// Acts for `tick`: submits its job (or runs the reconciler), if still the leader.
async fn act(ctx: &Context, plan: &Plan, leadership: &Leadership, tick: SystemTime) -> Acted {
    let lost = leadership.lost();
    if !still_leader(ctx, leadership).await {
        if let Some(reason) = lost.reason() {
            return Acted::Ended(Ended::Lost(reason));
        }
        debug!(distribution = %plan.name, "cannot confirm the leadership before acting; waiting");
        return Acted::Retry;
    }
    let tick_text = rfc3339(tick);
    let answer = async {
        match &plan.work {
            Work::Job { .. } => submit_tick(ctx, plan, tick, &tick_text).await,
            Work::Pipeline(pipeline) => submit_request(ctx, plan, pipeline, tick, &tick_text).await,
            Work::Reconcile { grace, stale_after } => {
                reconcile(ctx, *grace, *stale_after).await;
                Acted::Done(None)
            }
        }
    };
    tokio::select! {
        acted = answer => acted,
        reason = lost.tripped() => {
            warn!(distribution = %plan.name, tick = %tick_text, "leadership lost while acting; abandoned the request");
            Acted::Ended(Ended::Lost(reason))
        },
        () = ctx.stop.cancelled() => Acted::Ended(Ended::Stop),
    }
}

/// Submits the tick's job, keyed by the tick so every leader makes the same one.
async fn submit_tick(ctx: &Context, plan: &Plan, tick: SystemTime, tick_text: &str) -> Acted {
    let Work::Job {
        action,
        params,
        priority,
        max_attempts,
        timeout_secs,
        requires,
    } = &plan.work
    else {
        return Acted::Done(None);
    };
    let submit = SubmitJob {
        action: action.clone(),
        params: params.clone(),
        priority: *priority,
        max_attempts: *max_attempts,
        timeout_secs: *timeout_secs,
        idempotency_key: Some(tick_key(&plan.name, tick)),
        requires: requires.clone(),
    };
    match ctx.api.submit(&submit).await {
        Ok(submitted) => {
            info!(distribution = %plan.name, tick = %tick_text, job_id = %submitted.job.id, created = submitted.created, leader = %ctx.id, "tick submitted");
            Acted::Done(Some(submitted.job.id.to_string()))
        }
        Err(e) if e.is_unavailable() => {
            warn!(distribution = %plan.name, tick = %tick_text, error = %e, "cannot submit the tick's job; retrying");
            Acted::Retry
        }
        Err(e) => {
            error!(distribution = %plan.name, tick = %tick_text, error = %e, "the API refused the tick's job; skipping the tick");
            Acted::Done(None)
        }
    }
}

/// Submits the tick's pipeline request, keyed by the tick: every leader makes the same
/// one, and a tick whose actions are all queued, running or done makes none.
async fn submit_request(
    ctx: &Context,
    plan: &Plan,
    pipeline: &PipelineWork,
    tick: SystemTime,
    tick_text: &str,
) -> Acted {
    let request = SubmitRequest {
        project: pipeline.project.to_string(),
        file_name: Some(pipeline.file_name.clone()),
        actions: pipeline.actions.clone(),
        workspace: Some(pipeline.workspace.clone()),
        force_run_dependencies: pipeline.force,
        priority: pipeline.priority,
        idempotency_key: Some(tick_key(&plan.name, tick)),
        code: None,
    };
    match ctx.api.submit_request(&request).await {
        Ok(answer) => {
            let id = answer.request.as_ref().map(|r| r.id.to_string());
            info!(distribution = %plan.name, tick = %tick_text, request_id = id.as_deref().unwrap_or("none"), created = answer.created, message = %answer.message, leader = %ctx.id, "tick submitted");
            Acted::Done(id)
        }
        Err(e) if e.is_unavailable() => {
            warn!(distribution = %plan.name, tick = %tick_text, error = %e, "cannot submit the tick's request; retrying");
            Acted::Retry
        }
        Err(e) => {
            error!(distribution = %plan.name, tick = %tick_text, error = %e, "the API refused the tick's request; skipping the tick");
            Acted::Done(None)
        }
    }
}

/// One reconcile run; whatever it says, the next tick runs another.
async fn reconcile(ctx: &Context, grace: Duration, stale_after: Duration) {
    let request = Reconcile {
        grace_ms: Some(u64::try_from(grace.as_millis()).unwrap_or(u64::MAX)),
        stale_after_ms: Some(u64::try_from(stale_after.as_millis()).unwrap_or(u64::MAX)),
        unknown_action_after_ms: None,
    };
    match ctx.api.reconcile(&request).await {
        Ok(report) if report.total() > 0 => {
            info!(repairs = %report.counts(), "reconcile repaired");
        }
        Ok(report) => debug!(
            entries = report.entries_seen,
            "reconcile found nothing to repair"
        ),
        Err(e) if e.is_conflict() => {
            debug!(error = %e, "another API process is reconciling; skipped this tick");
        }
        Err(e) => warn!(error = %e, "reconcile failed; the next tick tries again"),
    }
}

async fn publish(ctx: &Context, plan: &Plan, progress: &Progress) {
    let write = status::publish(&ctx.session, plan, &ctx.id, progress);
    match tokio::time::timeout(ctx.session.timeout(), write).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(distribution = %plan.name, error = %e, "cannot publish the status"),
        Err(_) => debug!(distribution = %plan.name, "publishing the status timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_distribution_and_the_tick() {
        let tick = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400);
        assert_eq!(
            tick_key("nightly", tick),
            "distribution/nightly/1970-01-02T00:00:00.000Z"
        );
    }

    #[test]
    fn jitter_stays_below_its_bound() {
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
        for _ in 0..100 {
            assert!(jitter(Duration::from_secs(1)) <= Duration::from_secs(1));
        }
    }
}
