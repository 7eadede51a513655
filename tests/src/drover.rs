//! The built `drover` binary, for tests that run it as a real process.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::bail;
use drover_client::ApiClient;
use tokio::process::Command;

use crate::python::workspace_root;
use crate::{wait_until, within, LineChild};

/// Runs the `drover` CLI with `args` against the API at `url` with `token`, within
/// `limit`: its exit code, stdout and stderr.
pub async fn run_drover(
    url: &str,
    token: &str,
    args: &[&str],
    limit: Duration,
) -> anyhow::Result<(i32, String, String)> {
    let mut command = drover_command().await?;
    command
        .args(args)
        .env("DROVER_URL", url)
        .env("DROVER_TOKEN", token);
    let out = within(&format!("drover {args:?}"), limit, command.output()).await??;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Waits up to `limit` until the `drover api` process `api` answers at `url` ready with
/// ZooKeeper connected; if it does not, the error carries the process's exit and log.
pub async fn wait_api_ready(api: &mut LineChild, url: &str, limit: Duration) -> anyhow::Result<()> {
    let probe = ApiClient::new(url, None)?;
    let ready = wait_until("drover api ready with ZooKeeper", limit, || async {
        probe
            .ready()
            .await
            .is_ok_and(|r| r.ready && r.detail["zookeeper"] == "connected")
    })
    .await;
    if let Err(err) = ready {
        let status = tokio::time::timeout(Duration::from_secs(1), api.wait()).await;
        bail!(
            "{err}; drover api exit: {status:?}; stderr:\n{}",
            api.stderr()
        );
    }
    Ok(())
}

/// A command for the built `drover` (built once per test process in the test's profile), without this process's `DROVER_*` variables.
pub async fn drover_command() -> anyhow::Result<Command> {
    let mut command = Command::new(drover_binary().await?);
    for (name, _) in std::env::vars_os() {
        if name
            .to_string_lossy()
            .to_ascii_uppercase()
            .starts_with("DROVER_")
        {
            command.env_remove(name);
        }
    }
    Ok(command)
}

/// The `drover` binary, built (once per test process) in the profile and target
/// directory of this test.
pub async fn drover_binary() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    tokio::task::spawn_blocking(|| BUILT.get_or_init(build_drover).clone())
        .await?
        .map_err(anyhow::Error::msg)
}

fn build_drover() -> Result<PathBuf, String> {
    // This test runs as <target>/<profile>/deps/cli-<hash>.
    let exe = std::env::current_exe().map_err(|err| err.to_string())?;
    // Tests run as <target>/<profile>/deps/<name>-<hash>, binaries (benches) as
    // <target>/<profile>/<name>.
    let parent = exe
        .parent()
        .ok_or_else(|| format!("unexpected binary location {}", exe.display()))?;
    let profile_dir = if parent.file_name().is_some_and(|n| n == "deps") {
        parent.parent().unwrap_or(parent)
    } else {
        parent
    };
    let target_dir = profile_dir.parent().unwrap_or(profile_dir);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build
        .args([
            "build",
            "--quiet",
            "-p",
            "drover-cli",
            "--bin",
            "drover",
            "--target-dir",
        ])
        .arg(target_dir)
        .current_dir(workspace_root());
    match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") => {}
        Some("release") => {
            build.arg("--release");
        }
        Some(other) => {
            build.args(["--profile", other]);
        }
        None => return Err(format!("no profile in {}", profile_dir.display())),
    }
    let status = build
        .status()
        .map_err(|err| format!("cannot run cargo to build drover: {err}"))?;
    if !status.success() {
        return Err(format!(
            "`cargo build -p drover-cli` failed ({status}): fix the build, or build it first"
        ));
    }
    let binary = profile_dir.join(format!("drover{}", std::env::consts::EXE_SUFFIX));
    if !binary.is_file() {
        return Err(format!(
            "cargo built drover but {} is missing",
            binary.display()
        ));
    }
    Ok(binary)
}

/// A TCP port that was free a moment ago on 127.0.0.1.
///
/// # Errors
/// When no port can be bound.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
