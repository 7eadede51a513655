//! Slow and hostile clients against the real server (on SQLite; no request here reaches
//! the store): half-sent request heads are cut off within `api.header_timeout`, bodies
//! announced and never (or too slowly) sent get a 408 within `api.body_timeout` and the
//! connection closes, connections above `api.max_connections` wait in the listen backlog
//! without a descriptor, a normal request is answered meanwhile, and a graceful shutdown
//! still lets a request in flight finish.

mod api_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context};
use api_support::{assert_api_error, Backend, TestApi, DEADLINE, SUBMITTER};
use drover_tests::procfs::held_connections;
use drover_tests::{wait_until, wait_until_sync, within};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Nothing here needs ZooKeeper (the API serves without it).
const NO_ZOOKEEPER: &str = "127.0.0.1:1";

/// The API with these slow-client limits.
async fn start(
    header: Duration,
    body: Duration,
    max_connections: usize,
) -> anyhow::Result<TestApi> {
    TestApi::start_with(Backend::Sqlite, NO_ZOOKEEPER, |config| {
        config.header_timeout = header;
        config.body_timeout = body;
        config.max_connections = max_connections;
    })
    .await
}

/// A connection that sent a request line and one header, and nothing more.
async fn half_a_head(api: &TestApi) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(api.addr).await?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: drover\r\n")
        .await?;
    Ok(stream)
}

/// The head of a submit announcing a body of `length` bytes.
fn submit_head(length: usize) -> String {
    format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: drover\r\nAuthorization: Bearer {SUBMITTER}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// Reads until the server closes the connection (end of stream, or a reset); what it sent.
async fn until_closed(mut stream: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut answer = Vec::new();
    // A reset means closed too; what arrived before it is in `answer`.
    let _ = stream.read_to_end(&mut answer).await;
    answer
}

/// Reads one whole answer (head and `Content-Length` body) off a kept-alive connection.
async fn one_answer(stream: &mut TcpStream) -> anyhow::Result<String> {
    let mut buffer = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&buffer).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .context("an answer without Content-Length")?;
            if body.len() >= length {
                return Ok(text);
            }
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        ensure!(n > 0, "the connection closed mid-answer: {text:?}");
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// Checks a 408 answer to a body that did not arrive: an `ApiError` naming the setting,
/// `Connection: close`, after at least part of the timeout.
fn check_408(answer: &[u8], elapsed: Duration, timeout: Duration) -> anyhow::Result<()> {
    let text = String::from_utf8_lossy(answer);
    ensure!(text.starts_with("HTTP/1.1 408"), "not a 408: {text:?}");
    let (head, body) = text.split_once("\r\n\r\n").context("no end of head")?;
    ensure!(
        head.to_ascii_lowercase().contains("connection: close"),
        "the 408 does not close the connection: {head:?}"
    );
    let body: Value = serde_json::from_str(body).with_context(|| format!("{body:?}"))?;
    assert_api_error(
        &body,
        "request_timeout",
        &["api.body_timeout", "whole body"],
    );
    ensure!(
        elapsed >= timeout / 2,
        "answered after {elapsed:?}, well before the body timeout of {timeout:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_heads_are_closed_within_the_header_timeout() -> anyhow::Result<()> {
    const HOSTILE: usize = 200;
    let header = Duration::from_secs(2);
    let api = start(header, Duration::from_secs(30), 10_000).await?;
    let port = api.addr.port();
    let opened = Instant::now();
    let mut hostile = Vec::with_capacity(HOSTILE);
    for _ in 0..HOSTILE {
        hostile.push(half_a_head(&api).await?);
    }
    wait_until_sync("the api to accept every hostile connection", header, || {
        held_connections(port) >= HOSTILE
    })
    .await?;

    // While they are held, a normal request is answered at once.
    let (status, body) = within(
        "a normal request beside the hostile connections",
        header,
        api.call(Method::GET, "/healthz", None, None),
    )
    .await??;
    ensure!(status == StatusCode::OK, "{status} {body}");
    ensure!(
        held_connections(port) >= HOSTILE,
        "the hostile connections were let go before the normal request was answered"
    );

    let answers = within(
        "the api to close every half-sent head (no header timeout?)",
        header * 3,
        futures::future::join_all(hostile.into_iter().map(until_closed)),
    )
    .await?;
    let elapsed = opened.elapsed();
    ensure!(
        elapsed >= header / 2,
        "closed after {elapsed:?}, well before the header timeout of {header:?}"
    );
    ensure!(
        answers.iter().all(Vec::is_empty),
        "a half-sent head got an answer: {:?}",
        String::from_utf8_lossy(
            answers
                .iter()
                .find(|a| !a.is_empty())
                .unwrap_or(&Vec::new())
        )
    );
    wait_until_sync("the api to release their descriptors", DEADLINE, || {
        held_connections(port) <= 1
    })
    .await?;
    api.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_do_not_arrive_get_a_408_and_the_connection_closes() -> anyhow::Result<()> {
    let body_timeout = Duration::from_millis(800);
    let api = start(Duration::from_secs(10), body_timeout, 10_000).await?;
    let bound = body_timeout * 4 + Duration::from_secs(2);

    // Announced, never sent.
    let mut stream = TcpStream::connect(api.addr).await?;
    stream.write_all(submit_head(100).as_bytes()).await?;
    let sent = Instant::now();
    let answer = within(
        "a 408 for a body never sent (no body timeout?)",
        bound,
        until_closed(stream),
    )
    .await?;
    check_408(&answer, sent.elapsed(), body_timeout)?;

    // Trickled: a byte every 100 ms would take 10 s; the timeout bounds the whole body,
    // not the gaps between its bytes.
    let body = format!(
        "{{\"action\":\"noop\",\"params\":{{\"pad\":\"{}\"}}}}",
        "x".repeat(68)
    );
    let stream = TcpStream::connect(api.addr).await?;
    let (reader, mut writer) = stream.into_split();
    writer.write_all(submit_head(body.len()).as_bytes()).await?;
    let sent = Instant::now();
    let trickle = tokio::spawn(async move {
        for byte in body.into_bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            // The client's pace, not a wait for the server.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let answer = within(
        "a 408 for a trickled body (an idle timeout only?)",
        bound,
        until_closed(reader),
    )
    .await?;
    check_408(&answer, sent.elapsed(), body_timeout)?;
    trickle.abort();

    // The API goes on serving.
    let (status, _) = api
        .post(
            "/v1/jobs",
            SUBMITTER,
            serde_json::json!({ "action": "noop" }),
        )
        .await?;
    ensure!(status == StatusCode::CREATED);
    api.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_above_the_limit_wait_in_the_backlog_without_a_descriptor() -> anyhow::Result<()>
{
    const LIMIT: usize = 20;
    const OPENED: usize = 60;
    let header = Duration::from_millis(700);
    let api = start(header, Duration::from_secs(30), LIMIT).await?;
    let port = api.addr.port();
    let closed = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::with_capacity(OPENED);
    for _ in 0..OPENED {
        // Connecting succeeds above the limit too: the kernel completes the handshake.
        let stream = half_a_head(&api).await?;
        let closed = Arc::clone(&closed);
        readers.push(tokio::spawn(async move {
            until_closed(stream).await;
            closed.fetch_add(1, Ordering::SeqCst);
        }));
    }
    let mut most = 0;
    wait_until_sync(
        "every connection, accepted in turn as others time out, to be closed",
        Duration::from_secs(15),
        || {
            // /proc/net/tcp is read in chunks, not as one snapshot: a connection closed
            // and its successor accepted during one read can both be in it. A count
            // seen in two reads in a row is real.
            let seen = held_connections(port).min(held_connections(port));
            most = most.max(seen);
            closed.load(Ordering::SeqCst) == OPENED
        },
    )
    .await?;
    ensure!(
        most == LIMIT,
        "the api held up to {most} connections at once, with a limit of {LIMIT}"
    );
    let (status, _) = within(
        "a normal request after the flood",
        DEADLINE,
        api.call(Method::GET, "/healthz", None, None),
    )
    .await??;
    ensure!(status == StatusCode::OK);
    api.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_finishes_requests_in_flight_and_closes_idle_connections(
) -> anyhow::Result<()> {
    let api = start(Duration::from_secs(20), Duration::from_secs(20), 10_000).await?;
    let port = api.addr.port();
    // A kept-alive connection, idle after one answer.
    let mut idle = TcpStream::connect(api.addr).await?;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: drover\r\n\r\n")
        .await?;
    let answer = one_answer(&mut idle).await?;
    ensure!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    // A submit whose body is half sent.
    let body = br#"{"action":"noop"}"#;
    let mut in_flight = TcpStream::connect(api.addr).await?;
    in_flight
        .write_all(submit_head(body.len()).as_bytes())
        .await?;
    in_flight.write_all(&body[..5]).await?;
    wait_until_sync("the api to hold both connections", DEADLINE, || {
        held_connections(port) >= 2
    })
    .await?;

    api.begin_shutdown();
    wait_until("the api to stop accepting", DEADLINE, || async {
        TcpStream::connect(api.addr).await.is_err()
    })
    .await?;
    let closed = within(
        "the idle connection to close at shutdown, long before the header timeout",
        Duration::from_secs(5),
        until_closed(idle),
    )
    .await?;
    ensure!(closed.is_empty(), "{:?}", String::from_utf8_lossy(&closed));
    in_flight.write_all(&body[5..]).await?;
    let answer = within(
        "the request in flight to be answered after the shutdown began",
        DEADLINE,
        until_closed(in_flight),
    )
    .await?;
    let answer = String::from_utf8_lossy(&answer);
    ensure!(answer.starts_with("HTTP/1.1 201"), "{answer:?}");
    api.stop().await
}
