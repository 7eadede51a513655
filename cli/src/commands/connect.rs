//! What every client command starts with: the API client the flags describe, and the
//! job a (possibly partial) id names.

use std::time::Duration;

use drover_client::{ApiClient, Resolved};
use drover_model::Job;

use crate::args::ClientArgs;
use crate::exit::{AmbiguousId, UsageError};

/// How long a client command waits for one answer: a person waits at the terminal,
/// maybe over a slow link, so longer than the executors' default (10 s).
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// The API client the flags describe.
pub(super) fn client(args: &ClientArgs) -> anyhow::Result<ApiClient> {
    let builder = ApiClient::builder(&args.url).timeout(CLI_TIMEOUT);
    let builder = match &args.token {
        Some(token) => builder.token(token.clone()),
        None => builder,
    };
    Ok(builder.build()?)
}

/// The job a (possibly partial) id names.
///
/// # Errors
///
/// [`UsageError`] for text that cannot be part of an id, [`AmbiguousId`] when several
/// jobs match, the API's 404 when none does.
pub(super) async fn resolve(client: &ApiClient, id: &str) -> anyhow::Result<Job> {
    let fragment = id_fragment(id)?;
    // The API's 404 message names the fragment and says what to do: no context needed.
    match client.resolve(&fragment).await? {
        Resolved::Job(job) => Ok(job),
        Resolved::Ambiguous(candidates) => Err(AmbiguousId {
            fragment,
            candidates,
        }
        .into()),
    }
}

/// `id` lowercased, if it can be part of a job id (hex digits and hyphens).
fn id_fragment(id: &str) -> Result<String, UsageError> {
    let fragment = id.trim().to_ascii_lowercase();
    if fragment.is_empty() {
        return Err(UsageError(
            "the job id is empty: give a job id or a unique part of one".into(),
        ));
    }
    if !fragment.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(UsageError(format!(
            "{id:?} is not a job id: ids are hexadecimal UUIDs like 67e55044-10b1-...; see `drover ls`"
        )));
    }
    Ok(fragment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_are_hex_and_hyphens() {
        assert_eq!(id_fragment(" 67E5-50 ").unwrap(), "67e5-50");
        for bad in ["", "  ", "xyz", "67e5/..", "67e5 50"] {
            assert!(id_fragment(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn client_commands_wait_longer_than_executors() {
        let args = ClientArgs {
            url: "http://127.0.0.1:8080".into(),
            token: Some("s3cret-token".into()),
            output: crate::args::Output::Table,
        };
        let client = client(&args).unwrap();
        assert_eq!(client.timeout(), CLI_TIMEOUT);
        assert!(CLI_TIMEOUT > drover_client::DEFAULT_TIMEOUT);
    }
}
