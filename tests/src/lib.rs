//! drover's test harness: the real things integration tests and benchmarks run against.
//!
//! # Layout
//! - [`ZkServer`]: a standalone ZooKeeper child JVM on a free loopback port with a
//!   temporary data directory; stop, kill, restart and four-letter words.
//! - [`Ensemble`]: an N-node ZooKeeper quorum on loopback; kill a node, find the leader,
//!   wait for a quorum.
//! - [`PgServer`]: a PostgreSQL 15 child process with a throwaway `initdb` cluster on a
//!   free loopback port; a database per test, stop, kill (crash), restart.
//! - [`S3Server`]: a real S3-compatible server (`s3s-fs`, built by `scripts/setup`) as a
//!   child process on a free loopback port over a temporary directory, with a bucket and
//!   static credentials: path-style, plain HTTP, multipart and conditional puts.
//! - [`TcpProxy`]: a TCP forwarder that cuts ([`TcpProxy::block`]) or silences
//!   ([`TcpProxy::blackhole`]) a client's link to a server, to expire sessions.
//! - [`OverlapMonitor`]: polls Docker for two running containers of one job.
//! - [`DockerProxy`]: a Docker API socket that holds up container creates.
//! - [`wait_until`] and [`within`]: poll a predicate, or bound a future that could hang,
//!   with a message saying what was awaited.
//! - [`Python`], [`run_python`] and [`spawn_python`]: scripts (inline or in `python/`)
//!   under the kazoo venv of `scripts/setup`.
//! - [`drover_command`]: the built `drover` binary as a child process.
//! - [`connect`]: a drover coordination session on a test server.
//! - [`hold_entry`] / [`retake`]: take one job's queue entry as an executor would, for
//!   claims the API checks in ZooKeeper.
//! - [`init_test_tracing`]: a `RUST_LOG` subscriber that writes through the test harness.

mod child;
mod docker_proxy;
mod drover;
mod ensemble;
mod four_letter;
mod hold;
mod overlap;
mod postgres;
pub mod procfs;
mod proxy;
mod python;
pub mod s3;
mod wait;
mod zookeeper;

pub use docker_proxy::DockerProxy;
pub use drover::{drover_binary, drover_command, free_port, run_drover, wait_api_ready};
pub use ensemble::{Ensemble, EnsembleBuilder};
pub use four_letter::ZkMode;
pub use hold::{entries_of, hold_entry, release_hold, retake, take_named, Hold};
pub use overlap::{JobSighting, OverlapMonitor};
pub use postgres::{PgServer, PgServerBuilder};
pub use proxy::TcpProxy;
pub use python::{
    python_script, run_python, spawn_python, venv_python, workspace_root, LineChild, Python,
};
pub use s3::{s3s_fs_binary, S3Server, S3S_FS_VERSION};
pub use wait::{wait_until, wait_until_sync, within, POLL_INTERVAL};
pub use zookeeper::{digest_id, ZkServer, ZkServerBuilder};

/// A drover session on `hosts` with the given session timeout (the server clamps it to
/// its tick-time bounds).
///
/// # Errors
/// Fails when no session can be established.
pub async fn connect(
    hosts: &str,
    session_timeout: std::time::Duration,
) -> anyhow::Result<drover_coordination::Session> {
    let settings =
        drover_coordination::ZkSettings::new(hosts).with_session_timeout(session_timeout);
    Ok(drover_coordination::Session::connect(&settings).await?)
}

/// Installs a tracing subscriber filtered by `RUST_LOG` (default `warn`) that writes
/// through libtest's capture; later calls, from other tests, do nothing.
pub fn init_test_tracing() {
    use tracing_subscriber::EnvFilter;

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
