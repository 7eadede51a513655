//! The code snapshot `drover run` sends: the project directory as a reproducible tar,
//! uploaded once per content (the API is asked first whether it has it).

use std::path::Path;

use anyhow::Context;
use drover_client::ApiClient;

/// The declared output patterns of a project file that parses (one that does not is
/// left to the API, which says what is wrong with it).
fn declared_outputs(file: &Path, project: &str) -> Vec<drover_outputs::Pattern> {
    let name = file
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    drover_pipeline::Project::parse(&name, project)
        .map(|project| project.declared_patterns())
        .unwrap_or_default()
}

/// Snapshots `dir`, uploads it unless the API has it, and returns its SHA-256.
pub(crate) async fn send(
    client: &ApiClient,
    dir: &Path,
    file: &Path,
    project: &str,
) -> anyhow::Result<String> {
    anyhow::ensure!(
        dir.is_dir(),
        "the project directory {} is not a directory: pass --project-dir, or --no-code",
        dir.display()
    );
    let leave_out = declared_outputs(file, project);
    let root = dir.to_path_buf();
    let snapshot = tokio::task::spawn_blocking(move || {
        drover_outputs::snapshot(&root, &leave_out, drover_outputs::MAX_SNAPSHOT_BYTES)
    })
    .await
    .context("the snapshot task failed")??;
    let sha256 = snapshot.sha256.clone();
    let sent = if client
        .has_code(&sha256)
        .await
        .context("cannot reach the API")?
    {
        "already on the API"
    } else {
        let file = tokio::fs::File::open(snapshot.file.path())
            .await
            .context("cannot read the snapshot back")?;
        client
            .upload_code(&sha256, tokio_util::io::ReaderStream::new(file))
            .await
            .context("cannot upload the code snapshot")?;
        "uploaded"
    };
    eprintln!(
        "code: {} files, {} KiB, {} ({sent})",
        snapshot.files,
        snapshot.size.div_ceil(1024),
        &sha256[..12]
    );
    Ok(sha256)
}
