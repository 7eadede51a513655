//! A real ZooKeeper server run as a child JVM on a free loopback port.

use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::prelude::{Engine, BASE64_STANDARD};
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use sha1::{Digest, Sha1};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::four_letter::{four_letter, ZkMode};

mod builder;

pub use builder::ZkServerBuilder;

/// Debian's ZooKeeper jar; its manifest pulls in the other jars it needs.
const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// An slf4j binding and log4j, so the server log has content to show when a start fails.
const LOGGING_JARS: [&str; 2] = [
    "/usr/share/java/slf4j-log4j12.jar",
    "/usr/share/java/log4j-1.2.jar",
];
const LOG4J_PROPERTIES: &str = "\
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t:%C{1}@%L] - %m%n
";
/// How many log lines a start-up error carries.
const LOG_TAIL_LINES: usize = 40;
/// How long `stop` waits after SIGTERM before it sends SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);
/// Per-probe limit: a JVM still starting may accept a connection and answer nothing.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
const FOUR_LETTER_TIMEOUT: Duration = Duration::from_secs(5);

/// This node's place in an ensemble: its `myid` and every `server.N` line.
#[derive(Clone, Debug)]
pub(crate) struct QuorumMember {
    pub(crate) myid: usize,
    pub(crate) servers: Vec<String>,
}

/// A ZooKeeper server child process with its own temporary data directory.
///
/// Dropping it kills the process (SIGKILL, reaped before `drop` returns) and then removes
/// the directory.
#[derive(Debug)]
pub struct ZkServer {
    options: ZkServerBuilder,
    port: u16,
    quorum: Option<QuorumMember>,
    /// Behind a mutex so `is_running` can poll `try_wait` through `&self`; never held
    /// across an await (`stop` and `kill` take the child out first).
    child: Mutex<Option<Child>>,
    pid: Option<u32>,
    dir: TempDir,
}

impl ZkServer {
    /// Starts a standalone server with default options.
    ///
    /// # Errors
    /// See [`ZkServerBuilder::start`].
    pub async fn start() -> anyhow::Result<ZkServer> {
        ZkServer::builder().start().await
    }

    /// Options for a server; finish with [`ZkServerBuilder::start`].
    pub fn builder() -> ZkServerBuilder {
        ZkServerBuilder::default()
    }

    /// The client connect string, `127.0.0.1:PORT`.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The client address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The process id of the running JVM, if any.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The temporary directory holding `zoo.cfg`, `data/` and the log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The file receiving the server's stdout, stderr and log4j output.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("zookeeper.log")
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        crate::child::log_tail(&self.log_path(), lines)
    }

    /// `super:<password>` for `Connector::with_auth("digest", ..)`, when a super password is set.
    pub fn super_auth(&self) -> Option<String> {
        let password = self.options.super_password.as_ref()?;
        Some(format!("super:{password}"))
    }

    /// Whether the JVM is alive (started and not exited).
    pub fn is_running(&self) -> bool {
        self.exit_status().is_none() && self.pid.is_some()
    }

    /// Sends a four-letter word (`ruok`, `srvr`, `cons`, `wchc`, `mntr`...) and returns the answer.
    ///
    /// # Errors
    /// Fails when the server is unreachable or does not answer within 5 s.
    pub async fn four_letter(&self, cmd: &str) -> anyhow::Result<String> {
        four_letter(self.port, cmd, FOUR_LETTER_TIMEOUT).await
    }

    /// The server's role, from the `Mode:` line of `srvr`.
    ///
    /// # Errors
    /// Fails when the server is unreachable or the answer has no mode.
    pub async fn mode(&self) -> anyhow::Result<ZkMode> {
        ZkMode::from_srvr(&self.four_letter("srvr").await?)
    }

    /// Like [`ZkServer::mode`], with the short limit used while polling.
    pub(crate) async fn probe_mode(&self) -> anyhow::Result<ZkMode> {
        ZkMode::from_srvr(&four_letter(self.port, "srvr", PROBE_TIMEOUT).await?)
    }

    /// Waits until the server answers `ruok` with `imok` and, when standalone, serves
    /// requests; returns how long that took.
    ///
    /// `imok` only says the JVM listens: a standalone server still loading its database
    /// drops sessions, so the `srvr` mode is checked too. An ensemble node answers `imok`
    /// before it has joined a quorum; see [`Ensemble::wait_quorum`](crate::Ensemble::wait_quorum).
    ///
    /// # Errors
    /// Fails at once with the end of the log when the process has exited, or after `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exit_status() {
                bail!(
                    "zookeeper on port {} exited with {status} before it was ready; last log lines:\n{}",
                    self.port,
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            if self.pid.is_none() {
                bail!("zookeeper on port {} is not running", self.port);
            }
            if self.probe_ready().await {
                return Ok(started.elapsed());
            }
            if started.elapsed() >= timeout {
                bail!(
                    "timed out after {timeout:?} waiting for zookeeper on port {} to serve; last log lines:\n{}",
                    self.port,
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn probe_ready(&self) -> bool {
        let ruok = four_letter(self.port, "ruok", PROBE_TIMEOUT).await;
        if !ruok.is_ok_and(|answer| answer == "imok") {
            return false;
        }
        self.quorum.is_some() || matches!(self.probe_mode().await, Ok(ZkMode::Standalone))
    }

    /// The server process, if it runs; it is ours to end from here on.
    fn take_child(&mut self) -> Option<Child> {
        self.pid = None;
        drover_core::lock(&self.child).take()
    }

    /// Stops the server with SIGTERM and waits for it to exit (SIGKILL after 10 s).
    ///
    /// # Errors
    /// Fails when the process cannot be signalled or waited for.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.take_child() else {
            return Ok(());
        };
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        if let Some(pid) = child.id() {
            let pid = Pid::from_raw(i32::try_from(pid)?);
            signal::kill(pid, Signal::SIGTERM).context("failed to send SIGTERM to zookeeper")?;
        }
        match tokio::time::timeout(STOP_GRACE, child.wait()).await {
            Ok(status) => {
                status.context("failed to wait for zookeeper")?;
            }
            Err(_) => {
                tracing::warn!(port = self.port, "zookeeper ignored SIGTERM, killing it");
                child.kill().await.context("failed to kill zookeeper")?;
            }
        }
        tracing::debug!(port = self.port, "zookeeper stopped");
        Ok(())
    }

    /// Kills the server with SIGKILL, like a crash, and waits for it to exit.
    ///
    /// # Errors
    /// Fails when the process cannot be killed or waited for.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.take_child() else {
            return Ok(());
        };
        child.kill().await.context("failed to kill zookeeper")?;
        tracing::debug!(port = self.port, "zookeeper killed");
        Ok(())
    }

    /// Stops the server if it runs, then starts it again on the same port and data directory.
    ///
    /// Returns once it is ready (see [`ZkServer::wait_ready`]), with the time that took.
    ///
    /// # Errors
    /// Fails like [`ZkServerBuilder::start`], except that the port cannot change.
    pub async fn restart(&mut self) -> anyhow::Result<Duration> {
        self.stop().await?;
        self.spawn()?;
        let elapsed = self.wait_ready(self.options.start_timeout).await?;
        tracing::info!(
            port = self.port,
            pid = self.pid,
            ?elapsed,
            "zookeeper restarted"
        );
        Ok(elapsed)
    }

    /// Creates the directory and configuration files; does not start the JVM.
    pub(crate) fn create(
        options: ZkServerBuilder,
        port: u16,
        quorum: Option<QuorumMember>,
    ) -> anyhow::Result<ZkServer> {
        if !Path::new(ZOOKEEPER_JAR).exists() {
            bail!("{ZOOKEEPER_JAR} is missing: run scripts/setup to install ZooKeeper");
        }
        let dir = tempfile::Builder::new()
            .prefix("drover-zk-")
            .tempdir()
            .context("failed to create zookeeper directory")?;
        let server = ZkServer {
            options,
            port,
            quorum,
            child: Mutex::new(None),
            pid: None,
            dir,
        };
        server.write_files()?;
        Ok(server)
    }

    fn write_files(&self) -> anyhow::Result<()> {
        let root = self.dir.path();
        let data = root.join("data");
        fs::create_dir_all(root.join("conf"))?;
        fs::create_dir_all(&data)?;
        fs::write(root.join("conf/log4j.properties"), LOG4J_PROPERTIES)?;
        if let Some(quorum) = &self.quorum {
            fs::write(data.join("myid"), format!("{}\n", quorum.myid))?;
        }
        fs::write(root.join("zoo.cfg"), self.zoo_cfg(&data)).context("failed to write zoo.cfg")?;
        Ok(())
    }

    fn zoo_cfg(&self, data: &Path) -> String {
        let o = &self.options;
        let mut lines = vec![
            format!("tickTime={}", o.tick_time.as_millis()),
            format!("dataDir={}", data.display()),
            format!("clientPort={}", self.port),
            "clientPortAddress=127.0.0.1".to_owned(),
            "maxClientCnxns=0".to_owned(),
            format!("maxSessionTimeout={}", o.max_session_timeout.as_millis()),
            "4lw.commands.whitelist=*".to_owned(),
            "admin.enableServer=false".to_owned(),
            "autopurge.snapRetainCount=3".to_owned(),
            "autopurge.purgeInterval=1".to_owned(),
        ];
        if let Some(min) = o.min_session_timeout {
            lines.push(format!("minSessionTimeout={}", min.as_millis()));
        }
        if let Some(force_sync) = o.force_sync {
            lines.push(format!(
                "forceSync={}",
                if force_sync { "yes" } else { "no" }
            ));
        }
        if let Some(quorum) = &self.quorum {
            lines.extend(["initLimit=10".to_owned(), "syncLimit=5".to_owned()]);
            lines.extend(quorum.servers.iter().cloned());
        }
        lines.extend(o.config.iter().map(|(k, v)| format!("{k}={v}")));
        lines.push(String::new());
        lines.join("\n")
    }

    /// Starts the JVM; does not wait for it to be ready.
    pub(crate) fn spawn(&mut self) -> anyhow::Result<()> {
        let root = self.dir.path();
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("failed to open zookeeper log")?;
        let mut classpath = vec![
            root.join("conf").display().to_string(),
            ZOOKEEPER_JAR.to_owned(),
        ];
        classpath.extend(
            LOGGING_JARS
                .iter()
                .filter(|jar| Path::new(jar).exists())
                .map(|jar| (*jar).to_owned()),
        );
        let mut command = Command::new("java");
        command
            .arg(format!("-Xmx{}", self.options.heap))
            .arg("-Djava.net.preferIPv4Stack=true")
            .arg(format!("-Dzookeeper.log.dir={}", root.display()))
            .arg("-Dzookeeper.root.logger=INFO,CONSOLE");
        if let Some(password) = &self.options.super_password {
            command.arg(format!(
                "-Dzookeeper.DigestAuthenticationProvider.superDigest={}",
                digest_id("super", password)
            ));
        }
        command
            .args(&self.options.jvm_args)
            .arg("-cp")
            .arg(classpath.join(":"))
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(root.join("zoo.cfg"))
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let child = command.spawn().map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => {
                anyhow::anyhow!("java not found on PATH: run scripts/setup to install it")
            }
            _ => anyhow::Error::new(err).context("failed to start zookeeper"),
        })?;
        self.pid = child.id();
        *self.child.get_mut().unwrap_or_else(|p| p.into_inner()) = Some(child);
        Ok(())
    }

    /// The exit status if the JVM has exited; `None` while it runs or when never started.
    pub(crate) fn exit_status(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// Whether the log shows a failed bind, which a retry on fresh ports may fix.
    pub(crate) fn address_in_use(&self) -> bool {
        fs::read_to_string(self.log_path()).is_ok_and(|log| log.contains("Address already in use"))
    }
}

impl Drop for ZkServer {
    fn drop(&mut self) {
        let Some(mut child) = self
            .child
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        // Reap before the directory goes, so no JVM writes into a removed tree and the
        // pid is gone when drop returns. SIGKILL makes this a matter of milliseconds.
        crate::child::kill_and_reap(&mut child);
    }
}

/// The id of a ZooKeeper `digest` ACL for `user`: `user:base64(sha1("user:password"))`.
pub fn digest_id(user: &str, password: &str) -> String {
    let hash = Sha1::digest(format!("{user}:{password}").as_bytes());
    format!("{user}:{}", BASE64_STANDARD.encode(hash))
}

/// Picks `n` distinct free loopback ports by binding them all at once, then releasing them.
pub(crate) fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .context("failed to pick a free port")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_zookeeper() {
        // `java org.apache.zookeeper.server.auth.DigestAuthenticationProvider super:password`
        assert_eq!(
            digest_id("super", "password"),
            "super:DyNYQEQvajljsxlhf5uS4PJ9R28="
        );
    }

    #[test]
    fn free_ports_are_distinct() {
        let mut ports = free_ports(6).unwrap();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 6);
    }
}
