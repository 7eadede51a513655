//! What can go wrong talking to the API, split by what the caller should do about it.

use std::time::Duration;

use reqwest::StatusCode;

use drover_model::ApiError;

/// A failed call of [`ApiClient`](super::ApiClient).
///
/// The variants say whose fault it is: the address ([`InvalidUrl`](Self::InvalidUrl)),
/// the network or a stopped server ([`Connect`](Self::Connect),
/// [`Timeout`](Self::Timeout), [`Transport`](Self::Transport)), the request
/// ([`Api`](Self::Api), with the server's explanation) or a server speaking another
/// protocol ([`Decode`](Self::Decode)). [`is_unavailable`](Self::is_unavailable) tells
/// a caller whether trying again later can help.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API's base URL cannot be used.
    #[error(
        "invalid drover API URL {url:?}: {reason}; use http://host:port (set --url or DROVER_URL)"
    )]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No connection could be made: the API is down, or the URL points elsewhere.
    #[error("cannot reach the drover API at {url} ({cause}): is the API running at {url}? set --url or DROVER_URL")]
    Connect {
        /// The API's base URL.
        url: String,
        /// The innermost cause, for people (`Connection refused (os error 111)`).
        cause: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },

    /// The API did not answer in time.
    #[error("the drover API at {url} did not answer within {timeout:?}: it may be overloaded or stuck; try again")]
    Timeout {
        /// The API's base URL.
        url: String,
        /// The deadline that passed.
        timeout: Duration,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },

    /// The connection broke after it was made (reset mid-answer, a truncated stream).
    #[error("the connection to the drover API at {url} failed ({cause}); try again")]
    Transport {
        /// The API's base URL.
        url: String,
        /// The innermost cause, for people.
        cause: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },

    /// The API answered with an error status; `body.message` says what was wrong and
    /// how to fix it, and is shown to people as it is.
    #[error("{}", body.message)]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The API's explanation. A body that is not an [`ApiError`] (a proxy's error
        /// page) is wrapped in one whose `error` is `http_<status>`.
        body: ApiError,
    },

    /// A success answer that is not what the contract promises.
    #[error("unexpected answer from the drover API at {url}: {detail}; is it a drover API of the same version?")]
    Decode {
        /// The endpoint's URL.
        url: String,
        /// What did not fit.
        detail: String,
    },
}

impl ClientError {
    /// The HTTP status of an [`Api`](Self::Api) error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The API's error body, for an [`Api`](Self::Api) error.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            Self::Api { body, .. } => Some(body),
            _ => None,
        }
    }

    /// 404: the job (or route) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }

    /// 409: an illegal transition, a stale fencing token, a terminal job; the body
    /// carries the job's current state.
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(StatusCode::CONFLICT)
    }

    /// 423: a claim for a paused action's entry; hand the entry back unclaimed.
    pub fn is_paused(&self) -> bool {
        self.status() == Some(StatusCode::LOCKED)
    }

    /// Whether the API could not be reached or could not serve the request right now
    /// (connection failure, timeout, 502/503/504): the same call may succeed later.
    ///
    /// Anything else will fail again the same way and must not be retried blindly.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } | Self::Transport { .. } => true,
            Self::Api { status, .. } => matches!(
                *status,
                StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ),
            Self::InvalidUrl { .. } | Self::Decode { .. } => false,
        }
    }

    /// Classifies a reqwest failure to send a request or read its answer.
    pub(crate) fn transport(url: &str, timeout: Duration, source: reqwest::Error) -> Self {
        let url = url.to_owned();
        let cause = innermost_cause(&source);
        if source.is_connect() {
            Self::Connect { url, cause, source }
        } else if source.is_timeout() {
            Self::Timeout {
                url,
                timeout,
                source,
            }
        } else if source.is_builder() {
            Self::InvalidUrl { url, reason: cause }
        } else {
            Self::Transport { url, cause, source }
        }
    }

    /// The error for a non-success answer whose body was `body`.
    pub(crate) fn from_answer(url: &str, status: StatusCode, body: &[u8]) -> Self {
        let body = match serde_json::from_slice::<ApiError>(body) {
            Ok(api_error) => api_error,
            Err(_) => ApiError {
                error: format!("http_{}", status.as_u16()),
                message: format!(
                    "the drover API at {url} answered {status}{}",
                    snippet(body).map_or_else(String::new, |text| format!(": {text}"))
                ),
                state: None,
                status_code: None,
            },
        };
        Self::Api { status, body }
    }
}

/// The deepest error in the chain: the one that says what actually happened.
fn innermost_cause(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// The start of a non-JSON error body, on one line, or `None` when it is empty.
fn snippet(body: &[u8]) -> Option<String> {
    const KEEP: usize = 200;
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(KEEP) {
        _ if text.is_empty() => None,
        Some((cut, _)) => Some(format!("{}...", &text[..cut])),
        None => Some(text),
    }
}

#[cfg(test)]
mod tests {
    use drover_core::State;

    use super::*;

    #[test]
    fn an_api_error_body_is_shown_as_is() {
        let body = br#"{"error":"conflict","message":"job x is SUCCESS: it cannot be canceled","state":"SUCCESS"}"#;
        let err = ClientError::from_answer("http://h:1", StatusCode::CONFLICT, body);
        assert_eq!(err.to_string(), "job x is SUCCESS: it cannot be canceled");
        assert!(err.is_conflict() && !err.is_not_found() && !err.is_unavailable());
        assert_eq!(err.api_error().unwrap().state, Some(State::Success));
    }

    #[test]
    fn a_foreign_error_body_is_wrapped_with_the_status() {
        let err = ClientError::from_answer(
            "http://h:1",
            StatusCode::BAD_GATEWAY,
            b"<html>\n  bad gateway\n</html>",
        );
        assert_eq!(err.api_error().unwrap().error, "http_502");
        assert_eq!(
            err.to_string(),
            "the drover API at http://h:1 answered 502 Bad Gateway: <html> bad gateway </html>"
        );
        assert!(err.is_unavailable());

        let err = ClientError::from_answer("http://h:1", StatusCode::NOT_FOUND, b"");
        assert_eq!(
            err.to_string(),
            "the drover API at http://h:1 answered 404 Not Found"
        );
        assert!(err.is_not_found());
    }

    #[test]
    fn long_bodies_are_cut() {
        let long = "x".repeat(1000);
        let text = snippet(long.as_bytes()).unwrap();
        assert_eq!(text.len(), 203);
        assert!(text.ends_with("..."));
    }
}
