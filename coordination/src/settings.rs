//! Connection settings shared by every role that talks to ZooKeeper.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How to reach ZooKeeper and which identity and ACLs drover's nodes get.
///
/// In a config file this is the `[zookeeper]` table; with the environment,
/// `DROVER_ZOOKEEPER__HOSTS`, `DROVER_ZOOKEEPER__SESSION_TIMEOUT`, ...
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZkSettings {
    /// Comma-separated `host:port` list of the ensemble, e.g. `zk1:2181,zk2:2181,zk3:2181`.
    pub hosts: String,
    /// Optional root under which drover keeps all its nodes, e.g. `/drover` (created if missing).
    pub chroot: Option<String>,
    /// Session timeout asked of the server (it clamps it to 2–20 ticks). Also bounds how
    /// long a dead process holds a queue entry or a leadership.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// Digest credentials `user:password`; every drover process should use the same.
    pub auth: Option<String>,
    /// Protect every node drover creates: full rights for the authenticated identity,
    /// read-only for everyone else. Needs `auth`.
    pub acl: bool,
}

impl Default for ZkSettings {
    fn default() -> Self {
        ZkSettings {
            hosts: "127.0.0.1:2181".to_owned(),
            chroot: None,
            session_timeout: Duration::from_secs(10),
            auth: None,
            acl: false,
        }
    }
}

impl std::fmt::Debug for ZkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkSettings")
            .field("hosts", &self.hosts)
            .field("chroot", &self.chroot)
            .field("session_timeout", &self.session_timeout)
            .field("auth", &self.auth.as_ref().map(|a| redact(a)))
            .field("acl", &self.acl)
            .finish()
    }
}

fn redact(auth: &str) -> String {
    match auth.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_owned(),
    }
}

impl ZkSettings {
    /// Settings for the given connect string, everything else default.
    pub fn new(hosts: impl Into<String>) -> ZkSettings {
        ZkSettings {
            hosts: hosts.into(),
            ..ZkSettings::default()
        }
    }

    /// Builder-style session timeout.
    pub fn with_session_timeout(mut self, timeout: Duration) -> ZkSettings {
        self.session_timeout = timeout;
        self
    }

    /// Builder-style digest credentials (`user:password`) with ACLs on or off.
    pub fn with_auth(mut self, user_password: impl Into<String>, acl: bool) -> ZkSettings {
        self.auth = Some(user_password.into());
        self.acl = acl;
        self
    }

    /// Builder-style chroot.
    pub fn with_chroot(mut self, chroot: impl Into<String>) -> ZkSettings {
        self.chroot = Some(chroot.into());
        self
    }

    /// Checks the settings once, at start-up.
    ///
    /// # Errors
    /// [`Error::InvalidSettings`] naming the field and how to fix it.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidSettings(msg));
        if self.hosts.trim().is_empty() {
            return bad("zookeeper.hosts is empty: give host:port[,host:port...]".into());
        }
        for host in self.hosts.split(',') {
            let host = host.trim();
            let port = host.rsplit_once(':').map(|(_, p)| p);
            if host.is_empty()
                || host.contains('/')
                || port.is_some_and(|p| p.parse::<u16>().is_err())
            {
                return bad(format!(
                    "zookeeper.hosts entry {host:?} is not host[:port]; put a chroot in zookeeper.chroot, not in hosts"
                ));
            }
        }
        if let Some(chroot) = &self.chroot {
            if !chroot.starts_with('/') || chroot.ends_with('/') || chroot.contains("//") {
                return bad(format!(
                    "zookeeper.chroot {chroot:?} must be an absolute path like /drover"
                ));
            }
        }
        if self.session_timeout < Duration::from_millis(100)
            || self.session_timeout > Duration::from_secs(600)
        {
            return bad(format!(
                "zookeeper.session_timeout {:?} is out of range: use between 100ms and 10m (10s is a good default)",
                self.session_timeout
            ));
        }
        if let Some(auth) = &self.auth {
            match auth.split_once(':') {
                Some((user, pass)) if !user.is_empty() && !pass.is_empty() => {}
                _ => return bad("zookeeper.auth must be user:password".into()),
            }
        }
        if self.acl && self.auth.is_none() {
            return bad("zookeeper.acl = true needs zookeeper.auth (user:password): the ACL grants rights to that identity".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        ZkSettings::default().validate().unwrap();
    }

    #[test]
    fn rejects_bad_fields_naming_them() {
        let cases = [
            (ZkSettings::new(""), "zookeeper.hosts"),
            (ZkSettings::new("a:2181/chroot"), "zookeeper.chroot"),
            (ZkSettings::new("a:notaport"), "zookeeper.hosts"),
            (
                ZkSettings::new("a:1").with_chroot("drover"),
                "zookeeper.chroot",
            ),
            (
                ZkSettings::new("a:1").with_session_timeout(Duration::ZERO),
                "zookeeper.session_timeout",
            ),
            (
                ZkSettings {
                    acl: true,
                    ..ZkSettings::new("a:1")
                },
                "zookeeper.auth",
            ),
            (
                ZkSettings::new("a:1").with_auth("nopassword", false),
                "zookeeper.auth",
            ),
        ];
        for (settings, field) in cases {
            let err = settings.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{err:?} should name {field}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let s = format!(
            "{:?}",
            ZkSettings::new("a:1").with_auth("drover:s3cret", true)
        );
        assert!(s.contains("drover:***") && !s.contains("s3cret"), "{s}");
    }
}
