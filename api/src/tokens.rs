//! The configured bearer tokens, and who presents one.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{ApiToken, Role};
use crate::error::Error;
use crate::levels::ReadLevel;

/// Who is calling.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) name: Arc<str>,
    pub(crate) role: Role,
    /// The most sensitive outputs it may read.
    pub(crate) level: ReadLevel,
}

/// A token's level when its configuration does not say: admins and executors (which
/// stage every input) read everything; others up to `moderately_sensitive`.
const fn default_level(role: Role) -> ReadLevel {
    match role {
        Role::Admin | Role::Executor => ReadLevel::HighlySensitive,
        Role::Submitter | Role::Distributor => ReadLevel::ModeratelySensitive,
    }
}

/// The configured tokens.
#[derive(Debug)]
pub(crate) struct Tokens {
    by_secret: HashMap<String, Caller>,
}

impl Tokens {
    pub(crate) fn new(tokens: &[ApiToken]) -> Tokens {
        let by_secret = tokens
            .iter()
            .map(|t| {
                let caller = Caller {
                    name: Arc::from(t.name.as_str()),
                    role: t.role,
                    level: t.level.unwrap_or(default_level(t.role)),
                };
                (t.token.clone(), caller)
            })
            .collect();
        Tokens { by_secret }
    }

    /// The caller presenting the `Authorization` header value `header`.
    pub(crate) fn authenticate(&self, header: Option<&str>) -> Result<Caller, Error> {
        if self.by_secret.is_empty() {
            // No tokens configured (loopback only, see ApiConfig::validate): open.
            return Ok(Caller {
                name: Arc::from("anonymous"),
                role: Role::Admin,
                level: ReadLevel::HighlySensitive,
            });
        }
        let Some(header) = header else {
            return Err(Error::Unauthenticated(
                "missing Authorization header: send `Authorization: Bearer <token>` with a token from the API's [[api.tokens]]".into(),
            ));
        };
        let secret = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                Error::Unauthenticated(
                    "the Authorization header is not a bearer token: send `Authorization: Bearer <token>`".into(),
                )
            })?;
        self.by_secret.get(secret).cloned().ok_or_else(|| {
            Error::Unauthenticated(
                "unknown token: check the token against the API's [[api.tokens]] configuration"
                    .into(),
            )
        })
    }
}
