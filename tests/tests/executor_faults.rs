//! Executors when faults combine with running work: a job lost while its container is
//! being created, a fenced holder, an oversized result, and what they leave behind. Real
//! ZooKeeper, `drover api` and `drover executor` processes, and the Docker engine.

mod executor_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use drover_core::JobId;
use drover_core::State;
use drover_tests::{connect, entries_of, wait_until, DockerProxy, OverlapMonitor, TcpProxy};
use executor_support::{
    container_events, containers_of, running_containers_of, started_attempts, Cluster, Executor,
    ExecutorOptions, SESSION,
};
use nix::sys::signal::Signal;
use serde_json::json;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_lost_while_its_container_is_created_never_starts_it() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    // A slow daemon: every create takes 3 s.
    let proxy = DockerProxy::start(Duration::from_secs(3))?;
    let mut options = ExecutorOptions::new("slow-docker", 1);
    options.docker_host = Some(proxy.docker_host());
    let executor = cluster.executor(&options).await?;
    let since = unix_now();
    let id = cluster.submit("linger", json!({ "seconds": 1 })).await?;
    wait_until(
        "the create to be under way",
        Duration::from_secs(30),
        || async { proxy.creates() >= 1 },
    )
    .await?;

    // Meanwhile the job stops being this executor's: its taken marker goes, as when
    // the session expires or an operator deletes it.
    let hands = connect(&cluster.zk.connect_string(), SESSION).await?;
    let entry = entries_of(&hands, &id.to_string())
        .await?
        .pop()
        .context("the job's entry")?;
    hands
        .client()
        .delete(&format!("/job/taken/{entry}"), None)
        .await?;

    // The entry is free again; the executor takes it once more and runs attempt 2.
    let admin = cluster.admin()?;
    wait_until("attempt 2 to finish", Duration::from_secs(60), || async {
        admin
            .get(id)
            .await
            .is_ok_and(|job| job.attempts >= 2 && job.state.is_terminal())
    })
    .await
    .with_context(|| executor.log())?;
    let job = admin.get(id).await?;
    assert_eq!(job.state, State::Success, "{job:?}");
    let started = started_attempts(id, since).await?;
    assert!(
        !started.iter().any(|a| a == "1"),
        "attempt 1's container was started after the job was lost: started {started:?}\n{}",
        executor.log()
    );
    assert_eq!(started, ["2"], "only attempt 2 ran");
    Ok(())
}

/// When attempt `first` died and attempt `first + 1` started, in Docker's clock.
fn handover(events: &[(u128, String, String)], first: u32) -> Option<(u128, u128)> {
    let at = |action: &str, attempt: u32| {
        events
            .iter()
            .find(|(_, a, n)| a == action && *n == attempt.to_string())
            .map(|(t, _, _)| *t)
    };
    Some((at("die", first)?, at("start", first + 1)?))
}

/// Submits a job whose action ignores SIGTERM (a graceful stop takes its full grace) and
/// waits until its container runs; returns its id and when it was submitted.
async fn run_stubborn(cluster: &Cluster, monitor: &OverlapMonitor) -> anyhow::Result<(JobId, u64)> {
    let since = unix_now();
    let id = cluster.submit("stubborn", json!({ "seconds": 6 })).await?;
    cluster
        .reaches(id, State::Running, Duration::from_secs(30))
        .await?;
    wait_until("the container to run", Duration::from_secs(30), || async {
        monitor.job(&id.to_string()).max_running == 1
    })
    .await?;
    Ok((id, since))
}

/// Waits until executor `heir` runs attempt 2 of `id`.
async fn taken_over_by(cluster: &Cluster, id: JobId, heir: &Executor) -> anyhow::Result<()> {
    let admin = cluster.admin()?;
    wait_until("the heir to take over", Duration::from_secs(30), || async {
        admin
            .get(id)
            .await
            .is_ok_and(|j| j.attempts == 2 && j.executor.as_deref() == Some("heir"))
    })
    .await
    .with_context(|| heir.log())?;
    Ok(())
}

/// Checks the job succeeded with attempt 1's container dead before attempt 2's started,
/// and never two running at once; prints the gap.
async fn assert_handed_over(
    cluster: &Cluster,
    monitor: &OverlapMonitor,
    id: JobId,
    since: u64,
    holder: &str,
) -> anyhow::Result<()> {
    let job = cluster.finished(id, Duration::from_secs(60)).await?;
    assert_eq!(job.state, State::Success, "{job:?}");
    let events = container_events(id, since).await?;
    let (died, started) = handover(&events, 1).context("attempt 1 died, attempt 2 started")?;
    let sighting = monitor.job(&id.to_string());
    eprintln!(
        "{holder} (session {SESSION:?}): attempt 1 died {:.0} ms before attempt 2 started; monitor: {sighting:?}",
        (started as f64 - died as f64) / 1e6
    );
    assert!(
        died < started,
        "attempt 2 started before attempt 1 died: {events:?}"
    );
    assert_eq!(
        sighting.max_running, 1,
        "two containers ran at once: {sighting:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_executor_never_overlaps_its_successor() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let monitor = OverlapMonitor::start().await?;
    let frozen = cluster.executor(&ExecutorOptions::new("frozen", 1)).await?;
    let (id, since) = run_stubborn(&cluster, &monitor).await?;
    let heir = cluster.executor(&ExecutorOptions::new("heir", 1)).await?;

    // Frozen past its session timeout: its session expires and the heir takes over,
    // while the frozen process cannot stop anything itself.
    frozen.signal(Signal::SIGSTOP)?;
    taken_over_by(&cluster, id, &heir).await?;
    tokio::time::sleep(SESSION).await;
    frozen.signal(Signal::SIGCONT)?;
    assert_handed_over(&cluster, &monitor, id, since, "frozen holder").await?;
    assert!(
        frozen.log().contains("watchdog"),
        "the watchdog acted: {}",
        frozen.log()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_executor_kills_its_container_before_its_session_can_expire(
) -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let monitor = OverlapMonitor::start().await?;
    let proxy = TcpProxy::start(cluster.zk.connect_string()).await?;
    let mut options = ExecutorOptions::new("cut-off", 1);
    options.zk_hosts = Some(proxy.connect_string());
    let _cut_off = cluster.executor(&options).await?;
    let (id, since) = run_stubborn(&cluster, &monitor).await?;
    let heir = cluster.executor(&ExecutorOptions::new("heir", 1)).await?;

    // Its link to ZooKeeper goes silent (the API stays reachable).
    proxy.blackhole();
    taken_over_by(&cluster, id, &heir).await?;
    proxy.unblock();
    assert_handed_over(&cluster, &monitor, id, since, "partitioned holder").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_executors_leftovers_are_reaped_by_its_replacement() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    // A Kubernetes pod SIGKILLed whole: the watchdog dies with it, and the replacement
    // pod has another name.
    let mut options = ExecutorOptions::new("pod-a1b2", 1);
    options.watchdog = false;
    let mut doomed = cluster.executor(&options).await?;
    let id = cluster.submit("stubborn", json!({ "seconds": 60 })).await?;
    cluster
        .reaches(id, State::Running, Duration::from_secs(30))
        .await?;
    wait_until("the container to run", Duration::from_secs(30), || async {
        containers_of("pod-a1b2").await.is_ok_and(|c| c.len() == 1)
    })
    .await?;
    doomed.signal(Signal::SIGKILL)?;
    doomed.exit_code(Duration::from_secs(10)).await?;
    assert_eq!(
        containers_of("pod-a1b2").await?.len(),
        1,
        "the leftover runs on"
    );
    // The job is killed meanwhile, so no take-over of it (which would kill the leftover
    // too) gets there first: only the reaper can.
    let admin = cluster.admin()?;
    admin.kill(id).await?;

    let replacement = cluster
        .executor(&ExecutorOptions::new("pod-c3d4", 1))
        .await?;
    wait_until(
        "the gone executor's container to be reaped",
        Duration::from_secs(30),
        || async { containers_of("pod-a1b2").await.is_ok_and(|c| c.is_empty()) },
    )
    .await
    .with_context(|| replacement.log())?;
    assert!(
        replacement.log().contains("no longer registered"),
        "{}",
        replacement.log()
    );
    let job = cluster.finished(id, Duration::from_secs(30)).await?;
    assert_eq!(
        job.status_code,
        drover_core::StatusCode::KilledByAdmin,
        "{job:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_killed_after_its_job_was_lost_is_not_the_jobs_failure() -> anyhow::Result<()> {
    // A holder that sees its container die before it hears that the job is no longer
    // its own: resumed after its session expired, it finds both at once, and the
    // container was killed because of the loss (a take-over, or another executor's
    // reaper). Here the order is made certain: the holder's link to ZooKeeper goes
    // silent, its marker is deleted (as the session's expiry would), then its container
    // is SIGKILLed; the link heals 3 s later, well inside its 8 s session, so it has
    // reported the kill before it notices anything.
    let cluster = Cluster::start().await?;
    let proxy = TcpProxy::start(cluster.zk.connect_string()).await?;
    let mut options = ExecutorOptions::new("holder", 1);
    options.zk_hosts = Some(proxy.connect_string());
    options.session = Some(Duration::from_secs(8));
    let holder = cluster.executor(&options).await?;
    let id = cluster.submit("stubborn", json!({ "seconds": 8 })).await?;
    cluster
        .reaches(id, State::Running, Duration::from_secs(30))
        .await?;
    let container = wait_for_container("holder").await?;
    let hands = connect(&cluster.zk.connect_string(), SESSION).await?;
    let entry = entries_of(&hands, &id.to_string())
        .await?
        .pop()
        .context("the job's entry")?;

    proxy.blackhole();
    hands
        .client()
        .delete(&format!("/job/taken/{entry}"), None)
        .await?;
    let killed = tokio::process::Command::new("docker")
        .args(["kill", &container])
        .output()
        .await?;
    anyhow::ensure!(killed.status.success(), "docker kill: {killed:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.unblock();

    // The kill is not the job's result: the job reruns and succeeds.
    let job = cluster.finished(id, Duration::from_secs(60)).await?;
    assert_eq!(job.state, State::Success, "{job:?}\n{}", holder.log());
    assert_eq!(job.attempts, 2, "{job:?}");
    assert!(
        holder.log().contains("after the job stopped being ours"),
        "{}",
        holder.log()
    );
    Ok(())
}

/// The id of `executor`'s one container, once it runs (a job is `RUNNING` from just
/// before its container is created, and a created container cannot be killed yet).
async fn wait_for_container(executor: &str) -> anyhow::Result<String> {
    wait_until("the container to run", Duration::from_secs(30), || async {
        running_containers_of(executor)
            .await
            .is_ok_and(|c| c.len() == 1)
    })
    .await?;
    running_containers_of(executor)
        .await?
        .pop()
        .context("the container is gone again")
}
