//! The operator's toolbox on a real cluster (ZooKeeper, `drover api`, `drover executor`
//! processes, Docker): pause and resume, remote drain and undrain, prepare-for-reboot,
//! and who may give these orders.

mod executor_support;

use std::time::{Duration, Instant};

use anyhow::ensure;
use drover_core::{JobId, State, StatusCode};
use executor_support::{drover, running_containers_of, Cluster, ExecutorOptions, ADMIN};
use futures::future::try_join_all;
use serde_json::json;

/// Every job of `ids` is still queued, never attempted.
async fn none_started(cluster: &Cluster, ids: &[JobId]) -> anyhow::Result<()> {
    let admin = cluster.admin()?;
    for id in ids {
        let job = admin.get(*id).await?;
        ensure!(
            job.state == State::Queued && job.attempts == 0,
            "job {id} started while its action was paused: {job:#?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_paused_action_waits_through_restarts_and_runs_once_resumed() -> anyhow::Result<()> {
    use nix::sys::signal::Signal;
    let mut cluster = Cluster::start().await?;
    let mut executor = cluster
        .executor(&ExecutorOptions::new("exec-p1", 4))
        .await?;
    let running =
        try_join_all((0..4).map(|_| cluster.submit("sleep", json!({"seconds": 3})))).await?;
    for id in &running {
        cluster
            .reaches(*id, State::Running, Duration::from_secs(30))
            .await?;
    }
    let (code, out, err) = drover(&cluster, &["pause", "sleep", "--reason", "db upgrade"]).await?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("paused: action sleep, by root since") && out.contains("db upgrade"),
        "{out}"
    );
    let queued =
        try_join_all((0..50).map(|_| cluster.submit("sleep", json!({"seconds": 0})))).await?;
    let other = cluster.submit("noop", json!({})).await?;

    // Ten seconds: the running ones finish, another action runs, none of the 50 starts.
    let paused_at = Instant::now();
    while paused_at.elapsed() < Duration::from_secs(10) {
        none_started(&cluster, &queued).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for id in &running {
        let job = cluster.finished(*id, Duration::from_secs(1)).await?;
        assert_eq!(job.status_code, StatusCode::Succeeded, "{job:#?}");
    }
    let job = cluster.finished(other, Duration::from_secs(1)).await?;
    assert_eq!(
        job.status_code,
        StatusCode::Succeeded,
        "only sleep is paused"
    );
    let waiting = cluster.admin()?.get(queued[0]).await?;
    assert_eq!(
        waiting.status_code,
        StatusCode::WaitingPaused,
        "{waiting:#?}"
    );
    assert!(
        waiting
            .status_message
            .starts_with("action sleep is paused by root since")
            && waiting.status_message.contains("drover resume sleep"),
        "{}",
        waiting.status_message
    );
    let (code, out, _) = drover(&cluster, &["status"]).await?;
    assert!(
        code == 0 && out.contains("paused: action sleep") && out.contains("exec-p1"),
        "{out}"
    );

    // The pause lives in ZooKeeper: a restarted API and a new executor still hold it.
    cluster.kill_api().await?;
    cluster.start_api().await?;
    executor.signal(Signal::SIGTERM)?;
    assert_eq!(executor.exit_code(Duration::from_secs(30)).await?, Some(0));
    let _fresh = cluster
        .executor(&ExecutorOptions::new("exec-p2", 4))
        .await?;
    let restarted = Instant::now();
    while restarted.elapsed() < Duration::from_secs(3) {
        none_started(&cluster, &queued).await?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let waiting = cluster.admin()?.get(queued[1]).await?;
    assert_eq!(waiting.status_code, StatusCode::WaitingPaused);

    let (code, out, err) = drover(&cluster, &["resume", "sleep"]).await?;
    assert_eq!((code, out.as_str()), (0, "nothing is paused\n"), "{err}");
    let resumed = Instant::now();
    for id in &queued {
        let job = cluster.finished(*id, Duration::from_secs(60)).await?;
        assert_eq!(
            (job.status_code, job.attempts, job.executor.as_deref()),
            (StatusCode::Succeeded, 1, Some("exec-p2")),
            "{job:#?}"
        );
    }
    eprintln!(
        "50 paused jobs ran {:?} after the resume",
        resumed.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn a_cluster_wide_pause_holds_every_action_and_resume_lifts_it() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let _executor = cluster
        .executor(&ExecutorOptions::new("exec-all", 2))
        .await?;
    let (code, out, err) = drover(&cluster, &["pause"]).await?;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("paused: the whole cluster, by root"),
        "{out}"
    );
    let ids = try_join_all((0..6).map(|n| {
        let action = if n % 2 == 0 { "noop" } else { "echo" };
        cluster.submit(action, json!({"n": n}))
    }))
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    none_started(&cluster, &ids).await?;
    let shown = cluster.admin()?.get(ids[1]).await?;
    assert!(
        shown.status_code == StatusCode::WaitingPaused
            && shown
                .status_message
                .starts_with("the cluster is paused by root")
            && shown.status_message.contains("`drover resume`"),
        "{shown:#?}"
    );
    let (code, out, _) = drover(&cluster, &["status", "-o", "json"]).await?;
    let status: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    assert!(
        code == 0 && status["orders"]["pauses"]["all"]["by"] == "root",
        "{out}"
    );
    let (code, out, _) = drover(&cluster, &["resume"]).await?;
    assert_eq!((code, out.as_str()), (0, "nothing is paused\n"));
    for id in &ids {
        let job = cluster.finished(*id, Duration::from_secs(60)).await?;
        assert_eq!((job.status_code, job.attempts), (StatusCode::Succeeded, 1));
    }
    Ok(())
}

#[tokio::test]
async fn drain_stops_taking_lets_running_jobs_finish_and_stays_registered_until_undrained(
) -> anyhow::Result<()> {
    use nix::sys::signal::Signal;
    let cluster = Cluster::start().await?;
    let mut draining = cluster
        .executor(&ExecutorOptions::new("exec-drain", 4))
        .await?;
    let running =
        try_join_all((0..4).map(|_| cluster.submit("sleep", json!({"seconds": 5})))).await?;
    for id in &running {
        cluster
            .reaches(*id, State::Running, Duration::from_secs(30))
            .await?;
    }
    let (code, _, err) = drover(&cluster, &["drain", "exec-drain", "--deadline", "1m"]).await?;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("drain ordered for exec-drain"), "{err}");
    let queued = try_join_all((0..20).map(|_| cluster.submit("noop", json!({})))).await?;
    let _other = cluster
        .executor(&ExecutorOptions::new("exec-fresh", 4))
        .await?;
    for id in &running {
        let job = cluster.finished(*id, Duration::from_secs(30)).await?;
        assert_eq!(
            (job.status_code, job.executor.as_deref(), job.attempts),
            (StatusCode::Succeeded, Some("exec-drain"), 1)
        );
    }
    for id in &queued {
        let job = cluster.finished(*id, Duration::from_secs(30)).await?;
        assert_eq!(
            (job.status_code, job.executor.as_deref()),
            (StatusCode::Succeeded, Some("exec-fresh"))
        );
    }
    // `--wait` on an already drained executor returns at once with its state.
    let (code, out, err) = drover(&cluster, &["drain", "exec-drain", "--wait"]).await?;
    assert!(
        code == 0 && out.starts_with("exec-drain: drained (by root"),
        "{out}{err}"
    );
    let (_, table, _) = drover(&cluster, &["executors"]).await?;
    let row = table
        .lines()
        .find(|l| l.starts_with("exec-drain "))
        .unwrap_or_default();
    assert!(
        row.contains("drained (by root"),
        "still registered, drained:\n{table}"
    );
    let log = draining.log();
    for step in [
        "drain ordered",
        "stopped taking entries",
        "every running job finished",
        "drained: registered and taking nothing",
    ] {
        assert!(log.contains(step), "the drain log lacks {step:?}:\n{log}");
    }
    assert!(
        !log.contains("deregistered") && !log.contains("executor stopped"),
        "a drained executor stays up and registered:\n{log}"
    );

    // Undrained, it takes again; the other one leaves so the work can only go there.
    let mut fresh_gone = _other;
    fresh_gone.signal(Signal::SIGTERM)?;
    assert_eq!(
        fresh_gone.exit_code(Duration::from_secs(30)).await?,
        Some(0)
    );
    let (code, out, _) = drover(&cluster, &["undrain", "exec-drain"]).await?;
    assert_eq!(
        (code, out.as_str()),
        (0, "exec-drain: drain withdrawn: it takes jobs again\n")
    );
    let again = try_join_all((0..5).map(|_| cluster.submit("noop", json!({})))).await?;
    for id in &again {
        let job = cluster.finished(*id, Duration::from_secs(30)).await?;
        assert_eq!(
            (job.status_code, job.executor.as_deref()),
            (StatusCode::Succeeded, Some("exec-drain"))
        );
    }
    assert!(draining.log().contains("undrained: taking entries again"));

    // A drain ends with the process: the same id restarted takes work.
    let (code, _, err) = drover(&cluster, &["drain", "exec-drain", "--wait"]).await?;
    assert_eq!(code, 0, "{err}");
    draining.signal(Signal::SIGTERM)?;
    assert_eq!(draining.exit_code(Duration::from_secs(30)).await?, Some(0));
    let restarted = cluster
        .executor(&ExecutorOptions::new("exec-drain", 2))
        .await?;
    let id = cluster.submit("noop", json!({})).await?;
    let job = cluster.finished(id, Duration::from_secs(30)).await?;
    assert_eq!(job.executor.as_deref(), Some("exec-drain"));
    let orders = cluster.admin()?.orders().await?;
    assert!(
        orders.drains.is_empty(),
        "the restarted executor withdrew the stale order: {orders:?}\n{}",
        restarted.log()
    );
    Ok(())
}

#[tokio::test]
async fn prepare_for_reboot_gives_back_what_outlives_the_deadline_and_says_ready_once_clear(
) -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let node = |id: &str, host: &str| ExecutorOptions {
        host: Some(host.to_owned()),
        ..ExecutorOptions::new(id, 1)
    };
    let _rebooting = cluster.executor(&node("exec-node1", "node-1")).await?;
    let long = cluster.submit("linger", json!({"seconds": 8})).await?;
    cluster
        .reaches(long, State::Running, Duration::from_secs(30))
        .await?;
    drover_tests::wait_until("its container to run", Duration::from_secs(30), || async {
        running_containers_of("exec-node1")
            .await
            .is_ok_and(|c| c.len() == 1)
    })
    .await?;
    let _elsewhere = cluster.executor(&node("exec-node2", "node-2")).await?;
    let url = cluster.url.clone();
    let reboot = tokio::spawn(async move {
        drover_tests::run_drover(
            &url,
            ADMIN,
            &["prepare-for-reboot", "--host", "node-1", "--deadline", "2s"],
            Duration::from_secs(90),
        )
        .await
    });
    // Until the CLI says ready, the container may run; once it says so, it must not.
    let (code, out, err) = reboot.await??;
    let left = running_containers_of("exec-node1").await?;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out, "READY TO REBOOT: node-1 is drained and runs no drover container\n",
        "{err}"
    );
    assert!(left.is_empty(), "READY TO REBOOT with {left:?} running");
    assert!(err.contains("waiting for exec-node1"), "{err}");
    let job = cluster.finished(long, Duration::from_secs(60)).await?;
    assert_eq!(
        (job.status_code, job.executor.as_deref(), job.attempts),
        (StatusCode::Succeeded, Some("exec-node2"), 2),
        "given back at the deadline, rerun elsewhere: {job:#?}"
    );
    let (_, shown, _) = drover(&cluster, &["show", &long.to_string()]).await?;
    let runs: Vec<&str> = shown
        .lines()
        .skip_while(|l| *l != "attempts:")
        .skip(2)
        .take(2)
        .collect();
    assert!(
        runs.len() == 2
            && runs[0].contains("exec-node1")
            && runs[0].contains("ENQUEUED")
            && runs[1].contains("exec-node2")
            && runs[1].contains("SUCCEEDED"),
        "drover show lists both runs:\n{shown}"
    );
    // An unknown host is a usage error that says where to look.
    let (code, _, err) = drover(&cluster, &["prepare-for-reboot", "--host", "nowhere"]).await?;
    assert!(
        code == 2 && err.contains("no executor is registered from host \"nowhere\""),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn only_admins_give_orders_and_bad_ones_say_why() -> anyhow::Result<()> {
    use reqwest::StatusCode as Http;
    let cluster = Cluster::start_with(
        "[[api.tokens]]\nname = \"alice\"\ntoken = \"alice-secret\"\nrole = \"submitter\"\n\
         [[api.tokens]]\nname = \"cron\"\ntoken = \"cron-secret\"\nrole = \"distributor\"\n",
    )
    .await?;
    let _executor = cluster.executor(&ExecutorOptions::new("exec-r", 1)).await?;
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, token: &str, body: serde_json::Value| {
        let request = http
            .request(method, format!("{}{path}", cluster.url))
            .bearer_auth(token)
            .json(&body);
        async move {
            let response = request.send().await?;
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            anyhow::Ok((status, body))
        }
    };
    let post = reqwest::Method::POST;
    let orders = [
        ("/v1/control/pause", json!({"actions": ["noop"]})),
        ("/v1/control/resume", json!({"actions": ["noop"]})),
        ("/v1/executors/exec-r/drain", json!({"deadline_ms": 1000})),
        ("/v1/executors/exec-r/undrain", json!({})),
        (
            "/v1/jobs/67e55044-10b1-426f-9247-bb680e5fe0c8/cleanup",
            json!({}),
        ),
    ];
    for token in ["alice-secret", "cron-secret", "executor-secret"] {
        for (path, body) in &orders {
            let (status, answer) = call(post.clone(), path, token, body.clone()).await?;
            assert_eq!(status, Http::FORBIDDEN, "{path} by {token}: {answer}");
            assert!(answer["message"]
                .as_str()
                .unwrap_or_default()
                .contains("admin"));
        }
        let (status, _) = call(reqwest::Method::GET, "/v1/control", token, json!(null)).await?;
        assert_eq!(status, Http::OK, "every role reads the orders");
    }
    let orders_now = cluster.admin()?.orders().await?;
    assert!(orders_now.pauses.is_empty() && orders_now.drains.is_empty());
    for (path, body, fix) in [
        (
            "/v1/control/pause",
            json!({"actions": ["no/slash"]}),
            "action name",
        ),
        (
            "/v1/control/pause",
            json!({"reason": "two\nlines"}),
            "one line",
        ),
        (
            "/v1/control/resume",
            json!({"reason": "why"}),
            "leave it out",
        ),
        (
            "/v1/executors/exec-r/drain",
            json!({"deadline_ms": 100_000_000}),
            "one day",
        ),
        (
            "/v1/control/pause",
            json!({"action": "noop"}),
            "unknown field",
        ),
    ] {
        let (status, answer) = call(post.clone(), path, ADMIN, body).await?;
        assert_eq!(status, Http::BAD_REQUEST, "{path}: {answer}");
        assert!(
            answer["message"].as_str().unwrap_or_default().contains(fix),
            "{path}: {answer}"
        );
    }
    let (status, answer) =
        call(post.clone(), "/v1/executors/nobody/drain", ADMIN, json!({})).await?;
    assert_eq!(status, Http::NOT_FOUND);
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no executor \"nobody\" is registered"),
        "{answer}"
    );
    Ok(())
}

#[tokio::test]
async fn a_job_whose_executor_stopped_heartbeating_is_shown_stale() -> anyhow::Result<()> {
    use nix::sys::signal::Signal;
    let cluster = Cluster::start().await?;
    let frozen = cluster
        .executor(&ExecutorOptions::new("exec-frozen", 1))
        .await?;
    let id = cluster.submit("sleep", json!({"seconds": 8})).await?;
    cluster
        .reaches(id, State::Running, Duration::from_secs(30))
        .await?;
    let (code, out, err) = drover(&cluster, &["ls", "--stale"]).await?;
    assert!(
        code == 0 && out.is_empty() && err.contains("no stale jobs"),
        "{out}{err}"
    );
    // Heartbeats every 500 ms: silent for more than 1.5 s is stale.
    frozen.signal(Signal::SIGSTOP)?;
    let short = &id.to_string()[..8];
    let listed = drover_tests::wait_until(
        "the job to be listed stale",
        Duration::from_secs(20),
        || async {
            drover(&cluster, &["ls", "--stale"])
                .await
                .is_ok_and(|(code, out, _)| code == 0 && out.contains(short))
        },
    )
    .await;
    let (_, shown, _) = drover(&cluster, &["show", short]).await?;
    let (_, top, _) = drover(&cluster, &["top", "--once"]).await?;
    let (_, inspect, _) = drover(&cluster, &["inspect", short]).await?;
    frozen.signal(Signal::SIGCONT)?;
    listed?;
    assert!(
        shown.contains("STALE: more than three heartbeat intervals ago"),
        "{shown}"
    );
    let row = top
        .lines()
        .find(|l| l.starts_with(short))
        .unwrap_or_default();
    assert!(
        top.starts_with("1 running, 1 stale")
            && row.contains("exec-frozen")
            && row.contains("STALE"),
        "{top}"
    );
    assert!(
        inspect.contains("ran on executor exec-frozen")
            && inspect.contains(&format!("docker exec -it $(docker ps -q --filter label=drover.job={id} --filter label=drover.attempt=1) sh")),
        "{inspect}"
    );
    Ok(())
}

const TOKEN: &str = "tok-8d41c09e7b";
const SITE_PASSWORD: &str = "s1te-pass-42";
/// The executor's own API token in the harness.
const EXECUTOR_TOKEN: &str = "executor-secret";

#[tokio::test]
async fn secrets_whole_split_across_writes_or_in_urls_never_reach_the_database(
) -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.add_action(
        "blabber",
        &format!(
            r#"name = "blabber"
image = "drover/busybox:latest"
pull = "never"
command = ["sh", "-c", "echo \"whole: $TOKEN\"; printf 'split: %s' \"$(echo $TOKEN | cut -c1-7)\"; sleep 0.3; printf '%s\\n' \"$(echo $TOKEN | cut -c8-)\"; echo \"clone https://bot:$TOKEN@git.example.com/x.git\"; echo 'fetch https://alice:pl41n-pass@files.example.com/data' >&2; echo 'own token {EXECUTOR_TOKEN} and site {SITE_PASSWORD}'; echo done"]

[secrets]
TOKEN = {{ env = "BLABBER_TOKEN" }}
"#
        ),
    )?;
    let _executor = cluster
        .executor(&ExecutorOptions {
            env: vec![
                ("BLABBER_TOKEN".to_owned(), TOKEN.to_owned()),
                ("SITE_PASSWORD".to_owned(), SITE_PASSWORD.to_owned()),
            ],
            secret_env: vec!["SITE_PASSWORD".to_owned()],
            ..ExecutorOptions::new("exec-quiet", 1)
        })
        .await?;
    let id = cluster.submit("blabber", json!({})).await?;
    let job = cluster.finished(id, Duration::from_secs(60)).await?;
    assert_eq!(job.status_code, StatusCode::Succeeded, "{job:#?}");

    // Behind the API's back: every stored line and message.
    let db = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(cluster.dir.path().join("drover.db"))
            .busy_timeout(Duration::from_secs(10)),
    )
    .await?;
    let lines: Vec<(String, String)> =
        sqlx::query_as("SELECT stream, line FROM job_logs WHERE job_id = $1 ORDER BY seq")
            .bind(id.to_string())
            .fetch_all(&db)
            .await?;
    let messages: Vec<String> = sqlx::query_scalar("SELECT status_message FROM jobs")
        .fetch_all(&db)
        .await?;
    db.close().await;
    let stored: Vec<String> = lines
        .iter()
        .map(|(stream, line)| format!("{stream}: {line}"))
        .chain(messages)
        .collect();
    // Any six bytes in a row of a secret is a leak.
    for secret in [TOKEN, SITE_PASSWORD, EXECUTOR_TOKEN, "pl41n-pass"] {
        for text in &stored {
            let leaked = secret
                .as_bytes()
                .windows(6)
                .any(|w| text.contains(std::str::from_utf8(w).unwrap_or(secret)));
            assert!(
                !leaked,
                "{secret:?} leaked in {text:?}; stored:\n{stored:#?}"
            );
        }
    }
    for expected in [
        "stdout: whole: ***",
        "stdout: split: ***",
        "stdout: clone https://bot:***@git.example.com/x.git",
        "stderr: fetch https://alice:***@files.example.com/data",
        "stdout: own token *** and site ***",
        "stdout: done",
    ] {
        assert!(
            stored.iter().any(|l| l == expected),
            "no {expected:?} in {stored:#?}"
        );
    }
    Ok(())
}

/// Containers (running or not) of job `id` on the daemon.
async fn containers_of_job(id: JobId) -> anyhow::Result<Vec<String>> {
    let out = tokio::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=drover.job={id}")])
        .output()
        .await?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect())
}

#[tokio::test]
async fn kill_takes_several_ids_and_cleanup_removes_what_is_left_on_the_executor(
) -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let _executor = cluster.executor(&ExecutorOptions::new("exec-k", 2)).await?;
    // Its record says what drover takes on its engine (the catalogue's images at least).
    let admin = cluster.admin()?;
    drover_tests::wait_until(
        "the executor's disk use",
        Duration::from_secs(30),
        || async {
            admin.executors().await.is_ok_and(|list| {
                list.iter()
                    .any(|e| e.disk.as_ref().is_some_and(|d| d.image_bytes > 1_000_000))
            })
        },
    )
    .await?;
    let (_, table, _) = drover(&cluster, &["executors"]).await?;
    assert!(table.contains(" vol, img "), "{table}");
    let ids =
        try_join_all((0..2).map(|_| cluster.submit("linger", json!({"seconds": 60})))).await?;
    for id in &ids {
        cluster
            .reaches(*id, State::Running, Duration::from_secs(30))
            .await?;
    }
    let shorts: Vec<String> = ids
        .iter()
        .map(|id| id.to_string()[..8].to_owned())
        .collect();
    let (code, out, err) = drover(&cluster, &["kill", &shorts[0], &shorts[1], "--cleanup"]).await?;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.matches("cleaned up on exec-k: no container or volume of job")
            .count(),
        2,
        "{out}"
    );
    for id in &ids {
        let job = cluster.admin()?.get(*id).await?;
        assert_eq!(job.status_code, StatusCode::KilledByAdmin, "{job:#?}");
        assert!(
            containers_of_job(*id).await?.is_empty(),
            "job {id} left a container"
        );
    }

    // Something left behind on the executor's daemon (a crash between stop and remove):
    // killing the killed job again with --cleanup only cleans.
    let label = |k: &str, v: &str| format!("{k}={v}");
    let created = tokio::process::Command::new("docker")
        .args([
            "create",
            "--label",
            &label("drover.job", &ids[0].to_string()),
        ])
        .args(["--label", &label("drover.executor", "exec-k")])
        .args(["--label", &label("drover.cluster", cluster.cluster_id())])
        .args(["drover/busybox:latest", "true"])
        .output()
        .await?;
    ensure!(created.status.success(), "{created:?}");
    assert_eq!(containers_of_job(ids[0]).await?.len(), 1);
    let (code, out, err) = drover(&cluster, &["kill", &shorts[0], "--cleanup"]).await?;
    assert!(
        code == 0 && out.contains("KILLED_BY_ADMIN") && out.contains("cleaned up on exec-k"),
        "{out}{err}"
    );
    assert!(
        containers_of_job(ids[0]).await?.is_empty(),
        "the leftover is gone"
    );
    // Without --cleanup a finished job is refused, as before; an unknown id does not stop
    // the others, and the exit code is the first failure's.
    let (code, _, err) = drover(&cluster, &["kill", &shorts[1]]).await?;
    assert_eq!(code, 4, "{err}");
    let (code, out, err) = drover(&cluster, &["kill", "0000ffff", &shorts[1], "--cleanup"]).await?;
    assert!(
        code == 4 && err.contains("0000ffff") && out.contains("cleaned up on exec-k"),
        "{out}{err}"
    );
    Ok(())
}

#[tokio::test]
async fn an_ambiguous_id_is_chosen_at_a_terminal_and_listed_without_one() -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    // No executor: the jobs stay queued. Every UUID v4 holds "-4": the part matches all.
    let cluster = Cluster::start().await?;
    let ids = try_join_all((0..3).map(|_| cluster.submit("noop", json!({})))).await?;
    let (code, _, err) = drover(&cluster, &["kill", "--", "-4"]).await?;
    assert!(
        code == 4
            && err.contains("is ambiguous: it matches 3 jobs")
            && ids.iter().all(|id| err.contains(&id.to_string())),
        "without a terminal the candidates are listed: {err}"
    );
    none_started(&cluster, &ids).await?;
    let admin = cluster.admin()?;
    for id in &ids {
        assert_eq!(
            admin.get(*id).await?.state,
            State::Queued,
            "nothing was killed"
        );
    }

    // script(1) gives the command a terminal; the answer "2" picks the second candidate.
    let binary = drover_tests::drover_binary().await?;
    let mut child = tokio::process::Command::new("script")
        .args([
            "-qec",
            &format!("{} kill -- -4", binary.display()),
            "/dev/null",
        ])
        .env("DROVER_URL", &cluster.url)
        .env("DROVER_TOKEN", ADMIN)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    tokio::time::sleep(Duration::from_secs(2)).await;
    stdin.write_all(b"2\n").await?;
    stdin.flush().await?;
    let out = drover_tests::within(
        "drover kill at a terminal",
        Duration::from_secs(60),
        child.wait_with_output(),
    )
    .await??;
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(
        screen.contains("which one? [1-3, empty to skip]") && screen.contains("  2)"),
        "{screen}"
    );
    let mut killed = Vec::new();
    for id in &ids {
        if admin.get(*id).await?.status_code == StatusCode::KilledByAdmin {
            killed.push(*id);
        }
    }
    assert_eq!(
        killed.len(),
        1,
        "exactly the chosen job was killed:\n{screen}"
    );
    assert!(screen.contains(&killed[0].to_string()), "{screen}");
    Ok(())
}

#[tokio::test]
async fn an_internal_error_shows_a_fixed_message_and_an_incident_the_executors_log_explains(
) -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    // Docker refuses to create a container on a network that does not exist: drover's
    // failure to run the job, not the job's.
    cluster.add_action(
        "netless",
        r#"name = "netless"
image = "drover/busybox:latest"
pull = "never"
network = "drover-no-such-network-4d2a"
command = ["true"]
"#,
    )?;
    cluster.add_action(
        "typo",
        r#"name = "typo"
image = "drover/busybox:latest"
pull = "never"
command = ["/bin/no-such-command"]
"#,
    )?;
    let executor = cluster
        .executor(&ExecutorOptions::new("exec-ie", 1))
        .await?;
    let typo = cluster.submit("typo", json!({})).await?;
    let job = cluster.finished(typo, Duration::from_secs(60)).await?;
    // The runtime reports it as the start's refusal (400) or, as runc on Docker 20.10
    // does, as exit code 127: either way the job's NONZERO_EXIT, never an internal error.
    assert!(
        job.status_code == StatusCode::NonzeroExit
            && (job.status_message == "exited with code 127"
                || job.status_message.contains("no-such-command")),
        "a command that cannot be run is the job's fault: {job:#?}"
    );
    let id = cluster.submit("netless", json!({})).await?;
    let job = cluster.finished(id, Duration::from_secs(60)).await?;
    assert_eq!(job.status_code, StatusCode::InternalError, "{job:#?}");
    let message = &job.status_message;
    let incident = message
        .strip_prefix("drover could not run this job: an internal error, incident ")
        .and_then(|rest| rest.split('.').next())
        .unwrap_or_default()
        .to_owned();
    assert!(
        incident.len() == 12
            && message.contains("in the log of executor exec-ie")
            && message.contains(&format!("`drover retry {id}`"))
            && !message.contains("no-such-network"),
        "a fixed message with an incident id, without the daemon's words: {message}"
    );
    let log = executor.log();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("incident={incident}")))
        .unwrap_or_default();
    assert!(
        line.contains("internal error") && line.contains("drover-no-such-network-4d2a"),
        "the executor's log carries the full error under the incident:\n{log}"
    );
    Ok(())
}
