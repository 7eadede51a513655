//! A one-shot signal that something held (a queue entry, a leadership) was lost.

use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

use crate::error::LostReason;

/// Tripped once, with a reason, when a holder must stop acting on what it held.
///
/// Cloning shares the signal. Work that must stop when it trips can `select!` on
/// [`LostSignal::tripped`] or take a child [`CancellationToken`] from [`LostSignal::token`].
#[derive(Clone, Debug, Default)]
pub struct LostSignal {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    token: CancellationToken,
    reason: OnceLock<LostReason>,
}

impl LostSignal {
    pub(crate) fn new() -> LostSignal {
        LostSignal::default()
    }

    /// Trips the signal; the first reason wins. Returns whether this call tripped it.
    pub(crate) fn trip(&self, reason: LostReason) -> bool {
        let first = self.inner.reason.set(reason).is_ok();
        self.inner.token.cancel();
        first
    }

    /// Whether it has tripped.
    pub fn is_lost(&self) -> bool {
        self.inner.token.is_cancelled()
    }

    /// Why it tripped, once it has.
    pub fn reason(&self) -> Option<LostReason> {
        self.inner.reason.get().copied()
    }

    /// Completes when the signal trips, with the reason.
    ///
    /// # Cancellation safety
    /// Cancellation safe: dropping the future loses nothing.
    pub async fn tripped(&self) -> LostReason {
        self.inner.token.cancelled().await;
        self.reason().unwrap_or(LostReason::SessionClosed)
    }

    /// A token cancelled when the signal trips (a child: cancelling it does not trip this).
    pub fn token(&self) -> CancellationToken {
        self.inner.token.child_token()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_reason_wins_and_waiters_wake() {
        let signal = LostSignal::new();
        let waiter = tokio::spawn({
            let signal = signal.clone();
            async move { signal.tripped().await }
        });
        assert!(!signal.is_lost());
        assert!(signal.trip(LostReason::NodeDeleted));
        assert!(!signal.trip(LostReason::SessionExpired));
        assert_eq!(waiter.await.unwrap(), LostReason::NodeDeleted);
        assert_eq!(signal.reason(), Some(LostReason::NodeDeleted));
        assert!(signal.token().is_cancelled());
    }
}
