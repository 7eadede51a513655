//! Routing against a real cluster (ZooKeeper, `drover api`, `drover executor` processes,
//! the Docker engine, kazoo): a job runs only on an executor that offers its action with
//! every tag it requires, waits visibly (`WAITING_ON_WORKERS`) while none does, and
//! never burns an attempt on an executor that cannot run it.

mod executor_support;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Context};
use drover_core::{JobId, State, StatusCode};
use drover_model::{Reconcile, SubmitJob};
use drover_tests::{connect, wait_until, Python};
use executor_support::{drover, Cluster, ExecutorOptions, SESSION};
use nix::sys::signal::Signal;

/// `render` for the plain pool, `train` (its file requires `gpu`) for the GPU pool.
fn pools(cluster: &Cluster) -> anyhow::Result<(PathBuf, PathBuf)> {
    let action = |name: &str, requires: &str| {
        format!(
            "name = \"{name}\"\nimage = \"drover/busybox:latest\"\npull = \"never\"\n{requires}command = [\"sh\", \"-c\", \"echo {name} $DROVER_PARAM_N\"]\n"
        )
    };
    let plain = cluster.dir.path().join("actions-plain");
    let gpu = cluster.dir.path().join("actions-gpu");
    for dir in [&plain, &gpu] {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(plain.join("render.toml"), action("render", ""))?;
    std::fs::write(
        gpu.join("train.toml"),
        action("train", "requires = [\"gpu\"]\n"),
    )?;
    Ok((plain, gpu))
}

fn options(id: &str, slots: usize, actions: &std::path::Path, tags: &[&str]) -> ExecutorOptions {
    let mut options = ExecutorOptions::new(id, slots);
    options.actions_dir = Some(actions.to_owned());
    options.tags = tags.iter().map(|t| (*t).to_owned()).collect();
    options
}

async fn submit(
    cluster: &Cluster,
    action: &str,
    n: usize,
    requires: &[&str],
) -> anyhow::Result<JobId> {
    let submit = SubmitJob {
        action: action.to_owned(),
        params: BTreeMap::from([("n".to_owned(), n.into())]),
        requires: requires.iter().map(|t| (*t).to_owned()).collect(),
        ..SubmitJob::default()
    };
    Ok(cluster.admin()?.submit(&submit).await?.job.id)
}

/// Follows Docker's container `start` events from now on (its `--since` history keeps
/// only the last few hundred events); [`Starts::stop`] gives, per job id, the
/// `drover.executor` label of every container started for it.
struct Starts {
    child: tokio::process::Child,
    lines: tokio::task::JoinHandle<Vec<String>>,
}

impl Starts {
    async fn follow() -> anyhow::Result<Starts> {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new("docker")
            .args(["events", "--filter", "type=container", "--filter", "event=start"])
            .args(["--filter", "label=drover.job"])
            .args([
                "--format",
                "{{index .Actor.Attributes \"drover.job\"}} {{index .Actor.Attributes \"drover.executor\"}}",
            ])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().context("docker events stdout")?;
        let lines = tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(stdout).lines();
            let mut lines = Vec::new();
            while let Ok(Some(line)) = reader.next_line().await {
                lines.push(line);
            }
            lines
        });
        // `docker events` subscribes once it runs; give it a moment.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(Starts { child, lines })
    }

    async fn stop(mut self) -> anyhow::Result<HashMap<String, Vec<String>>> {
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.child.kill().await?;
        let mut by_job: HashMap<String, Vec<String>> = HashMap::new();
        for line in self.lines.await? {
            if let Some((job, executor)) = line.split_once(' ') {
                by_job
                    .entry(job.to_owned())
                    .or_default()
                    .push(executor.to_owned());
            }
        }
        Ok(by_job)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pools_each_run_only_their_own_jobs() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let (plain, gpu) = pools(&cluster)?;
    let starts = Starts::follow().await?;
    let cpu = cluster.executor(&options("cpu-1", 4, &plain, &[])).await?;
    let gpu_1 = cluster
        .executor(&options("gpu-1", 4, &gpu, &["gpu", "fast"]))
        .await?;
    let listed = cluster.admin()?.executors().await?;
    let of = |id: &str| {
        listed
            .iter()
            .find(|e| e.id == id)
            .cloned()
            .context("listed")
    };
    ensure!(of("gpu-1")?.tags == ["fast", "gpu"], "{listed:#?}");
    ensure!(of("gpu-1")?.actions.get("train") == Some(&vec!["gpu".to_owned()]));
    ensure!(!of("cpu-1")?.actions.contains_key("train"));
    let (code, table, stderr) = drover(&cluster, &["executors"]).await?;
    ensure!(code == 0, "{stderr}");
    ensure!(
        table.contains("TAGS") && table.contains("fast,gpu") && table.contains("train[gpu]"),
        "{table}"
    );

    // Interleaved, with noop jobs that need the GPU tag (only gpu-1 may take them).
    let mut kinds = Vec::new();
    for n in 0..200 {
        kinds.push(("render", "cpu-1", submit(&cluster, "render", n, &[]).await?));
        kinds.push(("train", "gpu-1", submit(&cluster, "train", n, &[]).await?));
        if n % 10 == 0 {
            kinds.push((
                "noop+gpu",
                "gpu-1",
                submit(&cluster, "noop", n, &["gpu"]).await?,
            ));
        }
    }
    // One poller at a time: hundreds polling at once would load the API more than the
    // jobs do.
    let mut jobs = Vec::with_capacity(kinds.len());
    for (_, _, id) in &kinds {
        jobs.push(cluster.finished(*id, Duration::from_secs(600)).await?);
    }
    let containers = starts.stop().await?;
    for ((kind, expected, id), job) in kinds.iter().zip(&jobs) {
        ensure!(
            job.status_code == StatusCode::Succeeded && job.attempts == 1,
            "{kind} job {id}: {} after {} attempts: {}\ncpu-1:\n{}\ngpu-1:\n{}",
            job.status_code,
            job.attempts,
            job.status_message,
            cpu.log(),
            gpu_1.log()
        );
        ensure!(
            job.executor.as_deref() == Some(*expected),
            "{kind} job {id} ran on {:?}",
            job.executor
        );
        if *kind != "noop+gpu" {
            let started = containers.get(&id.to_string()).cloned().unwrap_or_default();
            ensure!(
                started == [expected.to_string()],
                "{kind} job {id}: containers started by {started:?}"
            );
        }
    }
    eprintln!(
        "{} jobs, each on its own pool, one attempt each",
        jobs.len()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waits_visibly_until_a_capable_executor_registers_and_again_when_it_dies(
) -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let (plain, gpu) = pools(&cluster)?;
    let _cpu = cluster.executor(&options("cpu-1", 2, &plain, &[])).await?;
    let admin = cluster.admin()?;

    // The submit answer already says why the job waits; the CLI warns.
    let (code, stdout, stderr) = drover(&cluster, &["submit", "train", "-p", "n=1"]).await?;
    ensure!(code == 0, "{stderr}");
    ensure!(
        stderr.contains("warning: job")
            && stderr.contains("no executor offers action `train`")
            && stderr.contains("1 executor registered: cpu-1"),
        "{stderr}"
    );
    let first: JobId = stdout.trim().parse()?;
    let second = submit(&cluster, "train", 2, &["fast"]).await?;
    let waiting = admin.get(second).await?;
    ensure!(
        waiting.status_code == StatusCode::WaitingOnWorkers
            && waiting
                .status_message
                .contains("action `train` with tag `fast`"),
        "{waiting:#?}"
    );
    let (_, listing, _) = drover(&cluster, &["ls", "--state", "queued"]).await?;
    ensure!(
        listing
            .lines()
            .any(|l| l.contains("QUEUED") && l.contains("WAITING_ON_WORKERS")),
        "{listing}"
    );
    let (_, shown, _) = drover(&cluster, &["show", &second.to_string()]).await?;
    ensure!(
        shown.contains("WAITING_ON_WORKERS") && shown.contains("fast"),
        "{shown}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in [first, second] {
        let job = admin.get(id).await?;
        ensure!(
            job.state == State::Queued && job.attempts == 0,
            "nothing took {id}: {job:#?}"
        );
    }

    // A capable executor registers: both run there.
    let mut gpu_1 = cluster
        .executor(&options("gpu-1", 2, &gpu, &["gpu", "fast"]))
        .await?;
    for id in [first, second] {
        let job = cluster.finished(id, Duration::from_secs(60)).await?;
        ensure!(
            job.status_code == StatusCode::Succeeded
                && job.attempts == 1
                && job.executor.as_deref() == Some("gpu-1"),
            "{job:#?}"
        );
    }

    // The only capable executor dies with a job running: the job goes back to waiting,
    // and the other executor never takes it.
    let long = SubmitJob {
        action: "sleep".to_owned(),
        params: BTreeMap::from([("seconds".to_owned(), 30.into())]),
        requires: vec!["gpu".to_owned()],
        ..SubmitJob::default()
    };
    let lingering = admin.submit(&long).await?.job.id;
    cluster
        .reaches(lingering, State::Running, Duration::from_secs(30))
        .await?;
    gpu_1.signal(Signal::SIGKILL)?;
    gpu_1.exit_code(Duration::from_secs(10)).await?;
    wait_until("gpu-1 to leave the membership", SESSION * 3, || async {
        admin
            .executors()
            .await
            .is_ok_and(|list| list.iter().all(|e| e.id != "gpu-1"))
    })
    .await?;
    let report = admin
        .reconcile(&Reconcile {
            stale_after_ms: Some(0),
            ..Reconcile::default()
        })
        .await?;
    ensure!(report.released.count == 1, "{report:#?}");
    let job = admin.get(lingering).await?;
    ensure!(
        job.status_code == StatusCode::WaitingOnWorkers
            && job.status_message.contains("action `sleep` with tag `gpu`"),
        "{job:#?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let job = admin.get(lingering).await?;
    ensure!(
        job.status_code == StatusCode::WaitingOnWorkers && job.attempts == 1,
        "cpu-1 must not take it: {job:#?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_no_executor_knows_waits_then_ends_unknown_action_without_an_attempt(
) -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    // A catalogue whose names alone are far over the API's 4,096-byte message limit.
    let actions = cluster.dir.path().join("actions");
    for i in 0..300 {
        let name = format!("a-rather-long-action-name-for-a-big-catalogue-{i:03}");
        std::fs::write(
            actions.join(format!("{name}.toml")),
            format!("name = \"{name}\"\nimage = \"drover/busybox:latest\"\npull = \"never\"\ncommand = [\"true\"]\n"),
        )?;
    }
    let executor = cluster
        .executor(&ExecutorOptions::new("big-catalogue", 2))
        .await?;
    let admin = cluster.admin()?;
    let id = cluster.submit("nosuch", serde_json::json!({})).await?;
    let job = admin.get(id).await?;
    ensure!(
        job.status_code == StatusCode::WaitingOnWorkers
            && job
                .status_message
                .contains("no executor offers action `nosuch`")
            && job.status_message.len() <= 4096,
        "{job:#?}"
    );
    // Within the grace period the reconciler leaves it waiting.
    let report = admin.reconcile(&Reconcile::default()).await?;
    ensure!(report.unknown_action.count == 0, "{report:#?}");
    let report = admin
        .reconcile(&Reconcile {
            unknown_action_after_ms: Some(0),
            ..Reconcile::default()
        })
        .await?;
    ensure!(
        report.unknown_action.sample == [id.to_string()],
        "{report:#?}"
    );
    let job = admin.get(id).await?;
    ensure!(
        (job.status_code, job.attempts) == (StatusCode::UnknownAction, 0)
            && job
                .status_message
                .contains("no executor in the cluster knows action \"nosuch\""),
        "{job:#?}\n{}",
        executor.log()
    );
    // Its entry is gone from the queue (removed as an orphan in the same run).
    let session = connect(&cluster.zk.connect_string(), SESSION).await?;
    let entries = session.client().list_children("/job/entries").await?;
    ensure!(entries.is_empty(), "{entries:?}");
    Ok(())
}

/// Puts `ids` on `/job` with kazoo's own `LockingQueue.put`: plain entries.
async fn kazoo_put(cluster: &Cluster, ids: &[JobId]) -> anyhow::Result<()> {
    let script = r#"
import sys
from kazoo.client import KazooClient
from kazoo.recipe.queue import LockingQueue
client = KazooClient(hosts=sys.argv[1])
client.start(timeout=10)
queue = LockingQueue(client, "/job")
for value in sys.argv[2:]:
    queue.put(value.encode())
client.stop()
client.close()
"#;
    let mut python = Python::source(script)?.arg(cluster.zk.connect_string());
    for id in ids {
        python = python.arg(id.to_string());
    }
    python.run().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_kazoo_entries_run_anywhere_or_go_back_under_their_route() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let (plain, gpu) = pools(&cluster)?;
    let admin = cluster.admin()?;
    // Jobs submitted with no executor running; their routed entries replaced by plain
    // ones, as a kazoo producer (or a pre-routing API) writes them.
    let noop = submit(&cluster, "noop", 1, &[]).await?;
    let render = submit(&cluster, "render", 2, &[]).await?;
    let session = connect(&cluster.zk.connect_string(), SESSION).await?;
    let client = session.client();
    for name in client.list_children("/job/entries").await? {
        client.delete(&format!("/job/entries/{name}"), None).await?;
    }
    kazoo_put(&cluster, &[noop, render]).await?;
    let entries = client.list_children("/job/entries").await?;
    ensure!(
        entries.len() == 2
            && entries
                .iter()
                .all(|e| e.starts_with("entry-100-") && e.len() == 20),
        "{entries:?}"
    );

    // gpu-1 runs the noop job and puts the render job back under its route.
    let gpu_1 = cluster
        .executor(&options("gpu-1", 1, &gpu, &["gpu"]))
        .await?;
    let job = cluster
        .finished(noop, Duration::from_secs(60))
        .await
        .with_context(|| gpu_1.log())?;
    ensure!(
        job.executor.as_deref() == Some("gpu-1") && job.attempts == 1,
        "{job:#?}"
    );
    wait_until(
        "the render entry to be routed",
        Duration::from_secs(30),
        || async {
            client
                .list_children("/job/entries")
                .await
                .is_ok_and(|e| e.len() == 1 && e[0].starts_with("entry-100-render-"))
        },
    )
    .await?;
    let waiting = admin.get(render).await?;
    ensure!(
        waiting.status_code == StatusCode::WaitingOnWorkers && waiting.attempts == 0,
        "{waiting:#?}"
    );
    let cpu = cluster.executor(&options("cpu-1", 1, &plain, &[])).await?;
    let job = cluster
        .finished(render, Duration::from_secs(60))
        .await
        .with_context(|| format!("cpu-1:\n{}\ngpu-1:\n{}", cpu.log(), gpu_1.log()))?;
    ensure!(
        job.status_code == StatusCode::Succeeded
            && job.executor.as_deref() == Some("cpu-1")
            && job.attempts == 1,
        "{job:#?}"
    );
    Ok(())
}
