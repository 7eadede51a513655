//! The sandbox of the CLI tests: ZooKeeper, `drover api` as a child process on SQLite,
//! the built `drover` binary, and a fake executor on the executor endpoints.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use drover_client::ApiClient;
use drover_core::{FencingToken, JobId, State, StatusCode};
use drover_model::{AppendLogs, Claim, Finish, Heartbeat, Job, LogLine};
use drover_tests::{
    drover_command, free_port, init_test_tracing, wait_until, within, LineChild, ZkServer,
};

pub(crate) const ADMIN: &str = "admin-secret";
pub(crate) const SUBMITTER: &str = "submitter-secret";
const EXECUTOR: &str = "executor-secret";
/// Long enough for a cold `drover api` (migrations) or a loaded CI machine.
const STARTUP: Duration = Duration::from_secs(60);
/// Any single CLI run.
pub(crate) const RUN: Duration = Duration::from_secs(60);

/// What a finished `drover` run printed, and its exit code.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// Fails, showing everything, unless the exit code is `code`.
    pub(crate) fn expect(self, code: i32) -> anyhow::Result<Run> {
        ensure!(
            self.code == code,
            "expected exit code {code}, got {self:#?}"
        );
        Ok(self)
    }
}

/// ZooKeeper, a temporary directory and `drover api` serving on a free port.
pub(crate) struct Sandbox {
    pub(crate) url: String,
    pub(crate) zk: ZkServer,
    api: LineChild,
    _dir: tempfile::TempDir,
}

impl Sandbox {
    pub(crate) async fn start() -> anyhow::Result<Sandbox> {
        init_test_tracing();
        let zk = ZkServer::start().await?;
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let config = dir.path().join("drover.toml");
        std::fs::write(&config, config_text(&zk.connect_string(), port, dir.path()))?;
        let mut command = drover_command().await?;
        command
            .arg("api")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info");
        let mut api = LineChild::spawn(command)?;
        let url = format!("http://127.0.0.1:{port}");
        let probe = ApiClient::new(&url, None)?;
        // Ready for these tests: the database answers and ZooKeeper is connected (so
        // submissions are enqueued and executors can be listed).
        let ready = wait_until("drover api to be ready with ZooKeeper", STARTUP, || async {
            probe.ready().await.is_ok_and(|readiness| {
                readiness.ready && readiness.detail["zookeeper"] == "connected"
            })
        })
        .await;
        if let Err(err) = ready {
            let status = tokio::time::timeout(Duration::from_secs(1), api.wait()).await;
            bail!(
                "{err}; drover api exit: {status:?}; its stderr:\n{}",
                api.stderr()
            );
        }
        Ok(Sandbox {
            url,
            zk,
            api,
            _dir: dir,
        })
    }

    /// Runs `drover ARGS` with `token` and waits for it.
    pub(crate) async fn drover(&self, token: Option<&str>, args: &[&str]) -> anyhow::Result<Run> {
        run_drover(Some(&self.url), token, args).await
    }

    /// Starts `drover ARGS` with `token` without waiting for it.
    pub(crate) async fn spawn(&self, token: &str, args: &[&str]) -> anyhow::Result<LineChild> {
        let mut command = drover_command().await?;
        command
            .args(args)
            .env("DROVER_URL", &self.url)
            .env("DROVER_TOKEN", token);
        LineChild::spawn(command)
    }

    pub(crate) fn client(&self, token: &str) -> anyhow::Result<ApiClient> {
        Ok(ApiClient::new(&self.url, Some(token.to_owned()))?)
    }

    /// Submits with the CLI and returns the printed id.
    pub(crate) async fn submit(&self, args: &[&str]) -> anyhow::Result<JobId> {
        let run = self
            .drover(Some(SUBMITTER), &[&["submit"], args].concat())
            .await?;
        let run = run.expect(0)?;
        run.stdout
            .trim()
            .parse()
            .with_context(|| format!("submit did not print an id: {run:#?}"))
    }

    pub(crate) async fn job(&self, id: JobId) -> anyhow::Result<Job> {
        Ok(self.client(ADMIN)?.get(id).await?)
    }

    /// SIGTERM: the role stops cleanly and exits 0.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        self.api.signal(nix::sys::signal::Signal::SIGTERM)?;
        let status = within("drover api to stop on SIGTERM", STARTUP, self.api.wait()).await??;
        ensure!(
            status.success(),
            "drover api exited {status} on SIGTERM; stderr:\n{}",
            self.api.stderr()
        );
        drop(self.zk);
        Ok(())
    }
}

fn config_text(zookeeper: &str, port: u16, dir: &Path) -> String {
    let db = dir.join("drover.db");
    format!(
        r#"
log_format = "json"

[zookeeper]
hosts = "{zookeeper}"
session_timeout = "5s"

[api]
listen = "127.0.0.1:{port}"
database_url = "sqlite://{db}?mode=rwc"

[[api.tokens]]
name = "root"
token = "{ADMIN}"
role = "admin"

[[api.tokens]]
name = "alice"
token = "{SUBMITTER}"
role = "submitter"

[[api.tokens]]
name = "pool"
token = "{EXECUTOR}"
role = "executor"
"#,
        db = db.display()
    )
}

/// A fake executor: claims a job and drives it with the executor endpoints.
pub(crate) struct FakeExecutor {
    client: ApiClient,
    id: JobId,
    token: FencingToken,
    /// Holds the taken marker for as long as the fake executor lives.
    _session: drover_coordination::Session,
}

impl FakeExecutor {
    pub(crate) async fn claim(sandbox: &Sandbox, id: JobId) -> anyhow::Result<FakeExecutor> {
        let client = sandbox.client(EXECUTOR)?;
        let session = drover_tests::connect(
            &sandbox.zk.connect_string(),
            std::time::Duration::from_secs(4),
        )
        .await?;
        let hold = drover_tests::hold_entry(&session, &id.to_string()).await?;
        let token = FencingToken::new(hold.token);
        let claim = Claim {
            token,
            executor: "fake-executor".to_owned(),
            entry: hold.entry,
        };
        let job = client.claim(id, &claim).await.context("claim")?;
        ensure!(
            job.state == State::Running,
            "claimed job is {:?}",
            job.state
        );
        Ok(FakeExecutor {
            client,
            id,
            token,
            _session: session,
        })
    }

    pub(crate) async fn progress(&self, percent: u8) -> anyhow::Result<()> {
        let heartbeat = Heartbeat {
            token: self.token,
            progress: Some(percent),
            status_code: Some(StatusCode::Executing),
        };
        self.client.heartbeat(self.id, &heartbeat).await?;
        Ok(())
    }

    pub(crate) async fn log(&self, lines: &[&str]) -> anyhow::Result<()> {
        let logs = AppendLogs {
            token: self.token,
            lines: lines
                .iter()
                .map(|line| LogLine {
                    stream: "stdout".to_owned(),
                    line: (*line).to_owned(),
                })
                .collect(),
        };
        let appended = self.client.append_logs(self.id, &logs).await?;
        ensure!(appended.accepted == lines.len(), "{appended:?}");
        Ok(())
    }

    pub(crate) async fn finish(
        &self,
        status_code: StatusCode,
        exit_code: i64,
    ) -> anyhow::Result<Job> {
        self.finish_saying(
            status_code,
            exit_code,
            &format!("the action exited {exit_code}"),
        )
        .await
    }

    /// Records the job's end with `message`.
    pub(crate) async fn finish_saying(
        &self,
        status_code: StatusCode,
        exit_code: i64,
        message: &str,
    ) -> anyhow::Result<Job> {
        let finish = Finish {
            token: self.token,
            status_code,
            exit_code: Some(exit_code),
            message: Some(message.to_owned()),
        };
        Ok(self.client.finish(self.id, &finish).await?)
    }
}

/// Runs `drover ARGS` with only the given `DROVER_*` variables, within [`RUN`].
pub(crate) async fn run_drover(
    url: Option<&str>,
    token: Option<&str>,
    args: &[&str],
) -> anyhow::Result<Run> {
    let mut command = drover_command().await?;
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    if let Some(url) = url {
        command.env("DROVER_URL", url);
    }
    if let Some(token) = token {
        command.env("DROVER_TOKEN", token);
    }
    let output = within(&format!("drover {args:?}"), RUN, command.output()).await??;
    Ok(Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(run: &Run) -> anyhow::Result<T> {
    ensure!(run.code == 0, "drover failed: {run:#?}");
    serde_json::from_str(&run.stdout).with_context(|| format!("not the expected JSON: {run:#?}"))
}

pub(crate) fn ids(jobs: &[Job]) -> Vec<JobId> {
    jobs.iter().map(|job| job.id).collect()
}
