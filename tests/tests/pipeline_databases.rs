//! A pipeline request's states on both databases (the API in-process, real ZooKeeper,
//! SQLite and PostgreSQL), driven as an executor drives jobs: dependents are released in
//! the operation that records a success and put on the queue at once; a failure ends
//! what waits on it in the operation that records it; a rerun reruns what failed.

mod api_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use api_support::{Backend, TestApi, SUBMITTER};
use drover_tests::wait_until;
use reqwest::StatusCode;
use serde_json::{json, Value};

const DIAMOND: &str = "version: 5
actions:
  a: {action: noop}
  b: {action: noop, needs: [a]}
  c: {action: noop, needs: [a]}
  d: {action: noop, needs: [b, c]}
";

async fn run(api: &TestApi, actions: &[&str]) -> anyhow::Result<(StatusCode, Value)> {
    api.post(
        "/v1/requests",
        SUBMITTER,
        json!({ "project": DIAMOND, "actions": actions, "workspace": "w" }),
    )
    .await
}

fn ids(answer: &Value) -> anyhow::Result<HashMap<String, String>> {
    let jobs = answer["jobs"].as_array().context("jobs")?;
    Ok(jobs
        .iter()
        .filter_map(|j| {
            Some((
                j["pipeline_action"].as_str()?.to_owned(),
                j["id"].as_str()?.to_owned(),
            ))
        })
        .collect())
}

async fn enqueued(api: &TestApi, id: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let waited = wait_until(
        &format!("job {id} on the queue"),
        Duration::from_secs(10),
        || async {
            // With no executor registered, an enqueued job reads WAITING_ON_WORKERS.
            api.job(id).await.is_ok_and(|j| {
                j["enqueued"] == true
                    && (j["status_code"] == "ENQUEUED" || j["status_code"] == "WAITING_ON_WORKERS")
            })
        },
    )
    .await;
    if let Err(err) = waited {
        anyhow::bail!("{err}: it stands at {}", api.job(id).await?);
    }
    Ok(started.elapsed())
}

/// Claims and finishes `id` with `code`; the finish's answer.
async fn complete(api: &TestApi, id: &str, code: &str) -> anyhow::Result<Value> {
    let (hold, status, body) = api.take_and_claim(id, "e1").await?;
    ensure!(status == StatusCode::OK, "claim {id}: {status} {body}");
    let exit = if code == "SUCCEEDED" { 0 } else { 3 };
    let (status, body) = api
        .finish(
            id,
            json!({ "token": hold.token, "status_code": code, "exit_code": exit }),
        )
        .await?;
    ensure!(status == StatusCode::OK, "finish {id}: {status} {body}");
    Ok(body)
}

async fn a_request_on(backend: Backend) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let (status, first) = run(&api, &["d"]).await?;
    ensure!(
        status == StatusCode::CREATED && first["created"] == 4,
        "{status}: {first}"
    );
    let jobs = ids(&first)?;
    let request = first["request"]["id"]
        .as_str()
        .context("request id")?
        .to_owned();
    enqueued(&api, &jobs["a"]).await?;
    for name in ["b", "c", "d"] {
        let job = api.job(&jobs[name]).await?;
        ensure!(
            job["status_code"] == "WAITING_ON_DEPENDENCIES" && job["enqueued"] == false,
            "{name}: {job}"
        );
    }

    complete(&api, &jobs["a"], "SUCCEEDED").await?;
    let (b_after, c_after) = (
        enqueued(&api, &jobs["b"]).await?,
        enqueued(&api, &jobs["c"]).await?,
    );
    eprintln!(
        "{backend:?}: b on the queue {b_after:?} after a's finish answered, c {c_after:?} later"
    );
    ensure!(api.job(&jobs["d"]).await?["status_code"] == "WAITING_ON_DEPENDENCIES");

    complete(&api, &jobs["b"], "NONZERO_EXIT").await?;
    // Ended by the operation that recorded b's failure: read right after its answer.
    let d = api.job(&jobs["d"]).await?;
    ensure!(
        d["status_code"] == "DEPENDENCY_FAILED" && d["attempts"] == 0,
        "{d}"
    );
    ensure!(
        d["status_message"]
            .as_str()
            .is_some_and(|m| m.contains("`b`")),
        "{d}"
    );
    complete(&api, &jobs["c"], "SUCCEEDED").await?;

    let (status, detail) = api
        .get(&format!("/v1/requests/{}", &request[..8]), SUBMITTER)
        .await?;
    ensure!(status == StatusCode::OK, "{status}: {detail}");
    ensure!(detail["request"]["state"] == "FAILED", "{detail}");
    let progress = &detail["request"]["progress"];
    ensure!(
        progress["succeeded"] == 2 && progress["failed"] == 2 && progress["total"] == 4,
        "{progress}"
    );

    // Again: what failed reruns (b, then d), what succeeded (a, c) is skipped.
    let (status, again) = run(&api, &["d"]).await?;
    ensure!(
        status == StatusCode::CREATED && again["created"] == 2,
        "{status}: {again}"
    );
    let rerun = ids(&again)?;
    ensure!(
        rerun.contains_key("b") && rerun.contains_key("d") && rerun.len() == 2,
        "{again}"
    );
    let (status, listed) = api.get("/v1/requests?workspace=w", SUBMITTER).await?;
    ensure!(
        status == StatusCode::OK && listed["requests"].as_array().map(Vec::len) == Some(2),
        "{listed}"
    );
    api.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_on_sqlite() -> anyhow::Result<()> {
    a_request_on(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_on_postgres() -> anyhow::Result<()> {
    a_request_on(Backend::Postgres).await
}

/// What a crash between a success's commit and its dependents' enqueue leaves (released
/// jobs `CREATED`, not on the queue) made here by taking ZooKeeper away before the
/// success is recorded: the enqueuer cannot put them, and the reconciler does once
/// ZooKeeper is back. Nothing waits forever.
async fn released_jobs_the_queue_missed_on(backend: Backend) -> anyhow::Result<()> {
    let mut api = TestApi::start(backend).await?;
    let (status, created) = run(&api, &["d"]).await?;
    ensure!(status == StatusCode::CREATED, "{status}: {created}");
    let jobs = ids(&created)?;
    enqueued(&api, &jobs["a"]).await?;
    let (hold, status, body) = api.take_and_claim(&jobs["a"], "e1").await?;
    ensure!(status == StatusCode::OK, "claim: {status} {body}");
    let mut zk = api.zk.take().context("zookeeper")?;
    zk.stop().await?;
    api.wait_zookeeper_lost().await?;
    let (status, body) = api
        .finish(
            &jobs["a"],
            json!({ "token": hold.token, "status_code": "SUCCEEDED", "exit_code": 0 }),
        )
        .await?;
    ensure!(
        status == StatusCode::OK,
        "finish without ZooKeeper: {status} {body}"
    );
    for name in ["b", "c"] {
        let job = api.job(&jobs[name]).await?;
        ensure!(
            job["status_code"] == "CREATED" && job["enqueued"] == false,
            "{name}: {job}"
        );
    }

    zk.restart().await?;
    api.wait_zookeeper("connected").await?;
    let grace = api.config.enqueue_timeout;
    tokio::time::sleep(grace).await;
    let (status, report) = api
        .post(
            "/v1/admin/reconcile",
            api_support::ADMIN,
            json!({ "grace_ms": grace.as_millis() as u64, "stale_after_ms": 0 }),
        )
        .await?;
    ensure!(status == StatusCode::OK, "reconcile: {status} {report}");
    for name in ["b", "c"] {
        enqueued(&api, &jobs[name]).await?;
    }
    ensure!(api.job(&jobs["d"]).await?["status_code"] == "WAITING_ON_DEPENDENCIES");
    api.zk = Some(zk);
    api.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_jobs_the_queue_missed_are_enqueued_by_the_reconciler_on_sqlite(
) -> anyhow::Result<()> {
    released_jobs_the_queue_missed_on(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_jobs_the_queue_missed_are_enqueued_by_the_reconciler_on_postgres(
) -> anyhow::Result<()> {
    released_jobs_the_queue_missed_on(Backend::Postgres).await
}

/// A resend with the request's idempotency key (a distribution's tick, submitted by two
/// leaders) gets the first request back and creates nothing; another body with the same
/// key is refused, naming what differs.
async fn a_request_key_names_one_request_on(backend: Backend) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let body = |actions: &[&str]| json!({ "project": DIAMOND, "actions": actions, "workspace": "w", "idempotency_key": "distribution/nightly/1" });
    let (status, first) = api.post("/v1/requests", SUBMITTER, body(&["d"])).await?;
    ensure!(
        status == StatusCode::CREATED && first["created"] == 4,
        "{status}: {first}"
    );
    let (status, again) = api.post("/v1/requests", SUBMITTER, body(&["d"])).await?;
    ensure!(
        status == StatusCode::OK
            && again["created"] == 0
            && again["request"]["id"] == first["request"]["id"]
            && again["jobs"].as_array().map(Vec::len) == Some(4),
        "{status}: {again}"
    );
    ensure!(
        again["message"]
            .as_str()
            .is_some_and(|m| m.contains("submitted before with this idempotency_key")),
        "{again}"
    );
    let (status, other) = api.post("/v1/requests", SUBMITTER, body(&["b"])).await?;
    ensure!(
        status == StatusCode::CONFLICT
            && other["error"] == "idempotency_key_reused"
            && other["message"]
                .as_str()
                .is_some_and(|m| m.contains("another actions")),
        "{status}: {other}"
    );
    let (status, listed) = api.get("/v1/requests?workspace=w", SUBMITTER).await?;
    ensure!(
        status == StatusCode::OK && listed["requests"].as_array().map(Vec::len) == Some(1),
        "{listed}"
    );
    api.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_key_names_one_request_on_sqlite() -> anyhow::Result<()> {
    a_request_key_names_one_request_on(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_key_names_one_request_on_postgres() -> anyhow::Result<()> {
    a_request_key_names_one_request_on(Backend::Postgres).await
}
