//! Workspaces (#15) on a real cluster: PostgreSQL, two `drover api` replicas sharing a
//! real S3-compatible store (s3s-fs), ZooKeeper, two executors with Docker. `drover run`
//! sends the project's code; each job starts from it plus its needs' outputs (and
//! nothing else); what the last action made downloads through the other replica with
//! the manifest's SHA-256.

mod executor_support;

use std::collections::HashMap;

use anyhow::{ensure, Context};
use drover_client::ApiClient;
use drover_core::State;
use drover_model::{Job, RequestDetail};
use drover_tests::{PgServer, S3Server};
use executor_support::{drover, output_bytes, Cluster, ExecutorOptions};
use sha2::{Digest, Sha256};

const CONTAINER_ACTION: &str =
    "name = \"container\"\nimages = [\"drover/busybox:*\"]\npull = \"never\"\nmemory = \"256m\"\n";

/// `extract -> (model, table) -> report`, each pinned to an executor by tag so every
/// hand-over but one crosses executors. `report` lists its `/workspace/output`: it must
/// hold its needs' files and not `extract`'s.
const PROJECT: &str = r#"version: 5
actions:
  extract:
    run: drover/busybox:v1 sh -c 'mkdir -p output && { echo n; cat analysis/seed.txt; } > output/cohort.csv'
    requires: [a]
    outputs:
      highly_sensitive:
        cohort: output/cohort.csv
  model:
    run: drover/busybox:v1 sh -c 'wc -l < output/cohort.csv | tr -d " " > output/model.txt'
    needs: [extract]
    requires: [b]
    outputs:
      highly_sensitive:
        model: output/model.txt
  table:
    run: drover/busybox:v1 sh -c 'sed 1d output/cohort.csv | awk "{s+=\$1; n++} END {print \"rows,sum\"; print n \",\" s}" > output/table.csv'
    needs: [extract]
    requires: [a]
    outputs:
      moderately_sensitive:
        table: output/table.csv
  report:
    run: drover/busybox:v1 sh -c 'cat output/model.txt output/table.csv > output/report.txt && ls output > output/listing.txt && ls analysis >> output/listing.txt'
    needs: [model, table]
    requires: [b]
    outputs:
      moderately_sensitive:
        report: output/report.txt
        listing: output/listing.txt
"#;

fn s3_settings(s3: &S3Server) -> String {
    format!(
        "[api.artifacts.s3]\nbucket = \"{}\"\nendpoint = \"{}\"\nregion = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\nallow_http = true\n",
        s3.bucket(),
        s3.endpoint(),
        s3.region(),
        s3.access_key(),
        s3.secret_key()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_hands_files_down_its_needs_through_s3_and_two_api_replicas(
) -> anyhow::Result<()> {
    let pg = PgServer::builder().durable(false).start().await?;
    let s3 = S3Server::start().await?;
    let cluster = Cluster::start_on(Some(pg.url()), &s3_settings(&s3)).await?;
    let (replica_url, _replica) = cluster.start_api_replica().await?;
    cluster.add_action("container", CONTAINER_ACTION)?;
    let mut a = ExecutorOptions::new("exec-a", 1);
    a.tags = vec!["a".into()];
    let mut b = ExecutorOptions::new("exec-b", 2);
    b.tags = vec!["b".into()];
    let (_a, _b) = (cluster.executor(&a).await?, cluster.executor(&b).await?);

    let project = tempfile::tempdir()?;
    std::fs::create_dir_all(project.path().join("analysis"))?;
    std::fs::write(project.path().join("analysis/seed.txt"), "1\n2\n3\n")?;
    std::fs::write(project.path().join("drover.yaml"), PROJECT)?;
    // a stale output in the project directory is never sent as code
    std::fs::create_dir_all(project.path().join("output"))?;
    std::fs::write(project.path().join("output/cohort.csv"), "stale\n")?;
    let file = project.path().join("drover.yaml");
    let file = file.to_str().context("a UTF-8 path")?;
    let args = [
        "run",
        "report",
        "--workspace",
        "study",
        "--file",
        file,
        "--wait",
        "-o",
        "json",
    ];
    let (code, out, err) = drover(&cluster, &args).await?;
    ensure!(code == 0, "drover run: {code}\n{out}\n{err}");
    ensure!(
        err.contains("code: 2 files") && err.contains("(uploaded)"),
        "{err}"
    );

    // through the replica the executors never spoke to
    let other = ApiClient::new(&replica_url, Some(executor_support::ADMIN.to_owned()))?;
    let ran: RequestDetail = serde_json::from_str(&out).with_context(|| out.clone())?;
    let jobs: HashMap<String, Job> = other
        .request_detail(&ran.request.id.to_string())
        .await?
        .jobs
        .into_iter()
        .map(|j| (j.pipeline_action.clone().unwrap_or_default(), j))
        .collect();
    for (action, executor) in [
        ("extract", "exec-a"),
        ("model", "exec-b"),
        ("table", "exec-a"),
        ("report", "exec-b"),
    ] {
        let job = jobs
            .get(action)
            .with_context(|| format!("no {action} in {jobs:#?}"))?;
        ensure!(
            job.state == State::Success && job.executor.as_deref() == Some(executor),
            "{action}: {job:?}"
        );
    }
    let manifest = other.workspace_outputs("study").await?;
    let mut downloaded = HashMap::new();
    for file in &manifest.files {
        let bytes = output_bytes(&other, file).await?;
        ensure!(
            hex::encode(Sha256::digest(&bytes)) == file.sha256 && bytes.len() as u64 == file.size,
            "{file:?}"
        );
        downloaded.insert(file.path.clone(), String::from_utf8(bytes)?);
    }
    eprintln!("manifest: {:#?}", manifest.files);
    let got = |path: &str| downloaded.get(path).cloned().unwrap_or_default();
    ensure!(got("output/cohort.csv") == "n\n1\n2\n3\n", "{downloaded:?}");
    ensure!(
        got("output/table.csv") == "rows,sum\n3,6\n",
        "{downloaded:?}"
    );
    ensure!(
        got("output/report.txt") == "4\nrows,sum\n3,6\n",
        "{downloaded:?}"
    );
    let listing = &got("output/listing.txt");
    ensure!(
        listing == "listing.txt\nmodel.txt\nreport.txt\ntable.csv\nseed.txt\n",
        "report's workspace holds its needs' outputs and the code, not extract's: {listing:?}"
    );
    // the manifest downloaded, with each job's log and metadata beside it
    let into = tempfile::tempdir()?;
    let into_text = into.path().to_str().context("a UTF-8 path")?;
    let (code, out, err) = drover(&cluster, &["outputs", "study", "--get", into_text]).await?;
    ensure!(code == 0, "drover outputs --get: {code}\n{out}\n{err}");
    let read = |p: &str| std::fs::read_to_string(into.path().join(p)).unwrap_or_default();
    ensure!(read("output/report.txt") == "4\nrows,sum\n3,6\n", "{err}");
    let meta: serde_json::Value = serde_json::from_str(&read("metadata/report.json"))?;
    ensure!(
        meta["job"]["pipeline_action"] == "report"
            && meta["outputs"].as_array().map(Vec::len) == Some(2),
        "{meta}"
    );
    ensure!(
        std::path::Path::new(&into.path().join("metadata/extract.log")).is_file(),
        "{err}"
    );
    let (_, _, again) = drover(
        &cluster,
        &["run", "report", "--workspace", "study", "--file", file],
    )
    .await?;
    ensure!(
        again.contains("(already on the API)"),
        "an unchanged project is sent once: {again}"
    );
    Ok(())
}
