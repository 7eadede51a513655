//! A try-lock: one ephemeral node that at most one session holds at a time.

use tokio::runtime::Handle;
use tracing::debug;
use zookeeper_client::CreateMode;

use crate::error::{Error, Result, ZkError};
use crate::session::Session;

/// A held lock; dropping it deletes its node (in the background). If the process dies,
/// the node goes with its session.
#[derive(Debug)]
pub struct Lock {
    session: Session,
    path: String,
}

impl Lock {
    /// Takes the lock at `path` unless another session holds it: then `Ok(Err(holder))`
    /// with the holder's session id. A node of our own session (a release that failed)
    /// counts as ours.
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn try_acquire(
        session: &Session,
        path: &str,
    ) -> Result<std::result::Result<Lock, String>> {
        if let Some((parent, _)) = path.rsplit_once('/').filter(|(p, _)| !p.is_empty()) {
            session.ensure_path(parent).await?;
        }
        let client = session.client();
        let options = session.create_options(CreateMode::Ephemeral);
        let held = || Lock {
            session: session.clone(),
            path: path.to_owned(),
        };
        match client.create(path, session.id().as_bytes(), &options).await {
            Ok(_) => Ok(Ok(held())),
            Err(ZkError::NodeExists) => match client.get_data(path).await {
                Ok((_, stat)) if stat.ephemeral_owner == client.session_id().0 => Ok(Ok(held())),
                Ok((data, _)) => Ok(Err(String::from_utf8_lossy(&data).into_owned())),
                Err(ZkError::NoNode) => Ok(Err("a session that just let go".to_owned())),
                Err(e) => Err(Error::zk("get", path, e)),
            },
            Err(e) => Err(Error::zk("create", path, e)),
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let (session, path) = (self.session.clone(), std::mem::take(&mut self.path));
        if let Ok(runtime) = Handle::try_current() {
            runtime.spawn(async move {
                match session.client().delete(&path, None).await {
                    Ok(()) | Err(ZkError::NoNode) => {}
                    Err(e) => {
                        debug!(%path, error = %e, "cannot release a lock; it goes with the session")
                    }
                }
            });
        }
    }
}
