//! Job API benchmark: full job lifecycles (submit → take → claim → heartbeat → finish →
//! consume) over HTTP against the API served in-process, on SQLite and on PostgreSQL,
//! with a real ZooKeeper (every submit is committed, put on the queue, then marked
//! enqueued; every claim names a real taken entry, which the API proves in ZooKeeper).
//! The claim check's own time comes from the API's `drover_claim_check_seconds`.
//!
//! ```text
//! cargo run --release -p drover-tests --bin api-bench -- [--backend sqlite,postgres] \
//!     [--lifecycles 20000] [--clients 128] [--warmup 10000]
//! ```
//! The load generator shares the machine (and the process) with the API, ZooKeeper and
//! PostgreSQL: every figure is from this run on this machine.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::{Parser, ValueEnum};
use drover_api::{ApiConfig, ApiToken, Role};
use drover_coordination::{Queue, ZkSettings};
use drover_tests::procfs::{children_of, cpu_ticks as ticks_of, TICKS_PER_SECOND};
use drover_tests::{wait_until, PgServer, ZkServer};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The allocator of the `drover` binary, so the in-process API runs as it does there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SUBMITTER: &str = "bench-submitter-token";
const EXECUTOR: &str = "bench-executor-token";
/// Whether submits must come back enqueued (off with --without-zookeeper).
static ENQUEUE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
const CALLS: [&str; 4] = ["submit", "claim", "heartbeat", "finish"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Parser, Debug)]
#[command(about = "drover job API benchmark (lifecycles/s and per-call latency)")]
struct Args {
    /// Databases to run on, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sqlite,postgres"
    )]
    backend: Vec<Backend>,
    /// Measured lifecycles per backend.
    #[arg(long, default_value_t = 20_000)]
    lifecycles: usize,
    /// Concurrent clients (each runs lifecycles one after another).
    #[arg(long, default_value_t = 128)]
    clients: usize,
    /// Lifecycles of the discarded warm-up (JIT, caches, connection set-up).
    #[arg(long, default_value_t = 10_000)]
    warmup: usize,
    /// API database connections (PostgreSQL pool, SQLite readers).
    #[arg(long, default_value_t = 8)]
    connections: u32,
    /// PostgreSQL with fsync and synchronous_commit off (default: durable).
    #[arg(long)]
    pg_fast: bool,
    /// Point the API at a ZooKeeper that is down (submits commit with enqueued=false):
    /// shows what the queue costs.
    #[arg(long)]
    without_zookeeper: bool,
    /// Also measure the HTTP floor: this many `GET /healthz` (no database, no ZooKeeper).
    #[arg(long, default_value_t = 0)]
    probe: usize,
}

/// Latencies of one call kind, in microseconds.
#[derive(Default)]
struct Samples(Vec<u64>);

impl Samples {
    fn percentile(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_unstable();
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        #[allow(clippy::cast_precision_loss)]
        let micros = self.0[index] as f64;
        micros / 1000.0
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ENQUEUE.store(!args.without_zookeeper, Ordering::Relaxed);
    let zk = ZkServer::builder()
        .heap("512m")
        .start()
        .await
        .context("starting ZooKeeper")?;
    println!(
        "api-bench: {} lifecycles (submit, claim, heartbeat, finish) per backend, {} clients, {} warm-up; ZooKeeper {}",
        args.lifecycles,
        args.clients,
        args.warmup,
        zk.connect_string()
    );
    for &backend in &args.backend {
        run_backend(&args, backend, &zk)
            .await
            .with_context(|| format!("{backend:?} run"))?;
    }
    Ok(())
}

async fn run_backend(args: &Args, backend: Backend, zk: &ZkServer) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut pg = None;
    let url = match backend {
        Backend::Sqlite => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        ),
        Backend::Postgres => {
            let server = PgServer::builder().durable(!args.pg_fast).start().await?;
            let url = server.url();
            pg = Some(server);
            url
        }
    };
    let config = ApiConfig {
        database_url: url,
        database_max_connections: args.connections,
        tokens: vec![
            ApiToken {
                name: "bench".into(),
                token: SUBMITTER.into(),
                role: Role::Submitter,
                level: None,
            },
            ApiToken {
                name: "bench-executor".into(),
                token: EXECUTOR.into(),
                role: Role::Executor,
                level: None,
            },
        ],
        ..ApiConfig::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let zk_hosts = if args.without_zookeeper {
        "127.0.0.1:9".to_owned()
    } else {
        zk.connect_string()
    };
    let zk_settings = ZkSettings::new(zk_hosts);
    let server = tokio::spawn(drover_api::serve(
        listener,
        config,
        zk_settings,
        shutdown.clone(),
    ));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients * 2)
        .timeout(Duration::from_secs(30))
        .build()?;
    wait_until(
        "the api to have a zookeeper session",
        Duration::from_secs(30),
        || async {
            match http.get(format!("{base}/readyz")).send().await {
                Ok(response) => response
                    .json::<Value>()
                    .await
                    .is_ok_and(|v| args.without_zookeeper || v["zookeeper"] == "connected"),
                Err(_) => false,
            }
        },
    )
    .await?;

    if args.probe > 0 {
        probe(&http, &base, args.probe, args.clients).await?;
    }
    if args.without_zookeeper {
        bail!("--without-zookeeper: claims are proven in ZooKeeper, so lifecycles need it");
    }
    // The executors' side: takes from the real queue, one watched view for all clients.
    let hands = drover_tests::connect(&zk.connect_string(), Duration::from_secs(10)).await?;
    let queue = Queue::open(&hands, "/job").await?;
    run_lifecycles(&http, &base, args.warmup, args.clients, &queue).await?;
    let pg_pid = pg.as_ref().and_then(PgServer::pid);
    let cpu_before = CpuTicks::now(zk.pid(), pg_pid);
    let started = Instant::now();
    let mut samples = run_lifecycles(&http, &base, args.lifecycles, args.clients, &queue).await?;
    let elapsed = started.elapsed();
    let cpu = CpuTicks::now(zk.pid(), pg_pid).since(&cpu_before);

    #[allow(clippy::cast_precision_loss)]
    let rate = args.lifecycles as f64 / elapsed.as_secs_f64();
    let durability = match backend {
        Backend::Sqlite => "WAL, synchronous=NORMAL".to_owned(),
        Backend::Postgres if args.pg_fast => "fsync=off".to_owned(),
        Backend::Postgres => "durable defaults (fsync, synchronous_commit on)".to_owned(),
    };
    println!("\n{backend:?} ({durability}): {} lifecycles in {:.2}s = {rate:.0} lifecycles/s ({:.0} requests/s)",
        args.lifecycles, elapsed.as_secs_f64(), rate * 4.0);
    cpu.print(args.lifecycles);
    println!(
        "  {:<10} {:>9} {:>9} {:>9}",
        "call", "p50 ms", "p99 ms", "max ms"
    );
    for (name, samples) in CALLS.iter().zip(samples.iter_mut()) {
        let (p50, p99, max) = (
            samples.percentile(0.5),
            samples.percentile(0.99),
            samples.percentile(1.0),
        );
        println!("  {name:<10} {p50:>9.2} {p99:>9.2} {max:>9.2}");
    }
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let (sum, count) = histogram_totals(&metrics, "drover_claim_check_seconds");
    let claims = &samples[1].0;
    #[allow(clippy::cast_precision_loss)]
    let claim_mean_ms = claims.iter().sum::<u64>() as f64 / claims.len().max(1) as f64 / 1000.0;
    #[allow(clippy::cast_precision_loss)]
    let check_mean_ms = if count > 0.0 {
        sum / count * 1000.0
    } else {
        0.0
    };
    println!(
        "  claim check in ZooKeeper (warm-up included): {count:.0} checks, mean {check_mean_ms:.3} ms = {:.0}% of the mean claim ({claim_mean_ms:.3} ms)",
        100.0 * check_mean_ms / claim_mean_ms.max(f64::EPSILON)
    );

    shutdown.cancel();
    server.await??;
    drop(pg);
    Ok(())
}

/// CPU time used so far, in clock ticks (1/100 s), read from `/proc`: this process (the
/// API and the load generator), ZooKeeper, and PostgreSQL (postmaster and backends).
#[derive(Debug, Default, Clone, Copy)]
struct CpuTicks {
    own: u64,
    zookeeper: u64,
    postgres: u64,
}

impl CpuTicks {
    fn now(zookeeper: Option<u32>, postgres: Option<u32>) -> CpuTicks {
        let postgres = postgres.map_or(0, |pid| {
            let mut pids = children_of(pid);
            pids.push(pid);
            pids.into_iter().map(ticks_of).sum()
        });
        CpuTicks {
            own: ticks_of(std::process::id()),
            zookeeper: zookeeper.map_or(0, ticks_of),
            postgres,
        }
    }

    fn since(self, before: &CpuTicks) -> CpuTicks {
        CpuTicks {
            own: self.own.saturating_sub(before.own),
            zookeeper: self.zookeeper.saturating_sub(before.zookeeper),
            postgres: self.postgres.saturating_sub(before.postgres),
        }
    }

    #[allow(clippy::cast_precision_loss)]
    fn print(self, lifecycles: usize) {
        let per = |ticks: u64| ticks as f64 / TICKS_PER_SECOND * 1000.0 / lifecycles as f64;
        let total = per(self.own + self.zookeeper + self.postgres);
        println!(
            "  CPU per lifecycle: {total:.2} ms = API + load generator {:.2} ms, ZooKeeper {:.2} ms, PostgreSQL {:.2} ms \
             (two idle cores would allow at most {:.0} lifecycles/s)",
            per(self.own),
            per(self.zookeeper),
            per(self.postgres),
            2000.0 / total
        );
    }
}

/// `GET /healthz` `count` times on `clients` clients: what HTTP alone costs here.
async fn probe(
    http: &reqwest::Client,
    base: &str,
    count: usize,
    clients: usize,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, url, next) = (http.clone(), format!("{base}/healthz"), next.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < count {
                http.get(&url).send().await?.bytes().await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = count as f64 / started.elapsed().as_secs_f64();
    println!("  http floor: {count} GET /healthz = {rate:.0} requests/s");
    Ok(())
}

/// The sum and count of a Prometheus histogram, over every label set.
fn histogram_totals(text: &str, name: &str) -> (f64, f64) {
    let total = |suffix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{suffix}")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    (total("_sum"), total("_count"))
}

/// Runs `count` lifecycles on `clients` concurrent clients; latencies per call kind.
async fn run_lifecycles(
    http: &reqwest::Client,
    base: &str,
    count: usize,
    clients: usize,
    queue: &Queue,
) -> anyhow::Result<[Samples; 4]> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (http, base, next, queue) =
            (http.clone(), base.to_owned(), next.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples: [Samples; 4] = Default::default();
            let executor = format!("bench-{client}");
            while next.fetch_add(1, Ordering::Relaxed) < count {
                lifecycle(&http, &base, &executor, &queue, &mut samples).await?;
            }
            Ok::<_, anyhow::Error>(samples)
        }));
    }
    let mut all: [Samples; 4] = Default::default();
    for task in tasks {
        let samples = task.await??;
        for (into, from) in all.iter_mut().zip(samples) {
            into.0.extend(from.0);
        }
    }
    Ok(all)
}

/// The fields of a `Job` answer the bench looks at (the rest is skipped unparsed).
#[derive(serde::Deserialize)]
struct JobAnswer {
    #[serde(default)]
    id: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    enqueued: bool,
}

async fn lifecycle(
    http: &reqwest::Client,
    base: &str,
    executor: &str,
    queue: &Queue,
    samples: &mut [Samples; 4],
) -> anyhow::Result<()> {
    let submit = json!({ "action": "bench" });
    let job: JobAnswer = call(
        http,
        &format!("{base}/v1/jobs"),
        SUBMITTER,
        &submit,
        &mut samples[0],
    )
    .await?;
    ensure!(
        job.enqueued || !ENQUEUE.load(Ordering::Relaxed),
        "submit was not enqueued: job {}",
        job.id
    );
    // Take whatever entry comes first (another client's job, often), as an executor does.
    let taken = queue
        .take(Some(Duration::from_secs(30)))
        .await?
        .context("nothing to take after a submit")?;
    let token = taken.token().get();
    let url = format!("{base}/v1/jobs/{}/", taken.job_id()?);
    let claim = json!({ "token": token, "executor": executor, "entry": taken.name() });
    let claimed: JobAnswer = call(
        http,
        &format!("{url}claim"),
        EXECUTOR,
        &claim,
        &mut samples[1],
    )
    .await?;
    ensure!(
        claimed.state == "RUNNING",
        "claim of {} left it {}",
        job.id,
        claimed.state
    );
    let beat = json!({ "token": token, "progress": 50, "status_code": "EXECUTING" });
    let _: Value = call(
        http,
        &format!("{url}heartbeat"),
        EXECUTOR,
        &beat,
        &mut samples[2],
    )
    .await?;
    let result = json!({ "token": token, "status_code": "SUCCEEDED", "exit_code": 0 });
    let done: JobAnswer = call(
        http,
        &format!("{url}finish"),
        EXECUTOR,
        &result,
        &mut samples[3],
    )
    .await?;
    ensure!(
        done.state == "SUCCESS",
        "finish of {} left it {}",
        job.id,
        done.state
    );
    taken.consume().await?;
    Ok(())
}

async fn call<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
    samples: &mut Samples,
) -> anyhow::Result<T> {
    let started = Instant::now();
    let response = http.post(url).bearer_auth(token).json(body).send().await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    samples
        .0
        .push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
    if !status.is_success() {
        bail!(
            "{url} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    Ok(serde_json::from_slice(&bytes)?)
}
