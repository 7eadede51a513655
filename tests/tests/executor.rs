//! The executor against a real cluster: ZooKeeper, `drover api`, `drover executor`
//! processes and the Docker engine.

mod executor_support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use drover_core::{State, StatusCode};
use drover_model::StoredLogLine;
use executor_support::{containers_of, drover, params_volumes_of, Cluster, ExecutorOptions};
use futures::future::try_join_all;
use serde_json::json;

#[tokio::test]
async fn two_hundred_docker_jobs_over_two_executors() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let a = cluster.executor(&ExecutorOptions::new("exec-a", 4)).await?;
    let b = cluster.executor(&ExecutorOptions::new("exec-b", 4)).await?;
    let started = Instant::now();
    let ids = try_join_all((0..200).map(|n| cluster.submit("echo", json!({ "n": n })))).await?;
    let jobs = try_join_all(
        ids.iter()
            .map(|id| cluster.finished(*id, Duration::from_secs(300))),
    )
    .await?;
    eprintln!("200 docker jobs in {:?}", started.elapsed());
    let failed: Vec<_> = jobs
        .iter()
        .filter(|j| j.status_code != StatusCode::Succeeded)
        .collect();
    assert!(failed.is_empty(), "not all succeeded: {failed:#?}");
    let by: HashSet<_> = jobs.iter().filter_map(|j| j.executor.clone()).collect();
    assert_eq!(
        by,
        HashSet::from(["exec-a".to_owned(), "exec-b".to_owned()]),
        "both executors ran jobs"
    );
    let reruns: Vec<_> = jobs.iter().filter(|j| j.attempts != 1).collect();
    assert!(
        reruns.is_empty(),
        "each ran once, but {} ran again: {reruns:#?}\nexec-a:\n{}\nexec-b:\n{}",
        reruns.len(),
        a.log(),
        b.log()
    );
    for executor in ["exec-a", "exec-b"] {
        assert!(
            containers_of(executor).await?.is_empty(),
            "{executor} left containers behind"
        );
    }
    // logs through the API and through `drover logs`
    let admin = cluster.admin()?;
    let page = admin.logs(ids[7], 0, Some(100)).await?;
    let of = |stream: &str| {
        page.lines
            .iter()
            .filter(|l| l.stream == stream)
            .map(|l| l.line.clone())
            .collect::<Vec<_>>()
    };
    // order holds within a stream; Docker interleaves the two streams as it likes
    assert_eq!(of("stdout"), ["hello 7", r#"{"n":7}"#]);
    assert_eq!(of("stderr"), ["to-stderr"]);
    let (code, stdout, stderr) = drover(&cluster, &["logs", &ids[42].to_string()[..8]]).await?;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("hello 42") && stdout.contains("to-stderr"),
        "{stdout}"
    );
    Ok(())
}

#[tokio::test]
async fn every_failure_ends_with_its_status_code_and_a_clear_message() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let _a = cluster.executor(&ExecutorOptions::new("exec-f", 4)).await?;
    let cases = [
        ("fail", StatusCode::NonzeroExit, "exited with code 3"),
        ("hog", StatusCode::NonzeroExit, "memory limit is 8 MiB"),
        ("slow", StatusCode::TimedOut, "timeout of 1.0s"),
        (
            "ghost",
            StatusCode::NonzeroExit,
            "drover/not-here:1 is not available",
        ),
    ];
    let ids = try_join_all(
        cases
            .iter()
            .map(|(action, _, _)| cluster.submit(action, json!({}))),
    )
    .await?;
    for ((action, code, message), id) in cases.iter().zip(ids) {
        let job = cluster.finished(id, Duration::from_secs(60)).await?;
        assert_eq!(job.status_code, *code, "{action}: {job:#?}");
        assert!(
            job.status_message.contains(message),
            "{action}: {:?} should say {message:?}",
            job.status_message
        );
        eprintln!("{action}: {} — {}", job.status_code, job.status_message);
    }
    let failing = cluster.admin()?.get(ids_first(&cluster).await?).await?;
    assert_eq!(failing.exit_code, Some(3));
    assert!(containers_of("exec-f").await?.is_empty());
    Ok(())
}

async fn ids_first(cluster: &Cluster) -> anyhow::Result<drover_core::JobId> {
    let page = cluster
        .admin()?
        .list(&drover_client::ListJobs {
            action: Some("fail".into()),
            ..Default::default()
        })
        .await?;
    Ok(page.jobs[0].id)
}

#[tokio::test]
async fn cancel_and_kill_stop_a_running_container_within_five_seconds() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let _a = cluster.executor(&ExecutorOptions::new("exec-c", 2)).await?;
    let admin = cluster.admin()?;
    let canceled = cluster.submit("linger", json!({"seconds": 60})).await?;
    let killed = cluster.submit("linger", json!({"seconds": 60})).await?;
    for id in [canceled, killed] {
        cluster
            .reaches(id, State::Running, Duration::from_secs(30))
            .await?;
    }
    drover_tests::wait_until(
        "both containers running",
        Duration::from_secs(30),
        || async { containers_of("exec-c").await.is_ok_and(|c| c.len() == 2) },
    )
    .await?;
    let start = Instant::now();
    admin.cancel(canceled).await?;
    admin.kill(killed).await?;
    let a = cluster.finished(canceled, Duration::from_secs(5)).await?;
    let b = cluster.finished(killed, Duration::from_secs(5)).await?;
    eprintln!("cancel and kill final after {:?}", start.elapsed());
    assert_eq!(a.status_code, StatusCode::CancelledByUser);
    assert_eq!(b.status_code, StatusCode::KilledByAdmin);
    drover_tests::wait_until(
        "containers gone",
        Duration::from_secs(5) - start.elapsed().min(Duration::from_secs(5))
            + Duration::from_millis(500),
        || async { containers_of("exec-c").await.is_ok_and(|c| c.is_empty()) },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_killed_executors_job_reruns_elsewhere_and_the_heir_removes_its_container(
) -> anyhow::Result<()> {
    use nix::sys::signal::Signal;
    let cluster = Cluster::start().await?;
    let victim = cluster
        .executor(&ExecutorOptions::new("exec-victim", 1))
        .await?;
    let id = cluster.submit("linger", json!({"seconds": 3})).await?;
    let job = cluster
        .reaches(id, State::Running, Duration::from_secs(30))
        .await?;
    assert_eq!(job.executor.as_deref(), Some("exec-victim"));
    drover_tests::wait_until(
        "the victim's container",
        Duration::from_secs(30),
        || async {
            containers_of("exec-victim")
                .await
                .is_ok_and(|c| c.len() == 1)
        },
    )
    .await?;
    victim.signal(Signal::SIGKILL)?;
    let killed = Instant::now();
    let _heir = cluster
        .executor(&ExecutorOptions::new("exec-heir", 1))
        .await?;
    let admin = cluster.admin()?;
    drover_tests::wait_until(
        "the heir to rerun the job",
        executor_support::SESSION + Duration::from_secs(2),
        || async {
            admin.get(id).await.is_ok_and(|j| {
                j.executor.as_deref() == Some("exec-heir") && j.state == State::Running
            })
        },
    )
    .await?;
    eprintln!("rerun by the heir {:?} after SIGKILL", killed.elapsed());
    let job = cluster.finished(id, Duration::from_secs(60)).await?;
    assert_eq!(job.status_code, StatusCode::Succeeded);
    assert_eq!(job.attempts, 2, "one rerun");
    let lines = admin.logs(id, 0, Some(100)).await?.lines;
    assert_eq!(
        lines.iter().filter(|l| l.line == "finished").count(),
        1,
        "succeeded once: {lines:?}"
    );
    // the heir kills and removes what an earlier attempt left on the daemon before it
    // starts its own run (the watchdog and the reaper would get there too)
    assert!(
        containers_of("exec-victim").await?.is_empty(),
        "the dead executor's container is gone once the heir has run the job"
    );
    let _victim_again = cluster
        .executor(&ExecutorOptions::new("exec-victim", 1))
        .await?;
    assert!(
        containers_of("exec-victim").await?.is_empty(),
        "nothing comes back when the victim restarts"
    );
    Ok(())
}

#[tokio::test]
async fn an_executor_whose_session_expires_stops_its_containers_and_writes_nothing(
) -> anyhow::Result<()> {
    use nix::sys::signal::Signal;
    let cluster = Cluster::start().await?;
    let frozen = cluster
        .executor(&ExecutorOptions::new("exec-frozen", 2))
        .await?;
    let ids = try_join_all((0..2).map(|_| cluster.submit("linger", json!({"seconds": 8})))).await?;
    for id in &ids {
        cluster
            .reaches(*id, State::Running, Duration::from_secs(30))
            .await?;
    }
    drover_tests::wait_until("two containers", Duration::from_secs(30), || async {
        containers_of("exec-frozen")
            .await
            .is_ok_and(|c| c.len() == 2)
    })
    .await?;
    frozen.signal(Signal::SIGSTOP)?;
    let _other = cluster
        .executor(&ExecutorOptions::new("exec-other", 2))
        .await?;
    let admin = cluster.admin()?;
    drover_tests::wait_until(
        "the other executor to take both jobs",
        Duration::from_secs(20),
        || async {
            let mut all = true;
            for id in &ids {
                all &= admin
                    .get(*id)
                    .await
                    .is_ok_and(|j| j.executor.as_deref() == Some("exec-other"));
            }
            all
        },
    )
    .await?;
    let before: Vec<_> = try_join_all(ids.iter().map(|id| admin.get(*id))).await?;
    frozen.signal(Signal::SIGCONT)?;
    drover_tests::wait_until(
        "the frozen executor to stop its containers",
        Duration::from_secs(20),
        || async {
            containers_of("exec-frozen")
                .await
                .is_ok_and(|c| c.is_empty())
        },
    )
    .await?;
    // it wrote nothing for those jobs: the records are the other executor's
    let after: Vec<_> = try_join_all(ids.iter().map(|id| admin.get(*id))).await?;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a.executor.as_deref(), Some("exec-other"));
        assert_eq!(
            a.fencing_token, b.fencing_token,
            "no write under the old token"
        );
    }
    for id in &ids {
        let job = cluster.finished(*id, Duration::from_secs(60)).await?;
        assert_eq!(job.status_code, StatusCode::Succeeded, "{job:#?}");
        assert_eq!(job.executor.as_deref(), Some("exec-other"));
    }
    let log = frozen.log();
    assert!(
        [
            "no longer ours",
            "fenced us off",
            "killed the container before anyone else"
        ]
        .iter()
        .any(|said| log.contains(said)),
        "the frozen executor said it gave up:\n{log}"
    );
    Ok(())
}

#[tokio::test]
async fn an_api_outage_loses_nothing_and_causes_no_hot_loop() -> anyhow::Result<()> {
    let mut cluster = Cluster::start().await?;
    let ids =
        try_join_all((0..24).map(|_| cluster.submit("sleep", json!({"seconds": 0.5})))).await?;
    cluster.kill_api().await?;
    // the executor starts into the outage: every entry it takes fails to claim
    let metrics = drover_tests::free_port()?;
    let executor = cluster
        .spawn_executor(&ExecutorOptions {
            metrics_port: Some(metrics),
            ..ExecutorOptions::new("exec-o", 4)
        })
        .await?;
    drover_tests::wait_until(
        "the executor to try a take",
        Duration::from_secs(30),
        || async { executor.takes().await.is_ok_and(|t| t > 0) },
    )
    .await?;
    let before = executor.takes().await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during = executor.takes().await? - before;
    eprintln!("{during} takes in 10 s while the API was down (4 slots, backoff capped at 2 s)");
    assert!(during <= 40, "{during} takes in 10 s: a hot loop");
    assert!(executor.log().contains("backing off"), "{}", executor.log());
    cluster.start_api().await?;
    let jobs = try_join_all(
        ids.iter()
            .map(|id| cluster.finished(*id, Duration::from_secs(90))),
    )
    .await?;
    let not_ok: Vec<_> = jobs
        .iter()
        .filter(|j| j.status_code != StatusCode::Succeeded)
        .collect();
    assert!(not_ok.is_empty(), "{not_ok:#?}");
    assert!(
        jobs.iter().all(|j| j.attempts == 1),
        "a failed claim is not an attempt"
    );
    Ok(())
}

#[tokio::test]
async fn sigterm_drains_running_jobs_and_leaves_the_queue_to_others() -> anyhow::Result<()> {
    use nix::sys::signal::Signal;
    let cluster = Cluster::start().await?;
    let port = drover_tests::free_port()?;
    let mut draining = cluster
        .executor(&ExecutorOptions {
            metrics_port: Some(port),
            ..ExecutorOptions::new("exec-drain", 4)
        })
        .await?;
    let probe = |path: &'static str| async move {
        let response = reqwest::get(format!("http://127.0.0.1:{port}{path}")).await?;
        anyhow::Ok((response.status().as_u16(), response.text().await?))
    };
    assert_eq!(probe("/healthz").await?.0, 200);
    let (status, body) = probe("/readyz").await?;
    assert_eq!(status, 200, "attached and not draining: {body}");
    let running =
        try_join_all((0..4).map(|_| cluster.submit("sleep", json!({"seconds": 5})))).await?;
    for id in &running {
        cluster
            .reaches(*id, State::Running, Duration::from_secs(30))
            .await?;
    }
    let queued = try_join_all((0..20).map(|_| cluster.submit("noop", json!({})))).await?;
    draining.signal(Signal::SIGTERM)?;
    let signaled = Instant::now();
    // Readiness drops at once, while the running jobs go on; liveness holds.
    drover_tests::wait_until(
        "/readyz to say draining",
        Duration::from_secs(2),
        || async {
            probe("/readyz")
                .await
                .is_ok_and(|(status, body)| status == 503 && body.contains("draining"))
        },
    )
    .await?;
    assert_eq!(probe("/healthz").await?.0, 200);
    assert!(
        probe("/metrics").await?.1.contains("drover_executor_"),
        "the executor's metrics are served beside the probes"
    );
    let _other = cluster
        .executor(&ExecutorOptions::new("exec-fresh", 4))
        .await?;
    let code = draining.exit_code(Duration::from_secs(30)).await?;
    eprintln!("drained and exited {code:?} after {:?}", signaled.elapsed());
    assert_eq!(code, Some(0), "{}", draining.log());
    for id in &running {
        let job = cluster.finished(*id, Duration::from_secs(5)).await?;
        assert_eq!(
            (job.status_code, job.executor.as_deref()),
            (StatusCode::Succeeded, Some("exec-drain"))
        );
    }
    for id in &queued {
        let job = cluster.finished(*id, Duration::from_secs(30)).await?;
        assert_eq!(
            (job.status_code, job.executor.as_deref()),
            (StatusCode::Succeeded, Some("exec-fresh"))
        );
    }
    let log = draining.log();
    for step in [
        "drain requested",
        "stopped taking entries",
        "every running job finished",
        "deregistered",
        "executor stopped",
    ] {
        assert!(log.contains(step), "the drain log lacks {step:?}:\n{log}");
    }
    Ok(())
}

#[tokio::test]
async fn a_job_longer_than_the_drain_deadline_is_released_and_rerun_elsewhere() -> anyhow::Result<()>
{
    use nix::sys::signal::Signal;
    let cluster = Cluster::start().await?;
    let mut draining = cluster
        .executor(&ExecutorOptions {
            drain_timeout: Duration::from_secs(2),
            ..ExecutorOptions::new("exec-short", 1)
        })
        .await?;
    let id = cluster.submit("linger", json!({"seconds": 6})).await?;
    cluster
        .reaches(id, State::Running, Duration::from_secs(30))
        .await?;
    drover_tests::wait_until("the container", Duration::from_secs(30), || async {
        containers_of("exec-short")
            .await
            .is_ok_and(|c| c.len() == 1)
    })
    .await?;
    draining.signal(Signal::SIGTERM)?;
    let code = draining.exit_code(Duration::from_secs(30)).await?;
    assert_eq!(code, Some(0), "{}", draining.log());
    assert!(
        containers_of("exec-short").await?.is_empty(),
        "its container was stopped and removed"
    );
    let job = cluster.admin()?.get(id).await?;
    assert_eq!(
        job.state,
        State::Queued,
        "released back to the queue: {job:#?}"
    );
    let _heir = cluster
        .executor(&ExecutorOptions::new("exec-heir2", 1))
        .await?;
    let job = cluster.finished(id, Duration::from_secs(60)).await?;
    assert_eq!(job.status_code, StatusCode::Succeeded);
    assert_eq!(job.executor.as_deref(), Some("exec-heir2"));
    assert_eq!(job.attempts, 2);
    let log = draining.log();
    assert!(
        log.contains("deadline reached") && log.contains("gave the job back"),
        "{log}"
    );
    Ok(())
}

#[tokio::test]
async fn repeated_parameters_share_one_read_only_volume_that_goes_with_the_executor(
) -> anyhow::Result<()> {
    use nix::sys::signal::Signal;
    let cluster = Cluster::start().await?;
    let mut executor = cluster.executor(&ExecutorOptions::new("exec-p", 2)).await?;
    // the same parameters 12 times, others once each, with and without a read-only root
    let mut submitted = Vec::new();
    for action in ["params", "params-ro"] {
        for n in 0..8 {
            let params = if n % 4 == 3 {
                json!({ "n": n, "action": action })
            } else {
                json!({ "same": true })
            };
            let id = cluster.submit(action, params.clone()).await?;
            submitted.push((id, params));
        }
    }
    let admin = cluster.admin()?;
    for (id, params) in &submitted {
        let job = cluster.finished(*id, Duration::from_secs(60)).await?;
        assert_eq!(job.status_code, StatusCode::Succeeded, "{job:#?}");
        // the job's own lines (the executor's first line is on the drover stream)
        let lines: Vec<String> = admin
            .logs(*id, 0, Some(10))
            .await?
            .lines
            .into_iter()
            .filter(|l| l.stream != "drover")
            .map(|l| l.line)
            .collect();
        assert_eq!(
            lines,
            [params.to_string(), "drover-read-only".to_owned()],
            "job {id} ({}) saw its own parameters, read-only",
            job.action
        );
    }
    let (volumes, holders) = params_volumes_of("exec-p").await?;
    assert_eq!(
        (volumes.len(), holders.len()),
        (1, 1),
        "one volume and holder for the repeated parameters"
    );
    assert!(containers_of("exec-p").await?.is_empty());

    // a drained executor takes its volumes with it
    executor.signal(Signal::SIGTERM)?;
    assert_eq!(executor.exit_code(Duration::from_secs(30)).await?, Some(0));
    assert_eq!(params_volumes_of("exec-p").await?, (vec![], vec![]));

    // a killed one leaves them; its next start removes them
    let executor = cluster.executor(&ExecutorOptions::new("exec-p", 1)).await?;
    for _ in 0..2 {
        let id = cluster.submit("params", json!({ "again": 1 })).await?;
        let job = cluster.finished(id, Duration::from_secs(60)).await?;
        assert_eq!(job.status_code, StatusCode::Succeeded, "{job:#?}");
    }
    let (volumes, holders) = params_volumes_of("exec-p").await?;
    assert_eq!((volumes.len(), holders.len()), (1, 1));
    executor.signal(Signal::SIGKILL)?;
    drop(executor);
    // (the killed process's registration lasts until its session expires, so wait for
    // the new one's start-up clean-up rather than its registration)
    let _restarted = cluster.executor(&ExecutorOptions::new("exec-p", 1)).await?;
    drover_tests::wait_until(
        "the restarted executor to remove the volume and holder",
        Duration::from_secs(30),
        || async {
            params_volumes_of("exec-p")
                .await
                .is_ok_and(|v| v == (vec![], vec![]))
        },
    )
    .await?;
    Ok(())
}

/// Long lines shortened, for failure messages.
fn brief(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| match l.char_indices().nth(12) {
            Some((at, _)) if l.len() > 40 => {
                let tail = l.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
                format!("{:?}…({} bytes)…{:?}", &l[..at], l.len(), &l[tail..])
            }
            _ => format!("{l:?}"),
        })
        .collect()
}

/// The lines of `stream` in `log`, in order.
fn lines_of(log: &[StoredLogLine], stream: &str) -> Vec<String> {
    log.iter()
        .filter(|l| l.stream == stream)
        .map(|l| l.line.clone())
        .collect()
}

#[tokio::test]
async fn output_is_cut_into_lines_decoded_per_stream_and_flushed_at_its_end() -> anyhow::Result<()>
{
    let cluster = Cluster::start().await?;
    let _executor = cluster
        .executor(&ExecutorOptions::new("exec-lines", 3))
        .await?;
    let admin = cluster.admin()?;
    // parameters of their own: repeated ones would leave a shared volume behind
    let unfinished = cluster.submit("unfinished", json!({"n": 1})).await?;
    let split = cluster.submit("split-char", json!({"n": 2})).await?;
    let endless = cluster.submit("endless-line", json!({"n": 3})).await?;
    for id in [unfinished, split] {
        let job = cluster.finished(id, Duration::from_secs(60)).await?;
        assert_eq!(job.status_code, StatusCode::Succeeded, "{job:#?}");
    }
    // the last line of each stream, without its newline, is kept
    let log = cluster.log(unfinished).await?;
    assert_eq!(lines_of(&log, "stdout"), ["first", "x"]);
    assert_eq!(lines_of(&log, "stderr"), ["err"]);
    // characters split across writes are whole; only invalid bytes are not; a line over
    // 16 KiB is two. (Docker's json-file log driver hands over output in messages of
    // 16 KiB and replaces a character split between two of them with U+FFFD before
    // drover sees it: a split the executor cannot undo, so not tested here.)
    let log = cluster.log(split).await?;
    let stdout = lines_of(&log, "stdout");
    let long = format!("{}b", "a".repeat(16 * 1024 - 1));
    assert!(
        stdout == ["café", "\u{fffd}ok", &long, "cd"],
        "{:?}",
        brief(&stdout)
    );
    assert_eq!(lines_of(&log, "stderr"), ["€"]);
    // 1 MiB, 16 KiB and a byte with no newline, then a long sleep: the MiB is shipped
    // while the container runs, in lines of 16 KiB, rather than held until a newline that
    // never comes (Docker holds the byte; the 16 KiB before it wait for a next byte that
    // says whether they are a whole line)
    let shipped = drover_tests::wait_until(
        "the endless line's MiB in the log while its container runs",
        Duration::from_secs(30),
        || async {
            cluster
                .log(endless)
                .await
                .is_ok_and(|log| log.iter().filter(|l| l.stream == "stdout").count() >= 63)
        },
    )
    .await;
    // the container's lines (the executor's first line is on the drover stream)
    let mut log = cluster.log(endless).await?;
    log.retain(|l| l.stream != "drover");
    let state = admin.get(endless).await?.state;
    admin.cancel(endless).await?;
    shipped.map_err(|e| {
        anyhow::anyhow!(
            "{e}; {} lines: {:?}",
            log.len(),
            log.iter().map(|l| l.line.len()).collect::<Vec<_>>()
        )
    })?;
    assert_eq!(state, State::Running);
    // the job's log is capped at 1 MiB (api.log_cap_bytes) and starts with the
    // executor's line on how to re-create the job: 63 of the MiB's 64 lines fit
    assert_eq!(log.len(), 63, "1 MiB in lines of 16 KiB, up to the cap");
    assert!(
        log.iter().all(|l| l.stream == "stdout"
            && l.line.len() == 16 * 1024
            && l.line.bytes().all(|b| b == b'x')),
        "every line 16 KiB of x"
    );
    let job = cluster.finished(endless, Duration::from_secs(30)).await?;
    assert_eq!(job.status_code, StatusCode::CancelledByUser);
    assert!(containers_of("exec-lines").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn log_batches_over_the_apis_body_limit_are_split_and_a_line_that_never_fits_is_noted(
) -> anyhow::Result<()> {
    let cluster = Cluster::start_with("max_body_bytes = 8192\nmax_params_bytes = 4096").await?;
    let _executor = cluster
        .executor(&ExecutorOptions::new("exec-413", 1))
        .await?;
    let id = cluster.submit("wide-lines", json!({})).await?;
    let job = cluster.finished(id, Duration::from_secs(60)).await?;
    assert_eq!(job.status_code, StatusCode::Succeeded, "{job:#?}");
    let log = cluster.log(id).await?;
    // 100 lines of 1 KiB, over 100 KiB in all: every one arrives, in order
    let mut expected: Vec<String> = (0..100)
        .map(|i| format!("{i} {}", "a".repeat(1000)))
        .collect();
    // a line of 20,000 bytes is 16 KiB (over the limit on its own: dropped) and the rest
    expected.push("b".repeat(20_000 - 16 * 1024));
    expected.push("after".to_owned());
    let stdout = lines_of(&log, "stdout");
    assert_eq!(
        stdout.len(),
        expected.len(),
        "{:?}",
        log.iter()
            .map(|l| (&l.stream, l.line.len()))
            .collect::<Vec<_>>()
    );
    assert_eq!(stdout, expected);
    // the executor's notes, after its first line (how to re-create the job)
    let is_note = |l: &StoredLogLine| l.stream == "drover" && !l.line.contains("to re-create");
    let notes: Vec<String> = log
        .iter()
        .filter(|l| is_note(l))
        .map(|l| l.line.clone())
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("16384 bytes")
            && notes[0].contains("dropped")
            && notes[0].contains("8192"),
        "the note says which line, that it was dropped and why: {:?}",
        notes[0]
    );
    // where the line was
    let at = log.iter().position(is_note).unwrap_or_default();
    assert_eq!(log[at + 1].line, expected[100]);
    Ok(())
}

/// A single-line and a multi-line secret for the `leaky` action.
const TOKEN: &str = "tok-3f9a2c71e5";
const KEY: &str =
    "-----BEGIN KEY-----\nc2VjcmV0LWxpbmUtb25l\nc2VjcmV0LWxpbmUtdHdv\n-----END KEY-----";

#[tokio::test]
async fn secrets_stay_out_of_job_logs_and_of_a_debug_executors_log() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    // prints its secrets: whole, the key's last line alone, and the token where a line
    // is cut at 16 KiB (16,380 bytes before it)
    let file = cluster.add_action(
        "leaky",
        r#"name = "leaky"
image = "drover/busybox:latest"
pull = "never"
command = ["sh", "-c", "echo \"token=$TOKEN.\"; echo \"$KEY\"; echo \"$KEY\" | tail -n 1 >&2; head -c 16380 /dev/zero | tr '\\0' a; echo \"$TOKEN\"; echo done"]

[secrets]
TOKEN = { env = "LEAKY_TOKEN" }
KEY = { env = "LEAKY_KEY" }
"#,
    )?;
    let options = |token: &str| ExecutorOptions {
        rust_log: Some("debug".to_owned()),
        env: vec![
            ("LEAKY_TOKEN".to_owned(), token.to_owned()),
            ("LEAKY_KEY".to_owned(), KEY.to_owned()),
        ],
        ..ExecutorOptions::new("exec-secret", 1)
    };
    // a value too short to redact is refused at start-up, with where and how to fix it
    let mut refused = cluster.spawn_executor(&options("abc")).await?;
    let code = refused.exit_code(Duration::from_secs(30)).await?;
    let log = refused.log();
    assert_ne!(code, Some(0), "{log}");
    assert!(
        log.contains(&format!("{}:7", file.display()))
            && log.contains("TOKEN")
            && log.contains("at least 4 bytes"),
        "names the file, the line and the secret, and how to fix it:\n{log}"
    );
    assert!(!log.contains("abc\""), "{log}");

    let executor = cluster.executor(&options(TOKEN)).await?;
    let id = cluster.submit("leaky", json!({})).await?;
    let job = cluster.finished(id, Duration::from_secs(60)).await?;
    assert_eq!(job.status_code, StatusCode::Succeeded, "{job:#?}");
    let log = cluster.log(id).await?;
    let text: Vec<String> = log
        .iter()
        .map(|l| format!("{}: {}", l.stream, l.line))
        .collect();
    let secrets: Vec<&str> = std::iter::once(TOKEN).chain(KEY.lines()).collect();
    // any six bytes in a row of a secret (or of a line of one) is a leak
    let leaks = |text: &str| -> Vec<&str> {
        secrets
            .iter()
            .copied()
            .filter(|s| {
                s.as_bytes()
                    .windows(6)
                    .any(|w| text.contains(std::str::from_utf8(w).unwrap_or(s)))
            })
            .collect()
    };
    let job_log = text.join("\n");
    assert!(
        leaks(&job_log).is_empty(),
        "the job log shows {:?}:\n{}",
        leaks(&job_log),
        brief(&text).join("\n")
    );
    assert!(
        lines_of(&log, "stdout").contains(&"token=***.".to_owned()),
        "{:?}",
        brief(&text)
    );
    assert_eq!(lines_of(&log, "stderr"), ["***"]);
    assert_eq!(
        lines_of(&log, "stdout").last().map(String::as_str),
        Some("done")
    );
    // the executor ran at RUST_LOG=debug: neither it nor its Docker client printed them
    let stderr = executor.log();
    assert!(stderr.contains("DEBUG"), "debug logging is on");
    let leaking: Vec<String> = stderr
        .lines()
        .filter(|l| !leaks(l).is_empty())
        .map(|l| l.chars().take(300).collect())
        .collect();
    assert!(
        leaking.is_empty(),
        "the executor's log shows {:?}, in:\n{}",
        leaks(&stderr),
        leaking.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn drover_logs_shows_control_characters_escaped() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let _executor = cluster
        .executor(&ExecutorOptions::new("exec-esc", 1))
        .await?;
    let id = cluster.submit("color", json!({})).await?;
    let job = cluster.finished(id, Duration::from_secs(60)).await?;
    assert_eq!(job.status_code, StatusCode::Succeeded, "{job:#?}");
    let id = id.to_string();
    // colours, a bell and an 8-bit CSI reach the terminal as text; a tab stays a tab
    let escaped = format!(
        "[drover] to re-create this job on your machine: drover local-run --job {id}\n\\x1b[31mred\\x1b[0m plain\tbell\\x07 csi\\u{{9b}}2J\n"
    );
    for args in [&["logs", &id][..], &["logs", "-f", &id]] {
        let (code, stdout, stderr) = drover(&cluster, args).await?;
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert_eq!(stdout, escaped, "{args:?}");
    }
    // JSON keeps the line as it was written (after the executor's first line)
    let (code, stdout, stderr) = drover(&cluster, &["logs", "-o", "json", &id]).await?;
    assert_eq!(code, 0, "{stderr}");
    let last = stdout.trim().lines().last().unwrap_or_default();
    let line: StoredLogLine = serde_json::from_str(last)?;
    assert_eq!(line.line, "\x1b[31mred\x1b[0m plain\tbell\x07 csi\u{9b}2J");
    Ok(())
}
