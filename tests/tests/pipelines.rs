//! Pipelines against a real cluster (ZooKeeper, `drover api` on SQLite, `drover executor`
//! processes, Docker for the failing action): a request runs what its actions need, in
//! order, in parallel where the graph allows, reusing what runs and skipping what
//! succeeded; a failure ends what waits on it at once.

mod executor_support;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{ensure, Context};
use drover_core::{State, StatusCode};
use drover_model::{Job, RequestCreated, RequestDetail, SubmitRequest};
use executor_support::{Cluster, ExecutorOptions};
use nix::sys::signal::Signal;

/// `a -> (b, c) -> d`; `b` and `c` sleep long enough to be seen overlapping.
const DIAMOND: &str = "version: 5
actions:
  a:
    action: sleep
    params: {seconds: 0.2}
  b:
    action: sleep
    params: {seconds: 2}
    needs: [a]
  c:
    action: sleep
    params: {seconds: 2}
    needs: [a]
  d:
    action: sleep
    params: {seconds: 1.5}
    needs: [b, c]
";

async fn request(
    cluster: &Cluster,
    project: &str,
    actions: &[&str],
    force: bool,
) -> anyhow::Result<RequestCreated> {
    Ok(cluster
        .admin()?
        .submit_request(&SubmitRequest {
            project: project.to_owned(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            workspace: Some("w".into()),
            force_run_dependencies: force,
            ..SubmitRequest::default()
        })
        .await?)
}

async fn finished(cluster: &Cluster, id: &str, timeout: Duration) -> anyhow::Result<RequestDetail> {
    let admin = cluster.admin()?;
    drover_tests::wait_until(&format!("request {id} to end"), timeout, || async {
        admin
            .request_detail(id)
            .await
            .is_ok_and(|d| d.jobs.iter().all(|j| j.state.is_terminal()))
    })
    .await?;
    Ok(admin.request_detail(id).await?)
}

/// `drover ls -o json ARGS`.
async fn ls(cluster: &Cluster, args: &[&str]) -> anyhow::Result<Vec<Job>> {
    let all: Vec<&str> = ["ls", "-o", "json"].iter().chain(args).copied().collect();
    let (code, out, err) = executor_support::drover(cluster, &all).await?;
    ensure!(code == 0, "drover {all:?} exited {code}: {err}");
    Ok(serde_json::from_str(&out)?)
}

fn by_action(jobs: &[Job]) -> HashMap<String, Job> {
    jobs.iter()
        .map(|j| (j.pipeline_action.clone().unwrap_or_default(), j.clone()))
        .collect()
}

fn micros(time: &Option<String>) -> anyhow::Result<i64> {
    let text = time.as_deref().context("a time")?;
    let at = drover_core::clock::parse_rfc3339(text).context("an RFC 3339 time")?;
    Ok(i64::try_from(
        at.duration_since(std::time::UNIX_EPOCH)?.as_micros(),
    )?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diamond_runs_in_order_in_parallel_and_skips_what_succeeded() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let _e1 = cluster.executor(&ExecutorOptions::new("e1", 1)).await?;
    let _e2 = cluster.executor(&ExecutorOptions::new("e2", 1)).await?;

    let first = request(&cluster, DIAMOND, &["d"], false).await?;
    ensure!(first.created == 4, "{first:?}");
    let id = first.request.as_ref().context("a request")?.id.to_string();
    let waiting = by_action(&first.jobs);
    ensure!(waiting["a"].status_code != StatusCode::WaitingOnDependencies);
    for name in ["b", "c", "d"] {
        ensure!(
            waiting[name].status_code == StatusCode::WaitingOnDependencies
                && !waiting[name].enqueued,
            "{name}: {:?}",
            waiting[name]
        );
    }
    // `d` again while it runs creates nothing.
    cluster
        .reaches(waiting["d"].id, State::Running, Duration::from_secs(30))
        .await?;
    let again = request(&cluster, DIAMOND, &["d"], false).await?;
    ensure!(
        again.created == 0
            && again.request.is_none()
            && again.message == "all requested actions were already scheduled to run",
        "{again:?}"
    );
    ensure!(
        again.jobs.iter().any(|j| j.id == waiting["d"].id),
        "{again:?}"
    );

    let done = finished(&cluster, &id, Duration::from_secs(60)).await?;
    ensure!(done.request.state == State::Success, "{:?}", done.request);
    let jobs = by_action(&done.jobs);
    let (b, c, d, a) = (&jobs["b"], &jobs["c"], &jobs["d"], &jobs["a"]);
    for job in [a, b, c, d] {
        ensure!(job.attempts == 1, "{job:?}");
    }
    let (b0, b1) = (micros(&b.started_at)?, micros(&b.finished_at)?);
    let (c0, c1) = (micros(&c.started_at)?, micros(&c.finished_at)?);
    ensure!(
        micros(&a.finished_at)? <= b0.min(c0),
        "a ends before b and c start"
    );
    ensure!(
        b0 < c1 && c0 < b1,
        "b ({b0}..{b1}) and c ({c0}..{c1}) overlap"
    );
    ensure!(
        b.executor != c.executor,
        "b and c ran on both executors: {:?} {:?}",
        b.executor,
        c.executor
    );
    ensure!(
        micros(&d.started_at)? >= b1.max(c1),
        "d starts after b and c end"
    );

    // After success, `d` again runs only `d`; `-f` runs all four.
    let only_d = request(&cluster, DIAMOND, &["d"], false).await?;
    ensure!(
        only_d.created == 1 && only_d.jobs[0].pipeline_action.as_deref() == Some("d"),
        "{only_d:?}"
    );
    let id = only_d.request.context("a request")?.id.to_string();
    let done = finished(&cluster, &id, Duration::from_secs(60)).await?;
    ensure!(done.request.state == State::Success, "{:?}", done.jobs);
    let forced = request(&cluster, DIAMOND, &["d"], true).await?;
    ensure!(forced.created == 4, "{forced:?}");
    let id = forced.request.context("a request")?.id.to_string();
    let done = finished(&cluster, &id, Duration::from_secs(60)).await?;
    ensure!(done.request.state == State::Success, "{:?}", done.jobs);

    // `drover ls --request PREFIX` lists one request's jobs; `--workspace` all of the
    // workspace's (4 + 1 + 4), another workspace none.
    let of_request = ls(&cluster, &["--request", &id[..8]]).await?;
    ensure!(
        of_request.len() == 4
            && of_request
                .iter()
                .all(|j| j.request_id.map(|r| r.to_string()) == Some(id.clone())),
        "{of_request:?}"
    );
    ensure!(ls(&cluster, &["--workspace", "w"]).await?.len() == 9);
    ensure!(ls(&cluster, &["--workspace", "other"]).await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_ends_its_dependents_at_once_and_its_siblings_finish() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.add_action(
        "fails",
        "name = \"fails\"\nimage = \"drover/busybox:latest\"\npull = \"never\"\ncommand = [\"sh\", \"-c\", \"exit 3\"]\n",
    )?;
    let _e1 = cluster.executor(&ExecutorOptions::new("e1", 2)).await?;
    let project = DIAMOND.replace(
        "  b:\n    action: sleep\n    params: {seconds: 2}\n",
        "  b:\n    action: fails\n",
    );
    let created = request(&cluster, &project, &["d"], false).await?;
    let id = created.request.context("a request")?.id.to_string();
    let admin = cluster.admin()?;
    let jobs = by_action(&created.jobs);
    let b = cluster
        .finished(jobs["b"].id, Duration::from_secs(60))
        .await?;
    ensure!(b.status_code == StatusCode::NonzeroExit, "{b:?}");
    // The same operation that recorded b's failure ended d: no waiting, no polling.
    let d = admin.get(jobs["d"].id).await?;
    ensure!(d.status_code == StatusCode::DependencyFailed, "{d:?}");
    ensure!(
        d.status_message.contains("`b`") && d.status_message.contains("NONZERO_EXIT"),
        "{}",
        d.status_message
    );
    ensure!(d.attempts == 0, "{d:?}");
    let c = admin.get(jobs["c"].id).await?;
    ensure!(
        !c.state.is_terminal() || c.status_code == StatusCode::Succeeded,
        "{c:?}"
    );
    let done = finished(&cluster, &id, Duration::from_secs(60)).await?;
    let jobs = by_action(&done.jobs);
    ensure!(
        jobs["c"].status_code == StatusCode::Succeeded,
        "{:?}",
        jobs["c"]
    );
    ensure!(done.request.state == State::Failed, "{:?}", done.request);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_whose_executor_dies_reruns_and_its_dependent_runs_once() -> anyhow::Result<()>
{
    let cluster = Cluster::start().await?;
    let doomed = cluster.executor(&ExecutorOptions::new("doomed", 1)).await?;
    let project = "version: 5\nactions:\n  b:\n    action: sleep\n    params: {seconds: 3}\n  d:\n    action: noop\n    needs: [b]\n";
    let created = request(&cluster, project, &["d"], false).await?;
    let id = created.request.context("a request")?.id.to_string();
    let jobs = by_action(&created.jobs);
    cluster
        .reaches(jobs["b"].id, State::Running, Duration::from_secs(30))
        .await?;
    doomed.signal(Signal::SIGKILL)?;
    let _heir = cluster.executor(&ExecutorOptions::new("heir", 1)).await?;
    let done = finished(&cluster, &id, Duration::from_secs(90)).await?;
    let jobs = by_action(&done.jobs);
    ensure!(
        jobs["b"].attempts == 2 && jobs["b"].executor.as_deref() == Some("heir"),
        "{:?}",
        jobs["b"]
    );
    ensure!(
        jobs["d"].attempts == 1 && jobs["d"].status_code == StatusCode::Succeeded,
        "{:?}",
        jobs["d"]
    );
    ensure!(micros(&jobs["d"].started_at)? >= micros(&jobs["b"].finished_at)?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matrix_fans_out_and_its_dependent_waits_for_every_expansion() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let _e1 = cluster.executor(&ExecutorOptions::new("e1", 4)).await?;
    let project = "version: 5
actions:
  test:
    action: sleep
    params: {seconds: 0.3, os: '{matrix.os}'}
    matrix:
      python: ['3.11', '3.12', '3.13']
      os: [linux, mac]
  report:
    action: noop
    needs: [test]
";
    let created = request(&cluster, project, &["report"], false).await?;
    ensure!(created.created == 7, "{created:?}");
    let id = created.request.context("a request")?.id.to_string();
    let done = finished(&cluster, &id, Duration::from_secs(60)).await?;
    let report = done
        .jobs
        .iter()
        .find(|j| j.pipeline_action.as_deref() == Some("report"))
        .context("report")?;
    let mut last_test = 0;
    for job in done
        .jobs
        .iter()
        .filter(|j| j.pipeline_action.as_deref() != Some("report"))
    {
        ensure!(job.status_code == StatusCode::Succeeded, "{job:?}");
        last_test = last_test.max(micros(&job.finished_at)?);
    }
    ensure!(
        micros(&report.started_at)? >= last_test,
        "report waits for all six"
    );
    let names: Vec<&str> = done
        .jobs
        .iter()
        .filter_map(|j| j.pipeline_action.as_deref())
        .collect();
    ensure!(names.contains(&"test-3.12-mac"), "{names:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_project_file_is_refused_with_its_line() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let err = request(&cluster, "version: 5\nactions:\n  a:\n    action: noop\n    needs: [b]\n  b:\n    action: noop\n    needs: [a]\n", &["a"], false)
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    ensure!(
        text.contains(
            "drover.yaml:3: action `a`: `needs` make a cycle (each needs the next): a -> b -> a"
        ),
        "{text}"
    );
    let err = request(&cluster, DIAMOND, &["e"], false).await.unwrap_err();
    ensure!(
        format!("{err:#}").contains("the project has no action `e`"),
        "{err:#}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drover_cancel_with_a_request_id_cancels_its_jobs() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let _e1 = cluster.executor(&ExecutorOptions::new("e1", 1)).await?;
    let project = "version: 5\nactions:\n  long:\n    action: sleep\n    params: {seconds: 60}\n  after:\n    action: noop\n    needs: [long]\n";
    let created = request(&cluster, project, &["after"], false).await?;
    let id = created.request.context("a request")?.id.to_string();
    let jobs = by_action(&created.jobs);
    cluster
        .reaches(jobs["long"].id, State::Running, Duration::from_secs(30))
        .await?;
    let (code, out, err) = executor_support::drover(&cluster, &["cancel", &id[..8]]).await?;
    ensure!(code == 0, "drover cancel exited {code}: {out} {err}");
    ensure!(out.contains("after") && out.contains("long"), "{out}");
    let done = finished(&cluster, &id, Duration::from_secs(30)).await?;
    let jobs = by_action(&done.jobs);
    ensure!(
        jobs["after"].status_code == StatusCode::CancelledByUser,
        "{:?}",
        jobs["after"]
    );
    ensure!(jobs["long"].state == State::Canceled, "{:?}", jobs["long"]);
    ensure!(done.request.state == State::Canceled, "{:?}", done.request);
    Ok(())
}

/// The executors' `container` action: runs the image a `run:` line names, when its file
/// allows it, with the line's words as the command and `config:` as JSON.
const CONTAINER_ACTION: &str =
    "name = \"container\"\nimages = [\"drover/busybox:*\"]\npull = \"never\"\nmemory = \"256m\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_lines_run_their_image_with_their_words_and_config() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.add_action("container", CONTAINER_ACTION)?;
    let _e1 = cluster.executor(&ExecutorOptions::new("e1", 2)).await?;
    // Quotes group words as a shell would, but no shell sees the line: `;` is a word.
    let project = r#"version: 5
actions:
  hello:
    run: drover/busybox:v1 sh -c 'echo "config=$DROVER_PARAM_CONFIG"; echo "$0"' 'a b; rm -rf /'
    config: {greeting: hi, n: 2}
  elsewhere:
    run: python:3.12 -c pass
  greedy:
    run: drover/busybox:v1 true
    memory: 1g
  after:
    action: noop
    needs: [hello, elsewhere]
"#;
    let created = request(&cluster, project, &["after", "greedy"], false).await?;
    let id = created.request.context("a request")?.id.to_string();
    let done = finished(&cluster, &id, Duration::from_secs(60)).await?;
    let jobs = by_action(&done.jobs);
    let hello = &jobs["hello"];
    ensure!(hello.status_code == StatusCode::Succeeded, "{hello:?}");
    ensure!(hello.action == "container", "{hello:?}");
    let admin = cluster.admin()?;
    let lines: Vec<String> = admin
        .logs(hello.id, 0, None)
        .await?
        .lines
        .into_iter()
        .map(|l| l.line)
        .collect();
    ensure!(
        lines.contains(&r#"config={"greeting":"hi","n":2}"#.to_owned())
            && lines.contains(&"a b; rm -rf /".to_owned()),
        "{lines:?}"
    );
    let elsewhere = &jobs["elsewhere"];
    ensure!(
        elsewhere.status_code == StatusCode::NonzeroExit
            && elsewhere
                .status_message
                .contains("image python:3.12 is not allowed here")
            && elsewhere
                .status_message
                .contains("container.toml allows drover/busybox:*")
            && elsewhere.attempts == 1,
        "refused, once, saying where to allow it: {elsewhere:?}"
    );
    let greedy = &jobs["greedy"];
    ensure!(
        greedy
            .status_message
            .contains("memory = 1024 MiB, above the 256 MiB"),
        "{greedy:?}"
    );
    ensure!(
        jobs["after"].status_code == StatusCode::DependencyFailed,
        "{:?}",
        jobs["after"]
    );
    Ok(())
}

/// A real crash between a success's commit and its dependents' enqueue: the API's
/// ZooKeeper connection is cut (the executors keep theirs) while `a` finishes, so the API
/// records the success and releases `b` but cannot put it on the queue; the API is then
/// SIGKILLed, the connection restored and the API restarted on the same database. The
/// reconciler (which a distributor runs every few seconds) puts `b` on the queue; `b`
/// runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_killed_between_a_success_and_its_dependents_enqueue_loses_nothing(
) -> anyhow::Result<()> {
    let mut cluster = Cluster::start().await?;
    let proxy = drover_tests::TcpProxy::start(cluster.zk.connect_string()).await?;
    cluster.kill_api().await?;
    cluster.api_zk_hosts = Some(proxy.connect_string());
    cluster.start_api().await?;
    let _e1 = cluster.executor(&ExecutorOptions::new("e1", 1)).await?;
    let project = "version: 5\nactions:\n  a:\n    action: sleep\n    params: {seconds: 1.5}\n  b:\n    action: noop\n    needs: [a]\n";
    let created = request(&cluster, project, &["b"], false).await?;
    let id = created.request.context("a request")?.id.to_string();
    let jobs = by_action(&created.jobs);
    let (a, b) = (jobs["a"].id, jobs["b"].id);
    cluster
        .reaches(a, State::Running, Duration::from_secs(30))
        .await?;
    proxy.block().await;
    let admin = cluster.admin()?;
    drover_tests::wait_until(
        "a's success to release b",
        Duration::from_secs(30),
        || async {
            admin
                .get(b)
                .await
                .is_ok_and(|j| j.status_code == StatusCode::Created)
        },
    )
    .await?;
    let before = admin.get(b).await?;
    cluster.kill_api().await?;
    ensure!(
        !before.enqueued,
        "b was released but not on the queue when the API died: {before:?}"
    );
    proxy.unblock();
    cluster.start_api().await?;
    // The default grace: a released job younger than it may still be going on the queue.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = admin
        .reconcile(&drover_model::Reconcile {
            grace_ms: Some(2000),
            ..drover_model::Reconcile::default()
        })
        .await?;
    ensure!(
        report.enqueued.count == 1,
        "b is put on the queue: {report:?}"
    );
    let done = finished(&cluster, &id, Duration::from_secs(60)).await?;
    let jobs = by_action(&done.jobs);
    ensure!(
        jobs["a"].status_code == StatusCode::Succeeded
            && jobs["b"].status_code == StatusCode::Succeeded
            && jobs["b"].attempts == 1,
        "{:?}",
        done.jobs
    );
    Ok(())
}
