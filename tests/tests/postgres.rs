//! The PostgreSQL harness against a real server: SQL over sqlx, restart and crash,
//! databases per test, and cleanup on drop.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use drover_tests::{init_test_tracing, within, PgServer};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};

const DEADLINE: Duration = Duration::from_secs(30);

async fn pool(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let connecting = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(DEADLINE)
        .connect(url);
    Ok(within("postgres pool connect", DEADLINE, connecting).await??)
}

async fn show(pool: &PgPool, setting: &str) -> anyhow::Result<String> {
    Ok(sqlx::query_scalar(&format!("SHOW {setting}"))
        .fetch_one(pool)
        .await?)
}

/// Every live process whose parent is `pid`, from `/proc`.
fn children_of(pid: u32) -> HashSet<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return HashSet::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            // `pid (comm) state ppid ...`; comm may hold spaces, so split after the `)`.
            let stat = fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            fields.get(1).and_then(|ppid| ppid.parse().ok()) == Some(pid)
        })
        .collect()
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn server_starts_and_serves_sql() -> anyhow::Result<()> {
    init_test_tracing();
    let started = Instant::now();
    let pg = PgServer::start().await?;
    println!("postgres start to ready (durable): {:?}", started.elapsed());

    assert!(pg.is_running());
    assert_eq!(
        pg.url(),
        format!("postgres://drover:drover@127.0.0.1:{}/drover", pg.port())
    );
    let pool = pool(&pg.url(), 4).await?;
    sqlx::query("CREATE TABLE jobs (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL)")
        .execute(&pool)
        .await?;
    for name in ["build", "test", "deploy"] {
        sqlx::query("INSERT INTO jobs (name) VALUES ($1)")
            .bind(name)
            .execute(&pool)
            .await?;
    }
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM jobs ORDER BY id")
        .fetch_all(&pool)
        .await?;
    assert_eq!(names, ["build", "test", "deploy"]);

    assert_eq!(show(&pool, "max_connections").await?, "200");
    assert_eq!(show(&pool, "fsync").await?, "on");
    assert_eq!(show(&pool, "synchronous_commit").await?, "on");
    assert_eq!(show(&pool, "full_page_writes").await?, "on");
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&pool)
        .await?;
    assert!(version.starts_with("PostgreSQL 15."), "{version}");
    // The user PostgreSQL runs as is not root, even when the tests are.
    let owner = fs::metadata(pg.data_dir())?;
    assert_ne!(std::os::unix::fs::MetadataExt::uid(&owner), 0);
    Ok(())
}

#[tokio::test]
async fn non_durable_settings_and_many_connections() -> anyhow::Result<()> {
    init_test_tracing();
    let started = Instant::now();
    let pg = PgServer::builder()
        .durable(false)
        .config("application_name", "harness")
        .start()
        .await?;
    println!(
        "postgres start to ready (durable off): {:?}",
        started.elapsed()
    );

    let pool = pool(&pg.url(), 150).await?;
    for setting in ["fsync", "synchronous_commit", "full_page_writes"] {
        assert_eq!(show(&pool, setting).await?, "off", "{setting}");
    }
    // 150 connections at once fit under max_connections = 200.
    let opening = Instant::now();
    let mut held = Vec::new();
    for _ in 0..150 {
        held.push(within("acquire a connection", DEADLINE, pool.acquire()).await??);
    }
    println!("150 connections opened in {:?}", opening.elapsed());
    let backends: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'",
    )
    .fetch_one(&mut *held[0])
    .await?;
    assert!(backends >= 150, "{backends} client backends");
    Ok(())
}

#[tokio::test]
async fn restart_and_crash_keep_port_and_data() -> anyhow::Result<()> {
    init_test_tracing();
    let mut pg = PgServer::start().await?;
    let port = pg.port();
    let pool1 = pool(&pg.url(), 2).await?;
    sqlx::query("CREATE TABLE kept (note TEXT)")
        .execute(&pool1)
        .await?;
    sqlx::query("INSERT INTO kept VALUES ('before stop')")
        .execute(&pool1)
        .await?;

    // A fast shutdown disconnects the open pool instead of waiting for it.
    within("postgres stop", DEADLINE, pg.stop()).await??;
    assert!(!pg.is_running() && pg.pid().is_none());
    let elapsed = pg.restart().await?;
    println!("postgres restart to ready: {elapsed:?}");
    assert_eq!(pg.port(), port);
    pool1.close().await;

    let pool2 = pool(&pg.url(), 2).await?;
    sqlx::query("INSERT INTO kept VALUES ('before crash')")
        .execute(&pool2)
        .await?;
    within("postgres kill", DEADLINE, pg.kill()).await??;
    assert!(!pg.is_running());
    let elapsed = pg.restart().await?;
    println!("postgres crash recovery to ready: {elapsed:?}");
    assert!(pg.log_tail(50).contains("not properly shut down"));
    pool2.close().await;

    let pool3 = pool(&pg.url(), 2).await?;
    let notes: Vec<String> = sqlx::query_scalar("SELECT note FROM kept ORDER BY note")
        .fetch_all(&pool3)
        .await?;
    assert_eq!(notes, ["before crash", "before stop"]);
    Ok(())
}

#[tokio::test]
async fn create_database_is_separate() -> anyhow::Result<()> {
    init_test_tracing();
    let pg = PgServer::start().await?;
    let url = pg.create_database("second").await?;
    assert_eq!(url, pg.url_for("second"));
    assert!(url.ends_with(&format!(":{}/second", pg.port())));

    let first = pool(&pg.url(), 2).await?;
    let second = pool(&url, 2).await?;
    sqlx::query("CREATE TABLE only_in_first (x INT)")
        .execute(&first)
        .await?;
    let row = sqlx::query(
        "SELECT current_database() AS db, to_regclass('only_in_first') IS NULL AS absent",
    )
    .fetch_one(&second)
    .await?;
    assert_eq!(row.get::<String, _>("db"), "second");
    assert!(row.get::<bool, _>("absent"));

    let duplicate = pg.create_database("second").await;
    assert!(format!("{:#}", duplicate.unwrap_err()).contains("already exists"));
    assert!(pg.create_database("no-dashes").await.is_err());
    Ok(())
}

#[tokio::test]
async fn password_auth_checks_the_password() -> anyhow::Result<()> {
    init_test_tracing();
    let pg = PgServer::builder().password_auth(true).start().await?;
    let pool = pool(&pg.url(), 1).await?;
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await?;
    assert_eq!(one, 1);

    let wrong = pg.url().replace(":drover@", ":wrong@");
    let err = PgPool::connect(&wrong)
        .await
        .expect_err("a wrong password must fail");
    assert!(
        err.to_string().contains("password authentication failed"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn drop_leaves_no_process_and_no_dir() -> anyhow::Result<()> {
    init_test_tracing();
    let pg = PgServer::start().await?;
    let dir = pg.dir().to_owned();
    let postmaster = pg.pid().expect("a started server has a pid");
    let pool = pool(&pg.url(), 3).await?;
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await?;
    let backend = u32::try_from(backend)?;
    let mut pids = children_of(postmaster);
    assert!(pids.contains(&backend), "backend {backend} in {pids:?}");
    assert!(
        pids.len() >= 4,
        "checkpointer, writers, launchers: {pids:?}"
    );
    pids.insert(postmaster);

    drop(pg);
    let left: Vec<u32> = pids
        .into_iter()
        .filter(|&pid| process_exists(pid))
        .collect();
    assert!(left.is_empty(), "processes left after drop: {left:?}");
    assert!(!dir.exists(), "{} left after drop", dir.display());
    pool.close().await;
    Ok(())
}

#[tokio::test]
async fn failed_start_reports_the_log() {
    init_test_tracing();
    let err = PgServer::builder()
        .config("shared_buffers", "lots")
        .start()
        .await
        .expect_err("a bad shared_buffers must fail the start");
    let message = format!("{err:#}");
    assert!(message.contains("last log lines"), "{message}");
    assert!(message.contains("shared_buffers"), "{message}");
}
