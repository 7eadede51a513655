//! Polling waits and deadlines, so tests never sleep and hope.

use std::future::Future;
use std::time::Duration;

use anyhow::bail;
use tokio::time::Instant;

/// How often predicates are polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls the async predicate `f` every 20 ms until it returns `true`; returns the time it took.
///
/// A single call of `f` that hangs is cut off at the deadline too. Time is tokio's, so
/// the wait also works under `tokio::time::pause()`.
///
/// # Errors
/// `timed out after {timeout:?} waiting for {what}` when `f` is still `false` at the deadline.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if let Ok(true) = tokio::time::timeout(remaining, f()).await {
            return Ok(started.elapsed());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline.saturating_duration_since(Instant::now())))
            .await;
    }
}

/// [`wait_until`] with a plain synchronous predicate, for state that is read without IO.
///
/// # Errors
/// `timed out after {timeout:?} waiting for {what}` when `f` is still `false` at the deadline.
pub async fn wait_until_sync<F>(what: &str, timeout: Duration, mut f: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> bool,
{
    wait_until(what, timeout, || std::future::ready(f())).await
}

/// Runs `fut` to completion unless it takes longer than `timeout`.
///
/// Wrap anything that could hang (a lock, a queue take, a shutdown) so a deadlock fails
/// the test with a message instead of stalling the suite.
///
/// # Errors
/// Names `what` and says it probably deadlocked when the deadline passes.
///
/// # Cancellation safety
/// On timeout `fut` is dropped, like any cancelled future.
pub async fn within<T>(
    what: &str,
    timeout: Duration,
    fut: impl Future<Output = T>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(value) => Ok(value),
        Err(_) => bail!(
            "{what} did not complete within {timeout:?}: it probably deadlocked or waits for an event that never comes"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wait_until_returns_once_true() {
        let calls = AtomicUsize::new(0);
        let elapsed = wait_until("third call", Duration::from_secs(1), || async {
            calls.fetch_add(1, Ordering::SeqCst) >= 2
        })
        .await
        .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(elapsed < Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn wait_until_times_out_with_what() {
        let err = wait_until_sync("never", Duration::from_millis(100), || false)
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "timed out after 100ms waiting for never");
    }

    #[tokio::test(start_paused = true)]
    async fn wait_until_cuts_off_a_hanging_predicate() {
        let err = wait_until("hang", Duration::from_millis(100), std::future::pending)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("waiting for hang"));
    }

    #[tokio::test(start_paused = true)]
    async fn within_names_the_deadlock() {
        assert_eq!(
            within("ready", Duration::from_secs(1), async { 7 })
                .await
                .unwrap(),
            7
        );
        let err = within(
            "the lock",
            Duration::from_secs(1),
            std::future::pending::<()>(),
        )
        .await
        .unwrap_err();
        assert!(err
            .to_string()
            .starts_with("the lock did not complete within 1s"));
    }
}
