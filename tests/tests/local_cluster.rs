//! `drover local-run` against a real cluster (#16): the diamond and failure pipelines
//! run on the cluster (ZooKeeper, `drover api`, a Docker executor) and locally end with
//! the same statuses, messages and outputs; `--job ID` re-creates a cluster job and
//! makes byte-identical outputs; every cluster job's log starts by saying how.

mod executor_support;
mod local_support;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{ensure, Context};
use drover_model::{RequestDetail, SubmitRequest};
use executor_support::{output_bytes, Cluster, ExecutorOptions, ADMIN};
use local_support::{local_run, manifest, project, DIAMOND, FAILURE};

const CONTAINER_ACTION: &str =
    "name = \"container\"\nimages = [\"drover/busybox:*\"]\npull = \"never\"\n";

/// What an action ended as, comparable across the two: status, message (job ids put
/// aside) and each output's path, level, hash and withholding.
type Ended = BTreeMap<String, (String, String, Vec<(String, String, String, bool)>)>;

/// A message without the job ids in it (they differ between the two runs).
fn without_ids(message: &str) -> String {
    let mut out = String::new();
    for word in message.split(' ') {
        let is_id = word.trim_end_matches(')').len() == 36 && word.matches('-').count() == 4;
        out.push_str(if is_id { "<id>" } else { word });
        out.push(' ');
    }
    out
}

async fn on_cluster(
    cluster: &Cluster,
    text: &str,
    workspace: &str,
    actions: &[&str],
) -> anyhow::Result<(RequestDetail, Ended)> {
    let admin = cluster.admin()?;
    let created = admin
        .submit_request(&SubmitRequest {
            project: text.to_owned(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            workspace: Some(workspace.into()),
            ..SubmitRequest::default()
        })
        .await?;
    let id = created.request.context("a request")?.id.to_string();
    drover_tests::wait_until("the request to end", Duration::from_secs(120), || async {
        admin
            .request_detail(&id)
            .await
            .is_ok_and(|d| d.jobs.iter().all(|j| j.state.is_terminal()))
    })
    .await?;
    let detail = admin.request_detail(&id).await?;
    let mut ended = Ended::new();
    for job in &detail.jobs {
        let outputs = admin.job_outputs(job.id).await?.files;
        let files = outputs
            .into_iter()
            .map(|f| (f.path, f.level, f.sha256, f.withheld.is_some()))
            .collect();
        ended.insert(
            job.pipeline_action.clone().unwrap_or_default(),
            (
                job.status_code.to_string(),
                without_ids(&job.status_message),
                files,
            ),
        );
    }
    Ok((detail, ended))
}

async fn locally(text: &str) -> anyhow::Result<Ended> {
    let dir = project(text)?;
    let (_, out, err) = local_run(dir.path(), &["run_all", "--continue-on-error"]).await?;
    let records = manifest(dir.path()).with_context(|| format!("{out}\n{err}"))?;
    Ok(records
        .actions
        .into_iter()
        .map(|(action, r)| {
            let mut files: Vec<_> = r
                .outputs
                .into_iter()
                .map(|f| (f.path, f.level, f.sha256, f.withheld.is_some()))
                .collect();
            files.sort();
            (
                action,
                (
                    r.status_code.to_string(),
                    without_ids(&r.status_message),
                    files,
                ),
            )
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_run_ends_as_the_cluster_does_and_recreates_a_cluster_job_byte_for_byte(
) -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.add_action("container", CONTAINER_ACTION)?;
    let _executor = cluster.executor(&ExecutorOptions::new("e1", 2)).await?;

    for (name, text) in [("diamond", DIAMOND), ("failure", FAILURE)] {
        let (_, mut remote) = on_cluster(&cluster, text, name, &["run_all"]).await?;
        for (_, (_, _, files)) in remote.iter_mut() {
            files.sort();
        }
        let here = locally(text).await?;
        ensure!(
            remote == here,
            "{name}: the cluster ended\n{remote:#?}\nand the local run\n{here:#?}"
        );
    }

    let (detail, _) = on_cluster(&cluster, DIAMOND, "recreate", &["run_all"]).await?;
    let admin = cluster.admin()?;
    let d = detail
        .jobs
        .iter()
        .find(|j| j.pipeline_action.as_deref() == Some("d"))
        .context("d")?;
    // the first line of every cluster job's log says how to re-create it
    let log = cluster.log(d.id).await?;
    let first = log.first().context("a log line")?;
    ensure!(
        first
            .line
            .contains(&format!("drover local-run --job {}", d.id)),
        "{first:?}"
    );

    let place = tempfile::tempdir()?;
    let root = place.path().join("d");
    let root_text = root.to_str().context("a UTF-8 path")?;
    let short = &d.id.to_string()[..8];
    let args = ["local-run", "--job", short, "--project-dir", root_text];
    let (code, out, err) =
        drover_tests::run_drover(&cluster.url, ADMIN, &args, Duration::from_secs(120)).await?;
    ensure!(code == 0, "--job exited {code}: {out}\n{err}");
    ensure!(out.contains(&format!("re-creates job {}", d.id)), "{out}");
    for file in admin.job_outputs(d.id).await?.files {
        let theirs = output_bytes(&admin, &file).await?;
        let ours = std::fs::read(root.join(&file.path))
            .with_context(|| format!("{} was not made locally: {out}", file.path))?;
        ensure!(theirs == ours, "{} differs", file.path);
    }
    // the inputs it started from were fetched to their paths, checked
    ensure!(std::fs::read_to_string(root.join("output/b.txt"))? == "a\nb\n");

    // A dependency skipped because it succeeded still hands its outputs down: `d` asked
    // for alone after `b` ran reads b's file (the planner's `Need::Done`).
    on_cluster(&cluster, DIAMOND, "partial", &["b"]).await?;
    let (detail, ended) = on_cluster(&cluster, DIAMOND, "partial", &["d"]).await?;
    let made: Vec<&str> = detail
        .jobs
        .iter()
        .filter_map(|j| j.pipeline_action.as_deref())
        .collect();
    ensure!(
        made.len() == 2 && made.contains(&"c") && made.contains(&"d"),
        "{made:?}"
    );
    ensure!(ended["d"].0 == "SUCCEEDED", "{ended:#?}");
    let d = detail
        .jobs
        .iter()
        .find(|j| j.pipeline_action.as_deref() == Some("d"))
        .context("d")?;
    let files = admin.job_outputs(d.id).await?.files;
    let d_txt = files
        .iter()
        .find(|f| f.path == "output/d.txt")
        .context("d.txt")?;
    ensure!(output_bytes(&admin, d_txt).await? == b"a\nb\na\nc\n");
    Ok(())
}
