//! Options for a [`ZkServer`] and the standalone start.

use std::time::Duration;

use super::{free_ports, ZkServer};

/// How many attempts a start makes when a picked port was taken before the JVM bound it.
const START_ATTEMPTS: usize = 5;

/// Options for a [`ZkServer`], also used for every node of an [`Ensemble`](crate::Ensemble).
#[derive(Clone, Debug)]
pub struct ZkServerBuilder {
    pub(super) tick_time: Duration,
    pub(super) min_session_timeout: Option<Duration>,
    pub(super) max_session_timeout: Duration,
    pub(super) force_sync: Option<bool>,
    pub(super) heap: String,
    pub(super) super_password: Option<String>,
    pub(super) start_timeout: Duration,
    pub(super) jvm_args: Vec<String>,
    pub(super) config: Vec<(String, String)>,
}

impl Default for ZkServerBuilder {
    fn default() -> Self {
        ZkServerBuilder {
            tick_time: Duration::from_millis(200),
            min_session_timeout: None,
            max_session_timeout: Duration::from_secs(60),
            force_sync: None,
            heap: "512m".to_owned(),
            super_password: None,
            start_timeout: Duration::from_secs(30),
            jvm_args: Vec::new(),
            config: Vec::new(),
        }
    }
}

impl ZkServerBuilder {
    /// Sets `tickTime` (default 200 ms, so the minimum session timeout is 400 ms).
    pub fn tick_time(mut self, tick: Duration) -> Self {
        self.tick_time = tick;
        self
    }

    /// Sets `minSessionTimeout` (default ZooKeeper's 2 × tick time).
    pub fn min_session_timeout(mut self, timeout: Duration) -> Self {
        self.min_session_timeout = Some(timeout);
        self
    }

    /// Sets `maxSessionTimeout` (default 60 s, so no test's session timeout is silently capped).
    pub fn max_session_timeout(mut self, timeout: Duration) -> Self {
        self.max_session_timeout = timeout;
        self
    }

    /// Sets `forceSync`; `false` skips fsync of the transaction log (benchmarks only).
    ///
    /// Unset, the server keeps ZooKeeper's default (`yes`).
    pub fn force_sync(mut self, force_sync: bool) -> Self {
        self.force_sync = Some(force_sync);
        self
    }

    /// Sets the JVM's maximum heap, in `-Xmx` syntax (default `512m`).
    pub fn heap(mut self, heap: impl Into<String>) -> Self {
        self.heap = heap.into();
        self
    }

    /// Makes `super` an admin identity that bypasses ACLs, authenticated with `password`.
    ///
    /// Clients authenticate with [`ZkServer::super_auth`] under the `digest` scheme.
    pub fn super_password(mut self, password: impl Into<String>) -> Self {
        self.super_password = Some(password.into());
        self
    }

    /// Sets how long a start may take before it fails (default 30 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Adds an argument to the `java` command line, before the main class.
    pub fn jvm_arg(mut self, arg: impl Into<String>) -> Self {
        self.jvm_args.push(arg.into());
        self
    }

    /// Adds a `key=value` line to `zoo.cfg`, after the harness's own settings.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.push((key.into(), value.into()));
        self
    }

    pub(crate) fn start_timeout_value(&self) -> Duration {
        self.start_timeout
    }

    /// Starts a standalone server and waits until it serves requests.
    ///
    /// # Errors
    /// Fails when `java` or ZooKeeper's jar is missing, when the server exits during
    /// start-up (the error carries the end of its log) or is not ready within the start
    /// timeout. A port taken between picking and binding is retried with a new port.
    pub async fn start(self) -> anyhow::Result<ZkServer> {
        for attempt in 1..=START_ATTEMPTS {
            let port = free_ports(1)?[0];
            let mut server = ZkServer::create(self.clone(), port, None)?;
            server.spawn()?;
            match server.wait_ready(self.start_timeout).await {
                Ok(elapsed) => {
                    tracing::info!(port, pid = server.pid, ?elapsed, "zookeeper ready");
                    return Ok(server);
                }
                Err(err) if attempt < START_ATTEMPTS && server.address_in_use() => {
                    tracing::warn!(port, attempt, "zookeeper port taken, retrying on another");
                    drop(err);
                }
                Err(err) => return Err(err),
            }
        }
        unreachable!("the last attempt returns")
    }
}
