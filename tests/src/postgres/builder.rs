//! Options for a [`PgServer`] and its start.

use std::fs;
use std::time::{Duration, Instant};

use super::{check_database_name, free_ports, PgServer};

/// How many ports a start tries when a picked port was taken before the server bound it.
const START_ATTEMPTS: usize = 5;

/// Options for a [`PgServer`]; the defaults are PostgreSQL's durable ones.
#[derive(Clone, Debug)]
pub struct PgServerBuilder {
    pub(super) fsync: bool,
    pub(super) synchronous_commit: bool,
    pub(super) full_page_writes: bool,
    pub(super) max_connections: u32,
    pub(super) password_auth: bool,
    pub(super) database: String,
    pub(super) start_timeout: Duration,
    pub(super) config: Vec<(String, String)>,
}

impl Default for PgServerBuilder {
    fn default() -> Self {
        PgServerBuilder {
            fsync: true,
            synchronous_commit: true,
            full_page_writes: true,
            max_connections: 200,
            password_auth: false,
            database: "drover".to_owned(),
            start_timeout: Duration::from_secs(30),
            config: Vec::new(),
        }
    }
}

impl PgServerBuilder {
    /// Sets `fsync`, `synchronous_commit` and `full_page_writes` together (default `true`).
    ///
    /// `false` is faster but lets a server crash ([`PgServer::kill`]) lose the last
    /// commits, and an OS crash corrupt the cluster: fine for tests that never crash the
    /// server, wrong for a benchmark or a crash test.
    pub fn durable(self, durable: bool) -> Self {
        self.fsync(durable)
            .synchronous_commit(durable)
            .full_page_writes(durable)
    }

    /// Sets `fsync` (default `on`).
    pub fn fsync(mut self, on: bool) -> Self {
        self.fsync = on;
        self
    }

    /// Sets `synchronous_commit` (default `on`).
    pub fn synchronous_commit(mut self, on: bool) -> Self {
        self.synchronous_commit = on;
        self
    }

    /// Sets `full_page_writes` (default `on`).
    pub fn full_page_writes(mut self, on: bool) -> Self {
        self.full_page_writes = on;
        self
    }

    /// Sets `max_connections` (default 200).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// Makes TCP clients prove the password with SCRAM-SHA-256, as in production.
    ///
    /// Off by default: loopback clients are trusted whatever password they send, since
    /// sqlx's SCRAM costs ~80 ms per connection in a debug build.
    pub fn password_auth(mut self, on: bool) -> Self {
        self.password_auth = on;
        self
    }

    /// Names the database created at start and named by [`PgServer::url`] (default `drover`).
    pub fn database(mut self, name: impl Into<String>) -> Self {
        self.database = name.into();
        self
    }

    /// Sets how long a start may take before it fails (default 30 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Adds a `-c key=value` setting, after the harness's own so it wins.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.push((key.into(), value.into()));
        self
    }

    /// Runs `initdb`, starts the server, waits until it serves `SELECT 1` and creates
    /// the database.
    ///
    /// # Errors
    /// Fails when PostgreSQL or the `postgres` user is missing (run `scripts/setup`), when
    /// `initdb` fails, when the server exits during start-up (the error carries the end of
    /// its log) or is not ready within the start timeout. A port taken between picking
    /// and binding is retried with a new port.
    pub async fn start(self) -> anyhow::Result<PgServer> {
        check_database_name(&self.database)?;
        let started = Instant::now();
        let mut server = PgServer::init(self).await?;
        tracing::debug!(elapsed = ?started.elapsed(), "postgres cluster initialised");
        for attempt in 1..=START_ATTEMPTS {
            server.port = free_ports(1)?[0];
            server.spawn()?;
            match server.wait_ready(server.options.start_timeout).await {
                Ok(elapsed) => {
                    tracing::debug!(port = server.port, ?elapsed, "postgres serving");
                    break;
                }
                Err(err) if attempt < START_ATTEMPTS && server.address_in_use() => {
                    tracing::warn!(port = server.port, attempt, "postgres port taken, retrying");
                    server.kill().await?;
                    fs::write(server.log_path(), "")?;
                    drop(err);
                }
                Err(err) => return Err(err),
            }
        }
        let database = server.options.database.clone();
        server.create_database(&database).await?;
        tracing::info!(
            port = server.port,
            pid = server.pid,
            elapsed = ?started.elapsed(),
            "postgres ready"
        );
        Ok(server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_durable() {
        let options = PgServer::builder();
        assert!(options.fsync && options.synchronous_commit && options.full_page_writes);
        assert_eq!(options.max_connections, 200);
        assert!(!options.password_auth);
        let fast = PgServer::builder().durable(false);
        assert!(!fast.fsync && !fast.synchronous_commit && !fast.full_page_writes);
    }
}
