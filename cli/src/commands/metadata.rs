//! `drover outputs --get DIR` also writes, beside the files, each job's full log and
//! metadata as OpenSAFELY lays them out: `metadata/<action>.log` and
//! `metadata/<action>.json` (the job's record and the files it published).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use drover_client::ApiClient;
use drover_core::JobId;
use drover_model::OutputFile;
use tokio::io::AsyncWriteExt;

/// Writes the log and metadata of every job `files` came from; returns what it wrote.
pub(crate) async fn write(
    client: &ApiClient,
    files: &[OutputFile],
    dir: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut jobs: BTreeMap<JobId, Vec<&OutputFile>> = BTreeMap::new();
    for file in files {
        jobs.entry(file.job_id).or_default().push(file);
    }
    let meta = dir.join("metadata");
    tokio::fs::create_dir_all(&meta)
        .await
        .with_context(|| format!("cannot create {}", meta.display()))?;
    let mut written = Vec::new();
    for (id, files) in jobs {
        let job = client.get(id).await?;
        let name = job
            .pipeline_action
            .clone()
            .unwrap_or_else(|| id.to_string());
        // a pipeline action's name is `[A-Za-z0-9_.-]`, never a path
        let name = name.replace('/', "_");
        let json = serde_json::json!({ "job": job, "outputs": files });
        let path = meta.join(format!("{name}.json"));
        tokio::fs::write(&path, serde_json::to_vec_pretty(&json)?)
            .await
            .with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
        let path = meta.join(format!("{name}.log"));
        write_log(client, id, &path).await?;
        written.push(path);
    }
    Ok(written)
}

/// The job's stored log, page by page, one line each (stderr lines marked).
async fn write_log(client: &ApiClient, id: JobId, path: &Path) -> anyhow::Result<()> {
    let mut out = tokio::fs::File::create(path)
        .await
        .with_context(|| format!("cannot write {}", path.display()))?;
    let mut after = 0;
    loop {
        let page = client.logs(id, after, None).await?;
        if page.lines.is_empty() {
            break;
        }
        let mut text = String::new();
        for line in &page.lines {
            if line.stream != "stdout" {
                text.push_str(&format!("[{}] ", line.stream));
            }
            text.push_str(&line.line);
            text.push('\n');
        }
        out.write_all(text.as_bytes()).await?;
        after = page.next;
    }
    out.flush().await?;
    Ok(())
}
