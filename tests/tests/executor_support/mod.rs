//! A small real cluster for executor tests: ZooKeeper, `drover api` (SQLite) and
//! `drover executor` processes, with Docker actions on the `drover/busybox` image.

#![allow(dead_code)] // each test file uses part of it

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use drover_client::ApiClient;
use drover_core::{JobId, State};
use drover_model::{Job, StoredLogLine, SubmitJob};
use drover_tests::{
    drover_command, free_port, init_test_tracing, run_drover, wait_api_ready, wait_until, within,
    LineChild, ZkServer,
};

pub(crate) const ADMIN: &str = "admin-secret";
const EXECUTOR: &str = "executor-secret";
/// The ZooKeeper session timeout of every process in the cluster.
pub(crate) const SESSION: Duration = Duration::from_secs(2);

/// Docker actions every test cluster knows.
const ACTIONS: &[(&str, &str)] = &[
    (
        "echo",
        r#"name = "echo"
image = "drover/busybox:latest"
pull = "never"
command = ["sh", "-c", "echo \"hello $DROVER_PARAM_N\"; cat /drover/params.json; echo; echo to-stderr >&2"]
"#,
    ),
    (
        "fail",
        r#"name = "fail"
image = "drover/busybox:latest"
pull = "never"
command = ["sh", "-c", "echo failing; exit 3"]
"#,
    ),
    (
        "hog",
        r#"name = "hog"
image = "drover/busybox:latest"
pull = "never"
memory = "8m"
command = ["sh", "-c", "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done"]
"#,
    ),
    (
        "slow",
        r#"name = "slow"
image = "drover/busybox:latest"
pull = "never"
timeout = "1s"
command = ["sh", "-c", "sleep 30"]
"#,
    ),
    (
        "ghost",
        r#"name = "ghost"
image = "drover/not-here:1"
command = ["true"]
"#,
    ),
    (
        "params",
        r#"name = "params"
image = "drover/busybox:latest"
pull = "never"
command = ["sh", "-c", "cat /drover/params.json; echo; touch /drover/x 2>/dev/null && echo drover-writable || echo drover-read-only"]
"#,
    ),
    (
        "params-ro",
        r#"name = "params-ro"
image = "drover/busybox:latest"
pull = "never"
read_only = true
command = ["sh", "-c", "cat /drover/params.json; echo; touch /drover/x 2>/dev/null && echo drover-writable || echo drover-read-only"]
"#,
    ),
    (
        "stubborn",
        r#"name = "stubborn"
image = "drover/busybox:latest"
pull = "never"
command = ["sh", "-c", "trap '' TERM; i=0; while [ $i -lt ${DROVER_PARAM_SECONDS:-30}0 ]; do sleep 0.1; i=$((i+1)); done; echo finished"]
"#,
    ),
    (
        "linger",
        r#"name = "linger"
image = "drover/busybox:latest"
pull = "never"
command = ["sh", "-c", "trap 'echo stopping; exit 0' TERM; i=0; while [ $i -lt ${DROVER_PARAM_SECONDS:-30}0 ]; do sleep 0.1; i=$((i+1)); done; echo finished"]
"#,
    ),
    (
        "unfinished",
        r#"name = "unfinished"
image = "drover/busybox:latest"
pull = "never"
command = ["sh", "-c", "echo first; printf 'x'; printf 'err' >&2"]
"#,
    ),
    (
        "split-char",
        r#"name = "split-char"
image = "drover/busybox:latest"
pull = "never"
command = ["sh", "-c", "printf 'caf\\303'; printf '\\342\\202' >&2; sleep 0.2; printf '\\251\\n'; printf '\\254\\n' >&2; printf '\\377ok\\n'; head -c 16383 /dev/zero | tr '\\0' a; printf 'bcd\\n'"]
"#,
    ),
    (
        "endless-line",
        r#"name = "endless-line"
image = "drover/busybox:latest"
pull = "never"
command = ["sh", "-c", "head -c 1064961 /dev/zero | tr '\\0' x; sleep 60"]
"#,
    ),
    (
        "color",
        r#"name = "color"
image = "drover/busybox:latest"
pull = "never"
command = ["sh", "-c", "printf '\\033[31mred\\033[0m plain\\tbell\\007 csi\\302\\2332J\\n'"]
"#,
    ),
    (
        "wide-lines",
        r#"name = "wide-lines"
image = "drover/busybox:latest"
pull = "never"
command = ["sh", "-c", "line=$(head -c 1000 /dev/zero | tr '\\0' a); i=0; while [ $i -lt 100 ]; do echo \"$i $line\"; i=$((i+1)); done; head -c 20000 /dev/zero | tr '\\0' b; echo; echo after"]
"#,
    ),
];

/// ZooKeeper, the API and executors.
pub(crate) struct Cluster {
    pub(crate) zk: ZkServer,
    pub(crate) url: String,
    pub(crate) api: Option<LineChild>,
    api_port: u16,
    /// Extra `[api]` settings, one `key = value` a line.
    api_settings: String,
    pub(crate) dir: tempfile::TempDir,
    /// The cluster's id (ZooKeeper's `/cluster-id`, made here before any executor
    /// starts): what its containers and volumes are labelled with.
    cluster_id: String,
    /// Where the API (started from now on) reaches ZooKeeper, when not directly (a proxy).
    pub(crate) api_zk_hosts: Option<String>,
    /// The API's database, when not SQLite in `dir`.
    database_url: Option<String>,
}

impl Drop for Cluster {
    /// Removes what this cluster left on the daemon (a parameters volume holder of an
    /// executor the test killed): in production a live executor of the cluster reaps it,
    /// but a test's cluster is gone before any reaper runs. Only this cluster's label.
    fn drop(&mut self) {
        let label = format!("label=drover.cluster={}", self.cluster_id);
        let ids = |args: &[&str]| {
            std::process::Command::new("docker")
                .args(args)
                .args(["--filter", &label])
                .output()
                .map(|out| {
                    String::from_utf8_lossy(&out.stdout)
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        let containers = ids(&["ps", "-aq"]);
        if !containers.is_empty() {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-fv"])
                .args(&containers)
                .output();
        }
        let volumes = ids(&["volume", "ls", "-q"]);
        if !volumes.is_empty() {
            let _ = std::process::Command::new("docker")
                .args(["volume", "rm", "-f"])
                .args(&volumes)
                .output();
        }
    }
}

/// How to start one executor.
#[derive(Debug, Clone)]
pub(crate) struct ExecutorOptions {
    pub(crate) id: String,
    pub(crate) slots: usize,
    pub(crate) drain_timeout: Duration,
    pub(crate) metrics_port: Option<u16>,
    /// `DOCKER_HOST` for this executor (a [`drover_tests::DockerProxy`]).
    pub(crate) docker_host: Option<String>,
    /// ZooKeeper as this executor reaches it (a [`drover_tests::TcpProxy`]), if not
    /// directly.
    pub(crate) zk_hosts: Option<String>,
    /// Run the watchdog process (off: as when the whole pod is SIGKILLed with it).
    pub(crate) watchdog: bool,
    /// `RUST_LOG` (default `info,drover_executor=debug`).
    pub(crate) rust_log: Option<String>,
    /// More environment variables (secrets of actions).
    pub(crate) env: Vec<(String, String)>,
    /// Its own actions directory (default: the cluster's).
    pub(crate) actions_dir: Option<PathBuf>,
    /// `[executor] tags`.
    pub(crate) tags: Vec<String>,
    /// Its ZooKeeper session timeout (default [`SESSION`]).
    pub(crate) session: Option<Duration>,
    /// `[executor] host` (default: the host name).
    pub(crate) host: Option<String>,
    /// `[executor] secret_env`.
    pub(crate) secret_env: Vec<String>,
}

impl ExecutorOptions {
    pub(crate) fn new(id: &str, slots: usize) -> ExecutorOptions {
        ExecutorOptions {
            id: id.to_owned(),
            slots,
            drain_timeout: Duration::from_secs(120),
            metrics_port: None,
            docker_host: None,
            zk_hosts: None,
            watchdog: true,
            rust_log: None,
            env: Vec::new(),
            actions_dir: None,
            tags: Vec::new(),
            session: None,
            host: None,
            secret_env: Vec::new(),
        }
    }
}

impl Cluster {
    /// ZooKeeper and the API, ready; no executor yet.
    pub(crate) async fn start() -> anyhow::Result<Cluster> {
        Cluster::start_with("").await
    }

    /// Like [`Cluster::start`], with extra `[api]` settings (`key = value` lines).
    pub(crate) async fn start_with(api_settings: &str) -> anyhow::Result<Cluster> {
        Cluster::start_on(None, api_settings).await
    }

    /// Like [`Cluster::start_with`], on `database_url` (PostgreSQL) when given.
    pub(crate) async fn start_on(
        database_url: Option<String>,
        api_settings: &str,
    ) -> anyhow::Result<Cluster> {
        init_test_tracing();
        let zk = ZkServer::start().await?;
        let dir = tempfile::tempdir()?;
        let actions = dir.path().join("actions");
        std::fs::create_dir(&actions)?;
        for (name, text) in ACTIONS {
            std::fs::write(actions.join(format!("{name}.toml")), text)?;
        }
        let api_port = free_port()?;
        let session = drover_tests::connect(&zk.connect_string(), SESSION).await?;
        let cluster_id = drover_coordination::Membership::new(&session)
            .cluster_id()
            .await?;
        drop(session);
        let mut cluster = Cluster {
            zk,
            url: format!("http://127.0.0.1:{api_port}"),
            api: None,
            api_port,
            api_settings: api_settings.to_owned(),
            dir,
            cluster_id,
            api_zk_hosts: None,
            database_url,
        };
        cluster.start_api().await?;
        Ok(cluster)
    }

    fn config(&self, executor: Option<&ExecutorOptions>) -> String {
        let db = self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.dir.path().join("drover.db").display()
            )
        });
        let mut text = format!(
            r#"
url = "{url}"
token = "{EXECUTOR}"
[zookeeper]
hosts = "{zk}"
session_timeout = "{session}ms"
[api]
listen = "127.0.0.1:{port}"
database_url = "{db}"
{api_settings}
[[api.tokens]]
name = "root"
token = "{ADMIN}"
role = "admin"
[[api.tokens]]
name = "pool"
token = "{EXECUTOR}"
role = "executor"
"#,
            url = self.url,
            zk = match executor {
                Some(e) => e.zk_hosts.clone(),
                None => self.api_zk_hosts.clone(),
            }
            .unwrap_or_else(|| self.zk.connect_string()),
            session = executor
                .and_then(|e| e.session)
                .unwrap_or(SESSION)
                .as_millis(),
            port = self.api_port,
            api_settings = self.api_settings,
        );
        if let Some(e) = executor {
            text.push_str(&format!(
                r#"[executor]
id = "{id}"
slots = {slots}
actions_dir = "{actions}"
heartbeat_interval = "500ms"
drain_timeout = "{drain}ms"
stop_grace = "2s"
backoff_max = "2s"
log_flush_interval = "100ms"
metrics = {metrics}
metrics_listen = "127.0.0.1:{metrics_port}"
watchdog = {watchdog}
tags = {tags:?}
secret_env = {secret_env:?}
{host}
"#,
                id = e.id,
                slots = e.slots,
                actions = e
                    .actions_dir
                    .clone()
                    .unwrap_or_else(|| self.dir.path().join("actions"))
                    .display(),
                tags = e.tags,
                secret_env = e.secret_env,
                drain = e.drain_timeout.as_millis(),
                metrics = e.metrics_port.is_some(),
                metrics_port = e.metrics_port.unwrap_or(9),
                watchdog = e.watchdog,
                host = e
                    .host
                    .as_ref()
                    .map_or_else(String::new, |h| format!("host = {h:?}")),
            ));
        }
        text
    }

    fn write_config(
        &self,
        name: &str,
        executor: Option<&ExecutorOptions>,
    ) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, self.config(executor))?;
        Ok(path)
    }

    /// Adds an action file for executors started from now on (actions with secrets, which
    /// every executor would otherwise need).
    pub(crate) fn add_action(&self, name: &str, text: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().join("actions").join(format!("{name}.toml"));
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Starts (or restarts) `drover api` and waits until it is ready with ZooKeeper.
    pub(crate) async fn start_api(&mut self) -> anyhow::Result<()> {
        let config = self.write_config("api", None)?;
        self.api = Some(spawn_api(&config, &self.url).await?);
        Ok(())
    }

    /// Starts a second `drover api` on the same database and ZooKeeper (a replica);
    /// returns its URL and process.
    pub(crate) async fn start_api_replica(&self) -> anyhow::Result<(String, LineChild)> {
        let port = free_port()?;
        let text = self.config(None).replace(
            &format!("listen = \"127.0.0.1:{}\"", self.api_port),
            &format!("listen = \"127.0.0.1:{port}\""),
        );
        let config = self.dir.path().join(format!("api-{port}.toml"));
        std::fs::write(&config, text)?;
        let url = format!("http://127.0.0.1:{port}");
        let api = spawn_api(&config, &url).await?;
        Ok((url, api))
    }

    /// Stops the API (SIGKILL: as abrupt as an outage).
    pub(crate) async fn kill_api(&mut self) -> anyhow::Result<()> {
        if let Some(mut api) = self.api.take() {
            api.kill().await?;
        }
        Ok(())
    }

    /// Starts `drover executor` with `options` and waits until it registered.
    pub(crate) async fn executor(&self, options: &ExecutorOptions) -> anyhow::Result<Executor> {
        let executor = self.spawn_executor(options).await?;
        let admin = self.admin()?;
        let id = options.id.clone();
        let registered = wait_until(
            "the executor to register",
            Duration::from_secs(30),
            || async {
                admin
                    .executors()
                    .await
                    .is_ok_and(|list| list.iter().any(|e| e.id == id))
            },
        )
        .await;
        if let Err(err) = registered {
            bail!("{err}; executor stderr:\n{}", executor.child.stderr());
        }
        Ok(executor)
    }

    /// Starts `drover executor` with `options` without waiting for it.
    pub(crate) async fn spawn_executor(
        &self,
        options: &ExecutorOptions,
    ) -> anyhow::Result<Executor> {
        let config = self.write_config(&format!("executor-{}", options.id), Some(options))?;
        let mut command = drover_command().await?;
        command
            .arg("executor")
            .arg("--config")
            .arg(&config)
            .env(
                "RUST_LOG",
                options
                    .rust_log
                    .as_deref()
                    .unwrap_or("info,drover_executor=debug"),
            )
            .env("NO_COLOR", "1")
            .envs(options.env.iter().map(|(k, v)| (k, v)));
        if let Some(host) = &options.docker_host {
            command.env("DOCKER_HOST", host);
        }
        let child = LineChild::spawn(command)?;
        Ok(Executor {
            child,
            metrics_port: options.metrics_port,
        })
    }

    /// The cluster's id: what its containers are labelled with (`drover.cluster`).
    pub(crate) fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub(crate) fn admin(&self) -> anyhow::Result<ApiClient> {
        Ok(ApiClient::new(&self.url, Some(ADMIN.to_owned()))?)
    }

    /// Submits `action` with `params`; returns its id.
    pub(crate) async fn submit(
        &self,
        action: &str,
        params: serde_json::Value,
    ) -> anyhow::Result<JobId> {
        let params = params
            .as_object()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let submit = SubmitJob {
            action: action.to_owned(),
            params,
            ..SubmitJob::default()
        };
        Ok(self.admin()?.submit(&submit).await?.job.id)
    }

    /// Every stored log line of job `id`, page by page.
    pub(crate) async fn log(&self, id: JobId) -> anyhow::Result<Vec<StoredLogLine>> {
        let admin = self.admin()?;
        let mut lines = Vec::new();
        loop {
            let page = admin
                .logs(id, lines.last().map_or(0, |l: &StoredLogLine| l.seq), None)
                .await?;
            if page.lines.is_empty() {
                return Ok(lines);
            }
            lines.extend(page.lines);
        }
    }

    /// Waits until the job is terminal; returns it.
    pub(crate) async fn finished(&self, id: JobId, timeout: Duration) -> anyhow::Result<Job> {
        let admin = self.admin()?;
        wait_until(&format!("job {id} to finish"), timeout, || async {
            admin.get(id).await.is_ok_and(|j| j.state.is_terminal())
        })
        .await?;
        Ok(admin.get(id).await?)
    }

    /// Waits until the job reaches `state`.
    pub(crate) async fn reaches(
        &self,
        id: JobId,
        state: State,
        timeout: Duration,
    ) -> anyhow::Result<Job> {
        let admin = self.admin()?;
        wait_until(&format!("job {id} to be {state}"), timeout, || async {
            admin.get(id).await.is_ok_and(|j| j.state == state)
        })
        .await?;
        Ok(admin.get(id).await?)
    }
}

/// A `drover executor` process.
pub(crate) struct Executor {
    pub(crate) child: LineChild,
    pub(crate) metrics_port: Option<u16>,
}

impl Executor {
    pub(crate) fn signal(&self, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        self.child.signal(signal)
    }

    /// Waits for the process to exit; returns its exit code.
    pub(crate) async fn exit_code(&mut self, timeout: Duration) -> anyhow::Result<Option<i32>> {
        let status = within("the executor to exit", timeout, self.child.wait()).await??;
        Ok(status.code())
    }

    pub(crate) fn log(&self) -> String {
        self.child.stderr()
    }

    /// `drover_executor_takes_total` from its metrics endpoint.
    pub(crate) async fn takes(&self) -> anyhow::Result<u64> {
        let port = self
            .metrics_port
            .context("metrics are off for this executor")?;
        let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await?
            .text()
            .await?;
        Ok(body
            .lines()
            .find_map(|l| l.strip_prefix("drover_executor_takes_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as u64)
    }
}

/// Containers with a `drover.executor` label of `executor`, running or not.
pub(crate) async fn containers_of(executor: &str) -> anyhow::Result<Vec<String>> {
    docker_ids(&["ps", "-aq"], &format!("drover.executor={executor}")).await
}

/// The containers of `executor` that have started and not yet stopped.
pub(crate) async fn running_containers_of(executor: &str) -> anyhow::Result<Vec<String>> {
    let listing = ["ps", "-q", "--filter", "status=running"];
    docker_ids(&listing, &format!("drover.executor={executor}")).await
}

/// The shared parameters volumes of `executor`, and their holder containers.
pub(crate) async fn params_volumes_of(
    executor: &str,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let label = format!("drover.params-of={executor}");
    Ok((
        docker_ids(&["volume", "ls", "-q"], &label).await?,
        docker_ids(&["ps", "-aq"], &label).await?,
    ))
}

/// What a `docker ... --filter label=<label>` listing prints, a line each.
async fn docker_ids(listing: &[&str], label: &str) -> anyhow::Result<Vec<String>> {
    let out = tokio::process::Command::new("docker")
        .args(listing)
        .args(["--filter", &format!("label={label}")])
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "docker {listing:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

/// Docker's events for containers of job `id` since `since` (Unix seconds): (time in
/// nanoseconds, action such as `start` or `die`, the `drover.attempt` label), in order.
pub(crate) async fn container_events(
    id: JobId,
    since: u64,
) -> anyhow::Result<Vec<(u128, String, String)>> {
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 1;
    let out = tokio::process::Command::new("docker")
        .args([
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
        ])
        .args(["--filter", "type=container"])
        .args(["--filter", &format!("label=drover.job={id}")])
        .args([
            "--format",
            "{{.TimeNano}} {{.Action}} {{index .Actor.Attributes \"drover.attempt\"}}",
        ])
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "docker events failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut events = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut parts = line.split_whitespace();
        if let (Some(t), Some(action), Some(attempt)) = (parts.next(), parts.next(), parts.next()) {
            events.push((t.parse()?, action.to_owned(), attempt.to_owned()));
        }
    }
    Ok(events)
}

/// The `drover.attempt` label of every container of job `id` that Docker started since
/// `since` (Unix seconds), in order.
pub(crate) async fn started_attempts(id: JobId, since: u64) -> anyhow::Result<Vec<String>> {
    Ok(container_events(id, since)
        .await?
        .into_iter()
        .filter(|(_, action, _)| action == "start")
        .map(|(_, _, attempt)| attempt)
        .collect())
}

/// Starts `drover api --config config` and waits until it is ready at `url`.
async fn spawn_api(config: &std::path::Path, url: &str) -> anyhow::Result<LineChild> {
    let mut command = drover_command().await?;
    command
        .arg("api")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn");
    let mut api = LineChild::spawn(command)?;
    wait_api_ready(&mut api, url, Duration::from_secs(60)).await?;
    Ok(api)
}

/// The bytes of a published output, downloaded whole.
pub(crate) async fn output_bytes(
    client: &ApiClient,
    file: &drover_model::OutputFile,
) -> anyhow::Result<Vec<u8>> {
    use futures::StreamExt;
    let mut stream = client.download_output(file.job_id, &file.path).await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
    }
    Ok(bytes)
}

/// The `drover` CLI against the cluster, with the admin token.
pub(crate) async fn drover(
    cluster: &Cluster,
    args: &[&str],
) -> anyhow::Result<(i32, String, String)> {
    run_drover(&cluster.url, ADMIN, args, Duration::from_secs(60)).await
}
