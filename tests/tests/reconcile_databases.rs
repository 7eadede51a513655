//! The reconcile and cleanup endpoints on both databases (the API in-process, real
//! ZooKeeper, SQLite and PostgreSQL): every maintenance query runs on each backend.

mod api_support;

use std::time::Duration;

use anyhow::{ensure, Context};
use api_support::{Backend, TestApi, ADMIN, EXECUTOR};
use drover_coordination::Queue;
use drover_core::{JobId, Priority};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The entries on the queue holding `id`.
async fn entries_of(
    session: &drover_coordination::Session,
    id: &str,
) -> anyhow::Result<Vec<String>> {
    let client = session.client();
    let mut out = Vec::new();
    for name in client.list_children("/job/entries").await? {
        if let Ok((data, _)) = client.get_data(&format!("/job/entries/{name}")).await {
            if data == id.as_bytes() {
                out.push(name);
            }
        }
    }
    Ok(out)
}

/// A reconcile run with the shortest grace the API accepts (its enqueue timeout), after
/// waiting that long so every record made before the call counts as old enough.
async fn reconcile(api: &TestApi) -> anyhow::Result<Value> {
    let grace = api.config.enqueue_timeout;
    tokio::time::sleep(grace).await;
    let (status, body) = api
        .post(
            "/v1/admin/reconcile",
            ADMIN,
            json!({ "grace_ms": grace.as_millis() as u64, "stale_after_ms": 0 }),
        )
        .await?;
    ensure!(
        status == StatusCode::OK,
        "reconcile answered {status}: {body}"
    );
    Ok(body)
}

async fn reconcile_and_clean_up(backend: Backend) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    // A grace shorter than the enqueue timeout would duplicate entries in flight.
    let (status, body) = api
        .post("/v1/admin/reconcile", ADMIN, json!({ "grace_ms": 0 }))
        .await?;
    ensure!(status == StatusCode::BAD_REQUEST, "{status}: {body}");
    ensure!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("enqueue timeout") && m.contains("at least 800")),
        "{body}"
    );
    let hosts = api.zk.as_ref().context("zookeeper")?.connect_string();
    let session = drover_tests::connect(&hosts, Duration::from_secs(4)).await?;

    // An entry deleted by hand, a RUNNING job whose holder has no taken node, an entry
    // whose job does not exist.
    let lost_entry = api.submit_noop().await?;
    let names = entries_of(&session, &lost_entry).await?;
    ensure!(names.len() == 1, "{names:?}");
    session
        .client()
        .delete(&format!("/job/entries/{}", names[0]), None)
        .await?;
    let running = api.submit_noop().await?;
    let (ghost, status, body) = api.take_and_claim(&running, "ghost").await?;
    ensure!(status == StatusCode::OK, "{body}");
    // The ghost's session ends: its marker goes.
    drover_tests::release_hold(api.hands().await?, &ghost).await?;
    let queue = Queue::open(&session, "/job").await?;
    let orphan = queue.put_job(JobId::new(), Priority::DEFAULT).await?;

    let report = reconcile(&api).await?;
    ensure!(report["enqueued"]["count"] == 1, "{report}");
    ensure!(
        report["enqueued"]["sample"][0] == lost_entry.as_str(),
        "{report}"
    );
    ensure!(report["released"]["count"] == 1, "{report}");
    ensure!(
        report["removed_entries"]["sample"][0] == orphan.as_str(),
        "{report}"
    );
    ensure!(entries_of(&session, &lost_entry).await?.len() == 1);
    let job = api.job(&running).await?;
    ensure!(job["state"] == "QUEUED" && job["attempts"] == 1, "{job}");
    ensure!(
        job["status_message"]
            .as_str()
            .unwrap_or_default()
            .contains("vanished"),
        "{job}"
    );
    let again = reconcile(&api).await?;
    ensure!(
        again["enqueued"]["count"] == 0
            && again["released"]["count"] == 0
            && again["removed_entries"]["count"] == 0,
        "a second run repairs nothing: {again}"
    );

    // Cleanup: two finished jobs with logs, one batch each.
    for id in [&lost_entry, &running] {
        let (hold, status, body) = api.take_and_claim(id, "hand").await?;
        ensure!(status == StatusCode::OK, "{body}");
        let token = hold.token;
        let (status, body) = api
            .post(
                &format!("/v1/jobs/{id}/logs"),
                EXECUTOR,
                json!({ "token": token, "lines": [{"stream": "stdout", "line": "a"}, {"stream": "stdout", "line": "b"}] }),
            )
            .await?;
        ensure!(status == StatusCode::OK, "{body}");
        let (status, body) = api
            .finish(
                id,
                json!({ "token": token, "status_code": "SUCCEEDED", "exit_code": 0 }),
            )
            .await?;
        ensure!(status == StatusCode::OK, "{body}");
    }
    let young = api.submit_noop().await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let api_ref = &api;
    let clean = |batch: u32| async move {
        api_ref
            .post(
                "/v1/admin/cleanup",
                EXECUTOR,
                json!({ "older_than_secs": 1, "batch": batch }),
            )
            .await
    };
    let (status, first) = clean(1).await?;
    ensure!(status == StatusCode::OK, "{first}");
    ensure!(
        first["deleted_jobs"] == 1 && first["deleted_log_lines"] == 2 && first["more"] == true,
        "{first}"
    );
    let (_, second) = clean(1).await?;
    ensure!(
        second["deleted_jobs"] == 1 && second["more"] == true,
        "{second}"
    );
    let (_, third) = clean(1).await?;
    ensure!(
        third["deleted_jobs"] == 0 && third["more"] == false,
        "{third}"
    );
    ensure!(
        api.db_record(&lost_entry).await?.is_none() && api.db_record(&running).await?.is_none()
    );
    ensure!(
        api.db_record(&young).await?.is_some(),
        "a queued job is never cleaned up"
    );
    let (status, body) = api
        .post(
            "/v1/admin/cleanup",
            EXECUTOR,
            json!({ "older_than_secs": 0 }),
        )
        .await?;
    ensure!(status == StatusCode::BAD_REQUEST, "{body}");
    api_support::assert_api_error(&body, "invalid_input", &["older_than_secs"]);
    // The endpoints are in the OpenAPI document, and the repairs in the metrics.
    let (_, doc) = api
        .call(reqwest::Method::GET, "/openapi.json", None, None)
        .await?;
    for path in [
        "/v1/admin/reconcile",
        "/v1/admin/cleanup",
        "/v1/distributions",
    ] {
        ensure!(doc["paths"][path].is_object(), "openapi lacks {path}");
    }
    for schema in [
        "Reconcile",
        "Reconciled",
        "Cleanup",
        "CleanedUp",
        "Distribution",
    ] {
        ensure!(
            doc["components"]["schemas"][schema].is_object(),
            "openapi lacks {schema}"
        );
    }
    let (_, metrics) = api
        .call(reqwest::Method::GET, "/metrics", None, None)
        .await?;
    let text = metrics.as_str().unwrap_or_default();
    for expected in [
        "drover_reconcile_repairs_total{kind=\"released\"} 1",
        "drover_reconcile_runs_total 2",
        "drover_cleanup_deleted_jobs_total 2",
    ] {
        ensure!(
            text.contains(expected),
            "metrics lack {expected:?}:\n{text}"
        );
    }
    api.stop().await
}

on_both_databases!(
    reconcile_and_clean_up,
    one_reconcile_at_a_time_and_an_unreadable_entry_is_never_taken_for_absent
);

async fn one_reconcile_at_a_time_and_an_unreadable_entry_is_never_taken_for_absent(
    backend: Backend,
) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let hands = api.hands().await?;
    // Another API replica's run holds the cluster-wide lock: this one is skipped.
    let other = drover_coordination::Lock::try_acquire(hands, "/locks/reconcile")
        .await?
        .map_err(|holder| anyhow::anyhow!("the lock is held by {holder}"))?;
    let grace = api.config.enqueue_timeout.as_millis() as u64;
    let (status, body) = api
        .post("/v1/admin/reconcile", ADMIN, json!({ "grace_ms": grace }))
        .await?;
    ensure!(status == StatusCode::CONFLICT, "{status}: {body}");
    ensure!(body["error"] == "reconcile_in_progress", "{body}");
    drop(other);
    drover_tests::wait_until("the lock to be free", Duration::from_secs(5), || async {
        reconcile(&api).await.is_ok()
    })
    .await?;

    // A queued job whose only entry the API cannot read (an ACL it has no right to):
    // a read error is not "absent", so the run fails instead of enqueueing it twice.
    let job = api.submit_noop().await?;
    let names = entries_of(hands, &job).await?;
    ensure!(names.len() == 1, "{names:?}");
    let client = hands.client();
    client
        .delete(&format!("/job/entries/{}", names[0]), None)
        .await?;
    let digest = drover_tests::digest_id("someone-else", "secret");
    let acl = [zookeeper_client::Acl::new(
        zookeeper_client::Permission::ALL,
        zookeeper_client::AuthId::new("digest", &digest),
    )];
    let options = zookeeper_client::CreateMode::PersistentSequential
        .with_acls(zookeeper_client::Acls::new(&acl));
    client
        .create("/job/entries/entry-100-", job.as_bytes(), &options)
        .await?;
    tokio::time::sleep(api.config.enqueue_timeout).await;
    let (status, body) = api
        .post("/v1/admin/reconcile", ADMIN, json!({ "grace_ms": grace }))
        .await?;
    ensure!(
        status == StatusCode::SERVICE_UNAVAILABLE,
        "{status}: {body}"
    );
    ensure!(
        body["message"].as_str().is_some_and(|m| m.contains("read")),
        "{body}"
    );
    let count = client.list_children("/job/entries").await?.len();
    ensure!(count == 1, "no second entry was made: {count} entries");
    api.stop().await
}
