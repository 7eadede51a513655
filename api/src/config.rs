//! The API's configuration: the `[api]` table, or `DROVER_API__*` variables.

use std::collections::HashSet;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::startup::{StartError, StartResult};

/// What one role may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including kill.
    Admin,
    /// User endpoints: submit, cancel, retry and every read; not the built-in
    /// maintenance actions (`cleanup_jobs`).
    Submitter,
    /// Executor endpoints (claim, heartbeat, logs, finish, release), `cleanup_jobs`'s
    /// `POST /v1/admin/cleanup`, and every read.
    Executor,
    /// Distributors: submit (the jobs their schedules generate, `cleanup_jobs` included),
    /// the reconciler's `POST /v1/admin/reconcile`, and every read.
    Distributor,
}

impl Role {
    /// The lowercase name, as in configuration.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Submitter => "submitter",
            Role::Executor => "executor",
            Role::Distributor => "distributor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One bearer token: `[[api.tokens]]` with `name`, `token` and `role`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// Who holds it, for logs and messages (`ci`, `executor-pool`, `alice`).
    pub name: String,
    /// The secret sent as `Authorization: Bearer <token>`.
    pub token: String,
    /// What it may do.
    pub role: Role,
    /// The most sensitive outputs it may read; default `highly_sensitive` for admins
    /// and executors, `moderately_sensitive` for others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<crate::levels::ReadLevel>,
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("token", &"***")
            .field("role", &self.role)
            .field("level", &self.level)
            .finish()
    }
}

/// The `api` role's settings, with defaults for a single machine.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to listen on (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// `sqlite://FILE?mode=rwc` (default `sqlite://drover.db?mode=rwc`) or
    /// `postgres://user:password@host/database`.
    pub database_url: String,
    /// Connections to PostgreSQL, or SQLite readers (SQLite has one writer); default 8.
    pub database_max_connections: u32,
    /// Bearer tokens. With none, the API only starts on a loopback address and lets
    /// every caller act as admin.
    pub tokens: Vec<ApiToken>,
    /// Largest `params` object of a job, in bytes of JSON (default 64 KiB).
    pub max_params_bytes: usize,
    /// Largest request body, in bytes (default 2 MiB).
    pub max_body_bytes: usize,
    /// Log bytes kept per job; later lines are dropped behind one marker (default 1 MiB).
    pub log_cap_bytes: usize,
    /// `max_attempts` of a job that does not say (default 3).
    pub default_max_attempts: u32,
    /// Timeout of a job that does not say (default `1h`).
    #[serde(with = "drover_core::duration")]
    pub default_timeout: Duration,
    /// How long a submit waits for ZooKeeper before it answers with `enqueued = false`
    /// (default `2s`).
    #[serde(with = "drover_core::duration")]
    pub enqueue_timeout: Duration,
    /// The ZooKeeper queue jobs are put on (default `/job`).
    pub queue_path: String,
    /// How long a client may take to send a request's line and headers; a connection
    /// still without them is closed without an answer. Also how long a kept-alive
    /// connection may sit idle between requests (default `10s`).
    #[serde(with = "drover_core::duration")]
    pub header_timeout: Duration,
    /// How long a client may take to send a request's whole body once its headers
    /// arrived; then the answer is 408 and the connection closes (default `30s`).
    #[serde(with = "drover_core::duration")]
    pub body_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog (not
    /// accepted, holding no descriptor) until one closes (default 10000).
    pub max_connections: usize,
    /// Where outputs are kept (#15).
    pub artifacts: crate::artifacts::ArtifactsConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            database_url: "sqlite://drover.db?mode=rwc".to_owned(),
            database_max_connections: 8,
            tokens: Vec::new(),
            max_params_bytes: 64 * 1024,
            max_body_bytes: 2 * 1024 * 1024,
            log_cap_bytes: 1024 * 1024,
            default_max_attempts: 3,
            default_timeout: Duration::from_secs(3600),
            enqueue_timeout: Duration::from_secs(2),
            queue_path: drover_coordination::DEFAULT_QUEUE_PATH.to_owned(),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            artifacts: crate::artifacts::ArtifactsConfig::default(),
        }
    }
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("database_max_connections", &self.database_max_connections)
            .field("tokens", &self.tokens)
            .field("max_params_bytes", &self.max_params_bytes)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("log_cap_bytes", &self.log_cap_bytes)
            .field("default_max_attempts", &self.default_max_attempts)
            .field("default_timeout", &self.default_timeout)
            .field("enqueue_timeout", &self.enqueue_timeout)
            .field("queue_path", &self.queue_path)
            .field("header_timeout", &self.header_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("max_connections", &self.max_connections)
            .field("artifacts", &self.artifacts)
            .finish()
    }
}

/// Which database a URL selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// The start-up error for key `api.<key>`.
fn bad(key: &str, reason: String) -> StartResult<()> {
    Err(StartError::InvalidConfig {
        key: format!("api.{key}"),
        reason,
    })
}

impl ApiConfig {
    /// The database the URL selects.
    pub(crate) fn backend(&self) -> Option<Backend> {
        let url = self.database_url.trim();
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    /// Whether no tokens are configured, so every caller acts as admin.
    pub fn auth_disabled(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Checks every field once, at start-up.
    ///
    /// # Errors
    /// [`StartError::InvalidConfig`] naming the first bad key and how to fix it.
    pub fn validate(&self) -> StartResult<()> {
        self.validate_database()?;
        self.validate_tokens()?;
        self.validate_sizes()?;
        self.validate_job_defaults()?;
        self.validate_queue()?;
        self.validate_connections()
    }

    /// A database URL drover supports, a sane pool size.
    fn validate_database(&self) -> StartResult<()> {
        match self.backend() {
            None => {
                return bad(
                    "database_url",
                    format!(
                        "{:?} names no supported database: use sqlite://drover.db?mode=rwc or postgres://user:password@host/database",
                        redact_url(&self.database_url)
                    ),
                )
            }
            Some(Backend::Sqlite) if self.database_url.contains(":memory:") || self.database_url.contains("mode=memory") => {
                return bad(
                    "database_url",
                    "an in-memory SQLite database is not supported (the API opens a writer and several readers): name a file, e.g. sqlite://drover.db?mode=rwc".into(),
                )
            }
            Some(_) => {}
        }
        if !(1..=1000).contains(&self.database_max_connections) {
            return bad(
                "database_max_connections",
                format!(
                    "{} is out of range: use 1 to 1000",
                    self.database_max_connections
                ),
            );
        }
        Ok(())
    }

    /// Body, parameters and log caps.
    fn validate_sizes(&self) -> StartResult<()> {
        if !(1024..=256 * 1024 * 1024).contains(&self.max_body_bytes) {
            return bad(
                "max_body_bytes",
                format!(
                    "{} is out of range: use 1024 (1 KiB) to 268435456 (256 MiB)",
                    self.max_body_bytes
                ),
            );
        }
        if self.max_params_bytes < 2 || self.max_params_bytes > self.max_body_bytes {
            return bad(
                "max_params_bytes",
                format!(
                    "{} is out of range: use 2 to api.max_body_bytes ({})",
                    self.max_params_bytes, self.max_body_bytes
                ),
            );
        }
        if self.log_cap_bytes < 1024 {
            return bad(
                "log_cap_bytes",
                format!("{} is too small: use at least 1024", self.log_cap_bytes),
            );
        }
        Ok(())
    }

    /// The defaults a submit without them gets.
    fn validate_job_defaults(&self) -> StartResult<()> {
        if !(1..=1000).contains(&self.default_max_attempts) {
            return bad(
                "default_max_attempts",
                format!(
                    "{} is out of range: use 1 to 1000",
                    self.default_max_attempts
                ),
            );
        }
        if self.default_timeout < Duration::from_secs(1) || self.default_timeout > MAX_TIMEOUT {
            return bad(
                "default_timeout",
                format!(
                    "{:?} is out of range: use 1s to 30days",
                    self.default_timeout
                ),
            );
        }
        Ok(())
    }

    /// The enqueue deadline and the queue's path.
    fn validate_queue(&self) -> StartResult<()> {
        if self.enqueue_timeout < Duration::from_millis(10)
            || self.enqueue_timeout > Duration::from_secs(60)
        {
            return bad(
                "enqueue_timeout",
                format!(
                    "{:?} is out of range: use 10ms to 60s",
                    self.enqueue_timeout
                ),
            );
        }
        let path = &self.queue_path;
        if !path.starts_with('/') || path.len() < 2 || path.ends_with('/') || path.contains("//") {
            return bad(
                "queue_path",
                format!("{path:?} is not an absolute ZooKeeper path: use one like /job"),
            );
        }
        Ok(())
    }

    /// The slow-client limits: each timeout within its range, a positive connection cap.
    fn validate_connections(&self) -> StartResult<()> {
        let timeouts = [
            ("header_timeout", self.header_timeout, MAX_HEADER_TIMEOUT),
            ("body_timeout", self.body_timeout, MAX_BODY_TIMEOUT),
        ];
        for (key, value, max) in timeouts {
            if value < MIN_CLIENT_TIMEOUT || value > max {
                return bad(
                    key,
                    format!(
                        "{:?} is out of range: use {:?} to {:?} (a client slower than this is cut off)",
                        value, MIN_CLIENT_TIMEOUT, max
                    ),
                );
            }
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            return bad(
                "max_connections",
                format!(
                    "{} is out of range: use 1 to {MAX_CONNECTIONS} (and keep it below the process's open-file limit, `ulimit -n`)",
                    self.max_connections
                ),
            );
        }
        Ok(())
    }

    fn validate_tokens(&self) -> StartResult<()> {
        let bad = |key: String, reason: String| {
            Err(StartError::InvalidConfig {
                key: format!("api.{key}"),
                reason,
            })
        };
        if self.tokens.is_empty() && !self.listen.ip().is_loopback() {
            return bad(
                "tokens".into(),
                format!(
                    "no tokens while api.listen is {}, reachable from other hosts: add [[api.tokens]] entries (name, token, role), or listen on 127.0.0.1",
                    self.listen
                ),
            );
        }
        let mut names = HashSet::new();
        let mut secrets = HashSet::new();
        for (i, token) in self.tokens.iter().enumerate() {
            if token.name.trim().is_empty() {
                return bad(
                    format!("tokens[{i}].name"),
                    "is empty: name who holds the token".into(),
                );
            }
            if token.token.len() < 8
                || token
                    .token
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control())
            {
                return bad(
                    format!("tokens[{i}].token"),
                    "must be at least 8 characters without spaces: generate one, e.g. `openssl rand -hex 24`".into(),
                );
            }
            if !names.insert(token.name.as_str()) {
                return bad(
                    format!("tokens[{i}].name"),
                    format!(
                        "{:?} is used twice: give each token its own name",
                        token.name
                    ),
                );
            }
            if !secrets.insert(token.token.as_str()) {
                return bad(
                    format!("tokens[{i}].token"),
                    "is the same secret as another token: give each its own".into(),
                );
            }
        }
        Ok(())
    }
}

/// The longest timeout a job may have.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 3600);

/// The shortest `header_timeout` and `body_timeout`.
const MIN_CLIENT_TIMEOUT: Duration = Duration::from_millis(100);
/// The longest `header_timeout`.
const MAX_HEADER_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest `body_timeout`.
const MAX_BODY_TIMEOUT: Duration = Duration::from_secs(3600);
/// The largest `max_connections`.
const MAX_CONNECTIONS: usize = 1_000_000;

/// The URL without its password, for logs and messages.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, secret: &str, role: Role) -> ApiToken {
        ApiToken {
            name: name.into(),
            token: secret.into(),
            role,
            level: None,
        }
    }

    #[test]
    fn defaults_are_valid_and_documented() {
        let config = ApiConfig::default();
        config.validate().unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.max_params_bytes, 65536);
        assert_eq!(config.log_cap_bytes, 1 << 20);
        assert_eq!(config.backend(), Some(Backend::Sqlite));
        assert!(config.auth_disabled());
        assert_eq!(config.header_timeout, Duration::from_secs(10));
        assert_eq!(config.body_timeout, Duration::from_secs(30));
        assert_eq!(config.max_connections, 10_000);
    }

    #[test]
    fn errors_name_the_key() {
        let cases: Vec<(ApiConfig, &str)> = vec![
            (
                ApiConfig {
                    database_url: "mysql://x".into(),
                    ..Default::default()
                },
                "api.database_url",
            ),
            (
                ApiConfig {
                    database_url: "sqlite::memory:".into(),
                    ..Default::default()
                },
                "api.database_url",
            ),
            (
                ApiConfig {
                    listen: "0.0.0.0:8080".parse().unwrap(),
                    ..Default::default()
                },
                "api.tokens",
            ),
            (
                ApiConfig {
                    tokens: vec![token("a", "short", Role::Admin)],
                    ..Default::default()
                },
                "api.tokens[0].token",
            ),
            (
                ApiConfig {
                    tokens: vec![
                        token("a", "12345678", Role::Admin),
                        token("a", "87654321", Role::Executor),
                    ],
                    ..Default::default()
                },
                "api.tokens[1].name",
            ),
            (
                ApiConfig {
                    max_params_bytes: 10 << 20,
                    ..Default::default()
                },
                "api.max_params_bytes",
            ),
            (
                ApiConfig {
                    default_max_attempts: 0,
                    ..Default::default()
                },
                "api.default_max_attempts",
            ),
            (
                ApiConfig {
                    default_timeout: Duration::ZERO,
                    ..Default::default()
                },
                "api.default_timeout",
            ),
            (
                ApiConfig {
                    queue_path: "job".into(),
                    ..Default::default()
                },
                "api.queue_path",
            ),
            (
                ApiConfig {
                    header_timeout: Duration::ZERO,
                    ..Default::default()
                },
                "api.header_timeout",
            ),
            (
                ApiConfig {
                    header_timeout: Duration::from_secs(3600),
                    ..Default::default()
                },
                "api.header_timeout",
            ),
            (
                ApiConfig {
                    body_timeout: Duration::from_millis(10),
                    ..Default::default()
                },
                "api.body_timeout",
            ),
            (
                ApiConfig {
                    max_connections: 0,
                    ..Default::default()
                },
                "api.max_connections",
            ),
        ];
        for (config, key) in cases {
            let err = config.validate().unwrap_err().to_string();
            assert!(
                err.contains(&format!("`{key}`")),
                "{err:?} should name {key}"
            );
        }
    }

    #[test]
    fn deserializes_with_defaults_and_rejects_unknown_keys() {
        let config: ApiConfig = serde_json::from_str(
            r#"{"default_timeout":"10m","tokens":[{"name":"ci","token":"secret-123","role":"submitter"}]}"#,
        )
        .unwrap();
        assert_eq!(config.default_timeout, Duration::from_secs(600));
        assert_eq!(config.tokens[0].role, Role::Submitter);
        assert!(serde_json::from_str::<ApiConfig>(r#"{"listn":"1.2.3.4:1"}"#).is_err());
        assert!(!format!("{config:?}").contains("secret-123"));
    }

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
