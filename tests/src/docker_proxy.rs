//! A Docker API socket in front of the real one that can hold up container creates, to
//! put a slow daemon (or a paused executor) between an executor's create and its start.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

/// The daemon's socket the proxy forwards to.
const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// A unix socket forwarding to the Docker daemon; requests to `/containers/create` are
/// held for `delay` before they go on.
#[derive(Debug)]
pub struct DockerProxy {
    _dir: tempfile::TempDir,
    path: PathBuf,
    creates: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
}

impl DockerProxy {
    /// Starts the proxy on a fresh socket.
    ///
    /// # Errors
    /// Fails when the socket cannot be bound.
    pub fn start(delay: Duration) -> anyhow::Result<DockerProxy> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).context("failed to bind the docker proxy")?;
        let creates = Arc::new(AtomicUsize::new(0));
        let accept = tokio::spawn(accept_loop(listener, delay, creates.clone()));
        Ok(DockerProxy {
            _dir: dir,
            path,
            creates,
            accept,
        })
    }

    /// `unix:///...`, for `DOCKER_HOST`.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many container creates came through so far.
    pub fn creates(&self) -> usize {
        self.creates.load(Ordering::Relaxed)
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: UnixListener, delay: Duration, creates: Arc<AtomicUsize>) {
    while let Ok((client, _)) = listener.accept().await {
        tokio::spawn(serve(client, delay, creates.clone()));
    }
}

async fn serve(client: UnixStream, delay: Duration, creates: Arc<AtomicUsize>) {
    let Ok(daemon) = UnixStream::connect(DOCKER_SOCKET).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut daemon_read, mut daemon_write) = daemon.into_split();
    let upstream = async {
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if contains(&buf[..n], b"/containers/create") {
                creates.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(delay).await;
            }
            if daemon_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let downstream = tokio::io::copy(&mut daemon_read, &mut client_write);
    tokio::select! {
        () = upstream => {},
        _ = downstream => {},
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
