//! `drover outputs JOB|WORKSPACE [--level L] [--get DIR]`: what a job or a workspace
//! published, and downloading it with each file's SHA-256 checked.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use drover_client::ApiClient;
use drover_model::{OutputFile, OutputList};

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

/// Downloads `file` into `dir`, its SHA-256 checked (`drover_local::fetch`).
async fn download(client: &ApiClient, file: &OutputFile, dir: &Path) -> anyhow::Result<PathBuf> {
    use drover_local::fetch::FetchError;
    drover_local::fetch::output(client, file, dir)
        .await
        .map_err(|e| match e {
            FetchError::Path(_) => UsageError(e.to_string()).into(),
            FetchError::Client(e) => anyhow::Error::new(e),
            other => anyhow::Error::new(other),
        })
}
