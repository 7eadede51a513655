//! [`ApiClientBuilder`]: the URL, token and timeouts of a client, checked once.

use std::fmt;
use std::time::Duration;

use reqwest::Url;

use crate::{ApiClient, ClientError};

/// Settings for an [`ApiClient`], from [`ApiClient::builder`].
#[derive(Clone)]
pub struct ApiClientBuilder {
    pub(super) url: String,
    pub(super) token: Option<String>,
    pub(super) timeout: Duration,
    pub(super) connect_timeout: Duration,
}

impl fmt::Debug for ApiClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClientBuilder")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl ApiClientBuilder {
    /// Sends `Authorization: Bearer <token>` with every request.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Bounds each call (not [`ApiClient::follow_logs`]); default [`DEFAULT_TIMEOUT`](super::DEFAULT_TIMEOUT).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Bounds connecting; default [`DEFAULT_CONNECT_TIMEOUT`](super::DEFAULT_CONNECT_TIMEOUT).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Checks the URL and builds the client.
    ///
    /// The URL is `http://host:port` (or `https://` behind a TLS-terminating proxy), with
    /// an optional path prefix under which the API is mounted.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidUrl`] when the URL is not an http(s) URL or the HTTP stack
    /// cannot be set up.
    pub fn build(self) -> Result<ApiClient, ClientError> {
        let invalid = |reason: String| ClientError::InvalidUrl {
            url: self.url.clone(),
            reason,
        };
        let base = Url::parse(self.url.trim()).map_err(|err| invalid(err.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(invalid("it is not an http:// or https:// URL".to_owned()));
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err(invalid("it names no host".to_owned()));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("it has a query or fragment".to_owned()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .tcp_keepalive(Duration::from_secs(30))
            .user_agent(concat!("drover/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| invalid(format!("cannot set up the HTTP client: {err}")))?;
        Ok(ApiClient {
            http,
            base,
            token: self.token.filter(|token| !token.is_empty()),
            timeout: self.timeout,
        })
    }
}

impl ApiClient {
    /// The bearer token this client sends, for a process that must keep it out of what
    /// it logs and reports (an executor redacts it from job logs).
    pub fn bearer(&self) -> Option<&str> {
        self.token.as_deref()
    }
}
