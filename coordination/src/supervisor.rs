//! Keeps a role attached to ZooKeeper: connect, build what the role uses on the session,
//! run it while the session lives, and start over when the session is lost, until
//! shutdown. The API, executors and distributors all attach through [`supervise`].

use std::future::Future;

use drover_core::Backoff;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::Result;
use crate::session::{Health, Session};
use crate::settings::ZkSettings;

/// What a role does with each session.
pub trait Role: Send {
    /// What the role builds on a session (a queue, a registration...).
    type Parts: Send;

    /// The role's name in logs.
    fn name(&self) -> &'static str;

    /// Builds the role's parts on a new session. An error drops the session and the
    /// supervisor tries again after a back-off.
    fn attach(&mut self, session: &Session) -> impl Future<Output = Result<Self::Parts>> + Send;

    /// Runs while the session lives: returns once [`SessionEnd::wait`] has said why it
    /// ended and the role has let go of the session (on shutdown: deregistered,
    /// resigned...).
    fn live(
        &mut self,
        parts: Self::Parts,
        session: &Session,
        end: &SessionEnd,
    ) -> impl Future<Output = ()> + Send;
}

/// Why a session's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The session expired or closed: everything ephemeral of it is gone.
    Lost,
    /// The process is stopping.
    Shutdown,
}

/// The end of one session's run, as [`Role::live`] waits for it.
#[derive(Debug)]
pub struct SessionEnd {
    session: Session,
    shutdown: CancellationToken,
}

impl SessionEnd {
    /// Completes when the session is lost or the process stops, saying which.
    pub async fn wait(&self) -> Ended {
        let mut health = self.session.health_watch();
        loop {
            if matches!(*health.borrow_and_update(), Health::Lost(_)) {
                return Ended::Lost;
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return Ended::Shutdown,
                changed = health.changed() => if changed.is_err() { return Ended::Lost },
            }
        }
    }

    /// Whether the process is stopping.
    pub fn is_shutdown(&self) -> bool {
        self.shutdown.is_cancelled()
    }
}

/// Runs `role` on one session after another until `shutdown` is cancelled, and returns
/// once the role has let go of the last one.
///
/// Connecting and attaching retry with [`Backoff::RECONNECT`]; the first failure and
/// every 20th are logged.
///
/// # Cancellation safety
/// Cancel `shutdown` rather than dropping the future: dropping it skips the role's
/// own shutdown steps (its ephemeral nodes then go only when the session expires).
pub async fn supervise<R: Role>(settings: &ZkSettings, role: &mut R, shutdown: CancellationToken) {
    let mut backoff = Backoff::RECONNECT;
    let mut failures = 0u32;
    loop {
        let attempt = async {
            let session = Session::connect(settings).await?;
            let parts = role.attach(&session).await?;
            Ok::<_, crate::Error>((session, parts))
        };
        let attached = tokio::select! {
            () = shutdown.cancelled() => return,
            attached = attempt => attached,
        };
        match attached {
            Ok((session, parts)) => {
                info!(role = role.name(), session = %session.id(), "attached to zookeeper");
                backoff.reset();
                failures = 0;
                let end = SessionEnd {
                    session: session.clone(),
                    shutdown: shutdown.clone(),
                };
                role.live(parts, &session, &end).await;
                if shutdown.is_cancelled() {
                    return;
                }
                warn!(
                    role = role.name(),
                    "zookeeper session lost; attaching a new one"
                );
            }
            Err(e) => {
                failures += 1;
                let delay = backoff.next_delay();
                if failures == 1 || failures % 20 == 0 {
                    warn!(role = role.name(), error = %e, failures, retry_in = ?delay, "cannot attach to zookeeper; retrying");
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}
