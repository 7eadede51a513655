//! End-to-end benchmark: `noop` jobs submitted through the API, run by one executor.
//!
//! ```text
//! cargo run --release -p drover-tests --bin e2e-bench -- [--jobs 20000] [--slots 16]
//! ```
//! Starts ZooKeeper, `drover api` (SQLite) and `drover executor` as real processes,
//! submits with concurrent clients, waits until every job succeeded, and prints jobs/s
//! and submit→RUNNING latency (from the records' created and started times).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::Parser;
use drover_api::client::{ApiClient, ListJobs};
use drover_api::model::SubmitJob;
use drover_core::State;
use drover_tests::{drover_command, free_port, wait_until, LineChild, ZkServer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Parser, Debug)]
#[command(about = "drover end-to-end benchmark: noop jobs through API, queue and executor")]
struct Args {
    /// Jobs to submit.
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Executor slots.
    #[arg(long, default_value_t = 16)]
    slots: usize,
    /// Concurrent submitters.
    #[arg(long, default_value_t = 16)]
    submitters: usize,
}

const TOKEN: &str = "bench-admin";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let zk = ZkServer::builder().heap("1g").start().await?;
    let dir = tempfile::tempdir()?;
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
"#,
            zk = zk.connect_string(),
            db = dir.path().join("drover.db").display(),
            slots = args.slots,
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
    let api_process = spawn("api").await?;
    let client = ApiClient::new(&url, Some(TOKEN.to_owned()))?;
    wait_until("the API", Duration::from_secs(60), || async {
        client
            .ready()
            .await
            .is_ok_and(|r| r.ready && r.detail["zookeeper"] == "connected")
    })
    .await
    .with_context(|| api_process.stderr())?;
    let executor = spawn("executor").await?;
    wait_until("the executor", Duration::from_secs(60), || async {
        client.executors().await.is_ok_and(|e| !e.is_empty())
    })
    .await
    .with_context(|| executor.stderr())?;
    println!(
        "e2e benchmark: {} noop jobs, one executor with {} slots, {} submitters",
        args.jobs, args.slots, args.submitters
    );

    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut submitters = Vec::new();
    for _ in 0..args.submitters {
        let (client, next, total) = (client.clone(), next.clone(), args.jobs);
        submitters.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                let job = SubmitJob {
                    action: "noop".into(),
                    ..SubmitJob::default()
                };
                client.submit(&job).await?;
            }
            anyhow::Ok(())
        }));
    }
    for s in submitters {
        s.await??;
    }
    let submitted = started.elapsed();
    let done = wait_until("every job to finish", Duration::from_secs(600), || async {
        let page = client
            .list(&ListJobs {
                state: Some(State::Queued),
                limit: Some(1),
                ..Default::default()
            })
            .await;
        let running = client
            .list(&ListJobs {
                state: Some(State::Running),
                limit: Some(1),
                ..Default::default()
            })
            .await;
        matches!((page, running), (Ok(q), Ok(r)) if q.jobs.is_empty() && r.jobs.is_empty())
    })
    .await;
    if let Err(e) = done {
        bail!("{e}; executor log:\n{}", executor.stderr());
    }
    let elapsed = started.elapsed();

    let mut latencies = Vec::with_capacity(args.jobs);
    let (mut succeeded, mut first, mut last) =
        (0usize, None::<OffsetDateTime>, None::<OffsetDateTime>);
    let mut cursor = None;
    loop {
        let page = client
            .list(&ListJobs {
                limit: Some(500),
                cursor: cursor.clone(),
                ..Default::default()
            })
            .await?;
        for job in &page.jobs {
            let created = OffsetDateTime::parse(&job.created_at, &Rfc3339)?;
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
    ensure!(
        succeeded == args.jobs,
        "{succeeded} of {} jobs succeeded",
        args.jobs
    );
    latencies.sort_by(f64::total_cmp);
    let pct =
        |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)] * 1e3;
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
    drop(executor);
    drop(api_process);
    Ok(())
}
