//! Why a running job must stop, decided once.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Why a job stops before its action ends on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// A user canceled it (heartbeat answer).
    Cancel,
    /// An admin killed it (heartbeat answer).
    Kill,
    /// It ran past its timeout.
    Timeout(Duration),
    /// The queue entry is no longer ours (session expired, marker deleted): someone else
    /// may run it now, so write nothing more.
    Lost,
    /// The API refused our token: a newer holder exists; write nothing more.
    Fenced,
    /// The executor is draining and the deadline passed: stop and give the job back.
    Drain,
}

impl StopReason {
    /// Whether the job is no longer ours to report on.
    pub(crate) fn abandons(self) -> bool {
        matches!(self, StopReason::Lost | StopReason::Fenced)
    }
}

/// A one-shot stop signal with its first reason.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stop {
    inner: Arc<(CancellationToken, OnceLock<StopReason>)>,
}

impl Stop {
    /// Asks the job to stop; the first reason wins.
    pub(crate) fn trip(&self, reason: StopReason) {
        let _ = self.inner.1.set(reason);
        self.inner.0.cancel();
    }

    /// The reason, once tripped.
    pub(crate) fn reason(&self) -> Option<StopReason> {
        self.inner.1.get().copied()
    }

    /// Completes when tripped.
    pub(crate) async fn tripped(&self) -> StopReason {
        self.inner.0.cancelled().await;
        self.reason().unwrap_or(StopReason::Drain)
    }
}
