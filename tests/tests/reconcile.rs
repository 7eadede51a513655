//! The reconciler against a real ZooKeeper and a real API, driven by a real
//! `drover distributor`: each kind of damage is repaired, and each job then runs exactly
//! once on a real executor (or ends FAILED with a clear message).

mod distributor_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context};
use distributor_support::{Cluster, DEADLINE, DISTRIBUTOR, EXECUTOR, SESSION, SUBMITTER};
use drover_coordination::Queue;
use drover_core::{FencingToken, JobId, Priority, State, StatusCode};
use drover_model::{Claim, Job, Reconcile, SubmitJob};
use drover_tests::{wait_until, LineChild};
use nix::sys::signal::Signal;

fn now_us() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros(),
    )
    .unwrap_or(0)
}

/// A `zk-actor` process that takes the first free entry and holds it: a stand-in for an
/// executor that will vanish. Returns it and the entry's fencing token and payload.
async fn ghost_take(
    cluster: &Cluster,
) -> anyhow::Result<(LineChild, FencingToken, String, String)> {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_zk-actor"));
    command.args([
        "take",
        &cluster.zk.connect_string(),
        "/job",
        &SESSION.as_millis().to_string(),
    ]);
    let mut ghost = LineChild::spawn(command)?;
    let line = ghost.expect_line("taken NAME TOKEN DATA", DEADLINE).await?;
    let parts: Vec<&str> = line.split_whitespace().collect();
    ensure!(
        parts.len() == 4 && parts[0] == "taken",
        "unexpected {line:?}"
    );
    let token = FencingToken::new(parts[2].parse()?);
    Ok((ghost, token, parts[3].to_owned(), parts[1].to_owned()))
}

async fn submit(
    cluster: &Cluster,
    priority: u16,
    max_attempts: Option<u32>,
) -> anyhow::Result<Job> {
    let job = SubmitJob {
        action: "noop".into(),
        priority: Some(Priority::new(priority)?),
        max_attempts,
        ..SubmitJob::default()
    };
    Ok(cluster.admin()?.submit(&job).await?.job)
}

async fn entries_of(cluster: &Cluster, id: JobId) -> anyhow::Result<Vec<String>> {
    let id = id.to_string();
    Ok(cluster
        .entries()
        .await?
        .into_iter()
        .filter(|(_, data)| *data == id)
        .map(|(name, _)| name)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_repairs_each_case_and_every_job_runs_exactly_once() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let admin = cluster.admin()?;
    let executor_api = cluster.client(EXECUTOR)?;

    // (c) RUNNING, its executor about to vanish; (e) the same with no attempts left.
    let vanished = submit(&cluster, 1, None).await?;
    let exhausted = submit(&cluster, 2, Some(1)).await?;
    let mut ghosts = Vec::new();
    for (job, executor) in [(&vanished, "ghost-1"), (&exhausted, "ghost-2")] {
        let (ghost, token, data, entry) = ghost_take(&cluster).await?;
        ensure!(
            data == job.id.to_string(),
            "the ghost took {data}, not {}",
            job.id
        );
        let claim = Claim {
            token,
            executor: executor.into(),
            entry,
        };
        let claimed = executor_api.claim(job.id, &claim).await?;
        ensure!(claimed.state == State::Running);
        ghosts.push(ghost);
    }
    // (b) A queue entry deleted by hand.
    let deleted_entry = submit(&cluster, 100, None).await?;
    let names = entries_of(&cluster, deleted_entry.id).await?;
    ensure!(names.len() == 1, "{names:?}");
    cluster
        .session
        .client()
        .delete(&format!("/job/entries/{}", names[0]), None)
        .await?;
    // (a) Committed but never enqueued: the row a crash between commit and enqueue leaves.
    let never_enqueued = JobId::new();
    let db = cluster.db().await?;
    sqlx::query(
        "INSERT INTO jobs (id, action, params, priority, state, status_code, status_message, \
         max_attempts, timeout_secs, created_us) \
         VALUES ($1, 'noop', '{}', 100, 'QUEUED', 'CREATED', 'committed; not yet on the queue', 3, 3600, $2)",
    )
    .bind(never_enqueued.to_string())
    .bind(now_us() - 5_000_000)
    .execute(&db)
    .await?;
    db.close().await;
    // (d) An entry whose job does not exist (deleted, or never was).
    let queue = Queue::open(&cluster.session, "/job").await?;
    let orphan = queue.put_job(JobId::new(), Priority::DEFAULT).await?;
    // The executors vanish: their sessions expire, their taken nodes go.
    for ghost in &ghosts {
        ghost.signal(Signal::SIGKILL)?;
    }

    // A distributor runs the reconciler; nothing else repairs anything.
    let body = "reconcile_every = \"500ms\"\nreconcile_grace = \"2s\"\nreconcile_stale_after = \"1500ms\"\n";
    let distributor = cluster.distributor("dist-r", body).await?;
    let took = wait_until("every repair", DEADLINE, || async {
        let job = |id| admin.get(id);
        let (Ok(a), Ok(b), Ok(c), Ok(e)) = (
            job(never_enqueued).await,
            job(deleted_entry.id).await,
            job(vanished.id).await,
            job(exhausted.id).await,
        ) else {
            return false;
        };
        let entries = cluster.entries().await.unwrap_or_default();
        let count = |id: JobId| entries.iter().filter(|(_, d)| *d == id.to_string()).count();
        // no executor is registered yet: enqueued jobs are shown waiting for one
        a.enqueued
            && a.status_code == StatusCode::WaitingOnWorkers
            && count(never_enqueued) == 1
            && count(deleted_entry.id) == 1
            && b.state == State::Queued
            && c.state == State::Queued
            && e.state == State::Failed
            && count(exhausted.id) == 0
            && !entries.iter().any(|(name, _)| *name == orphan)
    })
    .await;
    if let Err(err) = took {
        anyhow::bail!(
            "{err}; distributor log:\n{}\napi log:\n{}",
            distributor.child.stderr(),
            cluster.api.stderr()
        );
    }
    eprintln!(
        "every case repaired {:?} after the distributor started",
        took?
    );

    let c = admin.get(vanished.id).await?;
    ensure!(
        c.attempts == 1 && c.status_code == StatusCode::WaitingOnWorkers,
        "{c:?}"
    );
    ensure!(
        c.status_message.contains("vanished"),
        "{}",
        c.status_message
    );
    let e = admin.get(exhausted.id).await?;
    ensure!(e.status_code == StatusCode::AttemptsExhausted, "{e:?}");
    for needle in ["vanished", "max_attempts", "no attempts are left"] {
        ensure!(
            e.status_message.contains(needle),
            "{:?} should say {needle:?}",
            e.status_message
        );
    }
    ensure!(
        entries_of(&cluster, vanished.id).await?.len() == 1,
        "the released job keeps its one entry"
    );
    // Later runs change nothing: no duplicate entries, no second release.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let entries = cluster.entries().await?;
    ensure!(
        entries.len() == 3,
        "exactly the three queued jobs' entries: {entries:?}"
    );
    ensure!(admin.get(vanished.id).await?.attempts == 1);
    let metrics = admin.metrics().await?;
    for kind in ["enqueued", "released", "ended", "removed_entries"] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "drover_reconcile_repairs_total{{kind=\"{kind}\"}}"
                ))
            })
            .with_context(|| format!("no {kind} counter in\n{metrics}"))?;
        let value: f64 = line.rsplit(' ').next().unwrap_or("0").parse()?;
        ensure!(value >= 1.0, "{line}");
    }
    ensure!(
        !distributor.lines_with(&["reconcile repaired"]).is_empty(),
        "the distributor logs repairs"
    );

    // Now an executor runs what is queued: each job exactly once.
    let executor = cluster.executor("exec-1", 2).await?;
    for id in [never_enqueued, deleted_entry.id, vanished.id] {
        wait_until(&format!("job {id} to succeed"), DEADLINE, || async {
            admin.get(id).await.is_ok_and(|j| j.state == State::Success)
        })
        .await?;
    }
    wait_until("the queue to empty", DEADLINE, || async {
        cluster.entries().await.is_ok_and(|e| e.is_empty())
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (id, attempts) in [(never_enqueued, 1), (deleted_entry.id, 1), (vanished.id, 2)] {
        let job = admin.get(id).await?;
        ensure!(
            job.state == State::Success && job.attempts == attempts,
            "{job:?}"
        );
        let runs = executor.lines_with(&["job ran", &id.to_string()]).len();
        ensure!(runs == 1, "job {id} ran {runs} times on the executor");
    }
    ensure!(admin.get(exhausted.id).await?.state == State::Failed);
    ensure!(
        cluster.entries().await?.is_empty(),
        "nothing was enqueued again"
    );

    // Only distributors and admins may reconcile.
    let refused = cluster
        .client(SUBMITTER)?
        .reconcile(&Reconcile::default())
        .await;
    ensure!(refused.is_err_and(|e| e.status() == Some(drover_client::StatusCode::FORBIDDEN)));
    cluster
        .client(DISTRIBUTOR)?
        .reconcile(&Reconcile::default())
        .await?;
    Ok(())
}
