//! One ZooKeeper session: connection, identity, ACLs and a health signal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, info, warn};
use zookeeper_client::{Acl, Acls, Client, CreateMode, CreateOptions, Permission, SessionState};

use crate::error::{Error, LostReason, Result, ZkError};
use crate::settings::ZkSettings;

/// Full rights for anyone: used when ACLs are off.
static OPEN_ACL: [Acl; 1] = [Acl::new_const(Permission::ALL, "world", "anyone")];
/// Full rights for the authenticated identity (the `auth` scheme means "whoever creates
/// it"), read for everyone else.
static SECURE_ACL: [Acl; 2] = [
    Acl::new_const(Permission::ALL, "auth", ""),
    Acl::new_const(Permission::READ, "world", "anyone"),
];

/// What the session looks like from this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Connected to a server; ephemeral nodes and watches are live.
    Connected,
    /// Disconnected since the given instant; the session may still be alive on the server.
    Suspended {
        /// When the client noticed the disconnection.
        since: Instant,
    },
    /// The session is over; every ephemeral node it owned is gone.
    Lost(LostReason),
}

/// A ZooKeeper session shared by a process's queue, election and membership.
///
/// Cloning is cheap and shares the session. The session closes when the last clone and
/// every recipe built on it are dropped.
#[derive(Clone, Debug)]
pub struct Session {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    secure: bool,
    health: watch::Receiver<Health>,
    shutdown: CancellationToken,
    _stop_tasks: DropGuard,
}

impl Session {
    /// Connects with `settings`, creating the chroot if it is missing.
    ///
    /// # Errors
    /// [`Error::InvalidSettings`] for bad settings, [`Error::Connect`] when no server
    /// answers within about the session timeout.
    pub async fn connect(settings: &ZkSettings) -> Result<Session> {
        settings.validate()?;
        let connect = |hosts: String| {
            let mut connector = Client::connector().with_session_timeout(settings.session_timeout);
            if let Some(auth) = &settings.auth {
                connector = connector.with_auth("digest", auth.as_bytes());
            }
            async move {
                connector
                    .connect(&hosts)
                    .await
                    .map_err(|source| Error::Connect { hosts, source })
            }
        };
        let mut client = connect(settings.hosts.clone()).await?;
        if let Some(chroot) = settings.chroot.as_deref() {
            let options = CreateMode::Persistent.with_acls(acls(settings.acl));
            match client.mkdir(chroot, &options).await {
                Ok(()) => {}
                Err(ZkError::NoAuth) => {} // someone else's node; chrooting below still works if readable
                Err(source) => return Err(Error::zk("mkdir", chroot, source)),
            }
            client = client.chroot(chroot.to_owned()).map_err(|_| {
                Error::InvalidSettings(format!("zookeeper.chroot {chroot:?} is not a valid path"))
            })?;
        }
        info!(
            hosts = %settings.hosts,
            session = %client.session_id(),
            timeout_ms = client.session_timeout().as_millis() as u64,
            acl = settings.acl,
            "zookeeper session established"
        );
        let (tx, rx) = watch::channel(Health::Connected);
        let shutdown = CancellationToken::new();
        tokio::spawn(monitor(client.state_watcher(), tx, shutdown.clone()));
        Ok(Session {
            inner: Arc::new(Inner {
                client,
                secure: settings.acl,
                health: rx,
                _stop_tasks: shutdown.clone().drop_guard(),
                shutdown,
            }),
        })
    }

    /// The underlying client, for operations the recipes do not cover.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The session timeout the server granted.
    pub fn timeout(&self) -> Duration {
        self.inner.client.session_timeout()
    }

    /// The session id, as ZooKeeper prints it.
    pub fn id(&self) -> String {
        self.inner.client.session_id().to_string()
    }

    /// The current health of the session.
    pub fn health(&self) -> Health {
        *self.inner.health.borrow()
    }

    /// A receiver that sees every health change.
    pub fn health_watch(&self) -> watch::Receiver<Health> {
        self.inner.health.clone()
    }

    /// Cancelled when the session's last handle is dropped: background tasks stop on it.
    pub(crate) fn shutdown(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Create options with drover's ACLs for nodes of `mode`.
    pub(crate) fn create_options(&self, mode: CreateMode) -> CreateOptions<'static> {
        mode.with_acls(acls(self.inner.secure))
    }

    /// Creates `path` and its missing parents as persistent nodes (`mkdir -p`).
    ///
    /// # Errors
    /// [`Error::NotAuthorized`] when the ACL of an existing parent forbids it; [`Error::Zk`]
    /// otherwise.
    pub async fn ensure_path(&self, path: &str) -> Result<()> {
        if self
            .client()
            .check_stat(path)
            .await
            .map_err(|e| Error::zk("exists", path, e))?
            .is_some()
        {
            return Ok(());
        }
        let options = self.create_options(CreateMode::Persistent);
        self.client()
            .mkdir(path, &options)
            .await
            .map_err(|e| Error::zk("mkdir", path, e))
    }

    /// Waits until the session is connected (or fails if it is lost).
    ///
    /// # Errors
    /// [`Error::SessionLost`] if the session ends while waiting.
    pub async fn wait_connected(&self) -> Result<()> {
        let mut health = self.health_watch();
        loop {
            match *health.borrow_and_update() {
                Health::Connected => return Ok(()),
                Health::Lost(reason) => return Err(Error::SessionLost(reason)),
                Health::Suspended { .. } => {}
            }
            if health.changed().await.is_err() {
                return Err(Error::SessionLost(LostReason::SessionClosed));
            }
        }
    }
}

fn acls(secure: bool) -> Acls<'static> {
    if secure {
        Acls::new(&SECURE_ACL)
    } else {
        Acls::new(&OPEN_ACL)
    }
}

/// Translates the client's state changes into [`Health`] until the session ends.
async fn monitor(
    mut states: zookeeper_client::StateWatcher,
    tx: watch::Sender<Health>,
    shutdown: CancellationToken,
) {
    loop {
        let state = tokio::select! {
            state = states.changed() => state,
            () = shutdown.cancelled() => return,
        };
        let health = match state {
            SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                info!("zookeeper connection restored");
                Health::Connected
            }
            SessionState::Disconnected => {
                warn!("zookeeper connection lost; session may still be alive");
                Health::Suspended {
                    since: Instant::now(),
                }
            }
            SessionState::Expired => Health::Lost(LostReason::SessionExpired),
            SessionState::AuthFailed | SessionState::Closed => {
                Health::Lost(LostReason::SessionClosed)
            }
        };
        debug!(?state, "zookeeper session state");
        if let Health::Lost(reason) = health {
            warn!(%reason, "zookeeper session is gone");
            let _ = tx.send(health);
            return;
        }
        let _ = tx.send(health);
    }
}
