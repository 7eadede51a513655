//! Giving up a session's holdings in time: every entry a session holds is lost when the
//! session ends, or once it has been disconnected so long that the server may soon
//! expire it, and markers the view doubts are checked with the holder's own session.

use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::error::LostReason;
use crate::queue_view::Picture;
use crate::session::{Health, Session};

/// Checks, with the holder's own session (which sees its own writes), whether the
/// markers the view doubts still exist: those that do not are lost.
async fn check_suspects(view: &Picture, session: &Session) {
    let client = session.client();
    let owner = client.session_id().0;
    let suspects = view.lock().take_suspects(owner);
    for (name, token) in suspects {
        let path = format!("{}/{name}", view.taken);
        let ours = match client.check_stat(&path).await {
            Ok(stat) => stat.is_some_and(|s| s.czxid == token && s.ephemeral_owner == owner),
            // Unsure: the session's own health decides (a long disconnection gives up).
            Err(e) => {
                debug!(entry = %name, error = %e, "cannot check a doubted marker; keeping it");
                true
            }
        };
        if !ours {
            view.lock().marker_gone(&name, token);
        }
    }
}

/// How long after the client noticed a disconnection a session's holdings are given up,
/// as a fraction of the session timeout. The client notices after 2/5 of the timeout
/// without a reply, so holders stop at about 13/20 of the timeout after the last
/// contact: the rest (7/20: 3.5 s of the default 10 s) is for killing their work before
/// the server can expire the session and let anyone else take the entries. Shorter
/// would turn more passing disconnections into reruns.
const GIVE_UP_AFTER_NOTICED: u32 = 4;

/// Trips the lost signal of everything a session holds when the session ends, or when it
/// has been disconnected so long that the server may soon expire it. A holding given up
/// while the session survives is finished by its holder, once its work is stopped: the
/// holder's [`Taken`] deletes the marker if it is still ours.
pub(crate) async fn guard(view: Arc<Picture>, session: Session, stop: CancellationToken) {
    let owner = session.client().session_id().0;
    let mut health = session.health_watch();
    let mut suspects = view.suspects.subscribe();
    loop {
        let state = *health.borrow_and_update();
        let give_up = match state {
            Health::Connected => None,
            Health::Suspended { since } => {
                Some(Instant::from_std(since) + session.timeout() / GIVE_UP_AFTER_NOTICED)
            }
            Health::Lost(reason) => {
                view.lock().lose_owner(owner, reason);
                view.changed.notify_waiters();
                return;
            }
        };
        let give_up = async {
            match give_up {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = health.changed() => if changed.is_err() { return },
            changed = suspects.changed(), if state == Health::Connected => {
                if changed.is_err() {
                    return;
                }
                check_suspects(&view, &session).await;
            },
            () = give_up => {
                view.lock().lose_owner(owner, LostReason::Suspended);
                if health.changed().await.is_err() {
                    return;
                }
            },
            () = stop.cancelled() => return,
        }
    }
}
