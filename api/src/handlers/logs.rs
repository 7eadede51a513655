//! Reading a job's log (one page, or a stream that follows it until the job ends) and
//! the history of its runs.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use drover_core::JobId;
use futures::stream::{self, Stream};
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::auth::{Authorized, Read};
use crate::error::{Error, Result};
use crate::extract::{JobIdPath, QueryParams};
use crate::state::AppState;
use crate::store::Store;
#[cfg(feature = "openapi")]
use drover_model::{ApiError, LogPage};

const DEFAULT_LIMIT: u32 = 1000;
const MAX_LIMIT: u32 = 10_000;
/// How often a follower re-reads when nothing in this process signalled a change
/// (appends through another API replica).
const FOLLOW_POLL: Duration = Duration::from_millis(500);

/// `GET /v1/jobs/{id}/attempts`
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/v1/jobs/{id}/attempts", tag = "jobs",
    params(("id" = String, Path)),
    responses((status = 200, description = "every run, first first", body = Vec<drover_model::Attempt>),
        (status = 404, body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn attempts(
    _auth: Authorized<Read>,
    State(state): State<AppState>,
    JobIdPath(id): JobIdPath,
) -> Result<Json<Vec<drover_model::Attempt>>> {
    Ok(Json(state.store.attempts(id).await?))
}

/// `GET /v1/jobs/{id}/logs` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogQuery {
    after: Option<i64>,
    limit: Option<u32>,
    follow: Option<bool>,
}

/// `GET /v1/jobs/{id}/logs?after=&limit=&follow=`
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/v1/jobs/{id}/logs", tag = "jobs",
    params(("id" = String, Path),
        ("after" = Option<i64>, Query, description = "only lines after this seq (default 0)"),
        ("limit" = Option<u32>, Query, description = "1 to 10000, default 1000 (pages only)"),
        ("follow" = Option<bool>, Query, description = "stream lines as ndjson until the job ends")),
    responses((status = 200, description = "a page, or with follow=true an application/x-ndjson stream of StoredLogLine", body = LogPage),
        (status = 404, body = ApiError)),
    security(("bearer" = []))))]
pub(crate) async fn read(
    _auth: Authorized<Read>,
    State(state): State<AppState>,
    JobIdPath(id): JobIdPath,
    QueryParams(query): QueryParams<LogQuery>,
) -> Result<Response> {
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(Error::InvalidInput {
            field: "after".into(),
            reason: format!("{after} is negative: use 0 for the start or the `next` of a page"),
        });
    }
    if query.follow.unwrap_or(false) {
        state.store.row(id).await?; // a 404 before the stream starts
        let stream = follow(state.store.clone(), id, after, state.shutdown.clone());
        return Ok((
            [(CONTENT_TYPE, "application/x-ndjson")],
            Body::from_stream(stream),
        )
            .into_response());
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::InvalidInput {
            field: "limit".into(),
            reason: format!("{limit} is out of range: use 1 to {MAX_LIMIT} and page with `after`"),
        });
    }
    Ok(Json(state.store.read_logs(id, after, limit).await?).into_response())
}

/// Where a follower is.
struct Follower {
    store: Store,
    id: JobId,
    next: i64,
    changes: watch::Receiver<u64>,
    shutdown: CancellationToken,
    done: bool,
}

/// Lines after `after` as ndjson, as they arrive; ends once the job is terminal and
/// every line was sent, or when the API shuts down.
fn follow(
    store: Store,
    id: JobId,
    after: i64,
    shutdown: CancellationToken,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    let changes = store.subscribe();
    let start = Follower {
        store,
        id,
        next: after,
        changes,
        shutdown,
        done: false,
    };
    stream::unfold(start, |mut follower| async move {
        loop {
            if follower.done {
                return None;
            }
            // Mark the current change as seen before reading, so a change made during
            // the read wakes the wait below.
            follower.changes.borrow_and_update();
            let page = match follower
                .store
                .read_logs(follower.id, follower.next, DEFAULT_LIMIT)
                .await
            {
                Ok(page) => page,
                Err(err) => {
                    follower.done = true;
                    return Some((Err(std::io::Error::other(err.to_string())), follower));
                }
            };
            if let Some(last) = page.lines.last() {
                follower.next = last.seq;
                let mut buf = Vec::with_capacity(page.lines.len() * 64);
                for line in &page.lines {
                    if serde_json::to_writer(&mut buf, line).is_ok() {
                        buf.push(b'\n');
                    }
                }
                return Some((Ok(Bytes::from(buf)), follower));
            }
            if page.finished {
                return None;
            }
            tokio::select! {
                () = follower.shutdown.cancelled() => return None,
                _ = follower.changes.changed() => {}
                () = tokio::time::sleep(FOLLOW_POLL) => {}
            }
        }
    })
}
