//! The API client with its default timeouts against a real API it cannot reach (on
//! SQLite; the store is not the point): across a partitioned link (a proxy holding the
//! connection silent) an executor's heartbeat gives up within 15 s, and connecting to an
//! address that never completes a handshake gives up within 4 s, both as "unavailable"
//! so executors back off and retry instead of hanging; once the link heals, calls work.

mod api_support;

use std::time::Duration;

use anyhow::{bail, ensure};
use api_support::{Backend, TestApi, EXECUTOR};
use drover_client::{ApiClient, ClientError};
use drover_core::FencingToken;
use drover_model::{Claim, Heartbeat};
use drover_tests::{within, TcpProxy};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// How long an executor may take to notice that the API is out of reach.
const NOTICED_WITHIN: Duration = Duration::from_secs(15);

/// How long connecting to an address that does not answer may take.
const CONNECT_GIVES_UP_WITHIN: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_fails_executor_calls_within_the_default_timeouts() -> anyhow::Result<()> {
    let api = TestApi::start(Backend::Sqlite).await?;
    let proxy = TcpProxy::start(api.addr.to_string()).await?;
    let client = ApiClient::new(
        &format!("http://{}", proxy.addr()),
        Some(EXECUTOR.to_owned()),
    )?;
    let id_text = api.submit_noop().await?;
    let id = id_text.parse()?;
    let hold = api.take(&id_text).await?;
    let token = FencingToken::new(hold.token);
    let claim = Claim {
        token,
        executor: "e".into(),
        entry: hold.entry,
    };
    client.claim(id, &claim).await?;
    let heartbeat = Heartbeat {
        token,
        progress: Some(10),
        status_code: None,
    };

    // A listener whose backlog is full drops SYNs: connecting to it never completes.
    let socket = TcpSocket::new_v4()?;
    socket.bind("127.0.0.1:0".parse()?)?;
    let listener = socket.listen(1)?;
    let silent = listener.local_addr()?;
    let mut fillers = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(silent)).await {
            Ok(Ok(stream)) => fillers.push(stream),
            Ok(Err(err)) => bail!("connecting to fill the backlog: {err}"),
            Err(_) => break, // the backlog is full
        }
        ensure!(fillers.len() < 64, "the backlog never filled");
    }
    let unreachable = ApiClient::new(&format!("http://{silent}"), Some(EXECUTOR.to_owned()))?;
    let started = Instant::now();
    let refused = within(
        "a connect that never completes to give up (a 5 s connect timeout?)",
        CONNECT_GIVES_UP_WITHIN,
        unreachable.get(id),
    )
    .await?;
    let Err(err) = refused else {
        bail!("a call to a silent address answered");
    };
    ensure!(
        matches!(err, ClientError::Connect { .. }) && err.is_unavailable(),
        "{err:?}"
    );
    ensure!(started.elapsed() >= Duration::from_secs(1), "{err}");
    drop((fillers, listener));

    proxy.blackhole();
    let started = Instant::now();
    let cut_off = within(
        "a heartbeat across a partition to give up (a 30 s default timeout?)",
        NOTICED_WITHIN,
        client.heartbeat(id, &heartbeat),
    )
    .await?;
    let Err(err) = cut_off else {
        bail!("a heartbeat crossed a partition");
    };
    ensure!(
        matches!(err, ClientError::Timeout { .. }) && err.is_unavailable(),
        "{err:?}"
    );
    ensure!(
        started.elapsed() >= Duration::from_secs(2),
        "gave up after {:?}: too eager for a slow answer",
        started.elapsed()
    );

    proxy.unblock();
    within(
        "a heartbeat once the partition heals",
        NOTICED_WITHIN,
        client.heartbeat(id, &heartbeat),
    )
    .await??;

    api.stop().await
}
