//! Retry delays: doubling from a first delay up to a ceiling.

use std::time::Duration;

/// Delays between retries of one thing, doubling from `first` up to `max`; back to
/// `first` once the thing works again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Reconnecting to ZooKeeper, campaigning again, retrying a leader's step: a fifth of
    /// a second first (a blip is over by then), never more than 5 s (an outage ends and
    /// we notice within seconds).
    pub const RECONNECT: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));

    /// Delays from `first`, doubling, to `max`.
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            next: first,
        }
    }

    /// How long to wait before the next try; the one after is twice as long, up to the
    /// ceiling.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// It worked: the next failure waits the first delay again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_ceiling_and_starts_over_after_a_success() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let delays: Vec<u128> = (0..4).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 350, 350]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(100));
    }
}
