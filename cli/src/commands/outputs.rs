//! `drover outputs JOB|WORKSPACE [--level L] [--get DIR]`: what a job or a workspace
//! published, and downloading it with each file's SHA-256 checked.

use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use drover_client::ApiClient;
use drover_model::{OutputFile, OutputList};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::args::{Output, OutputsArgs};
use crate::exit::UsageError;
use crate::output;

/// Lists (and with `--get`, downloads) the outputs of a job or a workspace.
pub(crate) async fn run(args: OutputsArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect::client(&args.client)?;
    let mut list = match target_job(&client, &args.target).await {
        Some(job) => client.job_outputs(job).await?,
        None => client.workspace_outputs(&args.target).await?,
    };
    if let Some(level) = &args.level {
        list.files.retain(|f| f.level == *level);
    }
    if let Some(dir) = &args.get {
        for file in &list.files {
            let written = download(&client, file, dir).await?;
            eprintln!(
                "{} ({} bytes, sha256 checked)",
                written.display(),
                file.size
            );
        }
        for written in super::metadata::write(&client, &list.files, dir).await? {
            eprintln!("{}", written.display());
        }
    }
    match args.client.output {
        Output::Json => output::emit(&output::json(&list)?)?,
        Output::Table => output::emit(&table(&list))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The job `target` names, if it is (part of) a job id that one job has.
async fn target_job(client: &ApiClient, target: &str) -> Option<drover_core::JobId> {
    if target.len() < 4 || !target.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return None;
    }
    super::connect::resolve(client, target)
        .await
        .ok()
        .map(|job| job.id)
}

fn table(list: &OutputList) -> String {
    let rows: Vec<Vec<String>> = list
        .files
        .iter()
        .map(|f| {
            vec![
                output::printable(&f.path).into_owned(),
                f.level.clone(),
                f.size.to_string(),
                f.action.clone().unwrap_or_else(|| "-".into()),
                f.sha256.get(..12).unwrap_or(&f.sha256).to_owned(),
                f.withheld.as_deref().map_or_else(String::new, |w| {
                    format!("withheld: {}", output::printable(w))
                }),
            ]
        })
        .collect();
    let mut text = output::table(
        &["PATH", "LEVEL", "BYTES", "ACTION", "SHA256", "NOTE"],
        &rows,
    );
    if list.hidden > 0 {
        text.push_str(&format!("{} more above this token's level\n", list.hidden));
    }
    text
}

/// `dir` joined with an output's path, refusing one that would leave `dir`.
fn destination(dir: &Path, path: &str) -> anyhow::Result<PathBuf> {
    let relative = Path::new(path);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(UsageError(format!(
            "the API sent an output path that leaves the directory: {path:?}"
        ))
        .into());
    }
    Ok(dir.join(relative))
}

/// Downloads `file` into `dir` (written beside, renamed once its SHA-256 matched).
async fn download(client: &ApiClient, file: &OutputFile, dir: &Path) -> anyhow::Result<PathBuf> {
    let target = destination(dir, &file.path)?;
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let partial = target.with_extension("drover-partial");
    let mut out = tokio::fs::File::create(&partial)
        .await
        .with_context(|| format!("cannot write {}", partial.display()))?;
    let mut stream = client.download_output(file.job_id, &file.path).await?;
    let mut hash = Sha256::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        hash.update(&chunk);
        out.write_all(&chunk).await?;
    }
    out.flush().await?;
    drop(out);
    let got = hex::encode(hash.finalize());
    if got != file.sha256 {
        let _ = tokio::fs::remove_file(&partial).await;
        anyhow::bail!(
            "{} arrived with SHA-256 {got}, not the {} the manifest records: download it again",
            file.path,
            file.sha256
        );
    }
    tokio::fs::rename(&partial, &target).await?;
    Ok(target)
}
