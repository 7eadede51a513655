//! Executor membership: `/executors/<id>`, ephemeral, JSON.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use drover_core::Offer;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{debug, info, warn};
use zookeeper_client::{AddWatchMode, CreateMode, EventType, SessionState};

use crate::error::{Error, Result, ZkError};
use crate::session::Session;

/// Where executors register.
const ROOT: &str = drover_model::paths::EXECUTORS;

/// What an executor publishes about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorInfo {
    /// The executor's id (also the node name).
    pub id: String,
    /// The host it runs on.
    pub host: String,
    /// How many jobs it runs at once.
    pub slots: u32,
    /// How many it runs now.
    pub busy: u32,
    /// drover's version.
    pub version: String,
    /// When it started (RFC 3339).
    #[serde(with = "humantime_serde")]
    pub started: SystemTime,
    /// The actions of its catalogue, each with the tags its action file requires.
    #[serde(default)]
    pub actions: BTreeMap<String, Vec<String>>,
    /// Its tags (`[executor] tags`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Set while a remote drain (`drover drain`) holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<drover_model::DrainStatus>,
    /// How often its running jobs heartbeat, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_ms: Option<u64>,
    /// What drover takes on its Docker engine, as last measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<drover_model::DiskUse>,
}

impl ExecutorInfo {
    /// What it offers, for routing decisions.
    pub fn offer(&self) -> Offer {
        Offer::from_lists(&self.actions, &self.tags)
    }
}

/// Registers executors and lists them.
#[derive(Debug, Clone)]
pub struct Membership {
    session: Session,
}

/// This process's registration; the node goes away with the session or on
/// [`Registration::deregister`].
#[derive(Debug)]
pub struct Registration {
    session: Session,
    path: String,
    info: ExecutorInfo,
}

impl Membership {
    /// Membership on `session`.
    pub fn new(session: &Session) -> Membership {
        Membership {
            session: session.clone(),
        }
    }

    /// The cluster's id: a UUID made by the first process that asks and kept at
    /// `/cluster-id`, so processes of one cluster (one ensemble and chroot) can tell their
    /// own Docker containers from another cluster's on a shared daemon.
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn cluster_id(&self) -> Result<String> {
        const PATH: &str = drover_model::paths::CLUSTER_ID;
        let client = self.session.client();
        loop {
            match client.get_data(PATH).await {
                Ok((data, _)) => return Ok(String::from_utf8_lossy(&data).into_owned()),
                Err(ZkError::NoNode) => {}
                Err(e) => return Err(Error::zk("get", PATH, e)),
            }
            let id = uuid::Uuid::new_v4().simple().to_string();
            let options = self.session.create_options(CreateMode::Persistent);
            match client.create(PATH, id.as_bytes(), &options).await {
                Ok(_) => return Ok(id),
                Err(ZkError::NodeExists) => {} // another process was first: read its
                Err(e) => return Err(Error::zk("create", PATH, e)),
            }
        }
    }

    /// Publishes `info` at `/executors/<id>`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad id or when a live process of another session
    /// already holds that id; ZooKeeper errors.
    pub async fn register(&self, info: ExecutorInfo) -> Result<Registration> {
        drover_core::names::check_id("executor", &info.id).map_err(Error::InvalidArgument)?;
        self.session.ensure_path(ROOT).await?;
        let path = format!("{ROOT}/{}", info.id);
        let data = serde_json::to_vec(&info).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let options = self.session.create_options(CreateMode::Ephemeral);
        let client = self.session.client();
        loop {
            match client.create(&path, &data, &options).await {
                Ok(_) => break,
                Err(ZkError::NodeExists) => {
                    let stat = client
                        .check_stat(&path)
                        .await
                        .map_err(|e| Error::zk("stat", &path, e))?;
                    match stat {
                        // gone between our create and our look: create again
                        None => continue,
                        Some(s) if s.ephemeral_owner != client.session_id().0 => {
                            return Err(Error::InvalidArgument(format!(
                                "executor id {:?} is registered by another live process; give each \
                                 executor a unique id (a restarted executor's old session expires \
                                 within the session timeout)",
                                info.id
                            )))
                        }
                        Some(s) => match client.set_data(&path, &data, Some(s.version)).await {
                            Ok(_) => break,
                            Err(ZkError::NoNode | ZkError::BadVersion) => continue,
                            Err(e) => return Err(Error::zk("set", &path, e)),
                        },
                    }
                }
                Err(e) => return Err(Error::zk("create", &path, e)),
            }
        }
        info!(executor = %info.id, slots = info.slots, "registered executor");
        Ok(Registration {
            session: self.session.clone(),
            path,
            info,
        })
    }

    /// Every registered executor, sorted by id. Nodes with unreadable data are skipped.
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn list(&self) -> Result<Vec<ExecutorInfo>> {
        list(&self.session).await
    }

    /// A receiver that always holds the current list, updated on every change: a changed
    /// record is read alone, and the whole list again after a reconnection.
    ///
    /// # Errors
    /// ZooKeeper errors while setting up the watch.
    pub async fn watch(&self) -> Result<watch::Receiver<Vec<ExecutorInfo>>> {
        self.session.ensure_path(ROOT).await?;
        let client = self.session.client();
        let mut watcher = client
            .watch(ROOT, AddWatchMode::PersistentRecursive)
            .await
            .map_err(|e| Error::zk("watch", ROOT, e))?;
        let (tx, rx) = watch::channel(list(&self.session).await?);
        let session = self.session.clone();
        let shutdown = session.shutdown();
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    event = watcher.changed() => event,
                    () = tx.closed() => return,
                    () = shutdown.cancelled() => return,
                };
                let update = match event.event_type {
                    EventType::Session => match event.session_state {
                        SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                            list(&session).await.map(Change::All)
                        }
                        SessionState::Disconnected => continue,
                        _ => return, // terminal: the watcher must not be polled again
                    },
                    _ => match event
                        .path
                        .strip_prefix(ROOT)
                        .and_then(|p| p.strip_prefix('/'))
                    {
                        Some(id) if !id.is_empty() && !id.contains('/') => read(&session, id)
                            .await
                            .map(|info| Change::One(id.to_owned(), info.map(Box::new))),
                        _ => continue,
                    },
                };
                match update {
                    Ok(change) => {
                        tx.send_if_modified(|known| change.apply(known));
                    }
                    Err(e) => warn!(error = %e, "cannot read executors"),
                }
            }
        });
        Ok(rx)
    }
}

/// What a membership event changed.
enum Change {
    All(Vec<ExecutorInfo>),
    /// One record, now this (`None`: gone or unreadable).
    One(String, Option<Box<ExecutorInfo>>),
}

impl Change {
    /// Applies the change to the sorted list; whether it changed anything.
    fn apply(self, known: &mut Vec<ExecutorInfo>) -> bool {
        match self {
            Change::All(now) => {
                let changed = *known != now;
                *known = now;
                changed
            }
            Change::One(id, info) => {
                let at = known.binary_search_by(|e| e.id.as_str().cmp(&id));
                match (at, info) {
                    (Ok(i), Some(info)) if known[i] == *info => false,
                    (Ok(i), Some(info)) => {
                        known[i] = *info;
                        true
                    }
                    (Ok(i), None) => {
                        known.remove(i);
                        true
                    }
                    (Err(i), Some(info)) => {
                        known.insert(i, *info);
                        true
                    }
                    (Err(_), None) => false,
                }
            }
        }
    }
}

/// The record of executor `id`; `None` if it is gone or unreadable.
async fn read(session: &Session, id: &str) -> Result<Option<ExecutorInfo>> {
    let path = format!("{ROOT}/{id}");
    match session.client().get_data(&path).await {
        Ok((data, _)) => Ok(parse(&path, &data)),
        Err(ZkError::NoNode) => Ok(None),
        Err(e) => Err(Error::zk("get", &path, e)),
    }
}

fn parse(path: &str, data: &[u8]) -> Option<ExecutorInfo> {
    serde_json::from_slice::<ExecutorInfo>(data)
        .inspect_err(
            |e| debug!(%path, error = %e, "skipping an executor node with unreadable data"),
        )
        .ok()
}

async fn list(session: &Session) -> Result<Vec<ExecutorInfo>> {
    let client = session.client();
    let children = match client.list_children(ROOT).await {
        Ok(children) => children,
        Err(ZkError::NoNode) => return Ok(Vec::new()),
        Err(e) => return Err(Error::zk("list", ROOT, e)),
    };
    let mut executors = Vec::with_capacity(children.len());
    for child in children {
        if let Some(info) = read(session, &child).await? {
            executors.push(info);
        }
    }
    executors.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(executors)
}

impl Registration {
    /// What is published now.
    pub fn info(&self) -> &ExecutorInfo {
        &self.info
    }

    /// Publishes a new busy count and drain status.
    ///
    /// # Errors
    /// ZooKeeper errors (the node is gone if the session expired).
    pub async fn publish(
        &mut self,
        busy: u32,
        drain: Option<drover_model::DrainStatus>,
        disk: Option<drover_model::DiskUse>,
    ) -> Result<()> {
        self.info.busy = busy;
        self.info.drain = drain;
        self.info.disk = disk;
        let data =
            serde_json::to_vec(&self.info).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let client = self.session.client();
        client
            .set_data(&self.path, &data, None)
            .await
            .map_err(|e| Error::zk("set", &self.path, e))?;
        Ok(())
    }

    /// Removes the registration now instead of at session end.
    ///
    /// # Errors
    /// ZooKeeper errors other than the node being gone already.
    pub async fn deregister(self) -> Result<()> {
        let client = self.session.client();
        let deleted =
            tokio::time::timeout(Duration::from_secs(10), client.delete(&self.path, None)).await;
        match deleted {
            Ok(Ok(())) | Ok(Err(ZkError::NoNode)) => {
                info!(executor = %self.info.id, "deregistered executor");
                Ok(())
            }
            Ok(Err(e)) => Err(Error::zk("delete", &self.path, e)),
            Err(_) => Err(Error::Timeout(Duration::from_secs(10))),
        }
    }
}
