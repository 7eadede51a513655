//! SIGTERM and SIGINT for the roles: the first asks for a clean stop, the second for a
//! quick one.

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// SIGTERM and SIGINT, listened to together.
pub(crate) struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    /// Starts listening; `None` (after a warning naming `role`) when the process cannot.
    pub(crate) fn listen(role: &str) -> Option<Signals> {
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(terminate), Ok(interrupt)) => Some(Signals {
                terminate,
                interrupt,
            }),
            _ => {
                warn!("cannot listen for SIGTERM and SIGINT: stop the {role} with SIGKILL");
                None
            }
        }
    }

    /// The next signal's name.
    pub(crate) async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// Cancels `shutdown` on the first signal, logging `stopping`; exits the process with
/// `exit_code` on the second.
pub(crate) async fn stop_on_signal(
    shutdown: CancellationToken,
    role: &'static str,
    stopping: &'static str,
    exit_code: i32,
) {
    let Some(mut signals) = Signals::listen(role) else {
        return;
    };
    let name = signals.next().await;
    info!(signal = name, "{stopping}");
    shutdown.cancel();
    let name = signals.next().await;
    warn!(signal = name, "second signal: exiting now");
    std::process::exit(exit_code);
}
