//! The accept loop: at most `api.max_connections` connections served at once, each over
//! HTTP/1.1 with a header read timeout, closed gracefully when the API stops.
//!
//! Over the limit, the loop stops accepting: new connections wait in the kernel's listen
//! backlog, holding no descriptor of this process, until a served one closes. A client
//! that does not send a whole request head within `api.header_timeout` (or leaves a
//! kept-alive connection idle that long) is disconnected, so half-sent heads cannot hold
//! the slots; a body that does not arrive is bounded by `api.body_timeout` in the body
//! extractor (`extract.rs`).

use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, warn};

/// How long the loop waits after an accept error that is not about one connection
/// (such as running out of descriptors) before accepting again.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// How often, at most, reaching the connection limit is logged.
const FULL_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Descriptors the process needs besides its connections (database, ZooKeeper, logs).
const OTHER_DESCRIPTORS: u64 = 64;

/// The per-connection limits, from `[api]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// `api.header_timeout`.
    pub(crate) header_timeout: Duration,
    /// `api.max_connections`.
    pub(crate) max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops accepting,
/// lets every connection finish the request it is serving (idle ones close at once) and
/// returns when all are closed.
///
/// # Cancellation safety
/// Cancel `shutdown` rather than dropping the future: dropping it leaves the connection
/// tasks running without the shutdown signal reaching them in order.
pub(crate) async fn serve_connections(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    warn_if_descriptors_short(limits.max_connections);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut warned_full: Option<Instant> = None;
    loop {
        let Some(slot) = free_slot(&slots, &limits, &mut warned_full, &shutdown).await else {
            break;
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    if !is_connection_error(&err) {
                        error!(error = %err, "cannot accept connections; retrying in a second");
                        tokio::select! {
                            () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                            () = shutdown.cancelled() => break,
                        }
                    }
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // Small request/response pairs on kept-alive connections: never wait for Nagle.
        let _ = stream.set_nodelay(true);
        let connection = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut connection = pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                () = shutdown.cancelled() => {
                    // Finish the request in flight (if any), then close.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = served {
                debug!(%remote, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// A connection slot: at once if one is free, else once one frees (warning now and then
/// that the limit is reached); `None` on shutdown.
async fn free_slot(
    slots: &Arc<Semaphore>,
    limits: &Limits,
    warned_full: &mut Option<Instant>,
    shutdown: &CancellationToken,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(slot) = Arc::clone(slots).try_acquire_owned() {
        return Some(slot);
    }
    if warned_full.is_none_or(|at| at.elapsed() >= FULL_WARNING_EVERY) {
        warn!(
            max_connections = limits.max_connections,
            "connection limit reached; new connections wait in the listen backlog"
        );
        *warned_full = Some(Instant::now());
    }
    tokio::select! {
        slot = Arc::clone(slots).acquire_owned() => slot.ok(), // never closed
        () = shutdown.cancelled() => None,
    }
}

/// Whether an accept error concerns only the connection being accepted.
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Warns when the process may run out of descriptors before reaching the limit.
fn warn_if_descriptors_short(max_connections: usize) {
    let Some(soft) = open_file_limit() else {
        return;
    };
    let needed = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(OTHER_DESCRIPTORS);
    if needed > soft {
        warn!(
            max_connections,
            open_file_limit = soft,
            "api.max_connections is above what the open-file limit allows; raise `ulimit -n` or lower api.max_connections"
        );
    }
}

/// The soft limit of open files (Linux: `/proc/self/limits`); `None` when unknown or
/// unlimited.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_per_connection_accept_errors_are_retried_at_once() {
        assert!(is_connection_error(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
        assert!(!is_connection_error(&io::Error::other(
            "too many open files"
        )));
    }

    #[test]
    fn the_open_file_limit_is_read_where_proc_has_it() {
        if std::path::Path::new("/proc/self/limits").exists() {
            assert!(open_file_limit().is_some_and(|soft| soft > 0));
        }
    }
}
