//! The coordination layer's error type.

use std::time::Duration;

/// The ZooKeeper client's own error, re-exported so callers can match on it.
pub use zookeeper_client::Error as ZkError;

/// Everything that can go wrong in drover's ZooKeeper recipes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The settings are unusable; the message says which field and how to fix it.
    #[error("invalid zookeeper settings: {0}")]
    InvalidSettings(String),

    /// No session could be established.
    #[error("cannot connect to zookeeper at {hosts}: {source} (is the ensemble running and reachable? check zookeeper.hosts)")]
    Connect {
        /// The connect string that was tried.
        hosts: String,
        /// The client's reason.
        #[source]
        source: ZkError,
    },

    /// A ZooKeeper operation failed.
    #[error("zookeeper {op} {path} failed: {source}")]
    Zk {
        /// What was attempted (`create`, `delete`, `multi`, ...).
        op: &'static str,
        /// The node it was attempted on.
        path: String,
        /// The client's reason.
        #[source]
        source: ZkError,
    },

    /// The session was not allowed to do this: the node's ACL or the client's credentials.
    #[error("zookeeper refused {op} {path}: not authorized (check zookeeper.auth matches the identity that created drover's nodes)")]
    NotAuthorized {
        /// What was attempted.
        op: &'static str,
        /// The node it was attempted on.
        path: String,
    },

    /// The taken entry is no longer held by this taker, so its outcome must not be recorded.
    #[error("queue entry {entry} is no longer held by this taker ({reason}); another taker may own it now, so drop the work and do not report a result")]
    NotHeld {
        /// The entry's node name.
        entry: String,
        /// Why it was lost.
        reason: LostReason,
    },

    /// The session ended (expired, closed or failed authentication); open a new one.
    #[error("zookeeper session is gone ({0}); create a new session")]
    SessionLost(LostReason),

    /// A value stored in ZooKeeper could not be understood.
    #[error("malformed data in {path}: {reason}")]
    Malformed {
        /// The node holding it.
        path: String,
        /// What was wrong with it.
        reason: String,
    },

    /// An argument was invalid; the message says how to fix it.
    #[error("{0}")]
    InvalidArgument(String),

    /// Waiting ran out.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// Why a taken entry, a leadership or a session was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostReason {
    /// The ZooKeeper session expired: every ephemeral node of it is gone.
    SessionExpired,
    /// The client was closed or failed authentication.
    SessionClosed,
    /// The client was disconnected long enough that the server may have expired the session.
    Suspended,
    /// The node was deleted by someone else.
    NodeDeleted,
    /// This process already consumed or released it.
    Finished,
}

impl std::fmt::Display for LostReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LostReason::SessionExpired => "session expired",
            LostReason::SessionClosed => "session closed",
            LostReason::Suspended => {
                "disconnected from zookeeper long enough that the session may expire"
            }
            LostReason::NodeDeleted => "its node was deleted by someone else",
            LostReason::Finished => "already consumed or released",
        })
    }
}

impl Error {
    /// Wraps a client error for `op` on `path`, singling out authorization failures.
    pub fn zk(op: &'static str, path: impl Into<String>, source: ZkError) -> Error {
        let path = path.into();
        match source {
            ZkError::NoAuth => Error::NotAuthorized { op, path },
            ZkError::SessionExpired => Error::SessionLost(LostReason::SessionExpired),
            ZkError::ClientClosed | ZkError::AuthFailed => {
                Error::SessionLost(LostReason::SessionClosed)
            }
            source => Error::Zk { op, path, source },
        }
    }

    /// The underlying client error, when there is one.
    pub fn zk_error(&self) -> Option<&ZkError> {
        match self {
            Error::Zk { source, .. } | Error::Connect { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Whether retrying the same operation later may succeed (connection trouble, throttling).
    pub fn is_transient(&self) -> bool {
        self.zk_error().is_some_and(|e| {
            connection_lost(e)
                || matches!(e, ZkError::Timeout | ZkError::Throttled | ZkError::NoHosts)
        }) || matches!(self, Error::Timeout(_))
    }
}

/// Whether `error` means the connection broke with the operation in flight, so it may or
/// may not have happened. The client fails in-flight operations with the error that broke
/// the connection: `ConnectionLoss` at end of stream, a custom error carrying the IO error
/// (`Connection reset by peer`) or a read timeout otherwise.
pub(crate) fn connection_lost(error: &ZkError) -> bool {
    matches!(error, ZkError::ConnectionLoss | ZkError::Custom(_))
}

impl Error {}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
