//! Bad input, auth, and the operations endpoints, on SQLite and PostgreSQL: every
//! refusal is a 4xx with an `ApiError` body saying what was wrong; nothing is a 5xx.

mod api_support;

use api_support::{assert_api_error, Backend, TestApi, ADMIN, DISTRIBUTOR, EXECUTOR, SUBMITTER};
use drover_coordination::Queue;
use drover_core::Priority;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

on_both_databases!(
    bad_input_is_a_4xx_with_a_reason,
    tokens_and_roles_are_enforced,
    maintenance_actions_are_submitted_only_by_admins_and_distributors,
    unknown_query_parameters_are_refused_on_every_route,
    health_metrics_and_openapi_are_served,
);

async fn bad_input_is_a_4xx_with_a_reason(backend: Backend) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let malformed: [(&[u8], &str, &[&str]); 5] = [
        (br#"{"action":"noop""#, "malformed_json", &["EOF", "line 1"]),
        (b"not json", "malformed_json", &["expected"]),
        (b"", "malformed_json", &["empty"]),
        (br#"{"action":"noop"} {}"#, "malformed_json", &["trailing"]),
        (br#"["noop"]"#, "invalid_input", &["array", "object"]),
    ];
    for (body, code, needles) in malformed {
        let (status, answer) = api.call_raw("/v1/jobs", SUBMITTER, body.to_vec()).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_api_error(&answer, code, needles);
    }
    let megabyte_of_params = json!({ "action": "noop", "params": { "blob": "x".repeat(1 << 20) } });
    let invalid: Vec<(Value, StatusCode, &str, Vec<&str>)> = vec![
        (
            json!({ "action": "noop", "colour": "red" }),
            StatusCode::BAD_REQUEST,
            "invalid_input",
            vec!["unknown field `colour`"],
        ),
        (
            json!({ "action": "noop", "priority": "high" }),
            StatusCode::BAD_REQUEST,
            "invalid_input",
            vec!["priority", "invalid type"],
        ),
        (
            json!({ "action": 7 }),
            StatusCode::BAD_REQUEST,
            "invalid_input",
            vec!["action", "invalid type"],
        ),
        (
            json!({ "action": "noop", "priority": 1000 }),
            StatusCode::BAD_REQUEST,
            "invalid_input",
            vec!["priority", "1000", "0 (runs first) to 999"],
        ),
        (
            json!({ "action": "noop", "priority": -1 }),
            StatusCode::BAD_REQUEST,
            "invalid_input",
            vec!["priority"],
        ),
        (
            json!({ "action": "" }),
            StatusCode::BAD_REQUEST,
            "invalid_input",
            vec!["action", "empty"],
        ),
        (
            json!({ "action": "rm -rf /" }),
            StatusCode::BAD_REQUEST,
            "invalid_input",
            vec!["action name"],
        ),
        (
            json!({ "params": {} }),
            StatusCode::BAD_REQUEST,
            "invalid_input",
            vec!["missing field `action`"],
        ),
        (
            json!({ "action": "noop", "params": [1, 2] }),
            StatusCode::BAD_REQUEST,
            "invalid_input",
            vec!["params"],
        ),
        (
            json!({ "action": "noop", "max_attempts": 0 }),
            StatusCode::BAD_REQUEST,
            "invalid_input",
            vec!["max_attempts", "1 to 1000"],
        ),
        (
            json!({ "action": "noop", "timeout_secs": 0 }),
            StatusCode::BAD_REQUEST,
            "invalid_input",
            vec!["timeout_secs"],
        ),
        (
            json!({ "action": "noop", "idempotency_key": "" }),
            StatusCode::BAD_REQUEST,
            "invalid_input",
            vec!["idempotency_key"],
        ),
        (
            megabyte_of_params,
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            vec!["params", "65536"],
        ),
    ];
    for (body, expected, code, needles) in invalid {
        let (status, answer) = api.post("/v1/jobs", SUBMITTER, body.clone()).await?;
        assert_eq!(status, expected, "{body:.200}: {answer}");
        assert_api_error(&answer, code, &needles);
    }
    let huge = vec![b' '; 3 << 20];
    let (status, answer) = api.call_raw("/v1/jobs", SUBMITTER, huge).await?;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_api_error(&answer, "too_large", &["request body"]);
    assert_eq!(api.db_count().await?, 0, "no refused submit left a record");

    // Executor bodies and paths.
    let id = api.submit_noop().await?;
    let job = |tail: &str| format!("/v1/jobs/{id}/{tail}");
    let refused: Vec<(String, Value, &str, Vec<&str>)> = vec![
        (
            job("claim"),
            json!({ "token": 1, "executor": "", "entry": "entry-100-0000000001" }),
            "invalid_input",
            vec!["executor"],
        ),
        (
            job("claim"),
            json!({ "token": "one", "executor": "e", "entry": "entry-100-0000000001" }),
            "invalid_input",
            vec!["token"],
        ),
        (
            job("claim"),
            json!({ "executor": "e", "entry": "entry-100-0000000001" }),
            "invalid_input",
            vec!["token"],
        ),
        (
            job("claim"),
            json!({ "token": 1, "executor": "e" }),
            "invalid_input",
            vec!["entry"],
        ),
        (
            job("claim"),
            json!({ "token": 1, "executor": "e", "entry": "entry-1-2" }),
            "invalid_input",
            vec!["entry", "entry-100-0000000042"],
        ),
        (
            job("heartbeat"),
            json!({ "token": 1, "progress": 101 }),
            "invalid_input",
            vec!["progress", "0 to 100"],
        ),
        (
            job("heartbeat"),
            json!({ "token": 1, "progress": 300 }),
            "invalid_input",
            vec!["progress"],
        ),
        (
            job("heartbeat"),
            json!({ "token": 1, "status_code": "SUCCEEDED" }),
            "invalid_input",
            vec!["finish"],
        ),
        (
            job("heartbeat"),
            json!({ "token": 1, "status_code": "BOGUS" }),
            "invalid_input",
            vec!["status_code"],
        ),
        (
            job("finish"),
            json!({ "token": 1, "status_code": "EXECUTING" }),
            "invalid_input",
            vec!["terminal"],
        ),
        (
            job("logs"),
            json!({ "token": 1, "lines": [{ "stream": "video", "line": "x" }] }),
            "invalid_input",
            vec!["stdout"],
        ),
        (
            job("release"),
            json!({ "token": 1, "message": "m".repeat(5000) }),
            "invalid_input",
            vec!["message"],
        ),
        (
            "/v1/jobs/not-a-uuid/claim".to_owned(),
            json!({ "token": 1, "executor": "e", "entry": "entry-100-0000000001" }),
            "invalid_input",
            vec!["not-a-uuid", "resolve"],
        ),
    ];
    for (path, body, code, needles) in refused {
        let (status, answer) = api.post(&path, EXECUTOR, body.clone()).await?;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{path} {body:.100}: {answer}"
        );
        assert_api_error(&answer, code, &needles);
    }
    let unknown = drover_core::JobId::new();
    for (method, path) in [
        (Method::GET, format!("/v1/jobs/{unknown}")),
        (Method::POST, format!("/v1/jobs/{unknown}/cancel")),
    ] {
        let (status, answer) = api
            .call(method, &path, Some(ADMIN), Some(&json!({})))
            .await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_api_error(&answer, "not_found", &[&unknown.to_string()]);
    }
    // An entry whose job is gone (deleted by cleanup, say): the claim says so.
    let stray = Queue::producer(api.hands().await?, "/job").await?;
    stray
        .put(unknown.to_string().as_bytes(), Priority::DEFAULT)
        .await?;
    let (_, status, answer) = api.take_and_claim(&unknown.to_string(), "e").await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (status, answer) = api.get("/v1/nothing-here", ADMIN).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_api_error(&answer, "not_found", &["/v1/nothing-here"]);
    let (status, answer) = api
        .call(Method::DELETE, "/v1/jobs", Some(ADMIN), None)
        .await?;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_api_error(&answer, "method_not_allowed", &["DELETE"]);
    let (status, answer) = api
        .get(&format!("/v1/jobs/{id}/logs?after=-1"), ADMIN)
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_api_error(&answer, "invalid_input", &["after"]);
    // Lines with NUL bytes are stored (as U+FFFD), not a database error.
    let (hold, _, _) = api.take_and_claim(&id, "e").await?;
    let (status, answer) = api
        .post(
            &job("logs"),
            EXECUTOR,
            json!({ "token": hold.token, "lines": [{ "stream": "stdout", "line": "a\u{0}b" }] }),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{answer}");
    api.stop().await
}

async fn tokens_and_roles_are_enforced(backend: Backend) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let submit = json!({ "action": "noop" });
    let response = api
        .http
        .post(format!("{}/v1/jobs", api.base))
        .json(&submit)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let body: Value = response.json().await?;
    assert_api_error(&body, "unauthenticated", &["Authorization", "Bearer"]);
    let (status, body) = api
        .post("/v1/jobs", "wrong-token-123", submit.clone())
        .await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_api_error(&body, "unauthenticated", &["unknown token"]);
    let response = api
        .http
        .get(format!("{}/v1/jobs", api.base))
        .header("authorization", format!("Basic {SUBMITTER}"))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Auth is checked before the body: a bad body without a token is still a 401.
    let response = api
        .http
        .post(format!("{}/v1/jobs", api.base))
        .body("{")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let (status, body) = api.post("/v1/jobs", EXECUTOR, submit.clone()).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_api_error(
        &body,
        "forbidden",
        &["executor-pool", "executor", "submitter or admin"],
    );
    let id = api.submit_noop().await?;
    let (status, body) = api
        .post(
            &format!("/v1/jobs/{id}/claim"),
            SUBMITTER,
            json!({ "token": 1, "executor": "e", "entry": "entry-100-0000000001" }),
        )
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_api_error(&body, "forbidden", &["alice", "executor or admin"]);
    let (status, body) = api
        .post(&format!("/v1/jobs/{id}/kill"), EXECUTOR, json!({}))
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_api_error(&body, "forbidden", &["admin"]);
    let (status, _) = api
        .post(&format!("/v1/jobs/{id}/cancel"), EXECUTOR, json!({}))
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Reads are open to every role; admins may do everything.
    for token in [SUBMITTER, EXECUTOR, ADMIN] {
        let (status, _) = api.get(&format!("/v1/jobs/{id}"), token).await?;
        assert_eq!(status, StatusCode::OK);
    }
    let hold = api.take(&id).await?;
    let (status, _) = api
        .post(
            &format!("/v1/jobs/{id}/claim"),
            ADMIN,
            json!({ "token": hold.token, "executor": "admin", "entry": hold.entry }),
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api.post("/v1/jobs", ADMIN, submit).await?;
    assert_eq!(status, StatusCode::CREATED);
    // Health endpoints are open.
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let (status, _) = api.call(Method::GET, path, None, None).await?;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    api.stop().await
}

/// `cleanup_jobs` deletes history with the executor's token: a submitter may neither
/// submit one nor retry one; admins may, and distributors (which schedule it) may.
async fn maintenance_actions_are_submitted_only_by_admins_and_distributors(
    backend: Backend,
) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let cleanup = json!({ "action": "cleanup_jobs", "params": { "older_than": "1s" } });
    let (status, body) = api.post("/v1/jobs", SUBMITTER, cleanup.clone()).await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_api_error(
        &body,
        "forbidden",
        &["alice", "submitter", "cleanup_jobs", "admin or distributor"],
    );
    assert_eq!(api.db_count().await?, 0, "the refused submit left a record");
    let keyed = json!({ "action": "cleanup_jobs", "idempotency_key": "nightly" });
    let (status, _) = api.post("/v1/jobs", SUBMITTER, keyed.clone()).await?;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an idempotency key changes nothing"
    );

    let (status, by_admin) = api.post("/v1/jobs", ADMIN, cleanup).await?;
    assert_eq!(status, StatusCode::CREATED, "{by_admin}");
    let (status, by_distributor) = api.post("/v1/jobs", DISTRIBUTOR, keyed.clone()).await?;
    assert_eq!(status, StatusCode::CREATED, "{by_distributor}");
    let (status, _) = api.post("/v1/jobs", SUBMITTER, keyed).await?;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a submitter cannot reach an existing cleanup job through its key either"
    );

    // Retrying one re-runs it: the same rule.
    let id = by_admin["id"].as_str().unwrap_or_default().to_owned();
    let (hold, _, _) = api.take_and_claim(&id, "e").await?;
    api.finish(
        &id,
        json!({ "token": hold.token, "status_code": "SUCCEEDED" }),
    )
    .await?;
    let retry = format!("/v1/jobs/{id}/retry");
    let (status, body) = api.post(&retry, SUBMITTER, json!({})).await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_api_error(
        &body,
        "forbidden",
        &["cleanup_jobs", "admin or distributor"],
    );
    let (status, body) = api.post(&retry, ADMIN, json!({})).await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Other actions are unchanged for submitters.
    api.submit_noop().await?;
    api.stop().await
}

/// Routes without query parameters refuse any; routes with some refuse unknown ones; the
/// 400 names the parameter. Nothing refused is applied.
async fn unknown_query_parameters_are_refused_on_every_route(
    backend: Backend,
) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let id = api.submit_noop().await?;
    let claim = json!({ "token": 1, "executor": "e", "entry": "entry-100-0000000001" });
    let refused: Vec<(Method, String, &str, Option<Value>, &str)> = vec![
        (
            Method::GET,
            format!("/v1/jobs/{id}?colour=red"),
            SUBMITTER,
            None,
            "colour",
        ),
        (
            Method::POST,
            "/v1/jobs?dry_run=1".to_owned(),
            SUBMITTER,
            Some(json!({ "action": "noop" })),
            "dry_run",
        ),
        (
            Method::POST,
            format!("/v1/jobs/{id}/claim?force"),
            EXECUTOR,
            Some(claim.clone()),
            "force",
        ),
        (
            Method::GET,
            "/healthz?verbose=1".to_owned(),
            ADMIN,
            None,
            "verbose",
        ),
        (
            Method::GET,
            "/v1/jobs?colour=red&limit=5".to_owned(),
            SUBMITTER,
            None,
            "colour",
        ),
        (
            Method::GET,
            format!("/v1/jobs/{id}/logs?after=0&tail=5"),
            SUBMITTER,
            None,
            "tail",
        ),
    ];
    for (method, path, token, body, parameter) in refused {
        let (status, answer) = api
            .call(method.clone(), &path, Some(token), body.as_ref())
            .await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {answer}");
        assert_api_error(&answer, "invalid_input", &["query", parameter]);
    }
    assert_eq!(
        api.db_count().await?,
        1,
        "the refused submit left no record"
    );
    let job = api.job(&id).await?;
    assert_eq!(
        job["state"], "QUEUED",
        "the refused claim changed nothing: {job}"
    );

    // Known parameters, and an empty query string, are fine.
    for path in [
        "/v1/jobs?limit=5".to_owned(),
        format!("/v1/jobs/{id}/logs?after=0&limit=10"),
        format!("/v1/jobs/{id}?"),
    ] {
        let (status, answer) = api.get(&path, SUBMITTER).await?;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
    }
    let hold = api.take(&id).await?;
    let claim = json!({ "token": hold.token, "executor": "e", "entry": hold.entry });
    let (status, answer) = api
        .post(&format!("/v1/jobs/{id}/claim?"), EXECUTOR, claim)
        .await?;
    assert_eq!(status, StatusCode::OK, "{answer}");
    api.stop().await
}

async fn health_metrics_and_openapi_are_served(backend: Backend) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let id = api.submit_noop().await?;
    let done = api.submit_noop().await?;
    let (hold, _, _) = api.take_and_claim(&done, "e").await?;
    api.finish(
        &done,
        json!({ "token": hold.token, "status_code": "SUCCEEDED" }),
    )
    .await?;
    api.get(&format!("/v1/jobs/{id}"), SUBMITTER).await?;

    let (status, health) = api.call(Method::GET, "/healthz", None, None).await?;
    assert_eq!(
        (status, health),
        (StatusCode::OK, json!({ "status": "ok" }))
    );
    let (status, ready) = api.call(Method::GET, "/readyz", None, None).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ready,
        json!({ "status": "ready", "database": "ok", "zookeeper": "connected" })
    );

    let response = api.http.get(format!("{}/metrics", api.base)).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()?
        .starts_with("text/plain"));
    let text = response.text().await?;
    for expected in [
        r#"drover_jobs{state="QUEUED"} 1"#,
        r#"drover_jobs{state="SUCCESS"} 1"#,
        r#"drover_jobs{state="FAILED"} 0"#,
        "drover_zookeeper_connected 1",
        "# TYPE drover_http_request_duration_seconds histogram",
        r#"route="/v1/jobs/{id}/claim",status="200""#,
        r#"drover_http_request_duration_seconds_bucket{method="POST",route="/v1/jobs",status="201",le="0.001"}"#,
    ] {
        assert!(
            text.contains(expected),
            "metrics lack {expected:?}:\n{text}"
        );
    }

    let (status, doc) = api.call(Method::GET, "/openapi.json", None, None).await?;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3."),
        "{doc:.300}"
    );
    for path in [
        "/v1/jobs",
        "/v1/jobs/{id}/claim",
        "/v1/jobs/{id}/logs",
        "/v1/resolve/{fragment}",
        "/v1/executors",
    ] {
        assert!(doc["paths"][path].is_object(), "openapi lacks {path}");
    }
    for schema in [
        "Job",
        "SubmitJob",
        "ApiError",
        "Claim",
        "HeartbeatReply",
        "ExecutorInfo",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "openapi lacks {schema}"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    api.stop().await
}
