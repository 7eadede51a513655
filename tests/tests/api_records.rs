//! Job records and logs through the API, on SQLite and PostgreSQL: idempotent
//! submission, partial ids, listing with cursors, the log cap, and following logs.

mod api_support;

use std::collections::HashSet;
use std::time::Duration;

use api_support::{assert_api_error, Backend, TestApi, ADMIN, DEADLINE, EXECUTOR, SUBMITTER};
use drover_tests::within;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

on_both_databases!(
    idempotent_submission_also_when_concurrent,
    a_reused_idempotency_key_with_another_body_is_a_409,
    partial_ids_resolve_unique_ambiguous_and_none,
    listing_is_newest_first_with_cursors_and_filters,
    the_log_cap_keeps_what_fits_and_one_marker,
    following_logs_streams_lines_as_they_arrive,
);

async fn idempotent_submission_also_when_concurrent(backend: Backend) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let body = json!({ "action": "noop", "idempotency_key": "deploy-42" });
    let (status, first) = api.post("/v1/jobs", SUBMITTER, body.clone()).await?;
    assert_eq!(status, StatusCode::CREATED);
    let (status, again) = api.post("/v1/jobs", SUBMITTER, body).await?;
    assert_eq!(
        status,
        StatusCode::OK,
        "a resubmission answers the existing job"
    );
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["idempotency_key"], "deploy-42");

    let submits = (0..8).map(|_| {
        let api = &api;
        async move {
            api.post(
                "/v1/jobs",
                SUBMITTER,
                json!({ "action": "noop", "idempotency_key": "race" }),
            )
            .await
        }
    });
    let answers = within("8 submits", DEADLINE, futures::future::join_all(submits)).await?;
    let mut created = 0;
    let mut ids = HashSet::new();
    for answer in answers {
        let (status, job) = answer?;
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::OK => {}
            other => panic!("submit answered {other}: {job}"),
        }
        ids.insert(job["id"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(created, 1, "exactly one submission creates");
    assert_eq!(ids.len(), 1, "every submission answers the same job");
    assert_eq!(api.db_count().await?, 2);
    api.stop().await
}

/// The same key with the same body is the same job (200, as two distributors submitting
/// one tick rely on); with any other action, params, priority, max_attempts or timeout
/// it is a 409 naming the field, and nothing is created.
async fn a_reused_idempotency_key_with_another_body_is_a_409(
    backend: Backend,
) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let body = json!({
        "action": "noop", "params": { "n": 1, "tag": "a" }, "priority": 5,
        "max_attempts": 2, "timeout_secs": 60, "idempotency_key": "tick-1",
    });
    let (status, first) = api.post("/v1/jobs", SUBMITTER, body.clone()).await?;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let reordered = json!({
        "idempotency_key": "tick-1", "timeout_secs": 60, "max_attempts": 2,
        "priority": 5, "params": { "tag": "a", "n": 1 }, "action": "noop",
    });
    for (token, same) in [(SUBMITTER, &body), (ADMIN, &reordered)] {
        let (status, again) = api.post("/v1/jobs", token, same.clone()).await?;
        assert_eq!(
            status,
            StatusCode::OK,
            "the same body is the same job: {again}"
        );
        assert_eq!(again["id"], first["id"]);
    }
    let changes = [
        ("action", json!("sleep")),
        ("params", json!({ "n": 2, "tag": "a" })),
        ("priority", json!(6)),
        ("max_attempts", json!(3)),
        ("timeout_secs", json!(61)),
    ];
    for (field, value) in changes {
        let mut other = body.clone();
        other[field] = value;
        let (status, answer) = api.post("/v1/jobs", SUBMITTER, other).await?;
        assert_eq!(status, StatusCode::CONFLICT, "{field}: {answer}");
        assert_api_error(
            &answer,
            "idempotency_key_reused",
            &[
                "tick-1",
                field,
                first["id"].as_str().unwrap_or("?"),
                "new idempotency_key",
            ],
        );
        assert_eq!(
            answer["state"], "QUEUED",
            "the existing job's state: {answer}"
        );
    }
    // Defaults count as given: omitting a field equals sending its default.
    let (status, plain) = api
        .post(
            "/v1/jobs",
            SUBMITTER,
            json!({ "action": "noop", "idempotency_key": "tick-2" }),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED);
    let spelled = json!({
        "action": "noop", "params": {}, "priority": 100, "max_attempts": 3,
        "timeout_secs": 3600, "idempotency_key": "tick-2",
    });
    let (status, again) = api.post("/v1/jobs", SUBMITTER, spelled).await?;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], plain["id"]);
    assert_eq!(api.db_count().await?, 2, "no refused submit created a job");
    api.stop().await
}

async fn partial_ids_resolve_unique_ambiguous_and_none(backend: Backend) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    // 17 ids over 16 hex digits: two share a first character.
    let mut ids = Vec::new();
    for _ in 0..17 {
        ids.push(api.submit_noop().await?);
    }
    let one = &ids[0];
    let (status, job) = api
        .get(&format!("/v1/resolve/{}", &one[..8]), SUBMITTER)
        .await?;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["id"], json!(one));
    let (status, job) = api
        .get(
            &format!("/v1/resolve/{}", one[..8].to_uppercase()),
            SUBMITTER,
        )
        .await?;
    assert_eq!(
        (status, job["id"].clone()),
        (StatusCode::OK, json!(one)),
        "case does not matter"
    );
    // A unique substring from the middle.
    let middle = &one[9..18];
    if ids.iter().filter(|id| id.contains(middle)).count() == 1 {
        let (status, job) = api.get(&format!("/v1/resolve/{middle}"), SUBMITTER).await?;
        assert_eq!((status, job["id"].clone()), (StatusCode::OK, json!(one)));
    }
    // Ambiguous: a first character shared by several.
    let shared = (0..16)
        .map(|d| format!("{d:x}"))
        .find(|c| ids.iter().filter(|id| id.starts_with(c.as_str())).count() >= 2)
        .expect("pigeonhole");
    let (status, body) = api.get(&format!("/v1/resolve/{shared}"), SUBMITTER).await?;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_api_error(&body, "ambiguous_id", &["more characters"]);
    let expected: HashSet<&str> = ids
        .iter()
        .filter(|id| id.starts_with(shared.as_str()))
        .map(String::as_str)
        .collect();
    let candidates: HashSet<&str> = body["candidates"]
        .as_array()
        .map(|c| c.iter().filter_map(|job| job["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(candidates, expected);
    assert_eq!(body["fragment"], json!(shared));
    // None.
    let absent = ["0000000000", "ffffffffff", "abcabcabca"]
        .into_iter()
        .find(|f| !ids.iter().any(|id| id.contains(f)))
        .expect("an absent fragment");
    let (status, body) = api.get(&format!("/v1/resolve/{absent}"), SUBMITTER).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_api_error(&body, "not_found", &[absent]);
    let (status, body) = api.get("/v1/resolve/not-an-id!", SUBMITTER).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_api_error(&body, "invalid_input", &["0-9"]);
    api.stop().await
}

async fn listing_is_newest_first_with_cursors_and_filters(backend: Backend) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let mut submitted = Vec::new();
    for n in 0..5 {
        let job = api
            .submit(json!({ "action": "listed", "params": { "n": n } }))
            .await?;
        submitted.push(job["id"].as_str().unwrap_or_default().to_owned());
    }
    let other = api.submit_noop().await?;
    api.post(&format!("/v1/jobs/{other}/cancel"), SUBMITTER, json!({}))
        .await?;

    let mut seen = Vec::new();
    let mut path = "/v1/jobs?action=listed&limit=2".to_owned();
    for expected in [2, 2, 1] {
        let (status, page) = api.get(&path, EXECUTOR).await?;
        assert_eq!(status, StatusCode::OK, "{page}");
        let jobs = page["jobs"].as_array().cloned().unwrap_or_default();
        assert_eq!(jobs.len(), expected, "{page}");
        seen.extend(
            jobs.iter()
                .map(|j| j["id"].as_str().unwrap_or_default().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/jobs?action=listed&limit=2&cursor={cursor}"),
            None => assert_eq!(expected, 1, "only the last page lacks a cursor"),
        }
    }
    submitted.reverse();
    assert_eq!(seen, submitted, "newest first, each once");

    let (_, page) = api.get("/v1/jobs?state=canceled", SUBMITTER).await?;
    let ids: Vec<&str> = page["jobs"]
        .as_array()
        .map(|j| j.iter().filter_map(|j| j["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, vec![other.as_str()]);
    let (_, page) = api
        .get("/v1/jobs?state=QUEUED&action=listed&limit=500", SUBMITTER)
        .await?;
    assert_eq!(page["jobs"].as_array().map(Vec::len), Some(5));
    assert_eq!(page["next_cursor"], Value::Null);
    for (query, field) in [
        ("state=DONE", "QUEUED, RUNNING"),
        ("limit=0", "1 to 500"),
        ("limit=501", "1 to 500"),
        ("cursor=zzz", "next_cursor"),
        ("colour=red", "colour"),
    ] {
        let (status, body) = api.get(&format!("/v1/jobs?{query}"), SUBMITTER).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_api_error(&body, "invalid_input", &[field]);
    }
    api.stop().await
}

fn batch(token: i64, n: usize, width: usize) -> Value {
    let lines: Vec<Value> = (0..n)
        .map(|i| json!({ "stream": "stdout", "line": format!("{i:0width$}") }))
        .collect();
    json!({ "token": token, "lines": lines })
}

async fn the_log_cap_keeps_what_fits_and_one_marker(backend: Backend) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let cap = api.config.log_cap_bytes; // 4096 in tests
    let id = api.submit_noop().await?;
    let token = api.take_and_claim(&id, "chatty").await?.0.token;
    let path = format!("/v1/jobs/{id}/logs");
    let (_, first) = api.post(&path, EXECUTOR, batch(token, 30, 100)).await?;
    assert_eq!(first, json!({ "accepted": 30, "truncated": false }));
    let (_, second) = api.post(&path, EXECUTOR, batch(token, 30, 100)).await?;
    assert_eq!(
        second,
        json!({ "accepted": 10, "truncated": true }),
        "what fits of 4096 after 3000"
    );
    let (_, third) = api.post(&path, EXECUTOR, batch(token, 5, 10)).await?;
    assert_eq!(third, json!({ "accepted": 0, "truncated": true }));

    let (_, page) = api.get(&format!("{path}?limit=10000"), SUBMITTER).await?;
    let lines = page["lines"].as_array().cloned().unwrap_or_default();
    assert_eq!(lines.len(), 41);
    let markers: Vec<&Value> = lines.iter().filter(|l| l["stream"] == "drover").collect();
    assert_eq!(markers.len(), 1, "one marker");
    assert_eq!(
        markers[0]["line"],
        format!("[drover] log truncated: the cap of {cap} bytes was reached")
    );
    assert_eq!(lines[40]["stream"], "drover", "the marker is last");
    let stored: usize = lines
        .iter()
        .filter(|l| l["stream"] != "drover")
        .map(|l| l["line"].as_str().map_or(0, str::len))
        .sum();
    assert!(stored <= cap, "{stored} bytes stored");
    let seqs: Vec<i64> = lines.iter().filter_map(|l| l["seq"].as_i64()).collect();
    assert_eq!(seqs, (1..=41).collect::<Vec<_>>());
    api.stop().await
}

async fn following_logs_streams_lines_as_they_arrive(backend: Backend) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let id = api.submit_noop().await?;
    let token = api.take_and_claim(&id, "streamer").await?.0.token;
    let path = format!("/v1/jobs/{id}/logs");
    let response = api
        .http
        .get(format!("{}{path}?follow=true", api.base))
        .bearer_auth(SUBMITTER)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let mut body = response.bytes_stream();
    let mut buffer = Vec::new();
    let mut lines: Vec<Value> = Vec::new();

    // Each batch arrives while the job still runs.
    for round in 0..3 {
        let batch = json!({ "token": token, "lines": [
            { "stream": "stdout", "line": format!("round {round} a") },
            { "stream": "stderr", "line": format!("round {round} b") } ] });
        api.post(&path, EXECUTOR, batch).await?;
        while lines.len() < 2 * (round + 1) {
            let chunk = within("a followed line", Duration::from_secs(10), body.next())
                .await?
                .expect("the stream is open while the job runs")?;
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                lines.push(serde_json::from_slice(&line)?);
            }
        }
    }
    api.finish(
        &id,
        json!({ "token": token, "status_code": "SUCCEEDED", "exit_code": 0 }),
    )
    .await?;
    let rest = within(
        "the stream to end after the job finished",
        DEADLINE,
        async {
            let mut rest = Vec::new();
            while let Some(chunk) = body.next().await {
                rest.extend_from_slice(&chunk?);
            }
            Ok::<_, reqwest::Error>(rest)
        },
    )
    .await??;
    assert!(
        buffer.is_empty() && rest.is_empty(),
        "nothing after the last line"
    );
    let seqs: Vec<i64> = lines.iter().filter_map(|l| l["seq"].as_i64()).collect();
    assert_eq!(seqs, (1..=6).collect::<Vec<_>>());
    assert_eq!(
        lines[5],
        json!({ "seq": 6, "stream": "stderr", "line": "round 2 b" })
    );

    // Following a finished job sends what is after `after` and ends.
    let text = api
        .http
        .get(format!("{}{path}?follow=true&after=4", api.base))
        .bearer_auth(SUBMITTER)
        .send()
        .await?
        .text()
        .await?;
    assert_eq!(text.lines().count(), 2, "{text}");
    let (status, body) = api
        .get(
            &format!("/v1/jobs/{}/logs?follow=true", drover_core::JobId::new()),
            SUBMITTER,
        )
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_api_error(&body, "not_found", &[]);

    // A follower of a job that never ends does not hold up a graceful shutdown.
    let running = api.submit_noop().await?;
    api.take_and_claim(&running, "forever").await?;
    let response = api
        .http
        .get(format!("{}/v1/jobs/{running}/logs?follow=true", api.base))
        .bearer_auth(SUBMITTER)
        .send()
        .await?;
    let mut open_stream = response.bytes_stream();
    api.stop().await?;
    let ended = within("the follow stream to end at shutdown", DEADLINE, async {
        while let Some(chunk) = open_stream.next().await {
            chunk?;
        }
        Ok::<_, reqwest::Error>(())
    })
    .await?;
    ended.map_err(anyhow::Error::from)
}
