//! A ZooKeeper quorum of N real servers on loopback.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure};

use crate::four_letter::ZkMode;
use crate::zookeeper::{free_ports, QuorumMember, ZkServer, ZkServerBuilder};

/// How many attempts a start makes when a picked port was taken before the JVM bound it.
const START_ATTEMPTS: usize = 5;
const POLL: Duration = Duration::from_millis(20);

/// Options for an [`Ensemble`]; finish with [`EnsembleBuilder::start`].
#[derive(Clone, Debug)]
pub struct EnsembleBuilder {
    size: usize,
    node: ZkServerBuilder,
}

impl EnsembleBuilder {
    /// Sets the number of voting nodes (default [`Ensemble::DEFAULT_SIZE`]).
    pub fn size(mut self, size: usize) -> Self {
        self.size = size;
        self
    }

    /// Sets the options every node starts with (tick time, heap, `forceSync`, super password...).
    pub fn node_options(mut self, node: ZkServerBuilder) -> Self {
        self.node = node;
        self
    }

    /// Starts every node and waits until they form a quorum.
    ///
    /// # Errors
    /// Fails when a node exits during start-up (with the end of its log) or the quorum is
    /// not formed within the nodes' start timeout.
    pub async fn start(self) -> anyhow::Result<Ensemble> {
        ensure!(self.size > 0, "an ensemble needs at least one node");
        for attempt in 1..=START_ATTEMPTS {
            let ensemble = self.spawn()?;
            match ensemble.wait_quorum(self.node.start_timeout_value()).await {
                Ok(elapsed) => {
                    tracing::info!(size = self.size, ?elapsed, connect = %ensemble.connect_string(), "ensemble ready");
                    return Ok(ensemble);
                }
                Err(_)
                    if attempt < START_ATTEMPTS
                        && ensemble.nodes.iter().any(ZkServer::address_in_use) =>
                {
                    tracing::warn!(attempt, "ensemble port taken, retrying on other ports");
                }
                Err(err) => return Err(err),
            }
        }
        unreachable!("the last attempt returns")
    }

    fn spawn(&self) -> anyhow::Result<Ensemble> {
        // Client, quorum and election port per node, all distinct.
        let ports = free_ports(3 * self.size)?;
        let servers: Vec<String> = (0..self.size)
            .map(|i| {
                format!(
                    "server.{}=127.0.0.1:{}:{}",
                    i + 1,
                    ports[3 * i + 1],
                    ports[3 * i + 2]
                )
            })
            .collect();
        let mut nodes = Vec::with_capacity(self.size);
        for i in 0..self.size {
            let member = QuorumMember {
                myid: i + 1,
                servers: servers.clone(),
            };
            nodes.push(ZkServer::create(
                self.node.clone(),
                ports[3 * i],
                Some(member),
            )?);
        }
        let mut ensemble = Ensemble { nodes };
        for node in &mut ensemble.nodes {
            node.spawn()?;
        }
        Ok(ensemble)
    }
}

/// N ZooKeeper servers forming one quorum on 127.0.0.1; node `i` has `myid` `i + 1`.
///
/// Dropping it kills every node and removes their directories.
#[derive(Debug)]
pub struct Ensemble {
    nodes: Vec<ZkServer>,
}

impl Ensemble {
    /// The size [`Ensemble::builder`] uses unless told otherwise.
    pub const DEFAULT_SIZE: usize = 3;

    /// Starts `size` nodes with default options and waits for a quorum.
    ///
    /// # Errors
    /// See [`EnsembleBuilder::start`].
    pub async fn start(size: usize) -> anyhow::Result<Ensemble> {
        Ensemble::builder().size(size).start().await
    }

    /// Options for an ensemble of [`Ensemble::DEFAULT_SIZE`] nodes.
    pub fn builder() -> EnsembleBuilder {
        EnsembleBuilder {
            size: Ensemble::DEFAULT_SIZE,
            node: ZkServer::builder(),
        }
    }

    /// The number of nodes, running or not.
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// Every node's client address, comma separated.
    pub fn connect_string(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(ZkServer::connect_string).collect();
        nodes.join(",")
    }

    /// Node `i` (0-based).
    ///
    /// # Panics
    /// Panics when `i` is out of range.
    pub fn node(&self, i: usize) -> &ZkServer {
        &self.nodes[i]
    }

    /// Kills node `i` with SIGKILL, like a crash.
    ///
    /// # Errors
    /// See [`ZkServer::kill`].
    pub async fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].kill().await
    }

    /// Stops node `i` with SIGTERM.
    ///
    /// # Errors
    /// See [`ZkServer::stop`].
    pub async fn stop(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].stop().await
    }

    /// Restarts node `i` on its ports and data directory; returns once it answers `ruok`.
    ///
    /// Follow with [`Ensemble::wait_quorum`] to wait until it has rejoined.
    ///
    /// # Errors
    /// See [`ZkServer::restart`].
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<Duration> {
        self.nodes[i].restart().await
    }

    /// The index of the node that reports `Mode: leader`, if one does.
    pub async fn leader_index(&self) -> Option<usize> {
        for (i, node) in self.nodes.iter().enumerate() {
            if node.is_running() && matches!(node.mode().await, Ok(ZkMode::Leader)) {
                return Some(i);
            }
        }
        None
    }

    /// Waits until exactly one running node leads and every running node leads or follows.
    ///
    /// Returns how long that took.
    ///
    /// # Errors
    /// Fails at once with the end of its log when a node that was not stopped has exited,
    /// or after `timeout` with each node's last reported mode.
    pub async fn wait_quorum(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            for (i, node) in self.nodes.iter().enumerate() {
                if let Some(status) = node.exit_status() {
                    bail!(
                        "ensemble node {i} (port {}) exited with {status}; last log lines:\n{}",
                        node.port(),
                        node.log_tail(40)
                    );
                }
            }
            let modes = self.modes().await;
            let running: Vec<_> = modes.iter().flatten().collect();
            let leaders = running
                .iter()
                .filter(|m| matches!(m, Ok(ZkMode::Leader)))
                .count();
            let settled = running
                .iter()
                .all(|m| m.as_ref().is_ok_and(|m| m.in_quorum()));
            if leaders == 1 && settled {
                return Ok(started.elapsed());
            }
            if started.elapsed() >= timeout {
                bail!("timed out after {timeout:?} waiting for an ensemble quorum; node modes: {modes:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Each node's mode; `None` for a node that is not running.
    async fn modes(&self) -> Vec<Option<Result<ZkMode, String>>> {
        let mut modes = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            modes.push(if node.is_running() {
                Some(node.probe_mode().await.map_err(|err| format!("{err:#}")))
            } else {
                None
            });
        }
        modes
    }
}
