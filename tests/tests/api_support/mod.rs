//! What the API integration tests share: the API served in-process on `127.0.0.1:0`
//! against a real ZooKeeper and a real database (SQLite file or PostgreSQL), raw HTTP
//! through reqwest, and a direct look at the stored record.

#![allow(dead_code)] // each test file uses part of it

use std::time::Duration;

use anyhow::{bail, Context};
use drover_api::{ApiConfig, ApiToken, Role};
use drover_coordination::ZkSettings;
use drover_tests::{init_test_tracing, wait_until, within, Hold, PgServer, ZkServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const ADMIN: &str = "admin-secret-0001";
pub const SUBMITTER: &str = "submitter-secret-0001";
pub const EXECUTOR: &str = "executor-secret-0001";
pub const DISTRIBUTOR: &str = "distributor-secret-0001";
/// Deadline for anything that could hang.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Runs each named `async fn name(backend: Backend) -> anyhow::Result<()>` as two tests,
/// `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name($crate::api_support::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name($crate::api_support::Backend::Postgres).await
                }
            )*
        }
    };
}

/// Which database the API runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the database lives; dropped (and removed) with the test.
enum Database {
    Sqlite(TempDir),
    Postgres(Box<PgServer>),
}

/// An API served in-process, with its ZooKeeper and database.
pub struct TestApi {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub http: reqwest::Client,
    pub zk: Option<ZkServer>,
    pub database_url: String,
    pub config: ApiConfig,
    /// ZooKeeper as the API was pointed at it (may be down).
    pub zk_hosts: String,
    /// The test's own session, for taking queue entries as an executor would.
    hands: tokio::sync::OnceCell<drover_coordination::Session>,
    database: Database,
    /// The artifact store's directory (never the working directory).
    pub artifacts: tempfile::TempDir,
    shutdown: CancellationToken,
    task: Option<JoinHandle<drover_api::StartResult<()>>>,
}

/// Test-wide settings: small limits so caps are cheap to reach.
pub fn test_config(database_url: String) -> ApiConfig {
    let token = |name: &str, token: &str, role| ApiToken {
        name: name.into(),
        token: token.into(),
        role,
        level: None,
    };
    ApiConfig {
        database_url,
        tokens: vec![
            token("root", ADMIN, Role::Admin),
            token("alice", SUBMITTER, Role::Submitter),
            token("executor-pool", EXECUTOR, Role::Executor),
            token("distributors", DISTRIBUTOR, Role::Distributor),
        ],
        log_cap_bytes: 4096,
        enqueue_timeout: Duration::from_millis(800),
        ..ApiConfig::default()
    }
}

impl TestApi {
    /// ZooKeeper, the database and the API, waiting until the API has a ZooKeeper session.
    pub async fn start(backend: Backend) -> anyhow::Result<TestApi> {
        init_test_tracing();
        let zk = ZkServer::start().await?;
        let hosts = zk.connect_string();
        let mut api = TestApi::start_with(backend, &hosts, |_| {}).await?;
        api.zk = Some(zk);
        api.wait_zookeeper("connected").await?;
        Ok(api)
    }

    /// The database and the API with ZooKeeper at `zk_hosts` (which may be down),
    /// `tweak` applied to the configuration.
    pub async fn start_with(
        backend: Backend,
        zk_hosts: &str,
        tweak: impl FnOnce(&mut ApiConfig),
    ) -> anyhow::Result<TestApi> {
        init_test_tracing();
        let (database, url) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("drover.db").display()
                );
                (Database::Sqlite(dir), url)
            }
            Backend::Postgres => {
                let pg = PgServer::builder().durable(false).start().await?;
                let url = pg.url();
                (Database::Postgres(Box::new(pg)), url)
            }
        };
        let mut config = test_config(url.clone());
        let artifacts = tempfile::tempdir()?;
        config.artifacts.dir = Some(artifacts.path().to_path_buf());
        tweak(&mut config);
        let zk = ZkSettings::new(zk_hosts).with_session_timeout(Duration::from_secs(4));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let base = format!("http://{addr}");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(drover_api::serve(
            listener,
            config.clone(),
            zk,
            shutdown.clone(),
        ));
        let api = TestApi {
            base,
            addr,
            http: reqwest::Client::builder().timeout(DEADLINE).build()?,
            zk: None,
            database_url: url,
            config,
            zk_hosts: zk_hosts.to_owned(),
            hands: tokio::sync::OnceCell::new(),
            database,
            artifacts,
            shutdown,
            task: Some(task),
        };
        wait_until("the api answers /healthz", DEADLINE, || async {
            api.call(Method::GET, "/healthz", None, None)
                .await
                .is_ok_and(|(s, _)| s == StatusCode::OK)
        })
        .await?;
        Ok(api)
    }

    /// Waits until `/readyz` reports ZooKeeper as `status`.
    pub async fn wait_zookeeper(&self, status: &str) -> anyhow::Result<()> {
        wait_until(
            &format!("the api's zookeeper status to be {status}"),
            DEADLINE,
            || async {
                match self.call(Method::GET, "/readyz", None, None).await {
                    Ok((_, body)) => body["zookeeper"] == status,
                    Err(_) => false,
                }
            },
        )
        .await?;
        Ok(())
    }

    /// Waits until `/readyz` reports ZooKeeper as anything but connected.
    pub async fn wait_zookeeper_lost(&self) -> anyhow::Result<()> {
        wait_until("the api to notice zookeeper is gone", DEADLINE, || async {
            match self.call(Method::GET, "/readyz", None, None).await {
                Ok((_, body)) => body["zookeeper"] != "connected",
                Err(_) => false,
            }
        })
        .await?;
        Ok(())
    }

    /// One request; the status and the body as JSON (`Value::Null` when empty,
    /// `Value::String` when not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }

    /// A request with a raw body (for malformed JSON).
    pub async fn call_raw(
        &self,
        path: &str,
        token: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    pub async fn get(&self, path: &str, token: &str) -> anyhow::Result<(StatusCode, Value)> {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(
        &self,
        path: &str,
        token: &str,
        body: Value,
    ) -> anyhow::Result<(StatusCode, Value)> {
        self.call(Method::POST, path, Some(token), Some(&body))
            .await
    }

    /// Submits `body` as the submitter; fails unless the answer is 201.
    pub async fn submit(&self, body: Value) -> anyhow::Result<Value> {
        let (status, job) = self.post("/v1/jobs", SUBMITTER, body).await?;
        if status != StatusCode::CREATED {
            bail!("submit answered {status}: {job}");
        }
        Ok(job)
    }

    /// Submits a `noop` job.
    pub async fn submit_noop(&self) -> anyhow::Result<String> {
        let job = self.submit(json!({ "action": "noop" })).await?;
        Ok(job["id"].as_str().context("a job id")?.to_owned())
    }

    /// The test's own ZooKeeper session.
    pub async fn hands(&self) -> anyhow::Result<&drover_coordination::Session> {
        self.hands
            .get_or_try_init(|| drover_tests::connect(&self.zk_hosts, Duration::from_secs(4)))
            .await
    }

    /// Takes the job's queue entry as an executor would.
    pub async fn take(&self, id: &str) -> anyhow::Result<Hold> {
        drover_tests::hold_entry(self.hands().await?, id).await
    }

    /// Takes the same entry again (the old marker gone, as when its holder died).
    pub async fn retake(&self, hold: &Hold) -> anyhow::Result<Hold> {
        drover_tests::retake(self.hands().await?, hold).await
    }

    /// Takes the job's entry and claims it; returns the hold with the answer.
    pub async fn take_and_claim(
        &self,
        id: &str,
        executor: &str,
    ) -> anyhow::Result<(Hold, StatusCode, Value)> {
        let hold = self.take(id).await?;
        let (status, body) = self.claim(id, &hold, executor).await?;
        Ok((hold, status, body))
    }

    /// Claims the job with a held entry.
    pub async fn claim(
        &self,
        id: &str,
        hold: &Hold,
        executor: &str,
    ) -> anyhow::Result<(StatusCode, Value)> {
        self.post(
            &format!("/v1/jobs/{id}/claim"),
            EXECUTOR,
            json!({ "token": hold.token, "executor": executor, "entry": hold.entry }),
        )
        .await
    }

    pub async fn heartbeat(&self, id: &str, body: Value) -> anyhow::Result<(StatusCode, Value)> {
        self.post(&format!("/v1/jobs/{id}/heartbeat"), EXECUTOR, body)
            .await
    }

    pub async fn finish(&self, id: &str, body: Value) -> anyhow::Result<(StatusCode, Value)> {
        self.post(&format!("/v1/jobs/{id}/finish"), EXECUTOR, body)
            .await
    }

    pub async fn release(
        &self,
        id: &str,
        token: i64,
        message: &str,
    ) -> anyhow::Result<(StatusCode, Value)> {
        self.post(
            &format!("/v1/jobs/{id}/release"),
            EXECUTOR,
            json!({ "token": token, "message": message }),
        )
        .await
    }

    pub async fn job(&self, id: &str) -> anyhow::Result<Value> {
        let (status, job) = self.get(&format!("/v1/jobs/{id}"), SUBMITTER).await?;
        if status != StatusCode::OK {
            bail!("get {id} answered {status}: {job}");
        }
        Ok(job)
    }

    /// The stored row, read with SQL behind the API's back:
    /// `{state, status_code, enqueued, attempts, fencing_token, ...}`; `None` if absent.
    pub async fn db_record(&self, id: &str) -> anyhow::Result<Option<Value>> {
        const SQL: &str = "SELECT state, status_code, status_message, enqueued, attempts, \
            fencing_token, executor, action, params, created_us FROM jobs WHERE id = $1";
        /// The columns of `SQL`, in order.
        type Row = (
            String,
            String,
            String,
            bool,
            i64,
            Option<i64>,
            Option<String>,
            String,
            String,
            i64,
        );
        let row: Option<Row> = match &self.database {
            Database::Sqlite(_) => {
                let pool = sqlx::SqlitePool::connect(&self.database_url).await?;
                let row = sqlx::query_as(SQL).bind(id).fetch_optional(&pool).await?;
                pool.close().await;
                row
            }
            Database::Postgres(_) => {
                let pool = sqlx::PgPool::connect(&self.database_url).await?;
                let row = sqlx::query_as(SQL).bind(id).fetch_optional(&pool).await?;
                pool.close().await;
                row
            }
        };
        let value = row.map(
            |(
                state,
                code,
                message,
                enqueued,
                attempts,
                token,
                executor,
                action,
                params,
                created,
            )| {
                json!({
                    "state": state, "status_code": code, "status_message": message,
                    "enqueued": enqueued, "attempts": attempts, "fencing_token": token,
                    "executor": executor, "action": action, "params": params, "created_us": created,
                })
            },
        );
        Ok(value)
    }

    /// How many rows `jobs` has.
    pub async fn db_count(&self) -> anyhow::Result<i64> {
        const SQL: &str = "SELECT COUNT(*) FROM jobs";
        Ok(match &self.database {
            Database::Sqlite(_) => {
                let pool = sqlx::SqlitePool::connect(&self.database_url).await?;
                let n = sqlx::query_scalar(SQL).fetch_one(&pool).await?;
                pool.close().await;
                n
            }
            Database::Postgres(_) => {
                let pool = sqlx::PgPool::connect(&self.database_url).await?;
                let n = sqlx::query_scalar(SQL).fetch_one(&pool).await?;
                pool.close().await;
                n
            }
        })
    }

    /// Cancels the shutdown token without waiting: the API stops accepting and lets the
    /// requests in flight finish ([`stop`](Self::stop) then waits for it).
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Cancels the shutdown token and waits for `serve` to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            within("the api's graceful shutdown", DEADLINE, task).await???;
        }
        Ok(())
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Asserts an `ApiError` body: the `error` code, and a message mentioning each of `needles`.
pub fn assert_api_error(body: &Value, code: &str, needles: &[&str]) {
    assert_eq!(body["error"], code, "error code in {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "no message in {body}");
    for needle in needles {
        assert!(
            message.to_lowercase().contains(&needle.to_lowercase()),
            "message {message:?} should mention {needle:?}"
        );
    }
}
