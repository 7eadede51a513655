//! End to end through `deploy/compose`: the Docker Compose cluster, from images built
//! here with no registry, runs 100 Docker jobs while executors scale 1 → 3 and one
//! executor is drained with SIGTERM; nothing is lost, nothing runs twice, nothing is
//! left behind.
//!
//! Needs a Docker engine and docker-compose 1.29. The first run builds the base,
//! ZooKeeper and busybox images (a few minutes, then cached); the drover image is made
//! from this test profile's binary each run (seconds).

mod deploy_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use deploy_support::{docker, timed, ComposeProject, ADMIN_TOKEN};
use drover_client::{ApiClient, ListJobs};
use drover_core::{JobId, State, StatusCode};
use drover_model::{Job, SubmitJob};
use drover_tests::{run_drover, wait_until, within};

const JOBS: usize = 100;
/// What the stopped executor's log must show, in this order.
const DRAIN_STEPS: &[&str] = &[
    "drain requested",
    "drain: stopped taking entries",
    "drain: every running job finished",
    "drain: all slots stopped",
    "drain: deregistered from /executors",
    "executor stopped",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_cluster_runs_100_jobs_through_a_scale_up_and_a_drain() -> anyhow::Result<()> {
    let total = Instant::now();
    let cluster = ComposeProject::prepare("e2e").await?;
    eprintln!(
        "deploy: project {} with image {} on {}",
        cluster.project, cluster.image, cluster.api_url
    );

    let started = Instant::now();
    // Compose itself waits for ZooKeeper and the API to be healthy before it starts
    // the executors (depends_on: condition: service_healthy).
    cluster
        .compose(&["up", "-d"], Duration::from_secs(300))
        .await?;
    let admin = ApiClient::new(&cluster.api_url, Some(ADMIN_TOKEN.to_owned()))?;
    wait_until(
        "the api to be ready with zookeeper",
        Duration::from_secs(120),
        || async {
            admin
                .ready()
                .await
                .is_ok_and(|r| r.ready && r.detail["zookeeper"] == "connected")
        },
    )
    .await?;
    let executors = cluster.executors().await?;
    ensure!(
        executors.len() == 1,
        "one executor to start with: {executors:?}"
    );
    let (first_container, first_id) = executors[0].clone();
    wait_for_executors(&admin, std::slice::from_ref(&first_id)).await?;
    timed(
        "docker-compose up -d, api ready, executor registered",
        started,
    );

    // The host's CLI talks to the published port: a first job, waited for.
    let started = Instant::now();
    let (code, out, err) =
        cli(&cluster, &["submit", "hello", "-p", "name=first", "--wait"]).await?;
    ensure!(
        code == 0 && out.contains("SUCCESS"),
        "drover submit --wait: exit {code}\n{out}\n{err}"
    );
    let (code, out, err) = cli(&cluster, &["executors"]).await?;
    ensure!(
        code == 0 && out.contains(&first_id),
        "drover executors: exit {code}\n{out}\n{err}"
    );
    timed("a first job through the host's drover CLI", started);

    let started = Instant::now();
    let mut ids = Vec::with_capacity(JOBS);
    for n in 0..JOBS {
        let submit = SubmitJob {
            action: "hello".to_owned(),
            params: [
                ("name".to_owned(), serde_json::json!(format!("job-{n}"))),
                ("seconds".to_owned(), serde_json::json!(1)),
            ]
            .into_iter()
            .collect(),
            ..SubmitJob::default()
        };
        ids.push(admin.submit(&submit).await?.job.id);
    }
    timed("submitted 100 jobs", started);

    let started = Instant::now();
    cluster
        .compose(
            &[
                "up",
                "-d",
                "--no-deps",
                "--no-recreate",
                "--scale",
                "executor=3",
                "executor",
            ],
            Duration::from_secs(180),
        )
        .await?;
    let executors = cluster.executors().await?;
    ensure!(executors.len() == 3, "three executors: {executors:?}");
    let all_ids: Vec<String> = executors.iter().map(|(_, id)| id.clone()).collect();
    wait_for_executors(&admin, &all_ids).await?;
    timed("scaled executors 1 -> 3", started);

    // SIGTERM the first executor while it runs jobs.
    let running = wait_for_running_on(&admin, &first_id).await?;
    let done_before = finished_count(&admin, &ids).await?;
    let started = Instant::now();
    docker(&["kill", "--signal", "TERM", &first_container]).await?;
    eprintln!(
        "deploy: SIGTERM to executor {first_id} while it ran {} job(s), {done_before}/{JOBS} done",
        running.len()
    );
    let exit = within(
        "the SIGTERMed executor to drain and exit",
        Duration::from_secs(170),
        docker(&["wait", &first_container]),
    )
    .await??;
    timed("the SIGTERMed executor drained and exited", started);
    let first_log = container_log(&first_container).await?;
    ensure!(
        exit.trim() == "0",
        "the drained executor exited with {exit:?}; its log:\n{first_log}"
    );
    check_drain_steps(&first_log)?;
    let state = docker(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.RestartCount}}",
        &first_container,
    ])
    .await?;
    ensure!(
        state.trim() == "exited 0",
        "the drained executor should stay stopped: {state}"
    );

    let started = Instant::now();
    let jobs = wait_for_all_finished(&admin, &ids).await?;
    timed("all 100 jobs finished", started);

    // All SUCCEEDED, none lost.
    let failed: Vec<&Job> = jobs
        .iter()
        .filter(|j| j.state != State::Success || j.status_code != StatusCode::Succeeded)
        .collect();
    ensure!(failed.is_empty(), "jobs that did not succeed: {failed:#?}");
    let listed: BTreeSet<JobId> = list_hello(&admin).await?.iter().map(|j| j.id).collect();
    let submitted: BTreeSet<JobId> = ids.iter().copied().collect();
    ensure!(
        submitted.is_subset(&listed) && listed.len() == JOBS + 1,
        "the API lists {} hello jobs, expected {} (100 + the first)",
        listed.len(),
        JOBS + 1
    );

    // None ran twice to success: every executor's log (the drained one's too) reports
    // each job's success exactly once, and each job's own log shows one run.
    let mut successes: HashMap<String, usize> = HashMap::new();
    let mut released = BTreeSet::new();
    for (container, _) in &executors {
        let log = container_log(container).await?;
        for line in log.lines() {
            let Some(job) = field(line, "job=") else {
                continue;
            };
            if line.contains("job finished") && line.contains("status=SUCCEEDED") {
                *successes.entry(job.to_owned()).or_default() += 1;
            }
            if line.contains("gave the job back to the queue") {
                released.insert(job.to_owned());
            }
        }
    }
    for id in &ids {
        let count = successes.get(&id.to_string()).copied().unwrap_or(0);
        ensure!(
            count == 1,
            "job {id} reported SUCCEEDED {count} times by executors"
        );
    }
    let mut rerun = Vec::new();
    for job in &jobs {
        if job.attempts > 1 {
            ensure!(
                released.contains(&job.id.to_string()),
                "job {} has {} attempts but no executor gave it back",
                job.id,
                job.attempts
            );
            rerun.push(job.id);
        }
    }
    let n_of = |job: &Job| job.params["name"].as_str().unwrap_or_default().to_owned();
    for job in &jobs {
        let page = admin.logs(job.id, 0, Some(1000)).await?;
        let name = n_of(job);
        let done = page
            .lines
            .iter()
            .filter(|l| l.line == format!("done {name}"))
            .count();
        ensure!(
            done == 1,
            "job {} ({name}) logged `done {name}` {done} times: {:?}",
            job.id,
            page.lines
        );
    }

    // The jobs running at SIGTERM finished on the drained executor, within the drain.
    for id in &running {
        let job = jobs.iter().find(|j| j.id == *id).context("running job")?;
        ensure!(
            job.executor.as_deref() == Some(first_id.as_str()) && job.attempts == 1,
            "job {id}, running on {first_id} at SIGTERM, should have finished there in one attempt: {job:#?}"
        );
    }
    let mut per_executor: BTreeMap<String, usize> = BTreeMap::new();
    for job in &jobs {
        *per_executor
            .entry(job.executor.clone().unwrap_or_default())
            .or_default() += 1;
    }
    eprintln!(
        "deploy: jobs per executor {per_executor:?}; {} ran at SIGTERM and finished in the drain; {} released and rerun",
        running.len(),
        rerun.len()
    );
    ensure!(
        per_executor.len() == 3,
        "every executor, the two added ones included, should have run jobs: {per_executor:?}"
    );

    // No container left behind by the jobs.
    let left = cluster.job_containers().await?;
    ensure!(left.is_empty(), "job containers left behind: {left:?}");

    check_distributors(&cluster).await?;
    cluster.down().await?;
    timed("the whole deployment test", total);
    Ok(())
}

/// Runs the host's `drover` CLI (this profile's binary) against the cluster.
async fn cli(cluster: &ComposeProject, args: &[&str]) -> anyhow::Result<(i32, String, String)> {
    run_drover(
        &cluster.api_url,
        ADMIN_TOKEN,
        args,
        Duration::from_secs(120),
    )
    .await
}

/// Waits until every id in `ids` is registered in `/executors`.
async fn wait_for_executors(admin: &ApiClient, ids: &[String]) -> anyhow::Result<()> {
    wait_until(
        &format!("executors {ids:?} to register"),
        Duration::from_secs(90),
        || async {
            let Ok(list) = admin.executors().await else {
                return false;
            };
            ids.iter().all(|id| list.iter().any(|e| &e.id == id))
        },
    )
    .await?;
    Ok(())
}

/// Waits until the executor `id` runs at least one job; returns the jobs it runs.
async fn wait_for_running_on(admin: &ApiClient, id: &str) -> anyhow::Result<Vec<JobId>> {
    let running = Mutex::new(Vec::new());
    wait_until(
        &format!("executor {id} to run a job"),
        Duration::from_secs(60),
        || async {
            let query = ListJobs {
                state: Some(State::Running),
                limit: Some(500),
                ..ListJobs::default()
            };
            let Ok(page) = admin.list(&query).await else {
                return false;
            };
            let mine: Vec<JobId> = page
                .jobs
                .iter()
                .filter(|j| j.executor.as_deref() == Some(id))
                .map(|j| j.id)
                .collect();
            let found = !mine.is_empty();
            *running.lock().unwrap_or_else(|p| p.into_inner()) = mine;
            if !found {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            found
        },
    )
    .await?;
    Ok(running.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// Every `hello` job the API lists.
async fn list_hello(admin: &ApiClient) -> anyhow::Result<Vec<Job>> {
    let mut jobs = Vec::new();
    let mut query = ListJobs {
        action: Some("hello".to_owned()),
        limit: Some(500),
        ..ListJobs::default()
    };
    loop {
        let page = admin.list(&query).await?;
        jobs.extend(page.jobs);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return Ok(jobs),
        }
    }
}

/// How many of `ids` are terminal.
async fn finished_count(admin: &ApiClient, ids: &[JobId]) -> anyhow::Result<usize> {
    let wanted: BTreeSet<JobId> = ids.iter().copied().collect();
    Ok(list_hello(admin)
        .await?
        .iter()
        .filter(|j| wanted.contains(&j.id) && j.state.is_terminal())
        .count())
}

/// Waits until every job of `ids` is terminal; returns them.
async fn wait_for_all_finished(admin: &ApiClient, ids: &[JobId]) -> anyhow::Result<Vec<Job>> {
    let wanted: BTreeSet<JobId> = ids.iter().copied().collect();
    let jobs = Mutex::new(Vec::new());
    let result = wait_until(
        "all 100 jobs to finish",
        Duration::from_secs(300),
        || async {
            let Ok(all) = list_hello(admin).await else {
                return false;
            };
            let mine: Vec<Job> = all.into_iter().filter(|j| wanted.contains(&j.id)).collect();
            let done = mine.len() == wanted.len() && mine.iter().all(|j| j.state.is_terminal());
            *jobs.lock().unwrap_or_else(|p| p.into_inner()) = mine;
            if !done {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            done
        },
    )
    .await;
    let jobs = jobs.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Err(err) = result {
        let open: Vec<String> = jobs
            .iter()
            .filter(|j| !j.state.is_terminal())
            .map(|j| format!("{} {} on {:?}", j.id, j.state, j.executor))
            .collect();
        return Err(err.context(format!("{} not finished: {open:?}", open.len())));
    }
    Ok(jobs)
}

/// The container's whole log, stdout and stderr.
async fn container_log(container: &str) -> anyhow::Result<String> {
    let out = within(
        "docker logs",
        Duration::from_secs(60),
        tokio::process::Command::new("docker")
            .args(["logs", container])
            .output(),
    )
    .await??;
    ensure!(out.status.success(), "docker logs {container} failed");
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// The value of `key` (e.g. `job=`) in a text log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {key}"))? + 1 + key.len();
    let rest = &line[start..];
    Some(rest.split_whitespace().next().unwrap_or(rest))
}

/// The drain steps appear in the log, in order.
fn check_drain_steps(log: &str) -> anyhow::Result<()> {
    let mut from = 0;
    for step in DRAIN_STEPS {
        let Some(at) = log[from..].find(step) else {
            anyhow::bail!(
                "the drained executor's log lacks {step:?} (after the previous steps):\n{log}"
            );
        };
        let line_end = log[from + at..]
            .find('\n')
            .map_or(log.len(), |e| from + at + e);
        eprintln!("deploy: drain log: {}", &log[from + at..line_end]);
        from += at + step.len();
    }
    Ok(())
}

/// The distributors, if this build has the role: both running, not restarting.
async fn check_distributors(cluster: &ComposeProject) -> anyhow::Result<()> {
    let has_role = tokio::process::Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            &cluster.image,
            "distributor",
            "--help",
        ])
        .output()
        .await
        .is_ok_and(|out| out.status.success());
    if !has_role {
        eprintln!("deploy: this drover has no `distributor` role yet: distributors not checked");
        return Ok(());
    }
    for service in ["distributor-1", "distributor-2"] {
        for container in cluster.containers(service).await? {
            let state = docker(&[
                "inspect",
                "-f",
                "{{.State.Status}} {{.RestartCount}}",
                &container,
            ])
            .await?;
            ensure!(
                state.trim() == "running 0",
                "{service} should run without restarts: {state}; its log:\n{}",
                container_log(&container).await?
            );
        }
    }
    eprintln!("deploy: both distributors run");
    Ok(())
}

#[test]
fn log_fields_are_found() {
    let line = "2026-01-01T00:00:00Z  INFO drover_executor::slot: job finished job=67e55044-10b1-426f-9247-bb680e5fe0c8 status=SUCCEEDED";
    assert_eq!(
        field(line, "job="),
        Some("67e55044-10b1-426f-9247-bb680e5fe0c8")
    );
    assert_eq!(field(line, "status="), Some("SUCCEEDED"));
    assert_eq!(field(line, "executor="), None);
}
