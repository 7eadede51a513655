//! Pipeline benchmark (#14): how soon a dependent runs after what it needs finished.
//!
//! ```text
//! cargo run --release -p drover-tests --bin pipeline-bench -- [--chain 200] [--fan 500] [--slots 16]
//! ```
//! Starts ZooKeeper, `drover api` (SQLite) and one `drover executor` as real processes,
//! warms up, then runs, through `POST /v1/requests`:
//! 1. a chain of `--chain` `noop` actions, each needing the one before;
//! 2. a fan-out `root -> --fan × mid -> sink`;
//! 3. the same numbers of independent `noop` actions, as one request each.
//!
//! For every edge it takes the time from the dependency's finish to the dependent's
//! claim (RUNNING), from the records, and prints p50 / p99 / max, with each request's wall
//! time (creation to last finish) beside that of the same number of independent jobs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use clap::Parser;
use drover_client::ApiClient;
use drover_model::{Job, SubmitJob, SubmitRequest};
use drover_tests::procfs::cpu_seconds;
use drover_tests::{drover_command, free_port, wait_api_ready, wait_until, LineChild, ZkServer};

#[derive(Parser, Debug)]
#[command(about = "drover pipeline benchmark: dependency latency through the real cluster")]
struct Args {
    /// Actions in the chain.
    #[arg(long, default_value_t = 200)]
    chain: usize,
    /// Middle actions of the fan-out.
    #[arg(long, default_value_t = 500)]
    fan: usize,
    /// Executor slots.
    #[arg(long, default_value_t = 16)]
    slots: usize,
    /// `noop` jobs run first and not measured (ZooKeeper's JIT compiler).
    #[arg(long, default_value_t = 3000)]
    warmup: usize,
}

const TOKEN: &str = "bench-admin";

fn chain(n: usize) -> String {
    let mut text = String::from("version: 5\nactions:\n  a0: {action: noop}\n");
    for i in 1..n {
        text.push_str(&format!("  a{i}: {{action: noop, needs: [a{}]}}\n", i - 1));
    }
    text
}

fn fan(n: usize) -> String {
    // Written out: a matrix expands to at most 256 actions.
    let mut text = String::from("version: 5\nactions:\n  root: {action: noop}\n");
    let mids: Vec<String> = (0..n).map(|i| format!("mid-{i}")).collect();
    for mid in &mids {
        text.push_str(&format!("  {mid}: {{action: noop, needs: [root]}}\n"));
    }
    text.push_str(&format!(
        "  sink: {{action: noop, needs: [{}]}}\n",
        mids.join(", ")
    ));
    text
}

fn independent(n: usize) -> String {
    let mut text = String::from("version: 5\nactions:\n");
    for i in 0..n {
        text.push_str(&format!("  j{i}: {{action: noop}}\n"));
    }
    text
}

fn micros(time: Option<&str>) -> anyhow::Result<i64> {
    let at = drover_core::clock::parse_rfc3339(time.context("a time")?).context("RFC 3339")?;
    Ok(i64::try_from(
        at.duration_since(std::time::UNIX_EPOCH)?.as_micros(),
    )?)
}

/// Runs `project`'s `actions` as one request in a fresh workspace and waits for it;
/// its jobs by project action, and its wall time.
async fn run(
    client: &ApiClient,
    project: String,
    actions: &[&str],
    workspace: &str,
) -> anyhow::Result<(HashMap<String, Job>, Duration)> {
    let created = client
        .submit_request(&SubmitRequest {
            project,
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            workspace: Some(workspace.to_owned()),
            ..SubmitRequest::default()
        })
        .await?;
    let id = created.request.context("a request")?.id.to_string();
    wait_until(
        &format!("request {id}"),
        Duration::from_secs(600),
        || async {
            client
                .request_detail(&id)
                .await
                .is_ok_and(|d| d.jobs.iter().all(|j| j.state.is_terminal()))
        },
    )
    .await?;
    let detail = client.request_detail(&id).await?;
    let first = detail
        .jobs
        .iter()
        .map(|j| micros(Some(&j.created_at)))
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .min()
        .unwrap_or(0);
    let last = detail
        .jobs
        .iter()
        .map(|j| micros(j.finished_at.as_deref()))
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .max()
        .unwrap_or(0);
    ensure!(
        detail
            .jobs
            .iter()
            .all(|j| j.status_code == drover_core::StatusCode::Succeeded),
        "a job did not succeed"
    );
    let wall = Duration::from_micros(u64::try_from(last - first).unwrap_or(0));
    let jobs = detail
        .jobs
        .into_iter()
        .map(|j| (j.pipeline_action.clone().unwrap_or_default(), j))
        .collect();
    Ok((jobs, wall))
}

/// Finish → dependent RUNNING, in ms, for each (dependency, dependent) pair.
fn edges(jobs: &HashMap<String, Job>, pairs: &[(String, String)]) -> anyhow::Result<Vec<f64>> {
    pairs
        .iter()
        .map(|(from, to)| {
            let done = micros(jobs[from].finished_at.as_deref())?;
            let running = micros(jobs[to].started_at.as_deref())?;
            Ok((running - done) as f64 / 1000.0)
        })
        .collect()
}

fn quantiles(label: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    println!(
        "  {label}: {} edges, finish → dependent RUNNING p50 {:.1} ms | p99 {:.1} ms | max {:.1} ms",
        ms.len(),
        at(0.50),
        at(0.99),
        at(1.0)
    );
}

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
            "url = \"{url}\"\ntoken = \"{TOKEN}\"\n[zookeeper]\nhosts = \"{zk}\"\n[api]\nlisten = \"127.0.0.1:{port}\"\ndatabase_url = \"sqlite://{db}?mode=rwc\"\n[[api.tokens]]\nname = \"bench\"\ntoken = \"{TOKEN}\"\nrole = \"admin\"\n[executor]\nid = \"bench-executor\"\nslots = {slots}\nmetrics = false\n",
            zk = zk.connect_string(),
            db = dir.path().join("drover.db").display(),
            slots = args.slots,
        ),
    )?;
    let spawn = |role: &'static str| {
        let config = config.clone();
        async move {
            let mut command = drover_command().await?;
            command
                .arg(role)
                .arg("--config")
                .arg(&config)
                .env("RUST_LOG", "warn");
            LineChild::spawn(command)
        }
    };
    let mut api = spawn("api").await?;
    wait_api_ready(&mut api, &url, Duration::from_secs(60)).await?;
    let client = ApiClient::new(&url, Some(TOKEN.to_owned()))?;
    let executor = spawn("executor").await?;
    wait_until("the executor", Duration::from_secs(60), || async {
        client.executors().await.is_ok_and(|e| !e.is_empty())
    })
    .await
    .with_context(|| executor.stderr())?;
    let pids = [
        api.id().context("api")?,
        executor.id().context("executor")?,
        zk.pid().context("zk")?,
    ];
    println!(
        "pipeline benchmark: one executor with {} slots, SQLite",
        args.slots
    );
    let warm = Instant::now();
    let noop = SubmitJob {
        action: "noop".into(),
        ..SubmitJob::default()
    };
    for chunk in (0..args.warmup).collect::<Vec<_>>().chunks(16) {
        let submits = chunk.iter().map(|_| client.submit(&noop));
        for result in futures::future::join_all(submits).await {
            result?;
        }
    }
    println!(
        "  warm-up: {} noop jobs in {:.1?} (not measured)",
        args.warmup,
        warm.elapsed()
    );

    let cpu_before: f64 = pids.iter().map(|&p| cpu_seconds(p)).sum();
    let (jobs, chain_wall) = run(
        &client,
        chain(args.chain),
        &[&format!("a{}", args.chain - 1)],
        "chain",
    )
    .await?;
    let pairs: Vec<(String, String)> = (1..args.chain)
        .map(|i| (format!("a{}", i - 1), format!("a{i}")))
        .collect();
    let chain_edges = edges(&jobs, &pairs)?;
    let (_, chain_alone) = run(
        &client,
        independent(args.chain),
        &["run_all"],
        "chain-alone",
    )
    .await?;
    quantiles(&format!("chain of {}", args.chain), chain_edges);
    println!(
        "  chain of {}: wall {:.2?}; the same number of independent jobs {:.2?} (ratio {:.1})",
        args.chain,
        chain_wall,
        chain_alone,
        chain_wall.as_secs_f64() / chain_alone.as_secs_f64().max(1e-9)
    );

    let (jobs, fan_wall) = run(&client, fan(args.fan), &["sink"], "fan").await?;
    let mids: Vec<String> = (0..args.fan).map(|i| format!("mid-{i}")).collect();
    let root_to_mids: Vec<(String, String)> = mids
        .iter()
        .map(|m| ("root".to_owned(), m.clone()))
        .collect();
    let last_mid = mids
        .iter()
        .max_by_key(|m| micros(jobs[*m].finished_at.as_deref()).unwrap_or(0))
        .context("a mid")?;
    let mut fan_edges = edges(&jobs, &root_to_mids)?;
    fan_edges.sort_by(f64::total_cmp);
    let sink = edges(&jobs, &[(last_mid.clone(), "sink".to_owned())])?;
    println!(
        "  fan-out 1 → {} → 1: root → first mid RUNNING {:.1} ms; last mid → sink RUNNING {:.1} ms",
        args.fan,
        fan_edges.first().copied().unwrap_or(f64::NAN),
        sink[0]
    );
    quantiles(
        &format!(
            "fan-out, root → each of {} mids (includes waiting for one of {} slots)",
            args.fan, args.slots
        ),
        fan_edges,
    );
    let (_, fan_alone) = run(
        &client,
        independent(args.fan + 2),
        &["run_all"],
        "fan-alone",
    )
    .await?;
    println!(
        "  fan-out: wall {:.2?}; {} independent jobs {:.2?} (ratio {:.2})",
        fan_wall,
        args.fan + 2,
        fan_alone,
        fan_wall.as_secs_f64() / fan_alone.as_secs_f64().max(1e-9)
    );
    let cpu_after: f64 = pids.iter().map(|&p| cpu_seconds(p)).sum();
    let jobs_run = 2 * (args.chain + args.fan + 2);
    println!(
        "  CPU (API + executor + ZooKeeper) per job over the four requests: {:.2} ms",
        (cpu_after - cpu_before) * 1000.0 / jobs_run as f64
    );
    drop(executor);
    drop(api);
    Ok(())
}
