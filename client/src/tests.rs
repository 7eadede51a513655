//! The client's request building, without a server (the CLI integration tests run it
//! against a real API).

use super::*;

fn built(request: RequestBuilder) -> reqwest::Request {
    request.build().unwrap()
}

#[test]
fn urls_must_be_http_with_a_host() {
    for bad in [
        "",
        "127.0.0.1:8080",
        "localhost:8080",
        "ftp://h/",
        "http://",
        "http://h/?q=1",
    ] {
        let err = ApiClient::new(bad, None).unwrap_err();
        assert!(
            matches!(err, ClientError::InvalidUrl { .. }),
            "{bad:?}: {err:?}"
        );
        assert!(err.to_string().contains("DROVER_URL"), "{err}");
    }
    for good in [
        "http://127.0.0.1:8080",
        "https://drover.example/",
        " http://h:1 ",
    ] {
        ApiClient::new(good, None).unwrap();
    }
}

#[test]
fn paths_join_the_base_and_encode_the_fragment() {
    let client = ApiClient::new("http://h:1", None).unwrap();
    let request = built(client.request(Method::GET, &["v1", "resolve", "a/b c"]));
    assert_eq!(request.url().as_str(), "http://h:1/v1/resolve/a%2Fb%20c");

    // A path prefix (the API mounted behind a proxy) is kept, with or without a slash.
    for base in ["http://h:1/drover", "http://h:1/drover/"] {
        let client = ApiClient::new(base, None).unwrap();
        let id: JobId = "67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap();
        let request = built(client.job_request(Method::POST, id, Some("cancel")));
        assert_eq!(
            request.url().as_str(),
            "http://h:1/drover/v1/jobs/67e55044-10b1-426f-9247-bb680e5fe0c8/cancel"
        );
    }
}

#[test]
fn the_token_is_sent_as_bearer_and_never_shown() {
    let client = ApiClient::new("http://h:1", Some("s3cret".into())).unwrap();
    let request = built(client.request(Method::GET, &["v1", "jobs"]));
    assert_eq!(request.headers()["authorization"], "Bearer s3cret");
    let shown = format!(
        "{client:?} {:?}",
        ApiClient::builder("http://h:1").token("s3cret")
    );
    assert!(!shown.contains("s3cret"), "{shown}");

    let anonymous = ApiClient::new("http://h:1", Some(String::new())).unwrap();
    let request = built(anonymous.request(Method::GET, &["healthz"]));
    assert!(request.headers().get("authorization").is_none());
}

#[test]
fn list_filters_become_the_query() {
    let client = ApiClient::new("http://h:1", None).unwrap();
    let query = ListJobs {
        state: Some(State::Queued),
        action: Some("sleep".into()),
        limit: Some(5),
        ..ListJobs::default()
    };
    let request = built(client.request(Method::GET, &["v1", "jobs"]).query(&query));
    assert_eq!(
        request.url().query(),
        Some("state=QUEUED&action=sleep&limit=5")
    );

    let request = built(
        client
            .request(Method::GET, &["v1", "jobs"])
            .query(&ListJobs::default()),
    );
    assert_eq!(request.url().query(), None);
}

#[test]
fn calls_are_bounded_by_the_timeout() {
    let client = ApiClient::builder("http://h:1")
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    assert_eq!(client.timeout, Duration::from_secs(3));
    assert_eq!(client.base_text(), "http://h:1");
    assert_eq!(client.for_maintenance().timeout, MAINTENANCE_TIMEOUT);
    let patient = ApiClient::builder("http://h:1")
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    assert_eq!(
        patient.for_maintenance().timeout(),
        Duration::from_secs(600)
    );
}

#[test]
fn defaults_suit_executor_traffic() {
    let client = ApiClient::new("http://h:1", None).unwrap();
    assert_eq!(client.timeout(), DEFAULT_TIMEOUT);
    assert!(DEFAULT_TIMEOUT <= Duration::from_secs(10));
    assert!(DEFAULT_CONNECT_TIMEOUT <= Duration::from_secs(2));
}
