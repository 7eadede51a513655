//! One backoff shared by all slots while the API is unreachable, so an outage costs a
//! few tries per second for the whole executor, never a hot loop on the head entry.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

/// Exponential backoff with jitter, shared by the slots of one executor.
#[derive(Debug)]
pub(crate) struct Backoff {
    state: Mutex<State>,
    min: Duration,
    max: Duration,
}

#[derive(Debug)]
struct State {
    delay: Duration,
    until: Option<Instant>,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            state: Mutex::new(State {
                delay: Duration::ZERO,
                until: None,
                failures: 0,
            }),
            min,
            max,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        drover_core::lock(&self.state)
    }

    /// Waits until tries are allowed again.
    pub(crate) async fn ready(&self) {
        let until = self.state().until;
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }

    /// A try failed because the API is unreachable: back off further.
    pub(crate) fn failed(&self, what: &str, error: &(dyn std::fmt::Display + Sync)) {
        let mut state = self.state();
        state.failures += 1;
        state.delay = (state.delay * 2).clamp(self.min, self.max);
        // full jitter on the upper half, so slots and executors do not retry in step
        let jittered = state.delay.mul_f64(0.5 + fastrand::f64() * 0.5);
        let until = Instant::now() + jittered;
        if state.until.is_none_or(|u| u < until) {
            state.until = Some(until);
        }
        warn!(%error, retry_in = ?jittered, failures = state.failures, "{what}: the API is unreachable; backing off");
    }

    /// A try succeeded: back to full speed.
    pub(crate) fn succeeded(&self) {
        let mut state = self.state();
        if state.failures > 0 {
            info!(failures = state.failures, "the API is reachable again");
        }
        *state = State {
            delay: Duration::ZERO,
            until: None,
            failures: 0,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn grows_to_the_cap_and_resets() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        for _ in 0..10 {
            backoff.failed("test", &"down");
        }
        let start = Instant::now();
        backoff.ready().await;
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(1) && waited <= Duration::from_secs(2),
            "{waited:?}"
        );
        backoff.succeeded();
        let start = Instant::now();
        backoff.ready().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
