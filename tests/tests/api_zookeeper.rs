//! The API with ZooKeeper unreachable, on SQLite and PostgreSQL: submits are committed
//! whole with `enqueued = false` (never a half-written record, never a 5xx), the API
//! reconnects on its own, and the executor list comes from membership.

mod api_support;

use std::time::{Duration, Instant, SystemTime};

use api_support::{assert_api_error, Backend, TestApi, DEADLINE, SUBMITTER};
use drover_coordination::{ExecutorInfo, Membership, Queue};
use drover_tests::{connect, within, TcpProxy, ZkServer};
use reqwest::{Method, StatusCode};
use serde_json::json;

on_both_databases!(
    zookeeper_stopping_during_submits_commits_whole_records,
    a_silent_zookeeper_costs_at_most_the_enqueue_timeout,
    the_api_starts_without_zookeeper_and_connects_later,
    executors_come_from_membership,
);

/// Submits and checks the answer and the stored row agree on `enqueued`.
async fn submit_and_check(api: &TestApi, enqueued: bool) -> anyhow::Result<String> {
    let started = Instant::now();
    let (status, job) = api
        .post(
            "/v1/jobs",
            SUBMITTER,
            json!({ "action": "noop", "params": { "k": "v" } }),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["enqueued"], enqueued, "{job}");
    // With no executor registered, an enqueued job is shown waiting for one.
    assert_eq!(
        job["status_code"],
        if enqueued {
            "WAITING_ON_WORKERS"
        } else {
            "CREATED"
        }
    );
    let id = job["id"].as_str().unwrap_or_default().to_owned();
    let record = api.db_record(&id).await?.expect("the record is committed");
    assert_eq!(record["enqueued"], enqueued);
    assert_eq!(record["state"], "QUEUED");
    assert_eq!(
        record["status_code"],
        if enqueued { "ENQUEUED" } else { "CREATED" }
    );
    assert_eq!(
        (record["action"].clone(), record["params"].clone()),
        (json!("noop"), json!(r#"{"k":"v"}"#))
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "submit took {:?}",
        started.elapsed()
    );
    Ok(id)
}

async fn zookeeper_stopping_during_submits_commits_whole_records(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut api = TestApi::start(backend).await?;
    submit_and_check(&api, true).await?;
    let mut zk = api.zk.take().expect("zookeeper");
    zk.stop().await?;
    api.wait_zookeeper_lost().await?;
    let offline = submit_and_check(&api, false).await?;
    // The API still serves and is ready (its database answers); a claim cannot be
    // proven without ZooKeeper, so it is refused as unavailable (nothing changes).
    let (status, ready) = api.call(Method::GET, "/readyz", None, None).await?;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(ready["zookeeper"], "connected");
    let (status, body) = api.get("/v1/executors", SUBMITTER).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_api_error(&body, "unavailable", &["zookeeper"]);
    let (status, claimed) = api
        .post(
            &format!("/v1/jobs/{offline}/claim"),
            api_support::EXECUTOR,
            json!({ "token": 1, "executor": "e", "entry": "entry-100-0000000001" }),
        )
        .await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{claimed}");
    assert_api_error(&claimed, "unavailable", &["zookeeper", "queue entry"]);
    assert_eq!(api.job(&offline).await?["status_code"], "CREATED");

    zk.restart().await?;
    api.wait_zookeeper("connected").await?;
    let back = submit_and_check(&api, true).await?;
    let session = connect(&zk.connect_string(), Duration::from_secs(4)).await?;
    let queue = Queue::open(&session, "/job").await?;
    // Hold every taken entry (dropping one releases it, and it would be taken again).
    let mut held = Vec::new();
    while let Some(taken) = within(
        "take",
        DEADLINE,
        queue.take(Some(Duration::from_millis(500))),
    )
    .await??
    {
        held.push(taken);
    }
    let on_queue: Vec<String> = held
        .iter()
        .filter_map(|t| t.job_id().ok())
        .map(|id| id.to_string())
        .collect();
    assert_eq!(
        on_queue.len(),
        2,
        "only the enqueued records are on the queue"
    );
    assert!(on_queue.contains(&back) && !on_queue.contains(&offline));
    api.stop().await
}

async fn a_silent_zookeeper_costs_at_most_the_enqueue_timeout(
    backend: Backend,
) -> anyhow::Result<()> {
    let zk = ZkServer::start().await?;
    let proxy = TcpProxy::start(zk.connect_string()).await?;
    let api = TestApi::start_with(backend, &proxy.connect_string(), |_| {}).await?;
    api.wait_zookeeper("connected").await?;
    submit_and_check(&api, true).await?;
    // Packets vanish: the client still believes it is connected, so the put waits
    // until the enqueue timeout (800 ms in tests), then the record stays not-enqueued.
    proxy.blackhole();
    let started = Instant::now();
    let (status, job) = api
        .post("/v1/jobs", SUBMITTER, json!({ "action": "noop" }))
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let id = job["id"].as_str().unwrap_or_default();
    let record = api.db_record(id).await?.expect("committed");
    assert_eq!(record["enqueued"], job["enqueued"]);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    for _ in 0..3 {
        let (status, job) = api
            .post("/v1/jobs", SUBMITTER, json!({ "action": "noop" }))
            .await?;
        assert_eq!(
            (status, job["enqueued"].clone()),
            (StatusCode::CREATED, json!(false)),
            "{job}"
        );
    }
    proxy.unblock();
    api.wait_zookeeper("connected").await?;
    submit_and_check(&api, true).await?;
    api.stop().await
}

async fn the_api_starts_without_zookeeper_and_connects_later(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut zk = ZkServer::start().await?;
    let hosts = zk.connect_string();
    zk.stop().await?;
    let api = TestApi::start_with(backend, &hosts, |_| {}).await?;
    let (status, ready) = api.call(Method::GET, "/readyz", None, None).await?;
    assert_eq!(status, StatusCode::OK, "ready without zookeeper: {ready}");
    assert_eq!(ready["zookeeper"], "disconnected");
    submit_and_check(&api, false).await?;
    let (_, metrics) = api.call(Method::GET, "/metrics", None, None).await?;
    assert!(metrics
        .as_str()
        .unwrap_or_default()
        .contains("drover_zookeeper_connected 0"));

    zk.restart().await?;
    tokio::time::timeout(DEADLINE, api.wait_zookeeper("connected")).await??;
    submit_and_check(&api, true).await?;
    api.stop().await
}

async fn executors_come_from_membership(backend: Backend) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let (status, none) = api.get("/v1/executors", SUBMITTER).await?;
    assert_eq!((status, none), (StatusCode::OK, json!([])));
    let zk = api
        .zk
        .as_ref()
        .map(ZkServer::connect_string)
        .unwrap_or_default();
    let session = connect(&zk, Duration::from_secs(4)).await?;
    let registration = Membership::new(&session)
        .register(ExecutorInfo {
            id: "node-a".into(),
            host: "host-a".into(),
            slots: 4,
            busy: 1,
            version: "0.1.0".into(),
            started: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            actions: Default::default(),
            tags: Vec::new(),
            drain: None,
            heartbeat_ms: None,
            disk: None,
        })
        .await?;
    let (status, listed) = api.get("/v1/executors", api_support::EXECUTOR).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listed,
        json!([{ "id": "node-a", "host": "host-a", "slots": 4, "busy": 1, "version": "0.1.0",
                 "started_at": "2023-11-14T22:13:20Z", "actions": {}, "tags": [] }])
    );
    registration.deregister().await?;
    api.stop().await
}
