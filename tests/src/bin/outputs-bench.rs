//! Outputs benchmark (#15): moving a job's files through drover against `docker cp`.
//!
//! ```text
//! cargo run --release -p drover-tests --bin outputs-bench -- [--small 1000] [--big-mib 1024] [--inputs-mib 100]
//! ```
//! Starts ZooKeeper, `drover api` (SQLite, local artifact store) and one `drover
//! executor` as real processes, with Docker, then in one run:
//! 1. a job writes `--small` 4 KiB files, another one `--big-mib` MiB file, all declared
//!    outputs: collection + upload time is the job's finish minus its container's exit
//!    (Docker's `die` event); the same files made in a plain container are then copied
//!    out with `docker cp` to a directory on the same disk;
//! 2. a pipeline `make -> use` where `make` leaves `--inputs-mib` MiB in ten files: the
//!    staging time of `use` is its container's `start` minus its `create` (the gap of a
//!    job without inputs printed beside it).
//!
//! Each figure is a ratio or a rate measured in this run, on this machine.

use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{ensure, Context};
use clap::Parser;
use drover_client::ApiClient;
use drover_model::{Job, SubmitRequest};
use drover_tests::{drover_command, free_port, wait_api_ready, wait_until, LineChild, ZkServer};

#[derive(Parser, Debug)]
#[command(about = "drover outputs benchmark: collection, upload and staging against docker cp")]
struct Args {
    /// Small (4 KiB) files in one job.
    #[arg(long, default_value_t = 1000)]
    small: usize,
    /// MiB of the one big file.
    #[arg(long, default_value_t = 1024)]
    big_mib: u64,
    /// MiB a pipeline job gets from what it needs.
    #[arg(long, default_value_t = 100)]
    inputs_mib: u64,
}

const TOKEN: &str = "bench-admin";
const IMAGE: &str = "drover/busybox:v1";

fn small_script(n: usize) -> String {
    format!("mkdir -p output/small && i=0; while [ $i -lt {n} ]; do head -c 4096 /dev/urandom > output/small/f$i.txt; i=$((i+1)); done")
}

fn big_script(mib: u64) -> String {
    format!(
        "mkdir -p output && head -c {} /dev/urandom > output/big.bin",
        mib << 20
    )
}

fn inputs_script(mib: u64) -> String {
    let each = (mib << 20) / 10;
    format!("mkdir -p output && for i in 0 1 2 3 4 5 6 7 8 9; do head -c {each} /dev/urandom > output/in$i.bin; done")
}

fn project(args: &Args) -> String {
    format!(
        "version: 5\nactions:\n  small:\n    run: {IMAGE} sh -c '{small}'\n    outputs:\n      highly_sensitive:\n        files: output/small/*.txt\n  big:\n    run: {IMAGE} sh -c '{big}'\n    outputs:\n      highly_sensitive:\n        big: output/big.bin\n  make:\n    run: {IMAGE} sh -c '{inputs}'\n    outputs:\n      highly_sensitive:\n        parts: output/in*.bin\n  use:\n    run: {IMAGE} sh -c 'du -s output'\n    needs: [make]\n",
        small = small_script(args.small),
        big = big_script(args.big_mib),
        inputs = inputs_script(args.inputs_mib),
    )
}

fn nanos(time: Option<&str>) -> anyhow::Result<u128> {
    let at = drover_core::clock::parse_rfc3339(time.context("a time")?).context("RFC 3339")?;
    Ok(at.duration_since(UNIX_EPOCH)?.as_nanos())
}

/// Docker's event `action` for job `id`'s container, in Unix nanoseconds.
async fn event(id: &str, action: &str, since: u64) -> anyhow::Result<u128> {
    let until = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)?
        .as_secs()
        + 1;
    let out = tokio::process::Command::new("docker")
        .args([
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
        ])
        .args([
            "--filter",
            "type=container",
            "--filter",
            &format!("event={action}"),
        ])
        .args([
            "--filter",
            &format!("label=drover.job={id}"),
            "--format",
            "{{.TimeNano}}",
        ])
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "docker events: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .with_context(|| format!("no {action} event for job {id}"))?
        .trim()
        .parse()
        .context("an event time")
}

/// Runs `script` in a plain container with a `/workspace` volume, then times `docker
/// cp` of `path` out of it into `into`.
async fn docker_cp(script: &str, path: &str, into: &Path) -> anyhow::Result<Duration> {
    let name = format!("outputs-bench-{}", std::process::id());
    let docker = |args: Vec<String>| async move {
        let out = tokio::process::Command::new("docker")
            .args(&args)
            .output()
            .await?;
        ensure!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok::<_, anyhow::Error>(())
    };
    let _ = tokio::process::Command::new("docker")
        .args(["rm", "-fv", &name])
        .output()
        .await;
    docker(
        [
            "run",
            "--name",
            &name,
            "-v",
            "/workspace",
            "-w",
            "/workspace",
            IMAGE,
            "sh",
            "-c",
            script,
        ]
        .map(str::to_owned)
        .to_vec(),
    )
    .await?;
    let started = Instant::now();
    let copied = docker(vec![
        "cp".into(),
        format!("{name}:/workspace/{path}"),
        into.display().to_string(),
    ])
    .await;
    let took = started.elapsed();
    docker(["rm", "-fv", &name].map(str::to_owned).to_vec()).await?;
    copied.map(|()| took)
}

async fn start(dir: &Path, zk: &ZkServer) -> anyhow::Result<(ApiClient, LineChild, LineChild)> {
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let actions = dir.join("actions");
    std::fs::create_dir_all(&actions)?;
    std::fs::write(
        actions.join("container.toml"),
        "name = \"container\"\nimages = [\"drover/busybox:*\"]\npull = \"never\"\n",
    )?;
    let config = dir.join("drover.toml");
    std::fs::write(
        &config,
        format!(
            "url = \"{url}\"\ntoken = \"{TOKEN}\"\n[zookeeper]\nhosts = \"{zk}\"\n[api]\nlisten = \"127.0.0.1:{port}\"\ndatabase_url = \"sqlite://{db}?mode=rwc\"\n[[api.tokens]]\nname = \"bench\"\ntoken = \"{TOKEN}\"\nrole = \"admin\"\n[executor]\nid = \"bench-executor\"\nslots = 1\nmetrics = false\nactions_dir = \"{actions}\"\n",
            zk = zk.connect_string(),
            db = dir.join("drover.db").display(),
            actions = actions.display(),
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
    Ok((client, api, executor))
}

/// Runs `actions` as one request and waits for every job; its jobs by action.
async fn run(client: &ApiClient, project: &str, actions: &[&str]) -> anyhow::Result<Vec<Job>> {
    let created = client
        .submit_request(&SubmitRequest {
            project: project.to_owned(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            workspace: Some(format!("bench-{}", actions.join("-"))),
            ..SubmitRequest::default()
        })
        .await?;
    let id = created.request.context("a request")?.id.to_string();
    wait_until("the request", Duration::from_secs(1800), || async {
        client
            .request_detail(&id)
            .await
            .is_ok_and(|d| d.jobs.iter().all(|j| j.state.is_terminal()))
    })
    .await?;
    let jobs = client.request_detail(&id).await?.jobs;
    for job in &jobs {
        ensure!(job.state == drover_core::State::Success, "{job:?}");
    }
    Ok(jobs)
}

fn of<'a>(jobs: &'a [Job], action: &str) -> anyhow::Result<&'a Job> {
    jobs.iter()
        .find(|j| j.pipeline_action.as_deref() == Some(action))
        .with_context(|| format!("no {action}"))
}

/// Seconds from the container's exit to the job's recorded finish.
async fn collection(job: &Job, since: u64) -> anyhow::Result<f64> {
    let died = event(&job.id.to_string(), "die", since).await?;
    Ok((nanos(job.finished_at.as_deref())? - died) as f64 / 1e9)
}

fn rate(mib: f64, secs: f64) -> String {
    format!("{:.1} s, {:.0} MiB/s", secs, mib / secs.max(1e-9))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let zk = ZkServer::start().await?;
    let dir = tempfile::tempdir()?;
    let (client, _api, _executor) = start(dir.path(), &zk).await?;
    let project = project(&args);
    let since = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)?
        .as_secs();
    println!("outputs benchmark: one executor, SQLite, local artifact store, Docker on this host");

    let small_mib = (args.small * 4096) as f64 / f64::from(1 << 20);
    let jobs = run(&client, &project, &["small"]).await?;
    let drover_small = collection(of(&jobs, "small")?, since).await?;
    let into = dir.path().join("cp-small");
    let cp_small = docker_cp(&small_script(args.small), "output/small", &into)
        .await?
        .as_secs_f64();
    println!(
        "  {} × 4 KiB ({small_mib:.1} MiB): drover {} | docker cp {} | drover / docker cp {:.2}×",
        args.small,
        rate(small_mib, drover_small),
        rate(small_mib, cp_small),
        drover_small / cp_small.max(1e-9)
    );

    let big_mib = args.big_mib as f64;
    let jobs = run(&client, &project, &["big"]).await?;
    let drover_big = collection(of(&jobs, "big")?, since).await?;
    let into = dir.path().join("cp-big");
    std::fs::create_dir_all(&into)?;
    let cp_big = docker_cp(&big_script(args.big_mib), "output/big.bin", &into)
        .await?
        .as_secs_f64();
    println!(
        "  1 × {big_mib:.0} MiB: drover {} | docker cp {} | drover / docker cp {:.2}×",
        rate(big_mib, drover_big),
        rate(big_mib, cp_big),
        drover_big / cp_big.max(1e-9)
    );

    let jobs = run(&client, &project, &["use"]).await?;
    let gap = |job: &Job| {
        let id = job.id.to_string();
        async move {
            Ok::<_, anyhow::Error>(
                (event(&id, "start", since).await? - event(&id, "create", since).await?) as f64
                    / 1e9,
            )
        }
    };
    let (staged, plain) = (
        gap(of(&jobs, "use")?).await?,
        gap(of(&jobs, "make")?).await?,
    );
    println!(
        "  staging {} MiB of inputs (10 files): create → start {:.2} s ({:.0} MiB/s); a job without inputs {:.2} s",
        args.inputs_mib,
        staged,
        args.inputs_mib as f64 / (staged - plain).max(1e-9),
        plain
    );
    Ok(())
}
