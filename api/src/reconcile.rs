//! The reconciler: repairs what a crash or an outage left between the database and the
//! ZooKeeper queue. Level-triggered: every run re-reads both sides and converges.
//!
//! - QUEUED records (ready to run) older than a grace period with no entry on the queue
//!   (never enqueued, or the entry was deleted) are put on the queue; records whose entry
//!   is there but whose `enqueued` flag is false get the flag.
//! - RUNNING jobs whose heartbeat is stale and whose holder's taken node (the one whose
//!   creation zxid is the stored fencing token) is gone are released as their holder
//!   would: back to QUEUED with the attempt counted, or ended when no attempts are left
//!   (or cancel/kill was requested). A released job without an entry is put back on the
//!   queue.
//! - Entries whose job no longer exists, or is finished, and that nobody holds are
//!   deleted.
//!
//! The queue is listed before the database is read: an entry created after the listing
//! belongs to a job created after it (younger than the grace period) or a job released
//! with its entry kept, so a record that looks entry-less really is (at worst a repair
//! makes a duplicate entry, which executors see as stale). Entry payloads never change,
//! so entry name → job id is cached across runs; only new entries are read.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use drover_coordination::{Lock, Queue, Session, ZkError};
use drover_core::{FencingToken, JobId, State};
use futures::stream::{self, StreamExt};
use tracing::{debug, info, warn};

use crate::error::{Error, Result};
use crate::store::maintenance::StaleRun;
use crate::store::{now_us, Store};
use drover_model::Reconciled;

/// The default grace period of a QUEUED record before it counts as entry-less.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// The default age of a RUNNING job's last heartbeat before its holder may be gone.
pub(crate) const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(30);
/// The default age of an ENQUEUED job whose action no registered executor knows before
/// it is ended `UNKNOWN_ACTION`.
pub(crate) const DEFAULT_UNKNOWN_ACTION_AFTER: Duration = Duration::from_secs(600);
/// Records looked at per run, per kind: a backlog is worked off over several runs.
const QUEUED_PER_RUN: i64 = 10_000;
const RUNNING_PER_RUN: i64 = 1_000;
/// Entry reads in flight at once.
const READ_CONCURRENCY: usize = 32;

/// What a run needs to know: how old is old enough.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Thresholds {
    pub(crate) grace: Duration,
    pub(crate) stale_after: Duration,
    pub(crate) unknown_action_after: Duration,
}

/// Whether some registered executor knows an action (`None`: cannot tell, e.g. none is
/// registered).
pub(crate) type KnownAction<'a> = &'a (dyn Fn(&str) -> Option<bool> + Sync);

/// The reconciler's memory between runs. One per API process.
#[derive(Debug, Default)]
pub(crate) struct Reconciler {
    /// Entry name → the job id its payload holds (`None`: not a job id). Payloads are
    /// immutable, so this is never stale, only incomplete.
    entries: Mutex<HashMap<String, Option<JobId>>>,
    /// One run at a time in this process.
    running: tokio::sync::Mutex<()>,
}

/// The queue as listed at the start of a run.
struct Listing {
    /// Job id → its entry names.
    by_job: HashMap<JobId, Vec<String>>,
    /// Names of taken entries.
    taken: HashSet<String>,
    entries_path: String,
    taken_path: String,
    count: usize,
}

fn zk_unavailable(what: &str, err: impl std::fmt::Display) -> Error {
    Error::Unavailable {
        dependency: "zookeeper",
        detail: format!("cannot {what}: {err}"),
    }
}

impl Reconciler {
    /// One run: reads the queue and the database, repairs, and says what it did.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when ZooKeeper cannot be listed; database errors. Repairs
    /// that fail one by one are logged and left for the next run.
    ///
    /// # Cancellation safety
    /// Every repair is idempotent, so a run dropped half-way is finished by the next.
    pub(crate) async fn run(
        &self,
        store: &Store,
        session: &Session,
        queue: &Queue,
        thresholds: Thresholds,
        known: KnownAction<'_>,
    ) -> Result<Reconciled> {
        let _one_at_a_time = self.running.lock().await;
        let _cluster_wide = lock_cluster_wide(session).await?;
        let started = Instant::now();
        let listing = self.list(session, queue).await?;
        let mut report = Reconciled {
            entries_seen: listing.count as u64,
            ..Reconciled::default()
        };
        let now = now_us();
        let age =
            |d: Duration| now.saturating_sub(i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        // Waiting jobs whose dependencies ended: released (the enqueuer puts them on the
        // queue now; a later run does, after the grace, if it cannot) or failed.
        let released = store.settle_waiting(QUEUED_PER_RUN).await?;
        if !released.is_empty() {
            info!(
                released = released.len(),
                "reconcile released jobs whose dependencies succeeded"
            );
            store.ready(released);
        }
        self.repair_queued(store, queue, &listing, age(thresholds.grace), &mut report)
            .await?;
        let stale = store
            .running_stale(age(thresholds.stale_after), RUNNING_PER_RUN)
            .await?;
        for run in stale {
            self.repair_running(store, session, queue, &listing, run, &mut report)
                .await;
        }
        end_unknown(
            store,
            known,
            age(thresholds.unknown_action_after),
            thresholds.unknown_action_after,
            &mut report,
        )
        .await?;
        self.remove_orphans(store, session, &listing, &mut report)
            .await?;
        report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if report.total() > 0 {
            info!(
                repairs = %report.counts(),
                entries = report.entries_seen,
                elapsed_ms = report.elapsed_ms,
                "reconcile repaired"
            );
        } else {
            debug!(
                entries = report.entries_seen,
                elapsed_ms = report.elapsed_ms,
                "reconcile found nothing to repair"
            );
        }
        Ok(report)
    }

    /// Lists entries and taken markers; reads the payloads of entries not seen before.
    async fn list(&self, session: &Session, queue: &Queue) -> Result<Listing> {
        let client = session.client();
        let entries_path = format!("{}/entries", queue.path());
        let taken_path = format!("{}/taken", queue.path());
        let names = match client.list_children(&entries_path).await {
            Ok(names) => names,
            Err(ZkError::NoNode) => Vec::new(),
            Err(err) => return Err(zk_unavailable(&format!("list {entries_path}"), err)),
        };
        let taken: HashSet<String> = match client.list_children(&taken_path).await {
            Ok(names) => names.into_iter().collect(),
            Err(ZkError::NoNode) => HashSet::new(),
            Err(err) => return Err(zk_unavailable(&format!("list {taken_path}"), err)),
        };
        let unknown: Vec<String> = {
            let cache = drover_core::lock(&self.entries);
            names
                .iter()
                .filter(|n| !cache.contains_key(*n))
                .cloned()
                .collect()
        };
        let read: Vec<(String, Result<Option<Option<JobId>>>)> = stream::iter(unknown)
            .map(|name| {
                let path = format!("{entries_path}/{name}");
                async move {
                    let payload = match client.get_data(&path).await {
                        Ok((data, _)) => Ok(Some(
                            std::str::from_utf8(&data)
                                .ok()
                                .and_then(|text| text.trim().parse::<JobId>().ok()),
                        )),
                        // Consumed since the listing: nothing to learn.
                        Err(ZkError::NoNode) => Ok(None),
                        // Anything else leaves the entry unknown: a run that went on
                        // would take its job for entry-less and enqueue it twice.
                        Err(err) => Err(zk_unavailable(&format!("read {path}"), err)),
                    };
                    (name, payload)
                }
            })
            .buffer_unordered(READ_CONCURRENCY)
            .collect()
            .await;
        let mut cache = drover_core::lock(&self.entries);
        let mut failure = None;
        for (name, payload) in read {
            match payload {
                Ok(Some(job)) => {
                    cache.insert(name, job);
                }
                Ok(None) => {}
                Err(err) => failure = Some(err),
            }
        }
        if let Some(err) = failure {
            return Err(err);
        }
        let present: HashSet<&String> = names.iter().collect();
        cache.retain(|name, _| present.contains(name));
        let mut by_job: HashMap<JobId, Vec<String>> = HashMap::new();
        for name in &names {
            if let Some(Some(job)) = cache.get(name) {
                by_job.entry(*job).or_default().push(name.clone());
            }
        }
        Ok(Listing {
            by_job,
            taken,
            entries_path,
            taken_path,
            count: names.len(),
        })
    }

    /// QUEUED records older than the grace period: on the queue, and flagged so.
    async fn repair_queued(
        &self,
        store: &Store,
        queue: &Queue,
        listing: &Listing,
        before_us: i64,
        report: &mut Reconciled,
    ) -> Result<()> {
        for record in store.queued_before(before_us, QUEUED_PER_RUN).await? {
            if listing.by_job.contains_key(&record.id) {
                if !record.enqueued {
                    match store.mark_enqueued(record.id).await {
                        Ok(_) => report.marked_enqueued.add(record.id),
                        Err(err) => {
                            warn!(job_id = %record.id, error = %err, "reconcile cannot mark a job enqueued")
                        }
                    }
                }
                continue;
            }
            match put(store, queue, record.id, record.priority, &record.route).await {
                Ok(entry) => {
                    info!(job_id = %record.id, %entry, was_enqueued = record.enqueued, "reconcile put a queued job without an entry on the queue");
                    report.enqueued.add(record.id);
                }
                Err(err) => {
                    warn!(job_id = %record.id, error = %err, "reconcile cannot enqueue a job; the next run retries");
                    if matches!(err, Error::Unavailable { .. }) {
                        return Err(err);
                    }
                }
            }
        }
        Ok(())
    }

    /// A RUNNING job with a stale heartbeat: released if its holder's taken node is gone.
    async fn repair_running(
        &self,
        store: &Store,
        session: &Session,
        queue: &Queue,
        listing: &Listing,
        run: StaleRun,
        report: &mut Reconciled,
    ) {
        let Some(token) = run.token else {
            return;
        };
        let names = listing.by_job.get(&run.id).map_or(&[][..], Vec::as_slice);
        match holder_alive(session, &listing.taken_path, names, token).await {
            Ok(false) => {}
            Ok(true) => {
                debug!(job_id = %run.id, "heartbeat is stale but its holder's taken node exists; leaving it");
                return;
            }
            Err(err) => {
                warn!(job_id = %run.id, error = %err, "reconcile cannot check a job's taken node");
                return;
            }
        }
        let executor = run.executor.as_deref().unwrap_or("unknown");
        let silent = run.last_heartbeat_us.map_or_else(
            || "never heartbeated".to_owned(),
            |us| format!("last heartbeat {}s ago", (now_us() - us) / 1_000_000),
        );
        let reason = format!(
            "executor {executor} vanished (its queue entry is no longer taken under token {token}; {silent}), so the reconciler released it"
        );
        let job = match store.release(run.id, token, Some(&reason)).await {
            Ok(job) => job,
            Err(err) => {
                // A newer claim or a result arrived meanwhile: nothing to repair.
                debug!(job_id = %run.id, error = %err, "reconcile release refused");
                return;
            }
        };
        if job.state.is_terminal() {
            info!(job_id = %run.id, status = %job.status_code, message = %job.status_message, "reconcile ended a job whose executor vanished");
            report.ended.add(run.id);
            return;
        }
        info!(job_id = %run.id, attempts = job.attempts, "reconcile gave a job whose executor vanished back to the queue");
        report.released.add(run.id);
        if job.state == State::Queued && names.is_empty() {
            let route = match job.route() {
                Ok(route) => route,
                Err(detail) => {
                    warn!(job_id = %job.id, %detail, "reconcile cannot route a released job");
                    return;
                }
            };
            match put(store, queue, job.id, job.priority, &route).await {
                Ok(_) => report.enqueued.add(job.id),
                Err(err) => {
                    warn!(job_id = %job.id, error = %err, "reconcile cannot enqueue a released job; the next run retries")
                }
            }
        }
    }

    /// Untaken entries whose job is gone or finished: deleted.
    async fn remove_orphans(
        &self,
        store: &Store,
        session: &Session,
        listing: &Listing,
        report: &mut Reconciled,
    ) -> Result<()> {
        let ids: Vec<JobId> = listing.by_job.keys().copied().collect();
        let states = store.states_of(&ids).await?;
        let client = session.client();
        for (job, names) in &listing.by_job {
            let why = match states.get(job) {
                None => "its job no longer exists",
                Some(state) if state.is_terminal() => "its job is finished",
                Some(_) => continue,
            };
            for name in names {
                if listing.taken.contains(name) {
                    continue; // an executor holds it and will consume it
                }
                let taken = format!("{}/{name}", listing.taken_path);
                if !matches!(client.check_stat(&taken).await, Ok(None)) {
                    continue;
                }
                let path = format!("{}/{name}", listing.entries_path);
                match client.delete(&path, None).await {
                    Ok(()) | Err(ZkError::NoNode) => {
                        info!(entry = %name, job_id = %job, reason = why, "reconcile removed a queue entry");
                        report.removed_entries.add(name);
                    }
                    Err(err) => {
                        warn!(entry = %name, error = %err, "reconcile cannot remove a queue entry")
                    }
                }
            }
        }
        Ok(())
    }
}

/// Ends the ENQUEUED jobs created before `before_us` whose action no registered executor
/// knows with `UNKNOWN_ACTION` (their entries are then orphans, removed next).
async fn end_unknown(
    store: &Store,
    known: KnownAction<'_>,
    before_us: i64,
    waited: Duration,
    report: &mut Reconciled,
) -> Result<()> {
    for action in store.queued_actions(before_us).await? {
        if known(&action) != Some(false) {
            continue;
        }
        let message = format!(
            "no executor in the cluster knows action {action:?} (waited at least {}): add an action file for it to an executor's actions_dir, or fix the name and submit again",
            humantime::format_duration(waited)
        );
        for id in store.fail_unknown(&action, before_us, &message).await? {
            info!(job_id = %id, %action, "reconcile ended a job no executor can run");
            report.unknown_action.add(id);
        }
    }
    Ok(())
}

/// Puts `id` on the queue and flags the record; returns the entry name.
async fn put(
    store: &Store,
    queue: &Queue,
    id: JobId,
    priority: drover_core::Priority,
    route: &drover_core::Route,
) -> Result<String> {
    let entry = queue
        .put_job_routed(id, priority, &route.segment())
        .await
        .map_err(|err| zk_unavailable("put an entry on the queue", err))?;
    if let Err(err) = store.mark_enqueued(id).await {
        // The entry is there; the flag is fixed by the next run.
        warn!(job_id = %id, error = %err, "reconcile enqueued a job but cannot mark it so");
    }
    Ok(entry)
}

/// Whether one of `names` is taken under `token` (the taken node's creation zxid).
async fn holder_alive(
    session: &Session,
    taken_path: &str,
    names: &[String],
    token: FencingToken,
) -> Result<bool> {
    for name in names {
        let path = format!("{taken_path}/{name}");
        match session.client().check_stat(&path).await {
            Ok(Some(stat)) if FencingToken::new(stat.czxid) == token => return Ok(true),
            Ok(_) => {}
            Err(err) => return Err(zk_unavailable(&format!("stat {path}"), err)),
        }
    }
    Ok(false)
}

/// The reconciler's cluster-wide lock: an ephemeral node of the running API's session,
/// so at most one run happens among every API process, and one that dies mid-run frees
/// it with its session.
const LOCK_PATH: &str = drover_model::paths::RECONCILE_LOCK;

async fn lock_cluster_wide(session: &Session) -> Result<Lock> {
    match Lock::try_acquire(session, LOCK_PATH).await {
        Ok(Ok(lock)) => Ok(lock),
        Ok(Err(holder)) => Err(Error::ReconcileRunning {
            holder: format!("zookeeper session {holder}"),
        }),
        Err(err) => Err(zk_unavailable(&format!("lock {LOCK_PATH}"), err)),
    }
}
