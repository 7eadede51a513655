//! What the `local_run` and `local_cluster` tests share: the diamond and failure
//! pipelines, and running `drover local-run` in a project directory.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use anyhow::ensure;
use drover_tests::{drover_command, within};

/// `a -> (b, c) -> d`, each writing a file from what it needs; `d` also writes a CSV
/// that fails the release checks.
pub const DIAMOND: &str = r#"version: 5
actions:
  a:
    run: drover/busybox:v1 sh -c 'mkdir -p output && echo a > output/a.txt && echo made a'
    outputs:
      highly_sensitive:
        a: output/a.txt
  b:
    run: drover/busybox:v1 sh -c 'cat output/a.txt > output/b.txt && echo b >> output/b.txt'
    needs: [a]
    outputs:
      highly_sensitive:
        b: output/b.txt
  c:
    run: drover/busybox:v1 sh -c 'cat output/a.txt > output/c.txt && echo c >> output/c.txt'
    needs: [a]
    outputs:
      moderately_sensitive:
        c: output/c.txt
  d:
    run: drover/busybox:v1 sh -c 'cat output/b.txt output/c.txt > output/d.txt && echo patient_id,n > output/ids.csv'
    needs: [b, c]
    outputs:
      moderately_sensitive:
        d: output/d.txt
        ids: output/ids.csv
"#;

/// `a -> (b fails, c) -> d`, and `e` needs only `c`.
pub const FAILURE: &str = r#"version: 5
actions:
  a:
    run: drover/busybox:v1 sh -c 'echo a'
  b:
    run: drover/busybox:v1 sh -c 'echo about to fail; exit 3'
    needs: [a]
  c:
    run: drover/busybox:v1 sh -c 'sleep 1; echo c'
    needs: [a]
  d:
    run: drover/busybox:v1 sh -c 'echo d'
    needs: [b, c]
  e:
    run: drover/busybox:v1 sh -c 'echo e'
    needs: [c]
"#;

/// `drover local-run ARGS` in `dir`: exit code, stdout, stderr.
pub async fn local_run(dir: &Path, args: &[&str]) -> anyhow::Result<(i32, String, String)> {
    let mut command = drover_command().await?;
    command.arg("local-run").args(args).current_dir(dir);
    let out = within(
        "drover local-run",
        Duration::from_secs(120),
        command.output(),
    )
    .await??;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

pub fn project(text: &str) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("drover.yaml"), text)?;
    Ok(dir)
}

/// Docker's ids of every container (running or not) labelled as `dir`'s local runs'.
pub async fn containers_of(dir: &Path) -> anyhow::Result<Vec<String>> {
    let label = format!(
        "label=drover.executor={}",
        drover_local::run::executor_id(dir)
    );
    let out = tokio::process::Command::new("docker")
        .args(["ps", "-aq", "--no-trunc", "--filter", &label])
        .output()
        .await?;
    ensure!(out.status.success(), "docker ps failed");
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .map(str::to_owned)
        .collect())
}

pub fn manifest(dir: &Path) -> anyhow::Result<drover_local::state::Manifest> {
    let text = std::fs::read(dir.join(".drover/manifest.json"))?;
    Ok(serde_json::from_slice(&text)?)
}
