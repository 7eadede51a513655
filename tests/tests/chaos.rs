//! Faults in combination: a 3-node ZooKeeper ensemble, `drover api` (restarted mid-run on
//! the same database), 3 executors × 4 slots and 2 distributors run 1,000+ jobs (built-in
//! and Docker) while executors are SIGKILLed, frozen past their session timeout and
//! resumed, drained and replaced, ZooKeeper nodes (the leader too) restarted and the
//! distributor leader killed. A monitor polls Docker for two running containers of one
//! job throughout.
//!
//! At the end: every job terminal, none lost, no overlapping run, no job out of attempts,
//! no container left behind, every tick of the distribution one job. The detectors are
//! then shown to catch a fault injected on purpose. Bounded at 5 minutes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use drover_client::ApiClient;
use drover_core::JobId;
use drover_model::SubmitJob;
use drover_tests::{
    connect, drover_command, free_port, init_test_tracing, wait_api_ready, wait_until, within,
    Ensemble, LineChild, OverlapMonitor,
};
use nix::sys::signal::Signal;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

const ADMIN: &str = "chaos-admin-secret";
const EXECUTOR: &str = "chaos-executor-secret";
const DISTRIBUTOR: &str = "chaos-distributor-secret";
/// Every process's ZooKeeper session timeout.
const SESSION: Duration = Duration::from_secs(3);
/// Jobs the test submits (the distribution adds about one a second).
const JOBS: usize = 1_000;
/// Every tenth is a Docker job (half quick, half lingering).
const DOCKER_EVERY: usize = 10;
/// Attempts a job may use: more than any plausible run of faults hitting it.
const MAX_ATTEMPTS: u32 = 6;
const BOUND: Duration = Duration::from_secs(300);

const ACTIONS: &[(&str, &str)] = &[
    (
        "echo",
        r#"name = "echo"
image = "drover/busybox:latest"
pull = "never"
command = ["sh", "-c", "echo chaos $DROVER_PARAM_N"]
"#,
    ),
    (
        "linger",
        r#"name = "linger"
image = "drover/busybox:latest"
pull = "never"
command = ["sh", "-c", "trap '' TERM; i=0; while [ $i -lt ${DROVER_PARAM_TENTHS:-10} ]; do sleep 0.1; i=$((i+1)); done"]
"#,
    ),
];

/// The cluster: its processes by name, and where their files are.
struct Chaos {
    ensemble: Ensemble,
    dir: tempfile::TempDir,
    url: String,
    api_port: u16,
    api: Option<LineChild>,
    executors: BTreeMap<String, LineChild>,
    distributors: BTreeMap<String, LineChild>,
}

impl Chaos {
    async fn start() -> anyhow::Result<Chaos> {
        init_test_tracing();
        let ensemble = Ensemble::start(3).await?;
        let dir = tempfile::tempdir()?;
        let actions = dir.path().join("actions");
        std::fs::create_dir(&actions)?;
        for (name, text) in ACTIONS {
            std::fs::write(actions.join(format!("{name}.toml")), text)?;
        }
        let api_port = free_port()?;
        let mut chaos = Chaos {
            ensemble,
            dir,
            url: format!("http://127.0.0.1:{api_port}"),
            api_port,
            api: None,
            executors: BTreeMap::new(),
            distributors: BTreeMap::new(),
        };
        chaos.start_api().await?;
        Ok(chaos)
    }

    fn config(&self, name: &str, token: &str, role: &str) -> anyhow::Result<std::path::PathBuf> {
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "url = \"{url}\"\ntoken = \"{token}\"\n[zookeeper]\nhosts = \"{zk}\"\nsession_timeout = \"{session}ms\"\n{role}",
                url = self.url,
                zk = self.ensemble.connect_string(),
                session = SESSION.as_millis(),
            ),
        )?;
        Ok(path)
    }

    async fn spawn(&self, role: &str, config: &std::path::Path) -> anyhow::Result<LineChild> {
        let mut command = drover_command().await?;
        command
            .arg(role)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        LineChild::spawn(command)
    }

    async fn start_api(&mut self) -> anyhow::Result<()> {
        let tokens: String = [
            ("root", ADMIN, "admin"),
            ("pool", EXECUTOR, "executor"),
            ("distributors", DISTRIBUTOR, "distributor"),
        ]
        .iter()
        .map(|(name, token, role)| {
            format!("[[api.tokens]]\nname = \"{name}\"\ntoken = \"{token}\"\nrole = \"{role}\"\n")
        })
        .collect();
        let role = format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\ndatabase_url = \"sqlite://{db}?mode=rwc\"\n{tokens}",
            port = self.api_port,
            db = self.db_path().display(),
        );
        let config = self.config("api", ADMIN, &role)?;
        let mut api = self.spawn("api", &config).await?;
        wait_api_ready(&mut api, &self.url, Duration::from_secs(60)).await?;
        self.api = Some(api);
        Ok(())
    }

    fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("drover.db")
    }

    async fn start_executor(&mut self, id: &str) -> anyhow::Result<()> {
        let role = format!(
            "[executor]\nid = \"{id}\"\nslots = 4\nactions_dir = \"{actions}\"\nheartbeat_interval = \"500ms\"\ndrain_timeout = \"5s\"\nstop_grace = \"2s\"\nbackoff_max = \"1s\"\nlog_flush_interval = \"200ms\"\nmetrics = false\n",
            actions = self.dir.path().join("actions").display()
        );
        let config = self.config(&format!("executor-{id}"), EXECUTOR, &role)?;
        let child = self.spawn("executor", &config).await?;
        self.executors.insert(id.to_owned(), child);
        Ok(())
    }

    async fn start_distributor(&mut self, id: &str) -> anyhow::Result<()> {
        let role = format!(
            "[distributor]\nid = \"{id}\"\nreconcile_every = \"1s\"\nreconcile_grace = \"2s\"\nreconcile_stale_after = \"4s\"\n[[distributor.distributions]]\nname = \"tick\"\naction = \"noop\"\nevery = \"1s\"\ncatch_up = \"all\"\n"
        );
        let config = self.config(&format!("distributor-{id}"), DISTRIBUTOR, &role)?;
        let child = self.spawn("distributor", &config).await?;
        self.distributors.insert(id.to_owned(), child);
        Ok(())
    }

    fn admin(&self) -> anyhow::Result<ApiClient> {
        Ok(ApiClient::new(&self.url, Some(ADMIN.to_owned()))?)
    }

    async fn db(&self) -> anyhow::Result<SqlitePool> {
        let options = SqliteConnectOptions::new()
            .filename(self.db_path())
            .read_only(true);
        Ok(SqlitePool::connect_with(options).await?)
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for (name, child) in self.executors.iter().chain(&self.distributors) {
            let log = child.stderr();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            out.push_str(&format!("--- {name} (last lines)\n"));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Every line any process logged about `id` (the API's too), for a report.
    fn logs_of(&self, id: &str) -> String {
        let mut out = String::new();
        let processes = self
            .executors
            .iter()
            .chain(&self.distributors)
            .map(|(name, child)| (name.as_str(), child))
            .chain(self.api.iter().map(|api| ("api", api)));
        for (name, child) in processes {
            for line in child.stderr().lines().filter(|l| l.contains(id)) {
                out.push_str(&format!("[{name}] {line}\n"));
            }
        }
        out
    }
}

/// Submits `JOBS` jobs at about 20 a second, each with its own idempotency key so a
/// submit retried through an API restart makes no second job; returns their ids.
async fn submit_all(url: String, ids: Arc<Mutex<Vec<JobId>>>) -> anyhow::Result<()> {
    let client = ApiClient::new(&url, Some(ADMIN.to_owned()))?;
    let mut pace = tokio::time::interval(Duration::from_millis(50));
    for n in 0..JOBS {
        pace.tick().await;
        let (action, params) = if n % (2 * DOCKER_EVERY) == 0 {
            ("echo", serde_json::json!({ "n": n }))
        } else if n % (2 * DOCKER_EVERY) == DOCKER_EVERY {
            ("linger", serde_json::json!({ "tenths": 5 + n % 15 }))
        } else if n % 3 == 0 {
            (
                "sleep",
                serde_json::json!({ "seconds": 0.2 + (n % 10) as f64 / 10.0 }),
            )
        } else {
            ("noop", serde_json::json!({}))
        };
        let submit = SubmitJob {
            action: action.into(),
            params: params
                .as_object()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            max_attempts: Some(MAX_ATTEMPTS),
            idempotency_key: Some(format!("chaos-{n}")),
            ..SubmitJob::default()
        };
        let id = loop {
            match client.submit(&submit).await {
                Ok(submitted) => break submitted.job.id,
                Err(e) if e.is_unavailable() => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => bail!("submit {n} refused: {e}"),
            }
        };
        ids.lock().unwrap_or_else(|e| e.into_inner()).push(id);
    }
    Ok(())
}

/// A job as the database has it.
#[derive(Debug, Clone)]
struct Row {
    state: String,
    status_code: String,
    attempts: i64,
    key: Option<String>,
    /// Its status message, executor and queue entry, for a report.
    about: (String, Option<String>, Option<String>, bool),
}

async fn rows(db: &SqlitePool) -> anyhow::Result<HashMap<String, Row>> {
    type Columns = (
        String,
        String,
        String,
        i64,
        Option<String>,
        String,
        Option<String>,
        Option<String>,
        bool,
    );
    let all: Vec<Columns> = sqlx::query_as(
        "SELECT id, state, status_code, attempts, idempotency_key, status_message, executor, \
         queue_entry, enqueued FROM jobs",
    )
    .fetch_all(db)
    .await?;
    Ok(all
        .into_iter()
        .map(
            |(id, state, status_code, attempts, key, message, executor, entry, enqueued)| {
                (
                    id,
                    Row {
                        state,
                        status_code,
                        attempts,
                        key,
                        about: (message, executor, entry, enqueued),
                    },
                )
            },
        )
        .collect())
}

/// Where a job that did not end stands: its row and the queue entries holding it (with
/// their taken markers' owners).
async fn lost_detail(
    hands: &drover_coordination::Session,
    rows: &HashMap<String, Row>,
    id: &str,
) -> String {
    let client = hands.client();
    let mut entries = Vec::new();
    for name in client
        .list_children("/job/entries")
        .await
        .unwrap_or_default()
    {
        let Ok((data, _)) = client.get_data(&format!("/job/entries/{name}")).await else {
            continue;
        };
        if String::from_utf8_lossy(&data) == id {
            let marker = client
                .check_stat(&format!("/job/taken/{name}"))
                .await
                .ok()
                .flatten()
                .map(|stat| {
                    format!(
                        "taken by session {:#x} at {}",
                        stat.ephemeral_owner, stat.czxid
                    )
                });
            entries.push(format!(
                "{name} ({})",
                marker.unwrap_or_else(|| "not taken".into())
            ));
        }
    }
    let row = rows.get(id).map_or_else(
        || "not in the database".to_owned(),
        |r| {
            let (message, executor, entry, enqueued) = &r.about;
            format!(
                "{}/{} after {} attempts, executor {executor:?}, entry {entry:?}, enqueued {enqueued}: {message}",
                r.state, r.status_code, r.attempts
            )
        },
    );
    format!("--- job {id}: {row}; entries: {entries:?}\n")
}

/// What the end state says.
#[derive(Debug, Default)]
struct Tally {
    /// Submitted jobs not terminal, or not in the database at all.
    lost: Vec<String>,
    /// Terminal jobs that did not succeed, by status code.
    failed: BTreeMap<String, usize>,
    /// Jobs by the attempts they took.
    attempts: BTreeMap<i64, usize>,
}

fn tally(ids: &[JobId], rows: &HashMap<String, Row>) -> Tally {
    let mut tally = Tally::default();
    for id in ids {
        let id = id.to_string();
        match rows.get(&id) {
            Some(row) if matches!(row.state.as_str(), "SUCCESS" | "FAILED" | "CANCELED") => {
                *tally.attempts.entry(row.attempts).or_default() += 1;
                if row.status_code != "SUCCEEDED" {
                    *tally.failed.entry(row.status_code.clone()).or_default() += 1;
                }
            }
            _ => tally.lost.push(id),
        }
    }
    tally
}

/// The distribution's ticks (their keys' times), checking none has two jobs; returns
/// them sorted and the ticks missing between the first and the last.
fn ticks(rows: &HashMap<String, Row>) -> anyhow::Result<(Vec<i64>, Vec<i64>)> {
    let mut seen = BTreeSet::new();
    for row in rows.values() {
        let Some(text) = row
            .key
            .as_deref()
            .and_then(|k| k.strip_prefix("distribution/tick/"))
        else {
            continue;
        };
        let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)?;
        let ms = i64::try_from(t.unix_timestamp_nanos() / 1_000_000)?;
        ensure!(seen.insert(ms), "tick {text} has two jobs");
    }
    let ticks: Vec<i64> = seen.into_iter().collect();
    let missing = match (ticks.first(), ticks.last()) {
        (Some(&first), Some(&last)) => (first..=last)
            .step_by(1000)
            .filter(|t| ticks.binary_search(t).is_err())
            .collect(),
        _ => Vec::new(),
    };
    Ok((ticks, missing))
}

/// Containers (any state) and volumes of this cluster still on the daemon.
async fn cluster_containers(cluster: &str) -> anyhow::Result<Vec<String>> {
    let filter = format!("label=drover.cluster={cluster}");
    let mut found = Vec::new();
    for listing in [&["ps", "-aq"][..], &["volume", "ls", "-q"][..]] {
        let out = tokio::process::Command::new("docker")
            .args(listing)
            .args(["--filter", &filter])
            .output()
            .await?;
        ensure!(out.status.success(), "docker {listing:?} failed");
        found.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned),
        );
    }
    Ok(found)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_jobs_through_combined_faults_lose_nothing_and_never_overlap(
) -> anyhow::Result<()> {
    within("the chaos run", BOUND, chaos_run()).await?
}

async fn chaos_run() -> anyhow::Result<()> {
    let started = Instant::now();
    let monitor = OverlapMonitor::start().await?;
    let mut chaos = Chaos::start().await?;
    for id in ["e1", "e2", "e3"] {
        chaos.start_executor(id).await?;
    }
    for id in ["d1", "d2"] {
        chaos.start_distributor(id).await?;
    }
    let admin = chaos.admin()?;
    wait_until("three executors", Duration::from_secs(30), || async {
        admin.executors().await.is_ok_and(|e| e.len() == 3)
    })
    .await?;
    let ids = Arc::new(Mutex::new(Vec::new()));
    let submitter = tokio::spawn(submit_all(chaos.url.clone(), ids.clone()));
    let mut faults = Vec::new();
    let mut note = |what: String| {
        eprintln!("chaos {:>5.1}s: {what}", started.elapsed().as_secs_f64());
        faults.push(what);
    };
    let pause = || tokio::time::sleep(Duration::from_secs(4));
    eprintln!(
        "chaos: cluster up after {:.0}s",
        started.elapsed().as_secs_f64()
    );

    pause().await;
    // 1. An executor dies (SIGKILL) with work in flight; a replacement with a new id.
    chaos
        .executors
        .get("e1")
        .context("e1")?
        .signal(Signal::SIGKILL)?;
    chaos.start_executor("e1b").await?;
    note("SIGKILL executor e1, started e1b".into());
    pause().await;

    // 2. An executor frozen past its session timeout, then resumed.
    chaos
        .executors
        .get("e2")
        .context("e2")?
        .signal(Signal::SIGSTOP)?;
    note("SIGSTOP executor e2".into());
    tokio::time::sleep(SESSION * 2 + Duration::from_secs(1)).await;
    chaos
        .executors
        .get("e2")
        .context("e2")?
        .signal(Signal::SIGCONT)?;
    note("SIGCONT executor e2".into());
    pause().await;

    // 3. A ZooKeeper follower restarts.
    let leader = chaos
        .ensemble
        .leader_index()
        .await
        .context("a ZooKeeper leader")?;
    let follower = (leader + 1) % 3;
    chaos.ensemble.kill(follower).await?;
    chaos.ensemble.restart(follower).await?;
    note(format!("restarted ZooKeeper follower {follower}"));
    pause().await;

    // 4. The distributor leader dies; it comes back a little later.
    let led_by = admin
        .distributions()
        .await
        .ok()
        .and_then(|d| d.into_iter().find(|d| d.name == "tick"))
        .and_then(|d| d.leader)
        .unwrap_or_else(|| "d1".to_owned());
    if let Some(mut child) = chaos.distributors.remove(&led_by) {
        child.kill().await?;
    }
    note(format!("SIGKILL distributor leader {led_by}"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    chaos.start_distributor(&led_by).await?;
    note(format!("restarted distributor {led_by}"));
    pause().await;

    // 5. The ZooKeeper leader restarts.
    let leader = chaos
        .ensemble
        .leader_index()
        .await
        .context("a ZooKeeper leader")?;
    chaos.ensemble.kill(leader).await?;
    chaos.ensemble.restart(leader).await?;
    note(format!("restarted ZooKeeper leader {leader}"));
    pause().await;

    // 6. The API crashes and restarts on the same database.
    if let Some(mut api) = chaos.api.take() {
        api.kill().await?;
    }
    note("SIGKILL the API".into());
    tokio::time::sleep(Duration::from_secs(2)).await;
    chaos.start_api().await?;
    note("restarted the API".into());
    pause().await;

    // 7. An executor is drained (SIGTERM) and replaced.
    chaos
        .executors
        .get("e3")
        .context("e3")?
        .signal(Signal::SIGTERM)?;
    chaos.start_executor("e3b").await?;
    note("SIGTERM (drain) executor e3, started e3b".into());

    within("the submitter", Duration::from_secs(120), submitter).await???;
    let ids: Vec<JobId> = ids.lock().unwrap_or_else(|e| e.into_inner()).clone();
    note(format!("all {} jobs submitted", ids.len()));

    // Everything ends.
    let db = chaos.db().await?;
    let waited = wait_until("every job to end", Duration::from_secs(150), || async {
        rows(&db).await.is_ok_and(|rows| {
            tally(&ids, &rows).lost.is_empty()
                && rows
                    .values()
                    .all(|r| matches!(r.state.as_str(), "SUCCESS" | "FAILED" | "CANCELED"))
        })
    })
    .await;
    let rows = rows(&db).await?;
    let tally = tally(&ids, &rows);
    if let Err(e) = waited {
        let hands = connect(&chaos.ensemble.connect_string(), SESSION).await?;
        let mut detail = String::new();
        for id in tally.lost.iter().take(5) {
            detail.push_str(&lost_detail(&hands, &rows, &id.to_string()).await);
        }
        bail!(
            "{e}: {} of {} jobs not terminal, e.g. {:?}\n{detail}{}",
            tally.lost.len(),
            ids.len(),
            tally.lost.iter().take(5).collect::<Vec<_>>(),
            chaos.logs()
        );
    }
    let (ticks, missing) = ticks(&rows)?;
    // Every executor still running drains and exits; what the dead ones left must have
    // been reaped by the others: nothing of the cluster may remain on the daemon.
    let hands = connect(&chaos.ensemble.connect_string(), SESSION).await?;
    let cluster =
        String::from_utf8_lossy(&hands.client().get_data("/cluster-id").await?.0).into_owned();
    for child in chaos.executors.values() {
        let _ = child.signal(Signal::SIGTERM);
    }
    for (name, child) in &mut chaos.executors {
        within(
            &format!("executor {name} to exit"),
            Duration::from_secs(30),
            child.wait(),
        )
        .await??;
    }
    let leftovers = wait_until(
        "no container left behind",
        Duration::from_secs(20),
        || async {
            cluster_containers(&cluster)
                .await
                .is_ok_and(|c| c.is_empty())
        },
    )
    .await;
    let overlapping = monitor.overlapping();
    let (polls, poll_errors) = monitor.polls();
    let reruns: usize = tally
        .attempts
        .iter()
        .filter(|(a, _)| **a > 1)
        .map(|(_, n)| n)
        .sum();
    eprintln!(
        "chaos: {} jobs + {} ticks in {:.0}s through {} faults; lost {}, failed {:?}, overlapping runs {}, attempts {:?} ({reruns} reruns), ticks missing {}, monitor polls {polls} ({poll_errors} failed)",
        ids.len(),
        ticks.len(),
        started.elapsed().as_secs_f64(),
        faults.len(),
        tally.lost.len(),
        tally.failed,
        overlapping.len(),
        tally.attempts,
        missing.len(),
    );
    ensure!(tally.lost.is_empty(), "lost jobs: {:?}", tally.lost);
    ensure!(
        overlapping.is_empty(),
        "two runs of one job at once: {overlapping:?}\n{}",
        chaos.logs()
    );
    if !tally.failed.is_empty() {
        let mut detail = String::new();
        let unsuccessful = rows.iter().filter(|(_, r)| r.state != "SUCCESS").take(5);
        for (id, row) in unsuccessful {
            let (message, executor, entry, _) = &row.about;
            detail.push_str(&format!(
                "--- job {id}: {}/{} after {} attempts on {executor:?} via {entry:?}: {message}\n{}",
                row.state,
                row.status_code,
                row.attempts,
                chaos.logs_of(id)
            ));
        }
        bail!(
            "jobs that did not succeed (an ATTEMPTS_EXHAUSTED means takeovers used the attempts up): {:?}\n{detail}",
            tally.failed,
        );
    }
    ensure!(missing.is_empty(), "ticks without a job: {missing:?}");
    ensure!(
        leftovers.is_ok(),
        "containers left behind: {:?}",
        cluster_containers(&cluster).await?
    );
    ensure!(
        polls > 100 && poll_errors == 0,
        "the monitor did not watch: {polls} polls, {poll_errors} failed"
    );

    // The detectors catch a fault injected on purpose.
    let fake = format!("injected-{}", JobId::new());
    for _ in 0..2 {
        let out = tokio::process::Command::new("docker")
            .args([
                "run",
                "-d",
                "--rm",
                "--label",
                &format!("drover.job={fake}"),
            ])
            .args(["drover/busybox:latest", "sleep", "5"])
            .output()
            .await?;
        ensure!(
            out.status.success(),
            "docker run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    wait_until(
        "the monitor to see the injected overlap",
        Duration::from_secs(10),
        || async { monitor.overlapping().contains_key(&fake) },
    )
    .await?;
    let mut with_a_lost_one = ids.clone();
    with_a_lost_one.push(JobId::new());
    ensure!(
        tally_lost(&with_a_lost_one, &rows) == 1,
        "the lost counter misses a job the database does not have"
    );
    eprintln!("chaos: the overlap monitor and the lost counter caught the injected faults");
    Ok(())
}

fn tally_lost(ids: &[JobId], rows: &HashMap<String, Row>) -> usize {
    tally(ids, rows).lost.len()
}
