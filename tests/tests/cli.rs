//! The real `drover` binary against a real API: `drover api` itself (a child process,
//! SQLite in a temporary directory, bearer tokens) on a real ZooKeeper. A fake executor
//! drives jobs through the executor endpoints with `ApiClient`.
//!
//! The binary is built by the first test that needs it (`cargo build -p drover-cli`),
//! into the target directory this test runs from.

mod cli_support;

use std::time::{Duration, SystemTime};

use anyhow::ensure;
use drover_coordination::{ExecutorInfo, Membership};
use drover_core::{JobId, State, StatusCode};
use drover_model::{Job, StoredLogLine};
use drover_tests::free_port;
use drover_tests::{connect, within};

use crate::cli_support::{ids, json, run_drover, FakeExecutor, Sandbox, ADMIN, RUN, SUBMITTER};

#[tokio::test]
async fn jobs_are_submitted_listed_shown_and_controlled_by_partial_id() -> anyhow::Result<()> {
    let sandbox = Sandbox::start().await?;
    let first = sandbox
        .submit(&["noop", "-p", "n=3", "-p", "name=hello", "--priority", "5"])
        .await?;
    let second = sandbox.submit(&["sleep", "-p", "seconds=60"]).await?;
    let short = &first.to_string()[..8];

    // ls: a table with short ids, JSON with everything, filters.
    let ls = sandbox.drover(Some(SUBMITTER), &["ls"]).await?.expect(0)?;
    assert!(ls.stdout.starts_with("ID"), "{ls:#?}");
    assert!(
        ls.stdout.contains(short) && ls.stdout.contains("sleep"),
        "{ls:#?}"
    );
    let listed: Vec<Job> = json(
        &sandbox
            .drover(Some(SUBMITTER), &["ls", "-o", "json"])
            .await?,
    )?;
    assert_eq!(ids(&listed), [second, first], "newest first");
    let newest = sandbox
        .drover(Some(SUBMITTER), &["ls", "--limit", "1"])
        .await?
        .expect(0)?;
    assert!(
        newest.stdout.lines().count() == 2 && newest.stderr.contains("--all"),
        "one job and a hint that more match: {newest:#?}"
    );
    let filtered = sandbox
        .drover(
            Some(SUBMITTER),
            &[
                "ls", "--action", "sleep", "--state", "queued", "-o", "json", "--all",
            ],
        )
        .await?;
    assert_eq!(ids(&json::<Vec<Job>>(&filtered)?), [second]);

    // show: a partial id; -o json is the API's Job.
    let show = sandbox
        .drover(Some(SUBMITTER), &["show", short])
        .await?
        .expect(0)?;
    assert!(
        show.stdout.contains(&first.to_string()) && show.stdout.contains("hello"),
        "{show:#?}"
    );
    let shown: Job = json(
        &sandbox
            .drover(Some(SUBMITTER), &["show", "-o", "json", short])
            .await?,
    )?;
    assert_eq!(shown.id, first);
    assert_eq!(shown.params, serde_json::json!({"n": 3, "name": "hello"}));
    assert_eq!(shown.priority.get(), 5);

    // Every v4 id contains "-4" and none starts with it: both jobs match.
    let ambiguous = sandbox
        .drover(Some(SUBMITTER), &["show", "--", "-4"])
        .await?
        .expect(4)?;
    assert!(ambiguous.stderr.contains("ambiguous"), "{ambiguous:#?}");
    for id in [first, second] {
        assert!(ambiguous.stderr.contains(&id.to_string()), "{ambiguous:#?}");
    }
    let unknown = JobId::new().to_string();
    let missing = sandbox
        .drover(Some(SUBMITTER), &["show", &unknown])
        .await?
        .expect(4)?;
    assert!(missing.stderr.contains("no job"), "{missing:#?}");
    let malformed = sandbox
        .drover(Some(SUBMITTER), &["show", "not-an-id"])
        .await?
        .expect(2)?;
    assert!(malformed.stderr.contains("not a job id"), "{malformed:#?}");

    // cancel (queued: at once), then again (terminal: refused with the state).
    let cancel = sandbox
        .drover(Some(SUBMITTER), &["cancel", short])
        .await?
        .expect(0)?;
    assert!(cancel.stdout.contains("CANCELED"), "{cancel:#?}");
    assert_eq!(
        sandbox.job(first).await?.status_code,
        StatusCode::CancelledByUser
    );
    let again = sandbox
        .drover(Some(SUBMITTER), &["cancel", short])
        .await?
        .expect(4)?;
    assert!(again.stderr.contains("CANCELED"), "{again:#?}");

    // retry prints the new id, linked to the old one.
    let retry = sandbox
        .drover(Some(SUBMITTER), &["retry", short])
        .await?
        .expect(0)?;
    let retried: JobId = retry.stdout.trim().parse()?;
    let job = sandbox.job(retried).await?;
    assert_eq!(
        (job.retry_of, job.state, job.action.as_str()),
        (Some(first), State::Queued, "noop")
    );

    // kill needs an admin token; missing tokens are refused.
    let retried = retried.to_string();
    let forbidden = sandbox
        .drover(Some(SUBMITTER), &["kill", &retried])
        .await?
        .expect(4)?;
    assert!(forbidden.stderr.contains("admin"), "{forbidden:#?}");
    let anonymous = sandbox.drover(None, &["ls"]).await?.expect(4)?;
    assert!(anonymous.stderr.contains("token"), "{anonymous:#?}");
    sandbox
        .drover(Some(ADMIN), &["kill", &retried])
        .await?
        .expect(0)?;
    let job = sandbox.job(retried.parse()?).await?;
    assert_eq!(
        (job.state, job.status_code),
        (State::Canceled, StatusCode::KilledByAdmin)
    );

    // An idempotency key returns the existing job instead of a new one.
    let keyed = sandbox
        .submit(&["noop", "--idempotency-key", "nightly-1"])
        .await?;
    let again = sandbox
        .drover(
            Some(SUBMITTER),
            &["submit", "noop", "--idempotency-key", "nightly-1"],
        )
        .await?
        .expect(0)?;
    assert_eq!(again.stdout.trim(), keyed.to_string());
    assert!(again.stderr.contains("not submitted again"), "{again:#?}");

    executors_are_listed(&sandbox).await?;
    sandbox.stop().await
}

async fn executors_are_listed(sandbox: &Sandbox) -> anyhow::Result<()> {
    let empty = sandbox
        .drover(Some(SUBMITTER), &["executors"])
        .await?
        .expect(0)?;
    assert!(empty.stdout.is_empty(), "{empty:#?}");
    let session = connect(&sandbox.zk.connect_string(), Duration::from_secs(5)).await?;
    let info = ExecutorInfo {
        id: "exec-7".to_owned(),
        host: "node-a".to_owned(),
        slots: 4,
        busy: 1,
        version: "0.1.0".to_owned(),
        started: SystemTime::now(),
        actions: Default::default(),
        tags: Vec::new(),
        drain: None,
        heartbeat_ms: None,
        disk: None,
    };
    let _registration = Membership::new(&session).register(info.clone()).await?;
    let table = sandbox
        .drover(Some(SUBMITTER), &["executors"])
        .await?
        .expect(0)?;
    assert!(
        table.stdout.contains("exec-7") && table.stdout.contains("node-a"),
        "{table:#?}"
    );
    let listed: Vec<drover_model::ExecutorInfo> = json(
        &sandbox
            .drover(Some(SUBMITTER), &["executors", "-o", "json"])
            .await?,
    )?;
    assert_eq!(
        listed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["exec-7"]
    );
    Ok(())
}

#[tokio::test]
async fn logs_are_printed_and_followed_until_the_job_ends() -> anyhow::Result<()> {
    let sandbox = Sandbox::start().await?;
    let id = sandbox.submit(&["noop"]).await?;
    let executor = FakeExecutor::claim(&sandbox, id).await?;
    executor.log(&["one", "two"]).await?;
    let short = &id.to_string()[..8];

    let logs = sandbox
        .drover(Some(SUBMITTER), &["logs", short])
        .await?
        .expect(0)?;
    assert_eq!(logs.stdout, "one\ntwo\n");
    let as_json = sandbox
        .drover(Some(SUBMITTER), &["logs", "-o", "json", short])
        .await?
        .expect(0)?;
    let lines: Vec<StoredLogLine> = as_json
        .stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(
        lines.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(),
        ["one", "two"]
    );

    let mut follow = sandbox.spawn(SUBMITTER, &["logs", "-f", short]).await?;
    assert_eq!(follow.expect_line("the first line", RUN).await?, "one");
    assert_eq!(follow.expect_line("the second line", RUN).await?, "two");
    executor.log(&["three"]).await?;
    assert_eq!(
        follow
            .expect_line("a line logged while following", RUN)
            .await?,
        "three"
    );
    executor.finish(StatusCode::Succeeded, 0).await?;
    let status = within("logs -f to end with the job", RUN, follow.wait()).await??;
    ensure!(
        status.success(),
        "logs -f: {status}; stderr:\n{}",
        follow.stderr()
    );
    sandbox.stop().await
}

#[tokio::test]
async fn logs_and_show_write_a_jobs_control_characters_escaped() -> anyhow::Result<()> {
    let sandbox = Sandbox::start().await?;
    let id = sandbox.submit(&["noop"]).await?;
    let executor = FakeExecutor::claim(&sandbox, id).await?;
    executor.log(&["\x1b[31mred\x1b[0m\tplain"]).await?;
    executor
        .finish_saying(StatusCode::NonzeroExit, 1, "\x1b]0;owned\x07failed\r")
        .await?;
    let short = &id.to_string()[..8];
    let logs = sandbox
        .drover(Some(SUBMITTER), &["logs", short])
        .await?
        .expect(0)?;
    assert_eq!(logs.stdout, "\\x1b[31mred\\x1b[0m\tplain\n");
    let show = sandbox
        .drover(Some(SUBMITTER), &["show", short])
        .await?
        .expect(0)?;
    assert!(!show.stdout.contains('\x1b'), "{show:#?}");
    assert!(
        show.stdout
            .contains("message:         \\x1b]0;owned\\x07failed\\x0d\n"),
        "{show:#?}"
    );
    let job: Job = json(
        &sandbox
            .drover(Some(SUBMITTER), &["show", "-o", "json", short])
            .await?,
    )?;
    assert_eq!(job.status_message, "\x1b]0;owned\x07failed\r");
    sandbox.stop().await
}

#[tokio::test]
async fn submit_wait_exits_with_the_outcome_of_the_job() -> anyhow::Result<()> {
    let sandbox = Sandbox::start().await?;
    for (status_code, exit_code, state, expected) in [
        (StatusCode::Succeeded, 0, "SUCCESS", 0),
        (StatusCode::NonzeroExit, 3, "FAILED", 1),
    ] {
        let mut wait = sandbox
            .spawn(SUBMITTER, &["submit", "noop", "--wait"])
            .await?;
        let id: JobId = wait.expect_line("the job id", RUN).await?.parse()?;
        let executor = FakeExecutor::claim(&sandbox, id).await?;
        executor.progress(50).await?;
        executor.finish(status_code, exit_code).await?;
        let summary = wait.expect_line("the final status", RUN).await?;
        assert!(
            summary.contains(state) && summary.contains(status_code.as_str()),
            "{summary}"
        );
        let status = within("submit --wait to exit", RUN, wait.wait()).await??;
        assert_eq!(
            status.code(),
            Some(expected),
            "{summary}; stderr:\n{}",
            wait.stderr()
        );
    }
    sandbox.stop().await
}

#[tokio::test]
async fn bad_input_and_a_missing_api_are_clear_errors() -> anyhow::Result<()> {
    let url = format!("http://127.0.0.1:{}", free_port()?);
    let down = run_drover(Some(&url), None, &["ls"]).await?.expect(3)?;
    assert!(
        down.stderr
            .contains(&format!("cannot reach the drover API at {url}"))
            && down.stderr.contains("DROVER_URL"),
        "{down:#?}"
    );
    let bad_param = run_drover(Some(&url), None, &["submit", "noop", "-p", "novalue"])
        .await?
        .expect(2)?;
    assert!(bad_param.stderr.contains("key=value"), "{bad_param:#?}");
    let bad_url = run_drover(Some("localhost:8080"), None, &["ls"])
        .await?
        .expect(2)?;
    assert!(bad_url.stderr.contains("http://host:port"), "{bad_url:#?}");
    let bad_priority = run_drover(Some(&url), None, &["submit", "noop", "--priority", "1000"])
        .await?
        .expect(2)?;
    assert!(bad_priority.stderr.contains("999"), "{bad_priority:#?}");
    let help = run_drover(None, None, &["--help"]).await?.expect(0)?;
    assert!(help.stdout.contains("Exit codes"), "{help:#?}");
    Ok(())
}

#[tokio::test]
async fn the_api_role_rejects_a_bad_configuration() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("drover.toml");
    std::fs::write(&config, "[api]\nlisen = \"127.0.0.1:1\"\n")?;
    let config = config.to_string_lossy().into_owned();
    let misspelt = run_drover(None, None, &["api", "--config", &config])
        .await?
        .expect(2)?;
    assert!(misspelt.stderr.contains("lisen"), "{misspelt:#?}");
    let missing = run_drover(None, None, &["api", "--config", "/nonexistent/drover.toml"])
        .await?
        .expect(2)?;
    assert!(
        missing.stderr.contains("/nonexistent/drover.toml"),
        "{missing:#?}"
    );
    Ok(())
}
