//! Outputs (#15) on a real cluster: ZooKeeper, `drover api` (SQLite and the local
//! artifact store), executors and Docker. Files an action declares are read out of its
//! container, published when it succeeds, listed by level and downloaded with their
//! SHA-256; undeclared, unmatched and linked files are handled as the issue says.

mod executor_support;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{ensure, Context};
use drover_client::ApiClient;
use drover_core::StatusCode;
use drover_model::{Job, OutputFile, RequestDetail, SubmitRequest};
use executor_support::{Cluster, ExecutorOptions};
use futures::StreamExt;
use sha2::{Digest, Sha256};

const CONTAINER_ACTION: &str =
    "name = \"container\"\nimages = [\"drover/busybox:*\"]\npull = \"never\"\nmemory = \"256m\"\n";

/// A token that may read up to `moderately_sensitive` (a submitter's default).
const READER: &str = "reader-secret-0123456789";

fn reader_settings() -> String {
    format!("[[api.tokens]]\nname = \"reader\"\ntoken = \"{READER}\"\nrole = \"submitter\"\n")
}

async fn run(cluster: &Cluster, project: &str, actions: &[&str]) -> anyhow::Result<RequestDetail> {
    let admin = cluster.admin()?;
    let created = admin
        .submit_request(&SubmitRequest {
            project: project.to_owned(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            workspace: Some("w".into()),
            ..SubmitRequest::default()
        })
        .await?;
    let id = created.request.context("a request")?.id.to_string();
    drover_tests::wait_until("the request to end", Duration::from_secs(90), || async {
        admin
            .request_detail(&id)
            .await
            .is_ok_and(|d| d.jobs.iter().all(|j| j.state.is_terminal()))
    })
    .await?;
    Ok(admin.request_detail(&id).await?)
}

fn by_action(jobs: &[Job]) -> HashMap<String, Job> {
    jobs.iter()
        .map(|j| (j.pipeline_action.clone().unwrap_or_default(), j.clone()))
        .collect()
}

async fn bytes_of(client: &ApiClient, file: &OutputFile) -> anyhow::Result<Vec<u8>> {
    let mut stream = client.download_output(file.job_id, &file.path).await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
    }
    Ok(bytes)
}

const PROJECT: &str = r#"version: 5
actions:
  make:
    run: >-
      drover/busybox:v1 sh -c 'mkdir -p output/sub &&
      printf "a,b\n1,2\n3,4\n" > output/table.csv &&
      printf "patient_id,x\n1,2\n" > output/people.csv &&
      echo secret > output/raw.txt &&
      echo nested > output/sub/deep.txt &&
      echo "with space" > "output/my file.txt"'
    outputs:
      moderately_sensitive:
        table: output/table.csv
        people: output/people.csv
        spaced: output/my file.txt
      highly_sensitive:
        raw: output/r*.txt
  misspelt:
    run: drover/busybox:v1 sh -c 'mkdir -p output && echo 1 > output/Summary.csv'
    outputs:
      moderately_sensitive:
        summary: output/summary.csv
  linked:
    run: drover/busybox:v1 sh -c 'mkdir -p output && ln -s /etc/passwd output/passwd.txt && ln -s ../../ output/up.txt'
    outputs:
      moderately_sensitive:
        passwd: output/passwd.txt
        up: output/up.txt
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_outputs_are_collected_published_by_level_and_downloaded() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(&reader_settings()).await?;
    cluster.add_action("container", CONTAINER_ACTION)?;
    let _e1 = cluster.executor(&ExecutorOptions::new("e1", 2)).await?;
    let done = run(&cluster, PROJECT, &["make", "misspelt", "linked"]).await?;
    let jobs = by_action(&done.jobs);

    let make = &jobs["make"];
    ensure!(make.status_code == StatusCode::Succeeded, "{make:?}");
    let admin = cluster.admin()?;
    let listed = admin.job_outputs(make.id).await?;
    let paths: Vec<&str> = listed.files.iter().map(|f| f.path.as_str()).collect();
    // `*` stays within one directory: output/sub/deep.txt is not an output
    ensure!(
        paths
            == [
                "output/my file.txt",
                "output/people.csv",
                "output/raw.txt",
                "output/table.csv"
            ],
        "{paths:?}"
    );
    for file in &listed.files {
        let bytes = bytes_of(&admin, file).await?;
        ensure!(
            hex::encode(Sha256::digest(&bytes)) == file.sha256 && bytes.len() as u64 == file.size,
            "{file:?}"
        );
    }
    let table = listed
        .files
        .iter()
        .find(|f| f.path == "output/table.csv")
        .context("table")?;
    ensure!(
        table.csv_rows == Some(2) && table.csv_columns == Some(2) && table.withheld.is_none(),
        "{table:?}"
    );
    let people = listed
        .files
        .iter()
        .find(|f| f.path == "output/people.csv")
        .context("people")?;
    ensure!(
        people
            .withheld
            .as_deref()
            .is_some_and(|w| w.contains("patient_id")),
        "a forbidden column keeps the file at highly_sensitive: {people:?}"
    );

    // A token that reads up to moderately_sensitive sees neither raw.txt nor the withheld
    // file, and never their names.
    let reader = ApiClient::new(&cluster.url, Some(READER.to_owned()))?;
    let seen = reader.job_outputs(make.id).await?;
    let seen_paths: Vec<&str> = seen.files.iter().map(|f| f.path.as_str()).collect();
    ensure!(
        seen_paths == ["output/my file.txt", "output/table.csv"] && seen.hidden == 2,
        "{seen:?}"
    );
    let refused = match reader.download_output(make.id, "output/raw.txt").await {
        Ok(_) => anyhow::bail!("a reader downloaded a highly_sensitive file"),
        Err(e) => e,
    };
    ensure!(
        refused.status().map(|s| s.as_u16()) == Some(403),
        "{refused}"
    );
    ensure!(!refused.to_string().contains("secret"), "{refused}");
    let manifest = reader.workspace_outputs("w").await?;
    ensure!(manifest.files.len() == 2, "{manifest:?}");

    let misspelt = &jobs["misspelt"];
    ensure!(
        misspelt.status_code == StatusCode::UnmatchedPatterns
            && misspelt
                .status_message
                .contains("no file matched the output pattern output/summary.csv")
            && misspelt.status_message.contains("output/Summary.csv"),
        "{misspelt:?}"
    );
    ensure!(admin.job_outputs(misspelt.id).await?.files.is_empty());

    let linked = &jobs["linked"];
    ensure!(
        linked.status_code == StatusCode::UnmatchedPatterns
            && linked
                .status_message
                .contains("`output/passwd.txt` is a symbolic link to `/etc/passwd`")
            && linked
                .status_message
                .contains("`output/up.txt` is a symbolic link to `../../`"),
        "{linked:?}"
    );
    eprintln!(
        "misspelt: {}\nlinked: {}",
        misspelt.status_message, linked.status_message
    );
    Ok(())
}
