//! End-to-end benchmark: `noop` jobs submitted through the API, run by one executor;
//! then the executor's Docker overhead and memory.
//!
//! ```text
//! cargo run --release -p drover-tests --bin e2e-bench -- [--jobs 20000] [--slots 16] \
//!     [--docker-jobs 200] [--busy 16]
//! ```
//! Starts ZooKeeper, `drover api` (SQLite) and `drover executor` as real processes, then:
//! 1. throughput: submits `--jobs` `noop` jobs with concurrent clients, waits until every
//!    job succeeded, prints jobs/s, submit→RUNNING latency (from the records' created and
//!    started times) and the CPU each process spent per job;
//!    then `--paced-jobs` submitted at a steady `--paced-rate`, for the submit→RUNNING
//!    latency when the queue is not backed up;
//! 2. memory: the executor's resident set idle, and with `--busy` Docker jobs running;
//! 3. Docker overhead: `--docker-jobs` jobs of `true` in the busybox image through drover,
//!    and the same number of `docker run --rm` at the same concurrency (the executor's
//!    slots), in the same run; prints the ratios: jobs without parameters (they repeat,
//!    so they share one read-only parameters volume) and jobs with parameters unique to
//!    each (copied into every container).

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::Parser;
use drover_client::{ApiClient, ListJobs};
use drover_core::State;
use drover_model::SubmitJob;
use drover_tests::procfs::{cpu_seconds, pids_named, rss_kib};
use drover_tests::{drover_command, free_port, wait_api_ready, wait_until, LineChild, ZkServer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Parser, Debug)]
#[command(about = "drover end-to-end benchmark: noop jobs through API, queue and executor")]
struct Args {
    /// `noop` jobs to submit.
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Executor slots.
    #[arg(long, default_value_t = 16)]
    slots: usize,
    /// Concurrent submitters.
    #[arg(long, default_value_t = 16)]
    submitters: usize,
    /// `noop` jobs run first and not measured (ZooKeeper's JIT compiler otherwise eats
    /// much of the first minute's CPU).
    #[arg(long, default_value_t = 5_000)]
    warmup: usize,
    /// Jobs submitted at `--paced-rate` for the unloaded submit → RUNNING latency (0
    /// skips it).
    #[arg(long, default_value_t = 3_000)]
    paced_jobs: usize,
    /// Submissions per second of the paced phase (about half the throughput).
    #[arg(long, default_value_t = 500)]
    paced_rate: u32,
    /// Jobs of `true` for the Docker overhead comparison (0 skips it).
    #[arg(long, default_value_t = 200)]
    docker_jobs: usize,
    /// Long Docker jobs running while the executor's memory is read (0 skips it).
    #[arg(long, default_value_t = 16)]
    busy: usize,
}

const TOKEN: &str = "bench-admin";
const IMAGE: &str = "drover/busybox:latest";

/// The bench's Docker actions: `true` for the overhead comparison, `hold` to keep slots
/// busy while memory is read.
fn write_actions(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("true.toml"),
        format!("name = \"true\"\nimage = \"{IMAGE}\"\npull = \"never\"\ncommand = [\"true\"]\n"),
    )?;
    std::fs::write(
        dir.join("hold.toml"),
        format!(
            "name = \"hold\"\nimage = \"{IMAGE}\"\npull = \"never\"\ncommand = [\"sleep\", \"5\"]\n"
        ),
    )?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let zk = ZkServer::builder().heap("1g").start().await?;
    let dir = tempfile::tempdir()?;
    let actions = dir.path().join("actions");
    write_actions(&actions)?;
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let config = dir.path().join("drover.toml");
    std::fs::write(
        &config,
        format!(
            r#"
url = "{url}"
token = "{TOKEN}"
[zookeeper]
hosts = "{zk}"
[api]
listen = "127.0.0.1:{port}"
database_url = "sqlite://{db}?mode=rwc"
[[api.tokens]]
name = "bench"
token = "{TOKEN}"
role = "admin"
[executor]
id = "bench-executor"
slots = {slots}
metrics = false
actions_dir = "{actions}"
"#,
            zk = zk.connect_string(),
            db = dir.path().join("drover.db").display(),
            slots = args.slots,
            actions = actions.display(),
        ),
    )?;
    let spawn = |role: &str| {
        let role = role.to_owned();
        let config = config.clone();
        async move {
            let mut command = drover_command().await?;
            command
                .arg(&role)
                .arg("--config")
                .arg(&config)
                .env("RUST_LOG", "warn");
            LineChild::spawn(command)
        }
    };
    let mut api_process = spawn("api").await?;
    wait_api_ready(&mut api_process, &url, Duration::from_secs(60)).await?;
    let client = ApiClient::new(&url, Some(TOKEN.to_owned()))?;
    let mut executor = spawn("executor").await?;
    wait_until("the executor", Duration::from_secs(60), || async {
        client.executors().await.is_ok_and(|e| !e.is_empty())
    })
    .await
    .with_context(|| executor.stderr())?;
    let pids = Pids {
        api: api_process.id().context("the API exited")?,
        executor: executor.id().context("the executor exited")?,
        zookeeper: zk.pid().context("ZooKeeper exited")?,
    };
    let idle_rss = rss_kib(pids.executor).unwrap_or(0);

    println!(
        "e2e benchmark: {} noop jobs, one executor with {} slots, {} submitters",
        args.jobs, args.slots, args.submitters
    );
    if args.warmup > 0 {
        let started = Instant::now();
        submit_all(&client, "noop", args.warmup, args.submitters).await?;
        wait_idle(&client, Duration::from_secs(900)).await?;
        println!(
            "  warm-up: {} jobs in {:.1?} (not measured)",
            args.warmup,
            started.elapsed()
        );
    }
    let outcome = throughput(&args, &client, &pids).await;
    if let Err(e) = outcome {
        bail!("{e:#}; executor log:\n{}", executor.stderr());
    }

    if args.paced_jobs > 0 && args.paced_rate > 0 {
        paced(&client, args.paced_rate, args.paced_jobs).await?;
    }
    if args.busy > 0 {
        memory(&args, &client, &pids, idle_rss).await?;
    }
    if args.docker_jobs > 0 {
        docker_overhead(&args, &client).await?;
    }
    // drained, so it removes what it made (shared parameters volumes included)
    executor.signal(nix::sys::signal::Signal::SIGTERM)?;
    if tokio::time::timeout(Duration::from_secs(60), executor.wait())
        .await
        .is_err()
    {
        eprintln!("the executor did not drain within 60 s");
    }
    drop(api_process);
    Ok(())
}

/// The processes under test.
struct Pids {
    api: u32,
    executor: u32,
    zookeeper: u32,
}

impl Pids {
    fn cpu(&self) -> [f64; 4] {
        [
            cpu_seconds(self.api),
            cpu_seconds(self.executor),
            cpu_seconds(self.zookeeper),
            cpu_seconds(std::process::id()),
        ]
    }
}

/// Submits `count` jobs of `action` on `submitters` concurrent clients.
async fn submit_all(
    client: &ApiClient,
    action: &str,
    count: usize,
    submitters: usize,
) -> anyhow::Result<()> {
    submit_params(client, action, count, submitters, false).await
}

/// [`submit_all`], with parameters `{"n": i}` unique to each job when `unique`.
async fn submit_params(
    client: &ApiClient,
    action: &str,
    count: usize,
    submitters: usize,
    unique: bool,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..submitters {
        let (client, next, action) = (client.clone(), next.clone(), action.to_owned());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                let job = SubmitJob {
                    action: action.clone(),
                    params: if unique {
                        [("n".to_owned(), serde_json::json!(n))]
                            .into_iter()
                            .collect()
                    } else {
                        Default::default()
                    },
                    ..SubmitJob::default()
                };
                client.submit(&job).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Waits until no job is queued or running.
async fn wait_idle(client: &ApiClient, limit: Duration) -> anyhow::Result<()> {
    wait_until("every job to finish", limit, || async {
        let mut idle = true;
        for state in [State::Queued, State::Running] {
            let page = client
                .list(&ListJobs {
                    state: Some(state),
                    limit: Some(1),
                    ..Default::default()
                })
                .await;
            idle &= page.is_ok_and(|p| p.jobs.is_empty());
        }
        idle
    })
    .await?;
    Ok(())
}

/// Phase 1: `noop` jobs per second and submit→RUNNING latency.
#[allow(clippy::cast_precision_loss)]
async fn throughput(args: &Args, client: &ApiClient, pids: &Pids) -> anyhow::Result<()> {
    let cpu_before = pids.cpu();
    let since = OffsetDateTime::now_utc();
    let started = Instant::now();
    submit_all(client, "noop", args.jobs, args.submitters).await?;
    let submitted = started.elapsed();
    wait_idle(client, Duration::from_secs(900)).await?;
    let elapsed = started.elapsed();
    let cpu_after = pids.cpu();

    let Runs {
        mut latencies,
        succeeded,
        first,
        last,
    } = runs_since(client, since).await?;
    ensure!(
        succeeded == args.jobs,
        "{succeeded} of {} jobs succeeded",
        args.jobs
    );
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| quantile_ms(&latencies, p);
    let span = match (first, last) {
        (Some(f), Some(l)) => (l - f).as_seconds_f64(),
        _ => elapsed.as_secs_f64(),
    };
    println!(
        "  submitted in {:.1?} ({:.0} submits/s)",
        submitted,
        args.jobs as f64 / submitted.as_secs_f64()
    );
    println!(
        "  all {} succeeded; first submit → last finish {:.1} s: {:.0} jobs/s",
        args.jobs,
        span,
        args.jobs as f64 / span
    );
    println!(
        "  submit → RUNNING: p50 {:.1} ms | p99 {:.1} ms | max {:.1} ms",
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    let per_job: Vec<f64> = cpu_after
        .iter()
        .zip(cpu_before)
        .map(|(after, before)| (after - before) * 1e3 / args.jobs as f64)
        .collect();
    let total: f64 = per_job.iter().sum();
    println!(
        "  CPU per job: {total:.2} ms = API {:.2} ms, executor {:.2} ms, ZooKeeper {:.2} ms, \
         submitters {:.2} ms (two idle cores would allow at most {:.0} jobs/s)",
        per_job[0],
        per_job[1],
        per_job[2],
        per_job[3],
        2000.0 / total
    );
    Ok(())
}

/// What the `noop` jobs created since `since` show.
struct Runs {
    /// Submit → RUNNING of each, in seconds.
    latencies: Vec<f64>,
    succeeded: usize,
    first: Option<OffsetDateTime>,
    last: Option<OffsetDateTime>,
}

async fn runs_since(client: &ApiClient, since: OffsetDateTime) -> anyhow::Result<Runs> {
    let mut latencies = Vec::new();
    let (mut succeeded, mut first, mut last) =
        (0usize, None::<OffsetDateTime>, None::<OffsetDateTime>);
    let mut cursor = None;
    loop {
        let page = client
            .list(&ListJobs {
                limit: Some(500),
                cursor: cursor.clone(),
                action: Some("noop".into()),
                ..Default::default()
            })
            .await?;
        for job in &page.jobs {
            let created = OffsetDateTime::parse(&job.created_at, &Rfc3339)?;
            if created < since {
                continue; // the warm-up's
            }
            let finished = job
                .finished_at
                .as_deref()
                .map(|t| OffsetDateTime::parse(t, &Rfc3339))
                .transpose()?;
            if let Some(start) = job.started_at.as_deref() {
                let start = OffsetDateTime::parse(start, &Rfc3339)?;
                latencies.push((start - created).as_seconds_f64());
            }
            succeeded += usize::from(job.state == State::Success);
            first = Some(first.map_or(created, |f| f.min(created)));
            last = finished
                .map(|f| last.map_or(f, |l: OffsetDateTime| l.max(f)))
                .or(last);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(Runs {
        latencies,
        succeeded,
        first,
        last,
    })
}

/// The `p` quantile of sorted `values`, in milliseconds.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn quantile_ms(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values[((values.len() as f64 * p) as usize).min(values.len() - 1)] * 1e3
}

/// Phase 1b: submit → RUNNING when the submitters do not outrun the executor: `count`
/// jobs submitted at a steady `rate` per second.
#[allow(clippy::cast_precision_loss)]
async fn paced(client: &ApiClient, rate: u32, count: usize) -> anyhow::Result<()> {
    let since = OffsetDateTime::now_utc();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        tick.tick().await;
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client
                .submit(&SubmitJob {
                    action: "noop".into(),
                    ..SubmitJob::default()
                })
                .await
        }));
    }
    for task in tasks {
        task.await??;
    }
    wait_idle(client, Duration::from_secs(300)).await?;
    let mut runs = runs_since(client, since).await?;
    ensure!(
        runs.succeeded == count,
        "{} of {count} paced jobs succeeded",
        runs.succeeded
    );
    runs.latencies.sort_by(f64::total_cmp);
    println!(
        "  paced at {rate} jobs/s ({count} jobs): submit → RUNNING p50 {:.1} ms | p99 {:.1} ms | max {:.1} ms",
        quantile_ms(&runs.latencies, 0.50),
        quantile_ms(&runs.latencies, 0.99),
        quantile_ms(&runs.latencies, 1.0)
    );
    Ok(())
}

/// Phase 2: the executor's resident memory idle and with `--busy` Docker jobs running.
async fn memory(args: &Args, client: &ApiClient, pids: &Pids, idle: u64) -> anyhow::Result<()> {
    let busy_jobs = args.busy.min(args.slots);
    submit_all(client, "hold", busy_jobs, 4).await?;
    wait_until("the hold jobs to run", Duration::from_secs(120), || async {
        client
            .list(&ListJobs {
                state: Some(State::Running),
                limit: Some(500),
                ..Default::default()
            })
            .await
            .is_ok_and(|p| p.jobs.len() >= busy_jobs)
    })
    .await?;
    // Let every slot reach its container's log stream and wait.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let busy = rss_kib(pids.executor).unwrap_or(0);
    wait_idle(client, Duration::from_secs(120)).await?;
    let after = rss_kib(pids.executor).unwrap_or(0);
    println!(
        "  executor resident memory: idle {:.1} MiB; {busy_jobs} busy slots (Docker jobs) {:.1} MiB; \
         idle again after {} noop jobs {:.1} MiB",
        idle as f64 / 1024.0,
        busy as f64 / 1024.0,
        args.jobs,
        after as f64 / 1024.0
    );
    Ok(())
}

/// Phase 3: `true` in busybox through drover vs `docker run --rm`, same concurrency.
#[allow(clippy::cast_precision_loss)]
async fn docker_overhead(args: &Args, client: &ApiClient) -> anyhow::Result<()> {
    let n = args.docker_jobs;
    let concurrency = args.slots;
    // Parameters that repeat (here none at all) share one volume: no copy per job.
    // Parameters unique to each job are copied into each container. The rounds run
    // A B C C B A, so a daemon that slows down (or speeds up) over the run weighs on
    // each kind alike; each figure is the sum of its two rounds.
    docker_run_round(concurrency, concurrency).await?; // warm-up, not measured
    let mut docker = Round::default();
    let mut same = Round::default();
    let mut unique = Round::default();
    docker.add(docker_run_round(n, concurrency).await?);
    same.add(drover_round(client, n, false).await?);
    unique.add(drover_round(client, n, true).await?);
    unique.add(drover_round(client, n, true).await?);
    same.add(drover_round(client, n, false).await?);
    docker.add(docker_run_round(n, concurrency).await?);
    let (docker, docker_daemon) = (docker.wall, docker.daemon / 2.0);
    let (same, same_daemon) = (same.wall, same.daemon / 2.0);
    let (unique, unique_daemon) = (unique.wall, unique.daemon / 2.0);
    let n2 = 2 * n;
    let ratio = |d: Duration| d.as_secs_f64() / docker.as_secs_f64();
    println!(
        "  Docker overhead, 2 × {n} × `true` at concurrency {concurrency}: docker run --rm {:.1} s ({:.1}/s); \
         drover {:.1} s ({:.1} jobs/s): ratio {:.2}; with parameters unique to each job {:.1} s: ratio {:.2}",
        docker.as_secs_f64(),
        n2 as f64 / docker.as_secs_f64(),
        same.as_secs_f64(),
        n2 as f64 / same.as_secs_f64(),
        ratio(same),
        unique.as_secs_f64(),
        ratio(unique),
    );
    println!(
        "  dockerd + containerd CPU per container: docker run --rm {:.1} ms, drover {:.1} ms, \
         drover with unique parameters {:.1} ms",
        docker_daemon * 1e3 / n as f64,
        same_daemon * 1e3 / n as f64,
        unique_daemon * 1e3 / n as f64,
    );
    Ok(())
}

/// Wall time and the daemon's CPU seconds, summed over rounds.
#[derive(Debug, Default)]
struct Round {
    wall: Duration,
    daemon: f64,
}

impl Round {
    fn add(&mut self, (wall, daemon): (Duration, f64)) {
        self.wall += wall;
        self.daemon += daemon;
    }
}

/// `n` × `docker run --rm ... true` by `concurrency` workers; wall time and the daemon's
/// CPU seconds.
async fn docker_run_round(n: usize, concurrency: usize) -> anyhow::Result<(Duration, f64)> {
    let daemon_before = daemon_cpu();
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let status = tokio::process::Command::new("docker")
                    .args(["run", "--rm", "--network", "none", IMAGE, "true"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .status()
                    .await?;
                ensure!(status.success(), "docker run failed: {status}");
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok((started.elapsed(), daemon_cpu() - daemon_before))
}

/// `n` jobs of `true` through drover; their wall time and the daemon's CPU seconds.
#[allow(clippy::cast_precision_loss)]
async fn drover_round(
    client: &ApiClient,
    n: usize,
    unique: bool,
) -> anyhow::Result<(Duration, f64)> {
    // counted outside the measured window
    let before = succeeded(client, "true").await?;
    let daemon_before = daemon_cpu();
    let started = Instant::now();
    submit_params(client, "true", n, 4, unique).await?;
    wait_idle(client, Duration::from_secs(600)).await?;
    let elapsed = started.elapsed();
    let daemon = daemon_cpu() - daemon_before;
    let ok = succeeded(client, "true").await? - before;
    ensure!(ok == n, "{ok} of {n} `true` jobs succeeded");
    Ok((elapsed, daemon))
}

/// How many `action` jobs succeeded so far.
async fn succeeded(client: &ApiClient, action: &str) -> anyhow::Result<usize> {
    let (mut count, mut cursor) = (0, None);
    loop {
        let page = client
            .list(&ListJobs {
                action: Some(action.into()),
                state: Some(State::Success),
                limit: Some(500),
                cursor,
                ..ListJobs::default()
            })
            .await?;
        count += page.jobs.len();
        cursor = page.next_cursor;
        if cursor.is_none() {
            return Ok(count);
        }
    }
}

/// CPU seconds used so far by the Docker daemon and containerd.
fn daemon_cpu() -> f64 {
    pids_named(&["dockerd", "containerd"])
        .into_iter()
        .map(cpu_seconds)
        .sum()
}
