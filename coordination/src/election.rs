//! Leader election in kazoo's `Election` layout.
//!
//! ```text
//! /election/<name>/<uuid32>__lock__<seq10>   ephemeral sequential; data = the contender's id
//! ```
//!
//! The lowest sequence leads; every other contender watches its predecessor only (no herd).
//! A [`Leadership`] trips its [`LostSignal`] the moment the connection drops, the session
//! ends or the node disappears: a leader stops acting before anyone else can be elected.

use std::time::Duration;

use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, info, warn};
use zookeeper_client::{CreateMode, EventType};

use crate::error::{Error, LostReason, Result, ZkError};
use crate::lost::LostSignal;
use crate::session::{Health, Session};

/// kazoo's marker between a contender's uuid prefix and its sequence number.
const LOCK_MARK: &str = "__lock__";

/// One contender in the election for one name.
#[derive(Debug, Clone)]
pub struct Election {
    session: Session,
    path: String,
    identifier: String,
}

/// Proof of leadership. Act only while [`Leadership::lost`] has not tripped.
///
/// Dropping it (or [`Leadership::resign`]) deletes the contender node so the next
/// contender leads at once.
#[derive(Debug)]
pub struct Leadership {
    session: Session,
    node: String,
    lost: LostSignal,
    _stop_guard: DropGuard,
}

impl Election {
    /// The election for `name` at `/election/<name>`; `identifier` is stored in the node
    /// (kazoo shows it as the contender's name).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `name` is empty or contains `/`.
    pub fn new(session: &Session, name: &str, identifier: impl Into<String>) -> Result<Election> {
        if drover_core::names::check_name("election", name).is_err() {
            return Err(Error::InvalidArgument(format!(
                "election name {name:?} must be a non-empty single path segment, like an action name"
            )));
        }
        Ok(Election {
            session: session.clone(),
            path: drover_model::paths::election(name),
            identifier: identifier.into(),
        })
    }

    /// The election's node path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Joins the election and waits until this contender leads.
    ///
    /// A session has at most one contender per election: campaigning first deletes the
    /// session's earlier nodes (one a leadership dropped while disconnected leaves behind
    /// for as long as the session lives), and a contender never waits on a node of its own
    /// session.
    ///
    /// # Errors
    /// [`Error::SessionLost`] if the session ends while waiting; ZooKeeper errors.
    ///
    /// # Cancellation safety
    /// Cancellation safe: dropping the future withdraws the contender node (in the
    /// background).
    pub async fn campaign(&self) -> Result<Leadership> {
        self.session.ensure_path(&self.path).await?;
        // One contender per session: a node of ours left by an earlier campaign (a
        // leadership dropped while disconnected, a withdraw that never ran) would
        // otherwise sit ahead of the new one for as long as the session lives.
        self.delete_own_nodes().await?;
        let prefix = format!("{}{LOCK_MARK}", uuid::Uuid::new_v4().simple());
        let node = self.create_contender(&prefix).await?;
        let withdraw = Withdraw {
            session: self.session.clone(),
            path: Some(format!("{}/{node}", self.path)),
        };
        loop {
            let contenders = self.sorted_contenders().await?;
            let Some(position) = contenders.iter().position(|c| *c == node) else {
                // Our node vanished while the session lives (deleted by hand): it cannot lead.
                return Err(Error::SessionLost(LostReason::NodeDeleted));
            };
            if position == 0 {
                break;
            }
            let predecessor = format!("{}/{}", self.path, contenders[position - 1]);
            let client = self.session.client();
            let (stat, watcher) = client
                .check_and_watch_stat(&predecessor)
                .await
                .map_err(|e| Error::zk("exists", &predecessor, e))?;
            let Some(stat) = stat else {
                continue;
            };
            if stat.ephemeral_owner == client.session_id().0 {
                // Never wait on a node of our own session: it can only go with the
                // session, so waiting on it would wait forever.
                warn!(election = %self.path, %predecessor, "deleting a contender node of our own session that sits ahead of us");
                delete_node(&self.session, &predecessor).await?;
                continue;
            }
            debug!(election = %self.path, %predecessor, "waiting for predecessor");
            let mut health = self.session.health_watch();
            tokio::select! {
                _ = watcher.changed() => {},
                lost = wait_lost(&mut health) => return Err(Error::SessionLost(lost)),
            }
        }
        let path = withdraw.disarm();
        info!(election = %self.path, node = %path, identifier = %self.identifier, "elected leader");
        let lost = LostSignal::new();
        let stop = CancellationToken::new();
        tokio::spawn(guard(
            self.session.clone(),
            path.clone(),
            lost.clone(),
            stop.clone(),
        ));
        Ok(Leadership {
            session: self.session.clone(),
            node: path,
            lost,
            _stop_guard: stop.drop_guard(),
        })
    }

    async fn create_contender(&self, prefix: &str) -> Result<String> {
        let client = self.session.client();
        let options = self.session.create_options(CreateMode::EphemeralSequential);
        let path = format!("{}/{prefix}", self.path);
        loop {
            match client
                .create(&path, self.identifier.as_bytes(), &options)
                .await
            {
                Ok((_, seq)) => return Ok(format!("{prefix}{seq}")),
                Err(e) if crate::error::connection_lost(&e) => {
                    // The create may have happened: look for our unique prefix (kazoo and
                    // Curator do the same).
                    self.session.wait_connected().await?;
                    let children = client
                        .list_children(&self.path)
                        .await
                        .map_err(|e| Error::zk("list", &self.path, e))?;
                    if let Some(found) = children.into_iter().find(|c| c.starts_with(prefix)) {
                        return Ok(found);
                    }
                }
                Err(e) => return Err(Error::zk("create", &path, e)),
            }
        }
    }

    /// Deletes every contender node of this session.
    async fn delete_own_nodes(&self) -> Result<()> {
        let client = self.session.client();
        let owner = client.session_id().0;
        for node in self.sorted_contenders().await? {
            let path = format!("{}/{node}", self.path);
            match client.check_stat(&path).await {
                Ok(Some(stat)) if stat.ephemeral_owner == owner => {
                    info!(election = %self.path, node = %path, "deleting a stale contender node of our own session");
                    delete_node(&self.session, &path).await?;
                }
                Ok(_) => {}
                Err(e) => return Err(Error::zk("exists", &path, e)),
            }
        }
        Ok(())
    }

    /// Contender node names, leader first.
    async fn sorted_contenders(&self) -> Result<Vec<String>> {
        let client = self.session.client();
        let children = client
            .list_children(&self.path)
            .await
            .map_err(|e| Error::zk("list", &self.path, e))?;
        Ok(sort_contenders(children))
    }

    /// The identifier stored by the current leader, if anyone leads.
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn leader(&self) -> Result<Option<String>> {
        Ok(self.contenders().await?.into_iter().next())
    }

    /// Identifiers of every contender, leader first.
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn contenders(&self) -> Result<Vec<String>> {
        let client = self.session.client();
        let nodes = match client.list_children(&self.path).await {
            Ok(children) => sort_contenders(children),
            Err(ZkError::NoNode) => return Ok(Vec::new()),
            Err(e) => return Err(Error::zk("list", &self.path, e)),
        };
        let mut ids = Vec::with_capacity(nodes.len());
        for node in nodes {
            let path = format!("{}/{node}", self.path);
            match client.get_data(&path).await {
                Ok((data, _)) => ids.push(String::from_utf8_lossy(&data).into_owned()),
                Err(ZkError::NoNode) => {}
                Err(e) => return Err(Error::zk("get", &path, e)),
            }
        }
        Ok(ids)
    }
}

/// Keeps kazoo's contender names (`...__lock__<seq>` or `...__rlock__<seq>`) sorted by
/// sequence, as kazoo compares them.
fn sort_contenders(children: Vec<String>) -> Vec<String> {
    let mut contenders: Vec<(String, String)> = children
        .into_iter()
        .filter_map(|c| {
            let seq = [LOCK_MARK, "__rlock__"]
                .iter()
                .find_map(|m| c.rsplit_once(m))
                .map(|(_, s)| s.to_owned())?;
            let digits = seq.strip_prefix('-').unwrap_or(&seq);
            (digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit())).then_some((seq, c))
        })
        .collect();
    contenders.sort();
    contenders.into_iter().map(|(_, c)| c).collect()
}

/// Waits until the session is suspended or lost; returns why.
async fn wait_lost(health: &mut tokio::sync::watch::Receiver<Health>) -> LostReason {
    loop {
        match *health.borrow_and_update() {
            Health::Connected => {}
            Health::Suspended { .. } => return LostReason::Suspended,
            Health::Lost(reason) => return reason,
        }
        if health.changed().await.is_err() {
            return LostReason::SessionClosed;
        }
    }
}

/// Watches a leader's node and session; trips `lost` at the first sign of trouble.
async fn guard(session: Session, node: String, lost: LostSignal, stop: CancellationToken) {
    let mut health = session.health_watch();
    let reason = loop {
        let watch = session.client().check_and_watch_stat(&node).await;
        let watcher = match watch {
            Ok((Some(_), watcher)) => watcher,
            Ok((None, _)) => break LostReason::NodeDeleted,
            Err(_) => break wait_lost(&mut health).await,
        };
        tokio::select! {
            event = watcher.changed() => {
                if event.event_type == EventType::NodeDeleted {
                    break LostReason::NodeDeleted;
                }
            },
            reason = wait_lost(&mut health) => break reason,
            () = stop.cancelled() => return,
        }
    };
    if lost.trip(reason) {
        warn!(%node, %reason, "leadership lost");
    }
    if reason == LostReason::Suspended {
        // We stopped leading; if the session survives, give the node up so another
        // contender can lead instead of waiting for our session to expire.
        tokio::select! {
            result = session.wait_connected() => if result.is_ok() { withdraw(&session, &node).await },
            () = stop.cancelled() => {},
        }
    }
}

async fn withdraw(session: &Session, node: &str) {
    match delete_node(session, node).await {
        Ok(()) => debug!(%node, "withdrew from election"),
        Err(e) => {
            warn!(%node, error = %e, "cannot withdraw from election; the node goes with the session")
        }
    }
}

/// Deletes `node`, waiting out disconnections, until it is gone or the session is.
async fn delete_node(session: &Session, node: &str) -> Result<()> {
    let mut backoff = Duration::from_millis(50);
    loop {
        session.wait_connected().await?;
        match session.client().delete(node, None).await {
            Ok(()) | Err(ZkError::NoNode) => return Ok(()),
            Err(e) => {
                let err = Error::zk("delete", node, e);
                if !err.is_transient() {
                    return Err(err);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

impl Leadership {
    /// The signal that trips when leadership is lost.
    pub fn lost(&self) -> &LostSignal {
        &self.lost
    }

    /// Whether this process may still act as the leader.
    pub fn is_leader(&self) -> bool {
        !self.lost.is_lost()
    }

    /// The contender node that holds the leadership.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Steps down: deletes the contender node so the next contender leads now.
    pub async fn resign(self) {
        self.lost.trip(LostReason::Finished);
        withdraw(&self.session, &self.node).await;
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        // Withdraw whether or not the loss already tripped: after a disconnection the
        // node outlives the leadership for as long as the session does.
        self.lost.trip(LostReason::Finished);
        spawn_withdraw(self.session.clone(), self.node.clone());
    }
}

/// Withdraws a contender node unless disarmed (used while campaigning).
struct Withdraw {
    session: Session,
    path: Option<String>,
}

impl Withdraw {
    fn disarm(mut self) -> String {
        self.path.take().unwrap_or_default()
    }
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            spawn_withdraw(self.session.clone(), path);
        }
    }
}

fn spawn_withdraw(session: Session, path: String) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            if matches!(session.health(), Health::Lost(_)) {
                return;
            }
            // A node of a live session that is never deleted blocks the election until
            // the session ends: keep trying for as long as the session may live.
            let patience = (session.timeout() * 4).max(Duration::from_secs(30));
            let _ = tokio::time::timeout(patience, withdraw(&session, &path)).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contenders_sort_by_sequence_not_by_uuid() {
        let sorted = sort_contenders(vec![
            "ffff__lock__0000000002".into(),
            "0000__lock__0000000003".into(),
            "aaaa__rlock__0000000001".into(),
            "junk".into(),
        ]);
        assert_eq!(
            sorted,
            [
                "aaaa__rlock__0000000001",
                "ffff__lock__0000000002",
                "0000__lock__0000000003"
            ]
        );
    }
}
