//! The API's optional ZooKeeper session: the queue it enqueues on and the executor list.
//!
//! The API serves without ZooKeeper: a background task connects, publishes the
//! session while it lives, and reconnects after it is lost. A submit that finds no
//! healthy session commits the record with `enqueued = false` for the reconciler.

use std::time::Duration;

use drover_coordination::{
    supervise, Control, Ended, EntryState, Health, Membership, Queue, Role, Session, SessionEnd,
    ZkSettings,
};
use drover_core::{FencingToken, JobId, Offer, Priority, Route};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::store::system_rfc3339;
use drover_model::{ExecutorInfo, Orders, Pauses};

/// The registered executors' offers and heartbeat intervals and the pauses at one
/// moment: why queued jobs wait, and whether running ones are stale.
#[derive(Debug, Clone)]
pub(crate) struct Offers(Vec<(String, Offer)>, Pauses, Vec<(String, Duration)>);

/// The heartbeat interval assumed for a job whose executor is not registered (the
/// executor's default).
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(3);

impl Offers {
    /// Offers of these executors (id → offer), nothing paused.
    pub(crate) fn new(offers: Vec<(String, Offer)>) -> Offers {
        Offers(offers, Pauses::default(), Vec::new())
    }

    /// These offers under `pauses`.
    pub(crate) fn paused(self, pauses: Pauses) -> Offers {
        Offers(self.0, pauses, self.2)
    }

    /// These offers with the executors' heartbeat intervals (id → interval).
    pub(crate) fn beating(self, heartbeats: Vec<(String, Duration)>) -> Offers {
        Offers(self.0, self.1, heartbeats)
    }

    /// Whether a job of `executor` last heard of `age` ago is stale: silent for more
    /// than three of that executor's heartbeat intervals.
    pub(crate) fn stale(&self, executor: Option<&str>, age: Duration) -> bool {
        let interval = executor
            .and_then(|id| self.2.iter().find(|(e, _)| e == id))
            .map_or(DEFAULT_HEARTBEAT, |(_, every)| *every);
        age > interval * 3
    }

    /// Why none of them can run `route` (the status message of a job
    /// `WAITING_ON_WORKERS`); `None` when one can.
    pub(crate) fn why_waiting(&self, route: &Route) -> Option<String> {
        drover_core::route::why_waiting(route, self.0.iter().map(|(id, o)| (id.as_str(), o)))
    }

    /// Why `action` may not start (the status message of a job `WAITING_PAUSED`); `None`
    /// when it is not paused.
    pub(crate) fn why_paused(&self, action: &str) -> Option<String> {
        let pause = self.1.of(action)?;
        Some(Pauses::message(action, pause, self.1.all.is_some()))
    }
}

/// A live session and what the API uses on it.
#[derive(Clone, Debug)]
struct Connected {
    session: Session,
    queue: Queue,
    /// The registered executors, kept current by a watch: what jobs are routed against.
    executors: watch::Receiver<Vec<drover_coordination::ExecutorInfo>>,
    /// The operators' orders, kept current by a watch: what queued jobs wait for.
    orders: watch::Receiver<Orders>,
}

/// Handle on the current ZooKeeper session, if any. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Coordinator {
    current: watch::Receiver<Option<Connected>>,
    enqueue_timeout: Duration,
}

/// Why a job was not put on the queue.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotEnqueued {
    #[error("no zookeeper session")]
    Disconnected,
    #[error("no answer from zookeeper within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Zk(#[from] drover_coordination::Error),
}

impl Coordinator {
    /// Starts the connection task on `tracker`; it stops on `shutdown`.
    pub(crate) fn start(
        settings: ZkSettings,
        queue_path: String,
        enqueue_timeout: Duration,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Coordinator {
        let (tx, rx) = watch::channel(None);
        tracker.spawn(async move {
            let mut role = Publisher { queue_path, tx };
            supervise(&settings, &mut role, shutdown).await;
            role.tx.send_replace(None);
        });
        Coordinator {
            current: rx,
            enqueue_timeout,
        }
    }

    fn healthy(&self) -> Option<Connected> {
        let current = self.current.borrow().clone()?;
        (current.session.health() == Health::Connected).then_some(current)
    }

    /// The session and queue handle while the session is healthy (for the reconciler and
    /// the distributions listing).
    pub(crate) fn connected(&self) -> Option<(Session, Queue)> {
        self.healthy().map(|c| (c.session, c.queue))
    }

    /// `connected`, `suspended` (disconnected, the session may come back) or `disconnected`.
    pub(crate) fn status(&self) -> &'static str {
        match self.current.borrow().as_ref().map(|c| c.session.health()) {
            Some(Health::Connected) => "connected",
            Some(Health::Suspended { .. }) => "suspended",
            Some(Health::Lost(_)) | None => "disconnected",
        }
    }

    /// Puts the job's id on the queue, waiting at most the enqueue timeout.
    ///
    /// # Errors
    /// [`NotEnqueued`]: no healthy session, no answer in time, or ZooKeeper refused.
    /// After a timeout the entry may still be written later (the reconciler's repair
    /// then makes a duplicate entry, which executors treat as stale).
    pub(crate) async fn enqueue(
        &self,
        id: JobId,
        priority: Priority,
        route: &Route,
    ) -> Result<(), NotEnqueued> {
        let connected = self.healthy().ok_or(NotEnqueued::Disconnected)?;
        let segment = route.segment();
        let put = connected.queue.put_job_routed(id, priority, &segment);
        match tokio::time::timeout(self.enqueue_timeout, put).await {
            Ok(Ok(_entry)) => Ok(()),
            Ok(Err(err)) => Err(err.into()),
            Err(_) => Err(NotEnqueued::Timeout(self.enqueue_timeout)),
        }
    }

    /// Checks in ZooKeeper that queue entry `entry` holds job `id` and is taken under
    /// `token` (its taken node's creation zxid): the proof a claim must bring. A server
    /// that has not seen the take yet is synced with the leader and read again.
    ///
    /// # Errors
    /// [`Error::EntryRefused`] when ZooKeeper shows otherwise; [`Error::Unavailable`]
    /// without a healthy session or an answer within the enqueue timeout.
    pub(crate) async fn verify_claim(
        &self,
        id: JobId,
        entry: &str,
        token: FencingToken,
    ) -> Result<()> {
        let connected = self.healthy().ok_or_else(|| Error::Unavailable {
            dependency: "zookeeper",
            detail: "the API has no ZooKeeper session to check the claim's queue entry".into(),
        })?;
        let check = async {
            let unavailable = |err: drover_coordination::Error| Error::Unavailable {
                dependency: "zookeeper",
                detail: format!("cannot read queue entry {entry}: {err}"),
            };
            let queue = &connected.queue;
            let mut seen = queue.entry_state(entry, false).await.map_err(unavailable)?;
            if seen.taken.is_none_or(|held| held < token) {
                // This server may lag behind the one the executor took on.
                seen = queue.entry_state(entry, true).await.map_err(unavailable)?;
            }
            judge(seen, id, entry, token)
        };
        tokio::time::timeout(self.enqueue_timeout, check)
            .await
            .map_err(|_| Error::Unavailable {
                dependency: "zookeeper",
                detail: format!(
                    "no answer within {:?} checking queue entry {entry}",
                    self.enqueue_timeout
                ),
            })?
    }

    /// What every registered executor offers now (id → offer) and what is paused, to tell
    /// why jobs wait; `None` without a session to know.
    pub(crate) fn offers(&self) -> Option<Offers> {
        let connected = self.healthy()?;
        let executors = connected.executors.borrow();
        let offers = Offers::new(
            executors
                .iter()
                .map(|e| (e.id.clone(), e.offer()))
                .collect(),
        );
        let heartbeats = executors
            .iter()
            .filter_map(|e| Some((e.id.clone(), Duration::from_millis(e.heartbeat_ms?))))
            .collect();
        let pauses = connected.orders.borrow().pauses.clone();
        Some(offers.paused(pauses).beating(heartbeats))
    }

    /// Whether some registered executor knows `action` at all (whatever tags it needs);
    /// `None` without a session, or while no executor is registered.
    pub(crate) fn action_known(&self, action: &str) -> Option<bool> {
        let connected = self.healthy()?;
        let executors = connected.executors.borrow();
        if executors.is_empty() {
            return None;
        }
        Some(executors.iter().any(|e| e.actions.contains_key(action)))
    }

    /// The registered executors.
    ///
    /// # Errors
    /// [`Error::Unavailable`] without a healthy session or when the listing fails.
    pub(crate) async fn executors(&self) -> Result<Vec<ExecutorInfo>> {
        let unavailable = |detail: String| Error::Unavailable {
            dependency: "zookeeper",
            detail,
        };
        let connected = self
            .healthy()
            .ok_or_else(|| unavailable("the API has no ZooKeeper session right now".into()))?;
        let listing = tokio::time::timeout(
            self.enqueue_timeout,
            Membership::new(&connected.session).list(),
        )
        .await
        .map_err(|_| unavailable(format!("no answer within {:?}", self.enqueue_timeout)))?
        .map_err(|err| unavailable(err.to_string()))?;
        Ok(listing
            .into_iter()
            .map(|info| ExecutorInfo {
                id: info.id,
                host: info.host,
                slots: info.slots,
                busy: info.busy,
                version: info.version,
                started_at: system_rfc3339(info.started),
                actions: info.actions,
                tags: info.tags,
                drain: info.drain,
                heartbeat_ms: info.heartbeat_ms,
                disk: info.disk,
            })
            .collect())
    }

    /// When registered executor `id` started; `None` if it is not registered (or no
    /// session).
    pub(crate) fn executor_started(&self, id: &str) -> Option<std::time::SystemTime> {
        let connected = self.healthy()?;
        let executors = connected.executors.borrow();
        executors.iter().find(|e| e.id == id).map(|e| e.started)
    }

    /// What is paused now, as the watch last read it; `None` without a session to know.
    pub(crate) fn pauses(&self) -> Option<Pauses> {
        Some(self.healthy()?.orders.borrow().pauses.clone())
    }

    /// The session's [`Control`], or 503.
    fn control(&self) -> Result<Control> {
        let connected = self.healthy().ok_or_else(|| Error::Unavailable {
            dependency: "zookeeper",
            detail: "the API has no ZooKeeper session right now, and orders live there".into(),
        })?;
        Ok(Control::new(&connected.session))
    }

    /// `work` against ZooKeeper within the enqueue timeout, its errors as 503s.
    async fn within<T>(
        &self,
        what: &str,
        work: impl std::future::Future<Output = drover_coordination::Result<T>>,
    ) -> Result<T> {
        let unavailable = |detail: String| Error::Unavailable {
            dependency: "zookeeper",
            detail,
        };
        tokio::time::timeout(self.enqueue_timeout, work)
            .await
            .map_err(|_| {
                unavailable(format!(
                    "no answer within {:?} to {what}",
                    self.enqueue_timeout
                ))
            })?
            .map_err(|e| unavailable(format!("cannot {what}: {e}")))
    }

    /// Every order in force, read from ZooKeeper now.
    ///
    /// # Errors
    /// [`Error::Unavailable`] without a session or an answer.
    pub(crate) async fn orders(&self) -> Result<Orders> {
        let control = self.control()?;
        self.within("read the orders", control.orders()).await
    }

    /// Changes what is paused (compare-and-set) and returns it.
    ///
    /// # Errors
    /// [`Error::Unavailable`] without a session or an answer.
    pub(crate) async fn update_pauses(&self, change: impl Fn(&mut Pauses)) -> Result<Pauses> {
        let control = self.control()?;
        self.within("change the pauses", control.update_pauses(change))
            .await
    }

    /// Orders executor `id` to drain.
    ///
    /// # Errors
    /// [`Error::Unavailable`] without a session or an answer.
    pub(crate) async fn order_drain(
        &self,
        id: &str,
        order: &drover_model::DrainOrder,
    ) -> Result<()> {
        let control = self.control()?;
        self.within("write the drain order", control.order_drain(id, order))
            .await
    }

    /// Orders the clean-up of job `id`.
    ///
    /// # Errors
    /// [`Error::Unavailable`] without a session or an answer.
    pub(crate) async fn order_cleanup(
        &self,
        id: drover_core::JobId,
        order: &drover_model::CleanupOrder,
    ) -> Result<()> {
        let control = self.control()?;
        self.within("write the clean-up order", control.order_cleanup(id, order))
            .await
    }

    /// Withdraws executor `id`'s drain order; whether there was one.
    ///
    /// # Errors
    /// [`Error::Unavailable`] without a session or an answer.
    pub(crate) async fn withdraw_drain(&self, id: &str) -> Result<bool> {
        let control = self.control()?;
        self.within("withdraw the drain order", control.withdraw_drain(id))
            .await
    }
}

/// The API's role on each session: a put-only queue handle, published while the
/// session lives.
struct Publisher {
    queue_path: String,
    tx: watch::Sender<Option<Connected>>,
}

impl Role for Publisher {
    type Parts = (
        Queue,
        watch::Receiver<Vec<drover_coordination::ExecutorInfo>>,
        watch::Receiver<Orders>,
    );

    fn name(&self) -> &'static str {
        "api"
    }

    async fn attach(&mut self, session: &Session) -> drover_coordination::Result<Self::Parts> {
        // Put only: no watch, so the takers' traffic costs the API nothing.
        let queue = Queue::producer(session, &self.queue_path).await?;
        let executors = Membership::new(session).watch().await?;
        let orders = Control::new(session).watch().await?;
        Ok((queue, executors, orders))
    }

    async fn live(&mut self, parts: Self::Parts, session: &Session, end: &SessionEnd) {
        let (queue, executors, orders) = parts;
        info!(queue = %self.queue_path, "zookeeper session ready; submits are enqueued");
        self.tx.send_replace(Some(Connected {
            session: session.clone(),
            queue,
            executors,
            orders,
        }));
        if end.wait().await == Ended::Lost {
            warn!("zookeeper session lost; submits are committed with enqueued = false until a new one is ready");
        }
        self.tx.send_replace(None);
    }
}

/// Whether `seen` is the proof a claim of `id` through `entry` by the holder of `token`
/// needs.
fn judge(seen: EntryState, id: JobId, entry: &str, token: FencingToken) -> Result<()> {
    let refuse = |code, message| Err(Error::EntryRefused { code, message });
    match seen.taken {
        None => {
            return refuse(
                "entry_not_taken",
                format!(
                    "queue entry {entry} is not taken: take it before claiming job {id} (the token is the taken node's creation zxid); if you had taken it, your session lost it: move on"
                ),
            )
        }
        Some(held) if held > token => {
            return refuse(
                "entry_retaken",
                format!(
                    "queue entry {entry} was taken again (token {held}) after your take (token {token}): another executor holds it now; move on"
                ),
            )
        }
        Some(held) if held < token => {
            return refuse(
                "entry_not_taken",
                format!(
                    "queue entry {entry} is taken under token {held}, not {token}: claim with the token of your own take (the taken node's creation zxid)"
                ),
            )
        }
        Some(_) => {}
    }
    let expected = id.to_string();
    match seen.payload {
        Some(data) if String::from_utf8_lossy(&data).trim() == expected => Ok(()),
        Some(data) => refuse(
            "entry_mismatch",
            format!(
                "queue entry {entry} holds {:?}, not job {id}: claim the job the entry names",
                String::from_utf8_lossy(&data)
            ),
        ),
        None => refuse(
            "entry_not_taken",
            format!("queue entry {entry} no longer exists (consumed): move on"),
        ),
    }
}
