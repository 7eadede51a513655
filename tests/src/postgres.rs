//! A real PostgreSQL 15 server (Debian's packages) run as a child process on a free
//! loopback port, with a temporary cluster made by `initdb`.

use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{self, Signal};
use nix::unistd::{Pid, User};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::zookeeper::free_ports;

mod builder;

pub use builder::PgServerBuilder;

/// Where Debian's `postgresql-15` package puts `initdb` and `postgres`.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The system user the package creates; PostgreSQL refuses to run as root.
const OS_USER: &str = "postgres";
/// The cluster's superuser, named by `initdb -U`, and its password.
const SUPERUSER: &str = "drover";
const PASSWORD: &str = "drover";
/// The database `initdb` always creates; `create_database` connects to it.
const MAINTENANCE_DATABASE: &str = "postgres";
/// How many log lines a start-up error carries.
const LOG_TAIL_LINES: usize = 40;
/// How long `stop` waits after a fast shutdown request before it escalates.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long an immediate shutdown may take before the postmaster gets SIGKILL; the
/// postmaster itself SIGKILLs children that ignore SIGQUIT for 5 s.
const QUIT_GRACE: Duration = Duration::from_secs(8);
const POLL: Duration = Duration::from_millis(20);
/// Per-probe limit on connecting and running `SELECT 1`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A PostgreSQL server child process with its own temporary cluster directory.
///
/// Run as the `postgres` user when the harness runs as root. Dropping it shuts the server
/// down in immediate mode (SIGQUIT, then SIGKILL after 8 s; reaped before `drop`
/// returns) and then removes the directory.
#[derive(Debug)]
pub struct PgServer {
    options: PgServerBuilder,
    port: u16,
    /// The uid and gid to run as, when the harness is root.
    owner: Option<(u32, u32)>,
    /// Behind a mutex so `is_running` can poll `try_wait` through `&self`; never held
    /// across an await (`stop` and `kill` take the child out first).
    child: Mutex<Option<Child>>,
    pid: Option<u32>,
    dir: TempDir,
}

impl PgServer {
    /// Starts a server with default (durable) options.
    ///
    /// # Errors
    /// See [`PgServerBuilder::start`].
    pub async fn start() -> anyhow::Result<PgServer> {
        PgServer::builder().start().await
    }

    /// Options for a server; finish with [`PgServerBuilder::start`].
    pub fn builder() -> PgServerBuilder {
        PgServerBuilder::default()
    }

    /// `postgres://drover:drover@127.0.0.1:PORT/DB` for the database created at start.
    pub fn url(&self) -> String {
        self.url_for(&self.options.database)
    }

    /// The URL of another database on this server.
    pub fn url_for(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{PASSWORD}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// sqlx options for `database`, TLS off.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .host("127.0.0.1")
            .port(self.port)
            .username(SUPERUSER)
            .password(PASSWORD)
            .database(database)
            .ssl_mode(PgSslMode::Disable)
            .application_name("drover-tests")
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TCP address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The postmaster's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The temporary directory holding `data/`, the log and the unix socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The cluster's data directory (`PGDATA`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The file receiving the output of `initdb` and the server.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        crate::child::log_tail(&self.log_path(), lines)
    }

    /// Whether the postmaster is alive (started and not exited).
    pub fn is_running(&self) -> bool {
        self.exit_status().is_none() && self.pid.is_some()
    }

    /// Creates an empty database and returns its URL.
    ///
    /// # Errors
    /// Fails when the name is not a plain identifier (ASCII letters, digits and `_`, at
    /// most 63 bytes), when the database exists or the server is unreachable.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<String> {
        check_database_name(name)?;
        let mut conn = self
            .connect_options(MAINTENANCE_DATABASE)
            .connect()
            .await
            .with_context(|| format!("failed to connect to postgres on port {}", self.port))?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .with_context(|| format!("failed to create database {name}"))?;
        conn.close().await?;
        Ok(self.url_for(name))
    }

    /// Waits until the server answers `SELECT 1` over TCP; returns how long that took.
    ///
    /// # Errors
    /// Fails at once with the end of the log when the process has exited, or after `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exit_status() {
                bail!(
                    "postgres on port {} exited with {status} before it was ready; last log lines:\n{}",
                    self.port,
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            if self.pid.is_none() {
                bail!("postgres on port {} is not running", self.port);
            }
            if let Ok(Ok(())) = tokio::time::timeout(PROBE_TIMEOUT, self.probe()).await {
                return Ok(started.elapsed());
            }
            if started.elapsed() >= timeout {
                bail!(
                    "timed out after {timeout:?} waiting for postgres on port {} to serve; last log lines:\n{}",
                    self.port,
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn probe(&self) -> anyhow::Result<()> {
        let mut conn = self.connect_options(MAINTENANCE_DATABASE).connect().await?;
        sqlx::query("SELECT 1").execute(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }

    /// Stops the server with a fast shutdown (SIGINT: clients are disconnected, a
    /// checkpoint is written) and waits for it to exit; escalates to an immediate
    /// shutdown after 10 s.
    ///
    /// # Errors
    /// Fails when the process cannot be signalled or waited for.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.take_child() else {
            return Ok(());
        };
        if !shut_down(&mut child, Signal::SIGINT, STOP_GRACE).await? {
            tracing::warn!(port = self.port, "postgres ignored SIGINT, quitting it");
            quit(&mut child).await?;
        }
        tracing::debug!(port = self.port, "postgres stopped");
        Ok(())
    }

    /// Crashes the server: an immediate shutdown (SIGQUIT), so the next start replays
    /// the WAL like after a power cut; SIGKILL if it takes longer than 8 s.
    ///
    /// Not SIGKILL at once: the postmaster would leave its backends orphaned, still
    /// attached to shared memory (which blocks a restart) and for an init process to reap.
    ///
    /// # Errors
    /// Fails when the process cannot be signalled or waited for.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.take_child() else {
            return Ok(());
        };
        quit(&mut child).await?;
        tracing::debug!(port = self.port, "postgres killed");
        Ok(())
    }

    /// Stops the server if it runs, then starts it again on the same port and cluster.
    ///
    /// Returns once it is ready (see [`PgServer::wait_ready`]), with the time that took.
    ///
    /// # Errors
    /// Fails like [`PgServerBuilder::start`], except that the port cannot change.
    pub async fn restart(&mut self) -> anyhow::Result<Duration> {
        self.stop().await?;
        self.spawn()?;
        let elapsed = self.wait_ready(self.options.start_timeout).await?;
        tracing::info!(
            port = self.port,
            pid = self.pid,
            ?elapsed,
            "postgres restarted"
        );
        Ok(elapsed)
    }

    /// Creates the directory and runs `initdb` in it; does not start the server.
    async fn init(options: PgServerBuilder) -> anyhow::Result<PgServer> {
        for binary in ["initdb", "postgres"] {
            if !Path::new(PG_BIN).join(binary).exists() {
                bail!("{PG_BIN}/{binary} is missing: run scripts/setup to install PostgreSQL");
            }
        }
        let owner = run_as()?;
        let dir = tempfile::Builder::new()
            .prefix("drover-pg-")
            .tempdir()
            .context("failed to create postgres directory")?;
        let server = PgServer {
            options,
            port: 0,
            owner,
            child: Mutex::new(None),
            pid: None,
            dir,
        };
        server.initdb().await?;
        Ok(server)
    }

    async fn initdb(&self) -> anyhow::Result<()> {
        let root = self.dir.path();
        let pwfile = root.join("pwfile");
        fs::write(&pwfile, PASSWORD)?;
        if let Some((uid, gid)) = self.owner {
            for path in [root, &pwfile] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .with_context(|| format!("failed to chown {}", path.display()))?;
            }
        }
        let log = self.open_log()?;
        // --no-sync: the cluster is thrown away with the directory; a host crash in the
        // second after initdb is no concern for a test server, whatever its durability.
        let mut command = self.command("initdb");
        command
            .arg("-D")
            .arg(self.data_dir())
            .args(["-U", SUPERUSER, "--pwfile"])
            .arg(&pwfile)
            .arg("--auth-local=trust")
            .arg(if self.options.password_auth {
                "--auth-host=scram-sha-256"
            } else {
                "--auth-host=trust"
            })
            .args(["--encoding=UTF8", "--no-locale", "--no-sync"])
            .stdout(log.try_clone()?)
            .stderr(log);
        let status = command.status().await.context("failed to run initdb")?;
        fs::remove_file(&pwfile)?;
        if !status.success() {
            let hint = match self.owner {
                Some(_) => format!(
                    " (the {OS_USER} user must be able to enter {})",
                    root.display()
                ),
                None => String::new(),
            };
            bail!(
                "initdb exited with {status}{hint}; last log lines:\n{}",
                self.log_tail(LOG_TAIL_LINES)
            );
        }
        Ok(())
    }

    /// Starts the postmaster; does not wait for it to be ready.
    fn spawn(&mut self) -> anyhow::Result<()> {
        let o = &self.options;
        let on_off = |on: bool| if on { "on" } else { "off" };
        let mut settings = vec![
            ("listen_addresses".to_owned(), "127.0.0.1".to_owned()),
            ("port".to_owned(), self.port.to_string()),
            (
                "unix_socket_directories".to_owned(),
                self.dir.path().display().to_string(),
            ),
            ("max_connections".to_owned(), o.max_connections.to_string()),
            ("fsync".to_owned(), on_off(o.fsync).to_owned()),
            (
                "synchronous_commit".to_owned(),
                on_off(o.synchronous_commit).to_owned(),
            ),
            (
                "full_page_writes".to_owned(),
                on_off(o.full_page_writes).to_owned(),
            ),
        ];
        settings.extend(o.config.iter().cloned());
        let log = self.open_log()?;
        let mut command = self.command("postgres");
        command.arg("-D").arg(self.data_dir());
        for (key, value) in settings {
            command.arg("-c").arg(format!("{key}={value}"));
        }
        command
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let child = command.spawn().context("failed to start postgres")?;
        self.pid = child.id();
        *self.child.get_mut().unwrap_or_else(|p| p.into_inner()) = Some(child);
        Ok(())
    }

    /// A PostgreSQL binary, run as the owner when there is one, in the server directory.
    fn command(&self, binary: &str) -> Command {
        let mut command = Command::new(Path::new(PG_BIN).join(binary));
        command.current_dir(self.dir.path()).stdin(Stdio::null());
        if let Some((uid, gid)) = self.owner {
            // Set in the child before exec, so the pid is the postmaster's own (a
            // `runuser` wrapper would stand in between and take the signals).
            command.uid(uid).gid(gid);
        }
        command
    }

    fn open_log(&self) -> anyhow::Result<File> {
        File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("failed to open postgres log")
    }

    fn take_child(&mut self) -> Option<Child> {
        self.pid = None;
        self.child
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The exit status if the postmaster has exited; `None` while it runs or when never started.
    fn exit_status(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// Whether the log shows a failed bind, which a retry on a fresh port may fix.
    fn address_in_use(&self) -> bool {
        fs::read_to_string(self.log_path()).is_ok_and(|log| log.contains("Address already in use"))
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let Some(mut child) = self.take_child() else {
            return;
        };
        // Reap before the directory goes, so no server writes into a removed tree and no
        // process is left when drop returns. The postmaster reaps its own backends.
        if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
            let _ = signal::kill(Pid::from_raw(pid), Signal::SIGQUIT);
            if crate::child::reaped(&mut child, QUIT_GRACE) {
                return;
            }
        }
        crate::child::kill_and_reap(&mut child);
    }
}

/// Sends `signal` and waits up to `grace` for the exit; `false` when it is still running.
async fn shut_down(child: &mut Child, signal: Signal, grace: Duration) -> anyhow::Result<bool> {
    if child.try_wait()?.is_some() {
        return Ok(true);
    }
    if let Some(pid) = child.id() {
        let pid = Pid::from_raw(i32::try_from(pid)?);
        signal::kill(pid, signal)
            .with_context(|| format!("failed to send {signal} to postgres"))?;
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => {
            status.context("failed to wait for postgres")?;
            Ok(true)
        }
        Err(_) => Ok(false),
    }
}

/// An immediate shutdown, SIGKILL when it hangs.
async fn quit(child: &mut Child) -> anyhow::Result<()> {
    if !shut_down(child, Signal::SIGQUIT, QUIT_GRACE).await? {
        tracing::warn!("postgres ignored SIGQUIT, killing it");
        child.kill().await.context("failed to kill postgres")?;
    }
    Ok(())
}

/// The `postgres` user's uid and gid when the harness is root; `None` runs as oneself.
fn run_as() -> anyhow::Result<Option<(u32, u32)>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let user = User::from_name(OS_USER)
        .context("failed to look up the postgres user")?
        .with_context(|| {
            format!("no {OS_USER} user to run PostgreSQL as root: run scripts/setup")
        })?;
    Ok(Some((user.uid.as_raw(), user.gid.as_raw())))
}

fn check_database_name(name: &str) -> anyhow::Result<()> {
    let plain = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if name.is_empty() || name.len() > 63 || !plain {
        bail!("database name {name:?} must be 1 to 63 ASCII letters, digits or underscores");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_plain_identifiers() {
        assert!(check_database_name("drover_test_1").is_ok());
        assert!(check_database_name("").is_err());
        assert!(check_database_name("a\"; DROP").is_err());
        assert!(check_database_name(&"x".repeat(64)).is_err());
    }
}
