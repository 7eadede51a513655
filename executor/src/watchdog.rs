//! The watchdog: a child process that kills this executor's containers when the executor
//! stops answering or dies, so no job's container outlives its holder's ability to stop
//! it.
//!
//! An executor that is frozen (SIGSTOP, a stalled host) keeps its containers running
//! while its ZooKeeper session runs out and another executor takes the job over: two
//! live runs. The watchdog is a separate process, so it is not frozen with the executor:
//! the executor writes a byte to its stdin every `silence / 8` from a plain thread; after
//! `silence` without one (well inside the session timeout, see [`silence_for`]) the
//! watchdog kills every running container labelled with this executor's id. When the
//! pipe closes (the executor exited or was SIGKILLed) it does the same and exits.
//!
//! Before each kill it creates a file named after the container in a directory the two
//! share, so the executor, once it runs again, tells a container its watchdog killed from
//! one that died on its own (and gives the job back instead of failing it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tracing::{info, warn};

use crate::container::{DockerRuntime, LABEL_EXECUTOR};
use crate::error::Error;

/// The hidden subcommand of the `drover` binary that runs the watchdog.
pub const SUBCOMMAND: &str = "executor-watchdog";

/// How long the executor may be silent before its containers are killed: 2/5 of the
/// session timeout. The server expires a silent session no sooner than about 4/5 of the
/// timeout after the executor froze (its last ping is at most 3/20 of it old), so the
/// kill lands well before anyone else can take the job.
pub(crate) fn silence_for(session_timeout: Duration) -> Duration {
    (session_timeout * 2 / 5).max(Duration::from_millis(200))
}

/// The executor's end: the child process, the heartbeat thread and the shared directory.
#[derive(Debug)]
pub(crate) struct Watchdog {
    child: Child,
    dir: PathBuf,
    stop: Arc<AtomicBool>,
}

impl Watchdog {
    /// Starts `drover executor-watchdog` for `executor`.
    ///
    /// # Errors
    /// [`Error::Watchdog`] when the binary cannot be found or started.
    pub(crate) fn start(executor: &str, silence: Duration) -> Result<Watchdog, Error> {
        let failed = |what: &str, e: std::io::Error| {
            Error::Watchdog(format!(
                "cannot {what}: {e} (set executor.watchdog = false only if this executor is not the drover binary)"
            ))
        };
        let binary = std::env::current_exe().map_err(|e| failed("find the drover binary", e))?;
        let dir = std::env::temp_dir().join(format!(
            "drover-watchdog-{}-{}",
            executor.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"),
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| failed("create its directory", e))?;
        let mut child = Command::new(binary)
            .arg(SUBCOMMAND)
            .arg(executor)
            .arg(&dir)
            .arg(silence.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| failed("start the watchdog process", e))?;
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let stop = Arc::new(AtomicBool::new(false));
        let beat = silence / 8;
        let stopping = stop.clone();
        // A plain thread, not a task: a busy runtime is not a frozen process.
        std::thread::Builder::new()
            .name("watchdog-beat".into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    if pipe.write_all(b".").and_then(|()| pipe.flush()).is_err() {
                        return;
                    }
                    std::thread::sleep(beat);
                }
            })
            .map_err(|e| failed("start the heartbeat thread", e))?;
        info!(
            pid = child.id(),
            ?silence,
            "watchdog started: it kills our containers if we stop answering"
        );
        Ok(Watchdog { child, dir, stop })
    }

    /// Whether the watchdog killed container `id`.
    pub(crate) fn killed(&self, id: &str) -> bool {
        self.dir.join(id).exists()
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // The heartbeat thread stops and drops the pipe; the watchdog sees it close,
        // finds no container of ours (the executor stopped them) and exits.
        self.stop.store(true, Ordering::Relaxed);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The watchdog process: `drover executor-watchdog EXECUTOR DIR SILENCE_MS`.
///
/// # Errors
/// [`Error::Docker`] when the daemon cannot be reached at start.
pub async fn run(executor: String, dir: PathBuf, silence: Duration) -> Result<(), Error> {
    let docker = DockerRuntime::connect().await.map_err(Error::Docker)?;
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    let mut silent = false;
    loop {
        match tokio::time::timeout(silence, stdin.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {
                let killed = kill_all(&docker, &executor, &dir).await;
                if killed > 0 {
                    warn!(%executor, killed, "watchdog: the executor exited; killed the containers it left running");
                }
                return Ok(());
            }
            Ok(Ok(_)) => {
                if silent {
                    info!(%executor, "watchdog: the executor answers again");
                    silent = false;
                }
            }
            Err(_) => {
                let killed = kill_all(&docker, &executor, &dir).await;
                if !silent || killed > 0 {
                    warn!(%executor, ?silence, killed, "watchdog: the executor has been silent too long (frozen?); killed its running containers so no job runs twice");
                }
                silent = true;
            }
        }
    }
}

/// Kills every running container of `executor`, marking each in `dir` first.
async fn kill_all(docker: &DockerRuntime, executor: &str, dir: &Path) -> usize {
    let running = match docker.running_labelled(LABEL_EXECUTOR, executor).await {
        Ok(ids) => ids,
        Err(e) => {
            warn!(error = %e, "watchdog: cannot list the executor's containers");
            return 0;
        }
    };
    for id in &running {
        if let Err(e) = std::fs::write(dir.join(id), b"") {
            warn!(container = %id, error = %e, "watchdog: cannot mark a container before killing it");
        }
        docker.kill(id).await;
    }
    running.len()
}
