//! Operators' orders in ZooKeeper: `/control/pauses` (what is paused) and
//! `/control/drains/<executor>` (remote drains). Persistent nodes, so an order survives a
//! restart of every role; read whole on every change of the tree (orders are few and
//! rare), so a watcher's picture is level-triggered and never a diff.

use std::time::Duration;

use drover_model::paths::{CLEANUPS, CONTROL, DRAINS, PAUSES};
use drover_model::{CleanupOrder, DrainOrder, Orders, Pauses};
use tokio::sync::watch;
use tracing::warn;
use zookeeper_client::{AddWatchMode, CreateMode, EventType, SessionState};

use crate::error::{Error, Result, ZkError};
use crate::session::Session;

/// Reads and writes the orders on one session.
#[derive(Debug, Clone)]
pub struct Control {
    session: Session,
}

impl Control {
    /// Orders on `session`.
    pub fn new(session: &Session) -> Control {
        Control {
            session: session.clone(),
        }
    }

    /// Every order in force. A node whose data does not parse is skipped with a warning
    /// (an order nobody can read orders nothing).
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn orders(&self) -> Result<Orders> {
        let (pauses, _) = self.pauses().await?;
        Ok(Orders {
            pauses,
            drains: self.children(DRAINS).await?,
            cleanups: self.children(CLEANUPS).await?,
        })
    }

    /// Every readable child of `dir`, by name.
    async fn children<T: serde::de::DeserializeOwned>(
        &self,
        dir: &str,
    ) -> Result<std::collections::BTreeMap<String, T>> {
        let client = self.session.client();
        let names = match client.list_children(dir).await {
            Ok(names) => names,
            Err(ZkError::NoNode) => Vec::new(),
            Err(e) => return Err(Error::zk("list", dir, e)),
        };
        let mut found = std::collections::BTreeMap::new();
        for name in names {
            let path = format!("{dir}/{name}");
            match client.get_data(&path).await {
                Ok((data, _)) => {
                    if let Some(order) = parse(&path, &data) {
                        found.insert(name, order);
                    }
                }
                Err(ZkError::NoNode) => {}
                Err(e) => return Err(Error::zk("get", &path, e)),
            }
        }
        Ok(found)
    }

    /// What is paused, with the node's version (`None`: no node yet).
    async fn pauses(&self) -> Result<(Pauses, Option<i32>)> {
        match self.session.client().get_data(PAUSES).await {
            Ok((data, stat)) => Ok((parse(PAUSES, &data).unwrap_or_default(), Some(stat.version))),
            Err(ZkError::NoNode) => Ok((Pauses::default(), None)),
            Err(e) => Err(Error::zk("get", PAUSES, e)),
        }
    }

    /// Changes what is paused with `change`, atomically against concurrent changes
    /// (compare-and-set on the node's version), and returns the result.
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn update_pauses(&self, change: impl Fn(&mut Pauses)) -> Result<Pauses> {
        self.session.ensure_path(CONTROL).await?;
        let client = self.session.client();
        loop {
            let (mut pauses, version) = self.pauses().await?;
            change(&mut pauses);
            let data = json(&pauses)?;
            let written = match version {
                Some(version) => client
                    .set_data(PAUSES, &data, Some(version))
                    .await
                    .map(drop),
                None => {
                    let options = self.session.create_options(CreateMode::Persistent);
                    client.create(PAUSES, &data, &options).await.map(drop)
                }
            };
            match written {
                Ok(()) => return Ok(pauses),
                Err(ZkError::BadVersion | ZkError::NodeExists | ZkError::NoNode) => continue,
                Err(e) => return Err(Error::zk("set", PAUSES, e)),
            }
        }
    }

    /// Orders executor `id` to drain (replacing an earlier order).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad id; ZooKeeper errors.
    pub async fn order_drain(&self, id: &str, order: &DrainOrder) -> Result<()> {
        drover_core::names::check_id("executor", id).map_err(Error::InvalidArgument)?;
        self.put(DRAINS, &drover_model::paths::drain(id), order)
            .await
    }

    /// Orders the clean-up of job `job` (replacing an earlier order).
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn order_cleanup(&self, job: drover_core::JobId, order: &CleanupOrder) -> Result<()> {
        self.put(
            CLEANUPS,
            &drover_model::paths::cleanup(&job.to_string()),
            order,
        )
        .await
    }

    /// Withdraws job `job`'s clean-up order (done); whether there was one.
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn withdraw_cleanup(&self, job: &str) -> Result<bool> {
        self.delete(&drover_model::paths::cleanup(job)).await
    }

    /// Writes `value` at `path` (a child of `dir`), creating or replacing it.
    async fn put<T: serde::Serialize>(&self, dir: &str, path: &str, value: &T) -> Result<()> {
        self.session.ensure_path(dir).await?;
        let data = json(value)?;
        let client = self.session.client();
        loop {
            match client.set_data(path, &data, None).await {
                Ok(_) => return Ok(()),
                Err(ZkError::NoNode) => {}
                Err(e) => return Err(Error::zk("set", path, e)),
            }
            let options = self.session.create_options(CreateMode::Persistent);
            match client.create(path, &data, &options).await {
                Ok(_) => return Ok(()),
                Err(ZkError::NodeExists) => continue,
                Err(e) => return Err(Error::zk("create", path, e)),
            }
        }
    }

    /// Withdraws executor `id`'s drain order; whether there was one.
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn withdraw_drain(&self, id: &str) -> Result<bool> {
        self.delete(&drover_model::paths::drain(id)).await
    }

    async fn delete(&self, path: &str) -> Result<bool> {
        match self.session.client().delete(path, None).await {
            Ok(()) => Ok(true),
            Err(ZkError::NoNode) => Ok(false),
            Err(e) => Err(Error::zk("delete", path, e)),
        }
    }

    /// A receiver that always holds the orders in force, read again on every change under
    /// `/control` and after every reconnection. It keeps the last picture while the
    /// session is away, and stops updating once the session ends.
    ///
    /// # Errors
    /// ZooKeeper errors while setting up the watch or the first read.
    pub async fn watch(&self) -> Result<watch::Receiver<Orders>> {
        self.session.ensure_path(CONTROL).await?;
        let client = self.session.client();
        let mut watcher = client
            .watch(CONTROL, AddWatchMode::PersistentRecursive)
            .await
            .map_err(|e| Error::zk("watch", CONTROL, e))?;
        let (tx, rx) = watch::channel(self.orders().await?);
        let control = self.clone();
        let shutdown = self.session.shutdown();
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    event = watcher.changed() => event,
                    () = tx.closed() => return,
                    () = shutdown.cancelled() => return,
                };
                if event.event_type == EventType::Session {
                    match event.session_state {
                        SessionState::SyncConnected | SessionState::ConnectedReadOnly => {}
                        SessionState::Disconnected => continue,
                        _ => return, // terminal: the watcher must not be polled again
                    }
                }
                let orders = loop {
                    match control.orders().await {
                        Ok(orders) => break orders,
                        Err(e) => {
                            warn!(error = %e, "cannot read the operators' orders; retrying");
                            tokio::select! {
                                () = tokio::time::sleep(Duration::from_millis(500)) => {},
                                () = shutdown.cancelled() => return,
                            }
                        }
                    }
                };
                tx.send_if_modified(|known| {
                    let changed = *known != orders;
                    *known = orders;
                    changed
                });
            }
        });
        Ok(rx)
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::InvalidArgument(e.to_string()))
}

fn parse<T: serde::de::DeserializeOwned>(path: &str, data: &[u8]) -> Option<T> {
    serde_json::from_slice(data)
        .inspect_err(|e| warn!(%path, error = %e, "ignoring an order whose data does not parse"))
        .ok()
}
