//! A Docker Compose project of `deploy/compose`, for end-to-end deployment tests: the
//! images it needs (built locally, no registry), `docker-compose` with a unique project
//! name and a free API port, and a guard that takes everything down again.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use drover_tests::{drover_binary, free_port, within, workspace_root};
use tokio::process::Command;

pub(crate) const ADMIN_TOKEN: &str = "e2e-admin-token";
const EXECUTOR_TOKEN: &str = "e2e-executor-token";
const DISTRIBUTOR_TOKEN: &str = "e2e-distributor-token";
/// The local ZooKeeper image `deploy/images/build-zookeeper` makes.
const ZOOKEEPER_IMAGE: &str = "drover/zookeeper:3.8";
/// How long `docker-compose down` lets containers stop when a test failed.
const FAILURE_STOP_TIMEOUT_SECS: &str = "20";

/// Prints how long a step took, for the test's log.
pub(crate) fn timed(step: &str, started: Instant) {
    eprintln!("deploy: {step} in {:.1} s", started.elapsed().as_secs_f64());
}

/// Runs `deploy/images/<script>` (each is idempotent) and fails with its output.
async fn build_image(script: &str, args: &[&str]) -> anyhow::Result<()> {
    let started = Instant::now();
    let path = workspace_root().join("deploy/images").join(script);
    let out = within(
        &format!("deploy/images/{script}"),
        Duration::from_secs(900),
        Command::new(&path).args(args).output(),
    )
    .await?
    .with_context(|| format!("cannot run {}", path.display()))?;
    ensure!(
        out.status.success(),
        "deploy/images/{script} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    timed(&format!("deploy/images/{script}"), started);
    Ok(())
}

/// One Compose project: `docker-compose -p <project>` on `deploy/compose`.
pub(crate) struct ComposeProject {
    pub(crate) project: String,
    /// The drover image built for this project (removed with it).
    pub(crate) image: String,
    pub(crate) api_url: String,
    dir: PathBuf,
    env_file: tempfile::NamedTempFile,
    /// Executor ids (container host names) seen, so that job containers they may have
    /// left can be removed: only ours, since other tests share the Docker engine.
    executor_ids: Mutex<BTreeSet<String>>,
    down: bool,
}

impl ComposeProject {
    /// Builds the images the project needs (base, ZooKeeper and busybox only when
    /// missing; drover from this test profile's binary) and picks a name and a port.
    pub(crate) async fn prepare(name: &str) -> anyhow::Result<ComposeProject> {
        for tool in ["docker", "docker-compose"] {
            let found = Command::new(tool)
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .is_ok_and(|s| s.success());
            ensure!(
                found,
                "`{tool} version` failed: this test needs a Docker engine and docker-compose 1.29 (Debian: apt-get install docker.io docker-compose)"
            );
        }
        let started = Instant::now();
        let binary = drover_binary().await?;
        timed("cargo build -p drover-cli (test profile)", started);
        let suffix = format!("{}-{:04x}", std::process::id(), fastrand::u16(..));
        let project = format!("drover-{name}-{suffix}");
        let image = format!("drover/drover:{name}-{suffix}");
        build_image("build-base", &[]).await?;
        build_image("build-zookeeper", &[]).await?;
        build_image("build-busybox", &[]).await?;
        let binary = binary.to_str().context("binary path is not UTF-8")?;
        build_image(
            "build-drover",
            &["--binary", binary, "--tag", &image, "--strip"],
        )
        .await?;
        let port = free_port()?;
        // Everything the compose file reads, in a file of our own: a developer's
        // deploy/compose/.env must not leak in.
        let mut env_file = tempfile::NamedTempFile::new()?;
        let settings = [
            ("DROVER_IMAGE", image.as_str()),
            ("ZOOKEEPER_IMAGE", ZOOKEEPER_IMAGE),
            ("API_BIND", "127.0.0.1"),
            ("API_PORT", &port.to_string()),
            ("ADMIN_TOKEN", ADMIN_TOKEN),
            ("EXECUTOR_TOKEN", EXECUTOR_TOKEN),
            ("DISTRIBUTOR_TOKEN", DISTRIBUTOR_TOKEN),
            ("EXECUTOR_REPLICAS", "1"),
            ("EXECUTOR_SLOTS", "2"),
            // A drained executor stays stopped, so the test can read its exit code.
            ("EXECUTOR_RESTART", "on-failure"),
            ("RUST_LOG", "info"),
        ];
        for (key, value) in settings {
            use std::io::Write;
            writeln!(env_file, "{key}={value}")?;
        }
        Ok(ComposeProject {
            project,
            image,
            api_url: format!("http://127.0.0.1:{port}"),
            dir: workspace_root().join("deploy/compose"),
            env_file,
            executor_ids: Mutex::new(BTreeSet::new()),
            down: false,
        })
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new("docker-compose");
        command
            .arg("--project-name")
            .arg(&self.project)
            .arg("--project-directory")
            .arg(&self.dir)
            .arg("--file")
            .arg(self.dir.join("docker-compose.yml"))
            .arg("--env-file")
            .arg(self.env_file.path())
            .args(["--ansi", "never"])
            .args(args)
            .stdin(Stdio::null());
        // The env file decides; the test's own environment must not.
        for key in [
            "DROVER_IMAGE",
            "ZOOKEEPER_IMAGE",
            "API_BIND",
            "API_PORT",
            "ADMIN_TOKEN",
            "EXECUTOR_TOKEN",
            "DISTRIBUTOR_TOKEN",
            "EXECUTOR_REPLICAS",
            "EXECUTOR_SLOTS",
            "EXECUTOR_RESTART",
            "RUST_LOG",
        ] {
            command.env_remove(key);
        }
        command
    }

    /// Runs `docker-compose <args>` within `timeout`; returns stdout.
    pub(crate) async fn compose(&self, args: &[&str], timeout: Duration) -> anyhow::Result<String> {
        let out = within(
            &format!("docker-compose {}", args.join(" ")),
            timeout,
            Command::from(self.command(args)).output(),
        )
        .await??;
        if !out.status.success() {
            bail!(
                "docker-compose {} failed ({}):\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The ids of the service's containers, running or not.
    pub(crate) async fn containers(&self, service: &str) -> anyhow::Result<Vec<String>> {
        let out = self
            .compose(&["ps", "-a", "-q", service], Duration::from_secs(60))
            .await?;
        Ok(out.lines().map(str::to_owned).collect())
    }

    /// The executors' containers with their ids (host names), recorded for clean-up.
    pub(crate) async fn executors(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut found = Vec::new();
        for container in self.containers("executor").await? {
            let hostname = docker(&["inspect", "-f", "{{.Config.Hostname}}", &container])
                .await?
                .trim()
                .to_owned();
            self.executor_ids
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(hostname.clone());
            found.push((container, hostname));
        }
        Ok(found)
    }

    /// Containers labelled as drover jobs of this project's executors.
    pub(crate) async fn job_containers(&self) -> anyhow::Result<Vec<String>> {
        let ids: Vec<String> = self
            .executor_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        let mut found = Vec::new();
        for id in ids {
            let out = docker(&[
                "ps",
                "-a",
                "-q",
                "--filter",
                "label=drover.job",
                "--filter",
                &format!("label=drover.executor={id}"),
            ])
            .await?;
            found.extend(out.lines().map(str::to_owned));
        }
        Ok(found)
    }

    /// `docker-compose down -v`, letting executors drain (their stop_grace_period).
    pub(crate) async fn down(mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        self.executors().await?;
        self.compose(
            &["down", "--volumes", "--remove-orphans", "--timeout", "150"],
            Duration::from_secs(240),
        )
        .await?;
        timed("docker-compose down --volumes", started);
        let left = self.job_containers().await?;
        self.down = true;
        self.clean_up();
        ensure!(
            left.is_empty(),
            "job containers left behind after down: {left:?}"
        );
        Ok(())
    }

    /// Removes what the project left: job containers of its executors, its image.
    fn clean_up(&self) {
        let ids = self
            .executor_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for id in ids {
            let label = format!("label=drover.executor={id}");
            if let Ok(out) = std::process::Command::new("docker")
                .args(["ps", "-a", "-q", "--filter", "label=drover.job", "--filter"])
                .arg(&label)
                .output()
            {
                for container in String::from_utf8_lossy(&out.stdout).lines() {
                    let _ = std::process::Command::new("docker")
                        .args(["rm", "-f", container])
                        .stdout(Stdio::null())
                        .status();
                }
            }
        }
        let _ = std::process::Command::new("docker")
            .args(["rmi", &self.image])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for ComposeProject {
    /// On failure (or a panic), take the project down anyway: containers, network,
    /// volumes, job containers of its executors and its image.
    fn drop(&mut self) {
        if self.down {
            return;
        }
        eprintln!(
            "deploy: taking {} down after a failure; its logs:",
            self.project
        );
        if let Ok(out) = self
            .command(&["logs", "--no-color", "--tail", "60"])
            .output()
        {
            eprintln!("{}", String::from_utf8_lossy(&out.stdout));
        }
        // Record executor ids (host names) before their containers go.
        if let Ok(out) = self.command(&["ps", "-a", "-q", "executor"]).output() {
            for container in String::from_utf8_lossy(&out.stdout).lines() {
                if let Ok(out) = std::process::Command::new("docker")
                    .args(["inspect", "-f", "{{.Config.Hostname}}", container])
                    .output()
                {
                    let hostname = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                    if !hostname.is_empty() {
                        self.executor_ids
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(hostname);
                    }
                }
            }
        }
        let _ = self
            .command(&[
                "down",
                "--volumes",
                "--remove-orphans",
                "--timeout",
                FAILURE_STOP_TIMEOUT_SECS,
            ])
            .stdout(Stdio::null())
            .status();
        self.clean_up();
    }
}

/// Runs `docker <args>` (bounded); returns stdout.
pub(crate) async fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = within(
        &format!("docker {}", args.join(" ")),
        Duration::from_secs(60),
        Command::new("docker").args(args).output(),
    )
    .await??;
    ensure!(
        out.status.success(),
        "docker {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
