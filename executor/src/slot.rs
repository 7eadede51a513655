//! One slot: take an entry, fetch and claim its job, run it, report, consume.
//!
//! Taking is the interruptible wait (a drain stops it at once); running a job is the
//! uninterruptible unit of work: it is never dropped mid-flight, only asked to stop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_actions::Catalogue;
use drover_client::ApiClient;
use drover_coordination::{Error as ZkError, Queue, Taken};
use drover_core::{JobId, StatusCode};
use drover_model::{Claim, Finish, Job, Release};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::backoff::Backoff;
use crate::config::ExecutorConfig;
use crate::files::{Destination, Files};
use crate::outcome::{Outcome, RunEnv};
use crate::reporter::{ReportTo, Reporter};
use crate::routing::Routing;
use crate::runner;
use crate::stop::{Stop, StopReason};
use crate::supervisor::Published;

/// What every slot of an executor shares.
#[derive(Debug)]
pub(crate) struct SlotContext {
    pub(crate) api: ApiClient,
    pub(crate) catalogue: Catalogue,
    /// What this executor runs (its queue handle takes nothing else).
    pub(crate) routing: Arc<Routing>,
    pub(crate) env: RunEnv,
    pub(crate) config: ExecutorConfig,
    pub(crate) backoff: Backoff,
    /// The queue of the current ZooKeeper session (replaced after a session expires).
    pub(crate) queue: watch::Receiver<Option<Queue>>,
    /// Jobs running now.
    pub(crate) busy: AtomicUsize,
    /// What the executor's record says (busy count, drain status).
    pub(crate) published: watch::Sender<Published>,
}

/// One run of the slots, from their start to a drain (SIGTERM or `drover drain`); a
/// drained executor that is undrained starts a new one.
#[derive(Debug, Clone, Default)]
pub(crate) struct Phase {
    /// Stop taking entries.
    pub(crate) drain: CancellationToken,
    /// Stop running jobs and give them back (drain deadline or second signal).
    pub(crate) deadline: CancellationToken,
}

/// Takes and runs jobs until the executor drains.
pub(crate) async fn run_slot(shared: Arc<SlotContext>, index: usize, phase: Phase) {
    let mut queues = shared.queue.clone();
    loop {
        tokio::select! {
            biased;
            () = phase.drain.cancelled() => break,
            () = shared.backoff.ready() => {},
        }
        let Some(queue) = queues.borrow_and_update().clone() else {
            tokio::select! {
                () = phase.drain.cancelled() => break,
                changed = queues.changed() => if changed.is_err() { break } else { continue },
            }
        };
        let taken = tokio::select! {
            biased;
            () = phase.drain.cancelled() => break,
            taken = queue.take(None) => taken,
        };
        match taken {
            Ok(Some(taken)) => {
                metrics::counter!("drover_executor_takes_total").increment(1);
                let span = info_span!("job", slot = index, entry = %taken.name());
                handle(&shared, &phase, taken).instrument(span).await;
            }
            Ok(None) => {}
            Err(ZkError::SessionLost(reason)) => {
                debug!(slot = index, %reason, "waiting for a new zookeeper session");
                tokio::select! {
                    () = phase.drain.cancelled() => break,
                    changed = queues.changed() => if changed.is_err() { break },
                }
            }
            Err(e) => {
                warn!(slot = index, error = %e, "cannot take from the queue");
                tokio::select! {
                    () = phase.drain.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {},
                }
            }
        }
    }
    debug!(slot = index, "slot stopped taking entries");
}

/// Everything that happens to one taken entry.
async fn handle(shared: &SlotContext, phase: &Phase, taken: Taken) {
    let Some((job_id, taken)) = ready_to_claim(shared, phase, taken).await else {
        return;
    };
    // Claim straight away: the claim refuses finished, canceled and re-taken jobs (409)
    // and unknown ones (404), so no read is needed first (the entry's name said what
    // the job needs).
    let claim = Claim {
        token: taken.token(),
        executor: shared.env.executor_id.clone(),
        entry: taken.name().to_owned(),
    };
    let claiming = Instant::now();
    let job = match shared.api.claim(job_id, &claim).await {
        Ok(job) => job,
        Err(e) if e.is_not_found() => {
            info!(job = %job_id, "job no longer exists; consuming its entry");
            consume(taken).await;
            return;
        }
        Err(e) if e.is_conflict() => {
            info!(job = %job_id, reason = %e, "claim refused; the entry is stale, consuming it");
            consume(taken).await;
            return;
        }
        Err(e) if e.is_paused() => {
            debug!(job = %job_id, reason = %e, "action paused: giving the entry back unclaimed");
            return release_quietly(taken).await;
        }
        Err(e) => {
            return give_back(
                shared,
                phase,
                taken,
                "claim the job",
                &e,
                e.is_unavailable(),
            )
            .await
        }
    };
    shared.backoff.succeeded();
    metrics::histogram!("drover_executor_claim_seconds").record(claiming.elapsed().as_secs_f64());
    let busy = shared.busy.fetch_add(1, Ordering::Relaxed) + 1;
    shared.published.send_modify(|p| p.busy = busy);
    metrics::gauge!("drover_executor_busy_slots").set(busy as f64);
    let started = Instant::now();
    let outcome = run_claimed(shared, phase, &job, &taken).await;
    metrics::histogram!("drover_executor_run_seconds").record(started.elapsed().as_secs_f64());
    report(shared, phase, &job, taken, outcome).await;
    let busy = shared.busy.fetch_sub(1, Ordering::Relaxed) - 1;
    shared.published.send_modify(|p| p.busy = busy);
    metrics::gauge!("drover_executor_busy_slots").set(busy as f64);
}

/// A plain entry (a kazoo producer's, or one put before routing) does not say what its
/// job needs: read the job. One this executor cannot run (or whose action is paused) goes
/// back under its route, in one transaction, for an executor that can; it costs no
/// attempt. Returns the entry
/// when this executor should claim it.
async fn read_plain(
    shared: &SlotContext,
    phase: &Phase,
    job_id: JobId,
    taken: Taken,
) -> Option<Taken> {
    let job = match shared.api.get(job_id).await {
        Ok(job) => job,
        Err(e) if e.is_not_found() => {
            info!(job = %job_id, "job no longer exists; consuming its entry");
            consume(taken).await;
            return None;
        }
        Err(e) => {
            give_back(shared, phase, taken, "read the job", &e, e.is_unavailable()).await;
            return None;
        }
    };
    // A finished job's entry is refused by the claim, and consumed.
    let Ok(route) = job.route() else {
        return Some(taken);
    };
    if job.state.is_terminal()
        || (shared.routing.runs(&route) && !shared.routing.paused(&route.action))
    {
        return Some(taken);
    }
    let segment = route.segment();
    match taken.reroute(&segment).await {
        Ok(entry) => {
            info!(job = %job_id, %route, entry = entry.as_deref().unwrap_or("?"), "this executor cannot run the job; put its entry back for one that can");
        }
        Err(e) => warn!(job = %job_id, error = %e, "cannot put the entry back under its route"),
    }
    None
}

/// The job id and the entry, when it is to be claimed now: not while draining, not a
/// plain entry this executor cannot run, not a paused action's (each goes back unclaimed,
/// at no attempt's cost). An entry without a job id is consumed.
async fn ready_to_claim(
    shared: &SlotContext,
    phase: &Phase,
    taken: Taken,
) -> Option<(JobId, Taken)> {
    let job_id = match taken.job_id() {
        Ok(id) => id,
        Err(e) => {
            warn!(error = %e, "queue entry holds no job id; consuming it");
            consume(taken).await;
            return None;
        }
    };
    if phase.drain.is_cancelled() {
        // Taken just before the drain began: another executor runs it at once.
        debug!(job = %job_id, "draining: giving back an entry taken just before");
        release_quietly(taken).await;
        return None;
    }
    let taken = if taken.route().is_empty() {
        read_plain(shared, phase, job_id, taken).await?
    } else {
        taken
    };
    let action = taken.route().split('+').next().unwrap_or_default();
    if shared.routing.paused(action) {
        // Taken as the pause arrived: the filter skips it from now on.
        debug!(job = %job_id, action, "action paused: giving back an entry taken just before");
        release_quietly(taken).await;
        return None;
    }
    Some((job_id, taken))
}

/// Hands an entry back unclaimed.
async fn release_quietly(taken: Taken) {
    if let Err(e) = taken.release().await {
        debug!(error = %e, "release failed");
    }
}

/// Runs a claimed job with its stop triggers wired: loss of the entry, the drain
/// deadline, and (through the reporter) cancel, kill and a refused token.
async fn run_claimed(shared: &SlotContext, phase: &Phase, job: &Job, taken: &Taken) -> Outcome {
    let stop = Stop::default();
    let lost = taken.lost().clone();
    let watchers = [
        tokio::spawn({
            let stop = stop.clone();
            async move {
                lost.tripped().await;
                stop.trip(StopReason::Lost);
            }
        }),
        tokio::spawn({
            let (stop, deadline) = (stop.clone(), phase.deadline.clone());
            async move {
                deadline.cancelled().await;
                stop.trip(StopReason::Drain);
            }
        }),
    ];
    let to = ReportTo {
        api: shared.api.clone(),
        job: job.id,
        token: taken.token(),
        heartbeat_interval: shared.config.heartbeat_interval,
        batch_lines: shared.config.log_batch_lines,
        flush_interval: shared.config.log_flush_interval,
    };
    let reporter = Reporter::start(to, stop.clone());
    info!(job = %job.id, action = %job.action, attempt = job.attempts, token = %taken.token(), "running job");
    let _ = reporter.lines().send(runner::recreate_line(job)).await;
    let to = Destination {
        api: &shared.api,
        job: job.id,
        token: taken.token(),
    };
    let files = Files::Api(&to);
    let outcome =
        runner::run_named(&shared.env, &shared.catalogue, job, &reporter, files, &stop).await;
    reporter.close(Duration::from_secs(10)).await;
    for watcher in watchers {
        watcher.abort();
    }
    // a loss noticed while finishing still means the job is not ours to report
    match (stop.reason(), &outcome) {
        (Some(reason), _) if reason.abandons() => Outcome::Abandoned(reason),
        _ => unless_lost(job, taken, outcome).await,
    }
}

/// A failure is only the job's once we know we still held it when it ended: a process
/// resumed after its session expired sees its container killed (by a take-over or by the
/// reaper of another executor, because the job was not its any more) before it hears of
/// the loss, and that kill is not the job's result. One ZooKeeper read, on failures only:
/// a success is a run that completed, whoever holds the job now.
async fn unless_lost(job: &Job, taken: &Taken, outcome: Outcome) -> Outcome {
    let Outcome::Finished { code, .. } = &outcome else {
        return outcome;
    };
    if *code == StatusCode::Succeeded {
        return outcome;
    }
    match taken.marker_is_ours().await {
        Ok(true) => outcome,
        Ok(false) => {
            warn!(job = %job.id, status = %code, "the run failed after the job stopped being ours (our marker is gone): not reporting that failure");
            Outcome::Abandoned(StopReason::Lost)
        }
        Err(e) => {
            // The API's token fence still stands behind the report.
            warn!(job = %job.id, error = %e, "cannot tell whether our marker is still ours; reporting the result");
            outcome
        }
    }
}

/// Records the outcome and settles the queue entry.
async fn report(shared: &SlotContext, phase: &Phase, job: &Job, taken: Taken, outcome: Outcome) {
    let token = taken.token();
    let label = match &outcome {
        Outcome::Finished { code, .. } => code.as_str(),
        Outcome::Abandoned(_) => "ABANDONED",
        Outcome::Released(_) => "RELEASED",
    };
    metrics::counter!("drover_executor_jobs_total", "outcome" => label).increment(1);
    let outcome = outcome
        .redacted(&shared.env.secrets)
        .with_incident(&shared.env.executor_id, job.id);
    match outcome {
        Outcome::Finished {
            code,
            exit_code,
            message,
        } => record_finish(shared, phase, job, taken, code, exit_code, message).await,
        Outcome::Abandoned(StopReason::Fenced) => {
            // Another holder (or the API) owns the job now: this entry must never go
            // back for a third taker.
            warn!(job = %job.id, "the API fenced us off; stopped the job, wrote nothing more and consume the entry");
            consume(taken).await;
        }
        Outcome::Abandoned(reason) => {
            // The entry is lost; if its marker is still ours after all (the session
            // came back), dropping the handle deletes it now that the container is gone.
            warn!(job = %job.id, ?reason, "job is no longer ours; stopped it and wrote nothing more");
        }
        Outcome::Released(message) => {
            let release = Release {
                token,
                message: Some(message),
            };
            match shared.api.release(job.id, &release).await {
                Ok(job) => {
                    info!(job = %job.id, state = %job.state, "gave the job back to the queue")
                }
                Err(e) => {
                    warn!(job = %job.id, error = %e, "cannot release the job on the API; the reconciler will")
                }
            }
            if let Err(e) = taken.release().await {
                warn!(job = %job.id, error = %e, "cannot release the queue entry");
            }
        }
    }
}

/// Records a terminal result, backing off while the API is unreachable, and consumes the
/// entry once the API has it (or refuses it as not ours).
async fn record_finish(
    shared: &SlotContext,
    phase: &Phase,
    job: &Job,
    taken: Taken,
    code: StatusCode,
    exit_code: Option<i64>,
    message: String,
) {
    let token = taken.token();
    let mut finish = Finish {
        token,
        status_code: code,
        exit_code,
        message: Some(truncate_message(message)),
    };
    let mut refused = false;
    loop {
        match shared.api.finish(job.id, &finish).await {
            Ok(_) => {
                shared.backoff.succeeded();
                info!(job = %job.id, status = %finish.status_code, "job finished");
                consume(taken).await;
                return;
            }
            Err(e) if e.is_conflict() => {
                // Fenced or finished by someone else: not ours to record, and
                // never to hand to a third taker.
                warn!(job = %job.id, error = %e, "the API refused our result: the job is not ours any more; consuming the entry");
                consume(taken).await;
                return;
            }
            Err(e) if e.status().is_some_and(|s| s.is_client_error()) && !refused => {
                // The result itself was refused (400, 413): rerunning the job
                // would only meet the same refusal. End it with what we know.
                warn!(job = %job.id, error = %e, "the API refused our result; recording an internal error instead");
                refused = true;
                finish.status_code = StatusCode::InternalError;
                finish.message = Some(truncate_message(format!(
                    "the action ended with {code}{}, but the API refused that result: {e}",
                    exit_code.map_or_else(String::new, |c| format!(" (exit code {c})"))
                )));
            }
            Err(e)
                if e.is_unavailable()
                    && !taken.lost().is_lost()
                    && !phase.deadline.is_cancelled() =>
            {
                shared.backoff.failed("record the job's result", &e);
                shared.backoff.ready().await;
            }
            Err(e) => {
                warn!(job = %job.id, error = %e, "cannot record the job's result; leaving it to the queue");
                return;
            }
        }
    }
}

async fn give_back(
    shared: &SlotContext,
    phase: &Phase,
    taken: Taken,
    what: &str,
    error: &(dyn std::fmt::Display + Sync),
    unavailable: bool,
) {
    if unavailable {
        shared.backoff.failed(what, error);
    } else {
        warn!(%error, "cannot {what}; releasing the entry");
        tokio::select! {
            () = phase.drain.cancelled() => {},
            () = tokio::time::sleep(Duration::from_millis(500)) => {},
        }
    }
    if let Err(e) = taken.release().await {
        debug!(error = %e, "release failed");
    }
}

async fn consume(taken: Taken) {
    if let Err(e) = taken.consume().await {
        warn!(error = %e, "cannot consume the queue entry");
    }
}

/// The longest status message sent; the API refuses more than 4,096 bytes.
const MAX_MESSAGE: usize = 4000;

/// `message`, cut at a character boundary to fit the API's limit.
fn truncate_message(mut message: String) -> String {
    if message.len() <= MAX_MESSAGE {
        return message;
    }
    let mut end = MAX_MESSAGE - 20;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.truncate(end);
    message.push_str(" … (truncated)");
    message
}

/// Up to `n` of `names`, and how many more.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::some_names;

    #[test]
    fn messages_fit_the_api_limit_at_a_character_boundary() {
        let long = "é".repeat(5000);
        let cut = truncate_message(long);
        assert!(cut.len() <= MAX_MESSAGE, "{}", cut.len());
        assert!(cut.ends_with("(truncated)"));
        assert_eq!(truncate_message("short".into()), "short");
    }

    #[test]
    fn a_long_catalogue_is_named_in_part() {
        let names: Vec<String> = (0..500).map(|i| format!("action-{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let text = some_names(&names, 10);
        assert!(
            text.starts_with("action-0, action-1") && text.ends_with("and 490 more"),
            "{text}"
        );
        assert_eq!(some_names(&["a", "b"], 10), "a, b");
    }
}
