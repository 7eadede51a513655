//! A real S3-compatible server run as a child process on a free loopback port: `s3s-fs`
//! (crates.io, built by `scripts/setup`), which keeps objects as files under a
//! temporary directory, one directory a bucket, and checks SigV4 signatures against a
//! static key pair.

use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::zookeeper::free_ports;

/// The `s3s-fs` release `scripts/setup` installs; keep in step with `s3s_fs_version` there.
pub const S3S_FS_VERSION: &str = "0.14.1";
const ACCESS_KEY: &str = "drover-test-access";
const SECRET_KEY: &str = "drover-test-secret";
/// s3s-fs serves any region; clients sign with this one.
const REGION: &str = "us-east-1";
/// The bucket created at start.
const BUCKET: &str = "drover-test";
/// How many attempts a start makes when a picked port was taken before the server bound it.
const START_ATTEMPTS: usize = 5;
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How many log lines a start-up error carries.
const LOG_TAIL_LINES: usize = 40;
const POLL: Duration = Duration::from_millis(20);
/// Per-probe limit on one unsigned HTTP request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// An S3 server child process (`s3s-fs`) with its own temporary data directory.
///
/// Path-style addressing over plain HTTP on `127.0.0.1`, static credentials
/// ([`S3Server::access_key`], [`S3Server::secret_key`]) and one bucket made at start
/// ([`S3Server::bucket`]). Dropping it kills the process (SIGKILL, reaped before `drop`
/// returns) and then removes the directory.
#[derive(Debug)]
pub struct S3Server {
    port: u16,
    /// Behind a mutex so `is_running` can poll `try_wait` through `&self`.
    child: Mutex<Option<Child>>,
    pid: Option<u32>,
    dir: TempDir,
}

impl S3Server {
    /// Starts a server with the bucket [`S3Server::bucket`] and waits until it serves.
    ///
    /// # Errors
    /// Fails when `s3s-fs` is not installed (run `scripts/setup`), when the server exits
    /// during start-up (the error carries the end of its log) or does not answer within
    /// 20 s. A port taken between picking and binding is retried with a new port.
    pub async fn start() -> anyhow::Result<S3Server> {
        let binary = s3s_fs_binary();
        if !binary.is_file() {
            bail!(
                "s3s-fs {S3S_FS_VERSION} is not installed at {}: run scripts/setup to build it",
                binary.display()
            );
        }
        for attempt in 1..=START_ATTEMPTS {
            let port = free_ports(1)?[0];
            let server = S3Server::launch(&binary, port)?;
            match server.wait_ready(START_TIMEOUT).await {
                Ok(elapsed) => {
                    tracing::info!(port, pid = server.pid, ?elapsed, "s3s-fs ready");
                    return Ok(server);
                }
                Err(err) if attempt < START_ATTEMPTS && server.address_in_use() => {
                    tracing::warn!(port, attempt, "s3s-fs port taken, retrying on another");
                    drop(err);
                }
                Err(err) => return Err(err),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// `http://127.0.0.1:PORT`, for a client's endpoint (path-style, plain HTTP).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The bucket created at start.
    pub fn bucket(&self) -> &str {
        BUCKET
    }

    /// The access key id the server accepts.
    pub fn access_key(&self) -> &str {
        ACCESS_KEY
    }

    /// The secret key requests are signed with.
    pub fn secret_key(&self) -> &str {
        SECRET_KEY
    }

    /// The region to sign requests for.
    pub fn region(&self) -> &str {
        REGION
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TCP address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The temporary directory holding `data/` and the log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's root: one directory a bucket, one file an object.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The file receiving the server's stdout and stderr.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("s3s-fs.log")
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        crate::child::log_tail(&self.log_path(), lines)
    }

    /// Whether the server is alive (started and not exited).
    pub fn is_running(&self) -> bool {
        self.exit_status().is_none() && self.pid.is_some()
    }

    /// Creates another empty bucket (a directory under [`S3Server::data_dir`]).
    ///
    /// # Errors
    /// Fails when `name` is not a valid bucket name (3 to 63 lowercase ASCII letters,
    /// digits, `-` and `.`, starting and ending with a letter or digit) or exists.
    pub fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        check_bucket_name(name)?;
        fs::create_dir(self.data_dir().join(name))
            .with_context(|| format!("failed to create bucket {name}"))
    }

    /// Waits until the server answers HTTP like an S3 server; returns how long that took.
    ///
    /// # Errors
    /// Fails at once with the end of the log when the process has exited, or after `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let client = reqwest::Client::builder()
            .timeout(PROBE_TIMEOUT)
            .build()
            .context("failed to build an HTTP client")?;
        loop {
            if let Some(status) = self.exit_status() {
                bail!(
                    "s3s-fs on port {} exited with {status} before it was ready; last log lines:\n{}",
                    self.port,
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            if self.pid.is_none() {
                bail!("s3s-fs on port {} is not running", self.port);
            }
            if self.probe(&client).await {
                return Ok(started.elapsed());
            }
            if started.elapsed() >= timeout {
                bail!(
                    "timed out after {timeout:?} waiting for s3s-fs on port {} to serve; last log lines:\n{}",
                    self.port,
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// An unsigned request: s3s-fs refuses it with an S3 error document, which shows it
    /// is the one listening (not another process that took the port).
    async fn probe(&self, client: &reqwest::Client) -> bool {
        let url = format!("{}/{BUCKET}", self.endpoint());
        let Ok(response) = client.get(url).send().await else {
            return false;
        };
        response
            .text()
            .await
            .is_ok_and(|body| body.contains("<Code>"))
    }

    /// Creates the directory and the bucket, then starts the server; does not wait.
    fn launch(binary: &Path, port: u16) -> anyhow::Result<S3Server> {
        let dir = tempfile::Builder::new()
            .prefix("drover-s3-")
            .tempdir()
            .context("failed to create s3s-fs directory")?;
        let mut server = S3Server {
            port,
            child: Mutex::new(None),
            pid: None,
            dir,
        };
        fs::create_dir_all(server.data_dir().join(BUCKET))
            .context("failed to create the bucket directory")?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(server.log_path())
            .context("failed to open s3s-fs log")?;
        let child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(server.data_dir())
            .current_dir(server.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("failed to start {}", binary.display()))?;
        server.pid = child.id();
        *drover_core::lock(&server.child) = Some(child);
        Ok(server)
    }

    /// The exit status if the server has exited; `None` while it runs.
    fn exit_status(&self) -> Option<ExitStatus> {
        let mut child = drover_core::lock(&self.child);
        child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// Whether the log shows a failed bind, which a retry on a fresh port may fix.
    fn address_in_use(&self) -> bool {
        fs::read_to_string(self.log_path()).is_ok_and(|log| log.contains("AddrInUse"))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let Some(mut child) = self
            .child
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        // Reap before the directory goes, so the pid is gone when drop returns.
        crate::child::kill_and_reap(&mut child);
    }
}

/// Where `scripts/setup` installs `s3s-fs`: `$DROVER_TOOLS`, else
/// `$XDG_CACHE_HOME/drover`, else `$HOME/.cache/drover`, then
/// `s3s-fs-VERSION/bin/s3s-fs`.
pub fn s3s_fs_binary() -> PathBuf {
    let env = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    let tools = env("DROVER_TOOLS").map(PathBuf::from).unwrap_or_else(|| {
        env("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env("HOME").unwrap_or_default()).join(".cache"))
            .join("drover")
    });
    tools
        .join(format!("s3s-fs-{S3S_FS_VERSION}"))
        .join("bin")
        .join("s3s-fs")
}

fn check_bucket_name(name: &str) -> anyhow::Result<()> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(3..=63).contains(&name.len())
        || !name.chars().all(allowed)
        || !edge(name.chars().next())
        || !edge(name.chars().last())
    {
        bail!("invalid bucket name {name:?}: 3 to 63 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        for good in ["abc", "drover-test", "a.b-c9"] {
            assert!(check_bucket_name(good).is_ok(), "{good}");
        }
        for bad in ["ab", "Upper", "-lead", "trail-", "under_score", ""] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }
}
