//! What the harness's server processes share: reading the end of a log, and killing and
//! reaping a server when its handle is dropped.

use std::time::{Duration, Instant};

use tokio::process::Child;

/// The last `lines` lines of the file at `path` (empty if it cannot be read).
pub(crate) fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Waits up to `grace` for `child` to exit; whether it did.
pub(crate) fn reaped(child: &mut Child, grace: Duration) -> bool {
    let deadline = Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => return false,
            _ => return true,
        }
    }
}

/// SIGKILLs `child` and reaps it (up to 5 s), so its pid is gone when a drop returns and
/// nothing writes into a directory about to be removed.
pub(crate) fn kill_and_reap(child: &mut Child) {
    let _ = child.start_kill();
    reaped(child, Duration::from_secs(5));
}
