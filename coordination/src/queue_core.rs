//! What every clone of a [`Queue`](crate::Queue) handle and every [`Taken`](crate::Taken)
//! entry of it share: the watched picture, the session, the taker id, the counters and
//! the background work.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio_util::sync::DropGuard;
use tokio_util::task::TaskTracker;

use crate::queue_view::{Picture, QueueView};
use crate::session::Session;

/// The state behind one queue handle and its clones.
#[derive(Debug)]
pub(crate) struct QueueCore {
    pub(crate) view: Arc<Picture>,
    pub(crate) _watch: QueueView,
    pub(crate) session: Session,
    pub(crate) taker_id: String,
    pub(crate) stats: Counters,
    /// Lock attempts and releases of dropped entries, which run to completion on their
    /// own; `Queue::settle` waits for them.
    pub(crate) background: TaskTracker,
    pub(crate) _stop_guard: DropGuard,
}

/// Counters of what takers did, for metrics and benchmarks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) taken: AtomicU64,
    pub(crate) collisions: AtomicU64,
    pub(crate) vanished: AtomicU64,
}
