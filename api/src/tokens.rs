//! The configured bearer tokens, and who presents one.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{ApiToken, Role};
use crate::error::Error;

/// Who is calling.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) name: Arc<str>,
    pub(crate) role: Role,
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
