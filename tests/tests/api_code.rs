//! Code snapshots and a job's inputs (#15) at the HTTP level, on SQLite and PostgreSQL:
//! a snapshot is stored once by its SHA-256 and read back whole; bad hashes, a body that
//! hashes otherwise, a request naming a snapshot never sent, and an inputs read with a
//! stale token are refused with what to do.

mod api_support;

use api_support::{assert_api_error, Backend, TestApi, EXECUTOR, SUBMITTER};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

on_both_databases!(
    code_snapshots_are_kept_once_and_checked,
    inputs_are_for_the_holder_only
);

async fn put(api: &TestApi, sha: &str, body: &'static [u8]) -> anyhow::Result<(StatusCode, Value)> {
    let response = api
        .http
        .put(format!("{}/v1/code/{sha}", api.base))
        .bearer_auth(SUBMITTER)
        .body(body)
        .send()
        .await?;
    let status = response.status();
    Ok((status, serde_json::from_str(&response.text().await?)?))
}

async fn code_snapshots_are_kept_once_and_checked(backend: Backend) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let bytes: &'static [u8] = b"not really a tar, but bytes all the same";
    let sha = hex::encode(Sha256::digest(bytes));

    let (status, body) = put(&api, "abc", bytes).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_api_error(&body, "invalid_input", &["sha256", "64 lower-case hex"]);
    let other = hex::encode(Sha256::digest(b"other"));
    let (status, body) = put(&api, &other, bytes).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_api_error(
        &body,
        "invalid_input",
        &[&sha, "send the snapshot the path names"],
    );

    let head = |sha: String| {
        let request = api
            .http
            .head(format!("{}/v1/code/{sha}", api.base))
            .bearer_auth(SUBMITTER);
        async move { Ok::<_, anyhow::Error>(request.send().await?.status()) }
    };
    assert_eq!(head(sha.clone()).await?, StatusCode::NOT_FOUND);
    let (status, body) = put(&api, &sha, bytes).await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["size"], bytes.len());
    let (status, _) = put(&api, &sha, bytes).await?;
    assert_eq!(status, StatusCode::OK, "a second upload is a no-op");
    assert_eq!(head(sha.clone()).await?, StatusCode::OK);
    let got = api
        .http
        .get(format!("{}/v1/code/{sha}", api.base))
        .bearer_auth(SUBMITTER)
        .send()
        .await?
        .bytes()
        .await?;
    assert_eq!(&got[..], bytes);

    let project = "version: 5\nactions:\n  a: {action: noop}\n";
    let request = |code: &str| json!({"project": project, "actions": ["a"], "code": code});
    let (status, body) = api.post("/v1/requests", SUBMITTER, request(&other)).await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_api_error(&body, "not_found", &["no code snapshot", "PUT /v1/code"]);
    let (status, body) = api.post("/v1/requests", SUBMITTER, request("ABC")).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_api_error(&body, "invalid_input", &["code"]);
    let (status, body) = api.post("/v1/requests", SUBMITTER, request(&sha)).await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    api.stop().await
}

async fn inputs_are_for_the_holder_only(backend: Backend) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let project = "version: 5\nactions:\n  a: {action: noop}\n";
    let (status, body) = api
        .post(
            "/v1/requests",
            SUBMITTER,
            json!({"project": project, "actions": ["a"]}),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["jobs"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (_hold, status, claimed) = api.take_and_claim(&id, "exec-1").await?;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    let token = claimed["fencing_token"].as_i64().unwrap_or_default();
    let (status, inputs) = api
        .get(&format!("/v1/jobs/{id}/inputs?token={token}"), EXECUTOR)
        .await?;
    assert_eq!(status, StatusCode::OK, "{inputs}");
    assert_eq!(inputs, json!({"files": []}), "no code, nothing needed");
    let (status, body) = api
        .get(
            &format!("/v1/jobs/{id}/inputs?token={}", token + 1),
            EXECUTOR,
        )
        .await?;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = api
        .get(&format!("/v1/jobs/{id}/inputs?token={token}"), SUBMITTER)
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "a submitter is no executor");
    api.stop().await
}
