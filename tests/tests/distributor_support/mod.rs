//! A real cluster for distributor and reconciler tests: ZooKeeper, `drover api` (SQLite),
//! `drover distributor` and `drover executor` processes (built-in actions only), a
//! ZooKeeper session for the test's own hands, and a direct look at the database.

#![allow(dead_code)] // each test file uses part of it

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use drover_client::ApiClient;
use drover_coordination::Session;
use drover_tests::{
    connect, drover_command, free_port, init_test_tracing, wait_api_ready, wait_until, within,
    LineChild, ZkServer,
};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

pub(crate) const ADMIN: &str = "admin-secret";
pub(crate) const EXECUTOR: &str = "executor-secret";
pub(crate) const DISTRIBUTOR: &str = "distributor-secret";
pub(crate) const SUBMITTER: &str = "submitter-secret";
/// The ZooKeeper session timeout of every process in the cluster.
pub(crate) const SESSION: Duration = Duration::from_secs(2);
/// Bound for anything that could hang.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

/// ZooKeeper and the API, plus the test's own ZooKeeper session.
pub(crate) struct Cluster {
    pub(crate) zk: ZkServer,
    pub(crate) url: String,
    pub(crate) api: LineChild,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) session: Session,
    api_port: u16,
}

/// A `drover` role process.
pub(crate) struct Role {
    pub(crate) child: LineChild,
    pub(crate) id: String,
}

impl Cluster {
    /// ZooKeeper and `drover api`, ready with a ZooKeeper session.
    pub(crate) async fn start() -> anyhow::Result<Cluster> {
        init_test_tracing();
        let zk = ZkServer::start().await?;
        let dir = tempfile::tempdir()?;
        let api_port = free_port()?;
        let session = connect(&zk.connect_string(), SESSION).await?;
        let url = format!("http://127.0.0.1:{api_port}");
        let config = dir.path().join("api.toml");
        let mut cluster_text = String::new();
        cluster_text.push_str(&base_config(&url, &zk.connect_string(), ADMIN));
        std::fs::write(&config, &cluster_text)?;
        let db = dir.path().join("drover.db");
        std::fs::write(
            &config,
            format!(
                "{cluster_text}[api]\nlisten = \"127.0.0.1:{api_port}\"\ndatabase_url = \"sqlite://{}?mode=rwc\"\n{}",
                db.display(),
                tokens()
            ),
        )?;
        let mut command = drover_command().await?;
        command
            .arg("api")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        let mut api = LineChild::spawn(command)?;
        wait_api_ready(&mut api, &url, DEADLINE).await?;
        Ok(Cluster {
            zk,
            url,
            api,
            dir,
            session,
            api_port,
        })
    }

    /// A client of the API with `token`.
    pub(crate) fn client(&self, token: &str) -> anyhow::Result<ApiClient> {
        Ok(ApiClient::new(&self.url, Some(token.to_owned()))?)
    }

    pub(crate) fn admin(&self) -> anyhow::Result<ApiClient> {
        self.client(ADMIN)
    }

    /// Writes a config file for a role with the distributor token and `extra` TOML.
    pub(crate) fn write_config(
        &self,
        name: &str,
        token: &str,
        extra: &str,
    ) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "{}{extra}",
                base_config(&self.url, &self.zk.connect_string(), token)
            ),
        )?;
        Ok(path)
    }

    /// Starts `drover distributor` with id `id` and `[distributor]` body `body` (without
    /// the table header and id).
    pub(crate) async fn distributor(&self, id: &str, body: &str) -> anyhow::Result<Role> {
        let config = self.write_config(
            &format!("distributor-{id}"),
            DISTRIBUTOR,
            &format!("[distributor]\nid = \"{id}\"\n{body}"),
        )?;
        let mut command = drover_command().await?;
        command
            .arg("distributor")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info,drover_distributor=debug")
            .env("NO_COLOR", "1");
        Ok(Role {
            child: LineChild::spawn(command)?,
            id: id.to_owned(),
        })
    }

    /// Starts `drover executor` (built-in actions only) and waits until it registered.
    pub(crate) async fn executor(&self, id: &str, slots: usize) -> anyhow::Result<Role> {
        let config = self.write_config(
            &format!("executor-{id}"),
            EXECUTOR,
            &format!(
                "[executor]\nid = \"{id}\"\nslots = {slots}\nheartbeat_interval = \"500ms\"\nbackoff_max = \"1s\"\nlog_flush_interval = \"100ms\"\nmetrics = false\n"
            ),
        )?;
        let mut command = drover_command().await?;
        command
            .arg("executor")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        let child = LineChild::spawn(command)?;
        let admin = self.admin()?;
        let registered = wait_until("the executor to register", DEADLINE, || async {
            admin
                .executors()
                .await
                .is_ok_and(|list| list.iter().any(|e| e.id == id))
        })
        .await;
        if let Err(err) = registered {
            bail!("{err}; executor stderr:\n{}", child.stderr());
        }
        Ok(Role {
            child,
            id: id.to_owned(),
        })
    }

    /// The database, opened behind the API's back (WAL: reads and small writes are safe).
    pub(crate) async fn db(&self) -> anyhow::Result<SqlitePool> {
        let options = SqliteConnectOptions::new()
            .filename(self.dir.path().join("drover.db"))
            .busy_timeout(Duration::from_secs(10));
        Ok(SqlitePool::connect_with(options).await?)
    }

    /// `(idempotency_key, job id)` of every job whose key starts with
    /// `distribution/<name>/`, by key.
    pub(crate) async fn tick_jobs(&self, name: &str) -> anyhow::Result<Vec<(String, String)>> {
        let db = self.db().await?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT idempotency_key, id FROM jobs WHERE idempotency_key LIKE $1 ORDER BY idempotency_key",
        )
        .bind(format!("distribution/{name}/%"))
        .fetch_all(&db)
        .await?;
        db.close().await;
        Ok(rows)
    }

    /// The election's contender nodes, leader first.
    pub(crate) async fn contenders(&self, name: &str) -> anyhow::Result<Vec<String>> {
        let path = format!("/election/{name}");
        let mut children = match self.session.client().list_children(&path).await {
            Ok(children) => children,
            Err(zookeeper_client::Error::NoNode) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        children.sort_by_key(|c| c.rsplit("__lock__").next().unwrap_or_default().to_owned());
        Ok(children)
    }

    /// The id stored in the election's leader node.
    pub(crate) async fn leader(&self, name: &str) -> anyhow::Result<Option<String>> {
        for node in self.contenders(name).await? {
            let path = format!("/election/{name}/{node}");
            if let Ok((data, _)) = self.session.client().get_data(&path).await {
                return Ok(Some(String::from_utf8_lossy(&data).into_owned()));
            }
        }
        Ok(None)
    }

    /// Waits until `id` leads `name`.
    pub(crate) async fn wait_leader(
        &self,
        name: &str,
        id: &str,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        wait_until(&format!("{id} to lead {name}"), timeout, || async {
            self.leader(name).await.ok().flatten().as_deref() == Some(id)
        })
        .await
    }

    /// Queue entries `(name, job id)`.
    pub(crate) async fn entries(&self) -> anyhow::Result<Vec<(String, String)>> {
        let client = self.session.client();
        let names = match client.list_children("/job/entries").await {
            Ok(names) => names,
            Err(zookeeper_client::Error::NoNode) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for name in names {
            if let Ok((data, _)) = client.get_data(&format!("/job/entries/{name}")).await {
                out.push((name, String::from_utf8_lossy(&data).into_owned()));
            }
        }
        Ok(out)
    }
}

impl Role {
    /// Lines of its log that contain every one of `needles`.
    pub(crate) fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.child
            .stderr()
            .lines()
            .filter(|line| needles.iter().all(|n| line.contains(n)))
            .map(str::to_owned)
            .collect()
    }

    /// Sends SIGTERM and waits for the exit code.
    pub(crate) async fn terminate(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<(Option<i32>, Duration)> {
        let started = std::time::Instant::now();
        self.child.signal(nix::sys::signal::Signal::SIGTERM)?;
        let status = within(
            &format!("{} to exit after SIGTERM", self.id),
            timeout,
            self.child.wait(),
        )
        .await?
        .with_context(|| format!("waiting for {}", self.id))?;
        Ok((status.code(), started.elapsed()))
    }
}

/// The top-level keys every role's file shares.
fn base_config(url: &str, zk: &str, token: &str) -> String {
    format!(
        "url = \"{url}\"\ntoken = \"{token}\"\n[zookeeper]\nhosts = \"{zk}\"\nsession_timeout = \"{}ms\"\n",
        SESSION.as_millis()
    )
}

fn tokens() -> String {
    [
        ("root", ADMIN, "admin"),
        ("pool", EXECUTOR, "executor"),
        ("distributors", DISTRIBUTOR, "distributor"),
        ("alice", SUBMITTER, "submitter"),
    ]
    .iter()
    .map(|(name, token, role)| {
        format!("[[api.tokens]]\nname = \"{name}\"\ntoken = \"{token}\"\nrole = \"{role}\"\n")
    })
    .collect()
}
