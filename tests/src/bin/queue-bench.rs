//! Queue benchmark: drover's locking queue against kazoo's and against the raw claim
//! cycle, on one real ZooKeeper started for the run, then take latency on a deep queue.
//!
//! ```text
//! cargo run --release -p drover-tests --bin queue-bench -- [--consumers 1,4,16] [--items N]
//! ```
//! Every figure comes from this run on this machine; compare ratios, not absolutes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::Parser;
use drover_coordination::{Queue, QueueStats, QueueView, Session};
use drover_core::{JobId, Priority};
use drover_tests::{connect, python_script, Python, ZkServer};
use tokio::sync::Barrier;
use zookeeper_client::{Acls, CreateMode};

#[derive(Parser, Debug)]
#[command(about = "drover queue benchmark (take + consume throughput and take latency)")]
struct Args {
    /// Consumer counts to compare, each on its own session.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    consumers: Vec<usize>,
    /// Items per drover and raw run (per consumer count).
    #[arg(long, default_value_t = 20_000)]
    items: usize,
    /// Items per kazoo run (kazoo is slow; fewer items keep the run short).
    #[arg(long, default_value_t = 2_000)]
    kazoo_items: usize,
    /// Entries queued for the latency run.
    #[arg(long, default_value_t = 100_000)]
    latency_entries: usize,
    /// Consumers of the latency run.
    #[arg(long, default_value_t = 64)]
    latency_consumers: usize,
    /// Takes measured in the latency run.
    #[arg(long, default_value_t = 30_000)]
    latency_takes: usize,
    /// Items of the discarded warm-up (ZooKeeper's JIT compiler otherwise eats the first
    /// runs' CPU).
    #[arg(long, default_value_t = 30_000)]
    warmup: usize,
    /// Skip the kazoo comparison (no Python venv needed).
    #[arg(long)]
    skip_kazoo: bool,
    /// Skip the latency run.
    #[arg(long)]
    skip_latency: bool,
    /// Start ZooKeeper with forceSync=no (no fsync per write: shows the CPU bound).
    #[arg(long)]
    no_fsync: bool,
    /// Use an existing ZooKeeper instead of starting one.
    #[arg(long)]
    zookeeper: Option<String>,
}

const SESSION: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = match &args.zookeeper {
        Some(_) => None,
        None => Some(
            ZkServer::builder()
                .heap("1g")
                .start()
                .await
                .context("starting ZooKeeper")?,
        ),
    };
    let hosts = args.zookeeper.clone().unwrap_or_else(|| {
        server
            .as_ref()
            .map(|s| s.connect_string())
            .unwrap_or_default()
    });
    println!(
        "queue benchmark on ZooKeeper {hosts} ({} cores)",
        std::thread::available_parallelism()?.get()
    );
    if args.warmup > 0 {
        let started = Instant::now();
        raw_run(&hosts, 16, args.warmup, "warmup").await?;
        drover_run(&hosts, 16, args.warmup, "warmup", true).await?;
        println!(
            "warm-up: {} raw cycles and {} drover items in {:.1?}",
            args.warmup,
            args.warmup,
            started.elapsed()
        );
    }
    println!();
    println!(
        "{:>9} | {:>14} | {:>14} | {:>14} | {:>10} | {:>10} | {:>18}",
        "consumers",
        "drover items/s",
        "raw items/s",
        "kazoo items/s",
        "vs kazoo",
        "vs raw",
        "a watch each /s"
    );
    println!("{}", "-".repeat(109));
    let server_pid = server.as_ref().and_then(|s| s.pid());
    let cpu = |label: &str, n: usize, before: (f64, f64)| {
        let after = (
            cpu_seconds(server_pid),
            cpu_seconds(Some(std::process::id())),
        );
        if std::env::var_os("BENCH_VERBOSE").is_some() {
            eprintln!(
                "  {label} n={n}: CPU per 1,000 items: server {:.0} ms, client {:.0} ms",
                (after.0 - before.0) * 1e6 / args.items as f64,
                (after.1 - before.1) * 1e6 / args.items as f64
            );
        }
        after
    };
    let packets = || async {
        let mntr = match &server {
            Some(s) => s.four_letter("mntr").await.unwrap_or_default(),
            None => String::new(),
        };
        let get = |key: &str| {
            mntr.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (get("zk_packets_received"), get("zk_packets_sent"))
    };
    let verbose = std::env::var_os("BENCH_VERBOSE").is_some();
    for &n in &args.consumers {
        let start = (
            cpu_seconds(server_pid),
            cpu_seconds(Some(std::process::id())),
        );
        let p0 = packets().await;
        let drover = drover_run(&hosts, n, args.items, "run", true).await?;
        let p1 = packets().await;
        let mid = cpu("drover", n, start);
        let raw = raw_run(&hosts, n, args.items, "run").await?;
        let p2 = packets().await;
        let after_raw = cpu("raw", n, mid);
        let own = drover_run(&hosts, n, args.items, "own", false).await?;
        cpu("drover, a watch per session", n, after_raw);
        if verbose {
            let per = |a: (f64, f64), b: (f64, f64)| {
                (
                    (b.0 - a.0) / args.items as f64,
                    (b.1 - a.1) / args.items as f64,
                )
            };
            let (d, r) = (per(p0, p1), per(p1, p2));
            eprintln!(
                "  packets per item (received/sent): drover {:.1}/{:.1}, raw {:.1}/{:.1}",
                d.0, d.1, r.0, r.1
            );
        }
        let kazoo = if args.skip_kazoo {
            None
        } else {
            Some(kazoo_run(&hosts, n, args.kazoo_items).await?)
        };
        let kazoo_text = kazoo.map_or("skipped".to_owned(), |k| format!("{k:.0}"));
        let vs_kazoo = kazoo.map_or("-".to_owned(), |k| format!("{:.1}x", drover / k));
        println!(
            "{n:>9} | {drover:>14.0} | {raw:>14.0} | {kazoo_text:>14} | {vs_kazoo:>10} | {:>9.0}% | {own:>18.0}",
            100.0 * drover / raw
        );
    }
    if !args.skip_latency {
        println!();
        latency_run(&hosts, &args).await?;
    }
    Ok(())
}

/// CPU seconds (user + system) a process used so far; 0 when unknown.
fn cpu_seconds(pid: Option<u32>) -> f64 {
    let Some(stat) = pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
    else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()
    });
    ticks / 100.0
}

/// Fills `path` with `items` job ids in transactions of 1,000.
async fn fill(session: &Session, path: &str, items: usize) -> anyhow::Result<Queue> {
    let queue = Queue::open(session, path).await?;
    let mut left = items;
    while left > 0 {
        let batch: Vec<String> = (0..left.min(1000))
            .map(|_| JobId::new().to_string())
            .collect();
        queue.put_all(&batch, Priority::default()).await?;
        left -= batch.len();
    }
    Ok(queue)
}

/// drover: `n` consumers, one session and queue handle each, take + consume until empty.
///
/// With `shared_view`, the consumers read one watched [`QueueView`], as the slots of an
/// executor process do; without, each session keeps its own watch, as separate processes
/// do (every watch costs the server one notification per entry change).
async fn drover_run(
    hosts: &str,
    n: usize,
    items: usize,
    tag: &str,
    shared_view: bool,
) -> anyhow::Result<f64> {
    let path = format!("/bench-drover-{tag}-{n}-{shared_view}");
    let producer = connect(hosts, SESSION).await?;
    let queue = fill(&producer, &path, items).await?;
    let view = QueueView::open(&producer, &path).await?;
    let barrier = Arc::new(Barrier::new(n + 1));
    let consumed = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(Mutex::new(Instant::now()));
    let mut tasks = Vec::new();
    for _ in 0..n {
        let session = connect(hosts, SESSION).await?;
        let queue = if shared_view {
            Queue::with_view(&session, &view)
        } else {
            Queue::open(&session, &path).await?
        };
        let (barrier, consumed, last) = (barrier.clone(), consumed.clone(), last.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            while let Some(taken) = queue.take(Some(Duration::from_secs(1))).await? {
                taken.consume().await?;
                consumed.fetch_add(1, Ordering::Relaxed);
                *last.lock().unwrap() = Instant::now();
            }
            drop(session);
            anyhow::Ok(queue.stats())
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut stats = QueueStats::default();
    for task in tasks {
        let s = task.await??;
        stats.collisions += s.collisions;
        stats.vanished += s.vanished;
    }
    if std::env::var_os("BENCH_VERBOSE").is_some() {
        eprintln!(
            "  drover n={n}: {} collisions, {} vanished",
            stats.collisions, stats.vanished
        );
    }
    let elapsed = last.lock().unwrap().duration_since(start);
    let consumed = consumed.load(Ordering::Relaxed);
    ensure!(consumed == items, "drover consumed {consumed} of {items}");
    let counts = queue.counts().await?;
    if counts != (0, 0) {
        // Every item was consumed: what is left is markers. A marker whose session has
        // closed goes within moments; one that stays outlived its entry.
        let settled = tokio::time::timeout(SESSION * 2, async {
            loop {
                if queue.counts().await.is_ok_and(|c| c == (0, 0)) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        bail!(
            "queue not empty after the drover run: {counts:?} (entries, taken markers); {}",
            if settled.is_ok() {
                "they went once the consumers' sessions closed"
            } else {
                "markers outlived their entries"
            }
        );
    }
    Ok(items as f64 / elapsed.as_secs_f64())
}

/// The raw claim-cycle bound: create entry, create ephemeral, multi-delete; no queue logic.
async fn raw_run(hosts: &str, n: usize, items: usize, tag: &str) -> anyhow::Result<f64> {
    let root = format!("/bench-raw-{tag}-{n}");
    let setup = connect(hosts, SESSION).await?;
    setup.ensure_path(&format!("{root}/entries")).await?;
    setup.ensure_path(&format!("{root}/taken")).await?;
    let barrier = Arc::new(Barrier::new(n + 1));
    let mut tasks = Vec::new();
    for i in 0..n {
        let session = connect(hosts, SESSION).await?;
        let (barrier, root) = (barrier.clone(), root.clone());
        let count = items / n + usize::from(i < items % n);
        tasks.push(tokio::spawn(async move {
            let client = session.client();
            let persistent = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
            let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
            let data = JobId::new().to_string();
            barrier.wait().await;
            for _ in 0..count {
                let (_, seq) = client
                    .create(
                        &format!("{root}/entries/entry-100-"),
                        data.as_bytes(),
                        &persistent,
                    )
                    .await?;
                let name = format!("entry-100-{seq}");
                client
                    .create(
                        &format!("{root}/taken/{name}"),
                        b"0123456789abcdef0123456789abcdef",
                        &ephemeral,
                    )
                    .await?;
                let mut multi = client.new_multi_writer();
                multi.add_delete(&format!("{root}/taken/{name}"), None)?;
                multi.add_delete(&format!("{root}/entries/{name}"), None)?;
                multi.commit().await?;
            }
            anyhow::Ok(())
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    for task in tasks {
        task.await??;
    }
    Ok(items as f64 / start.elapsed().as_secs_f64())
}

/// kazoo's LockingQueue, `n` consumer processes with a session each.
async fn kazoo_run(hosts: &str, n: usize, items: usize) -> anyhow::Result<f64> {
    let out = Python::file(python_script("kazoo_bench.py"))?
        .args([
            hosts,
            &format!("/bench-kazoo-{n}"),
            &n.to_string(),
            &items.to_string(),
        ])
        .run()
        .await?;
    let result: serde_json::Value =
        serde_json::from_str(out.trim()).with_context(|| format!("kazoo said {out:?}"))?;
    let got = result["items"].as_u64().unwrap_or(0) as usize;
    ensure!(got == items, "kazoo consumed {got} of {items}");
    result["per_sec"]
        .as_f64()
        .context("kazoo result without per_sec")
}

/// Take latency with a deep queue and many consumers.
async fn latency_run(hosts: &str, args: &Args) -> anyhow::Result<()> {
    let (entries, consumers, takes) = (
        args.latency_entries,
        args.latency_consumers,
        args.latency_takes,
    );
    let path = "/bench-latency";
    let producer = connect(hosts, SESSION).await?;
    let fill_start = Instant::now();
    fill(&producer, path, entries).await?;
    let filled = fill_start.elapsed();
    let view = QueueView::open(&producer, path).await?;
    let barrier = Arc::new(Barrier::new(consumers + 1));
    let taken = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(takes)));
    let mut tasks = Vec::new();
    let open_start = Instant::now();
    for _ in 0..consumers {
        let session = connect(hosts, SESSION).await?;
        let queue = Queue::with_view(&session, &view);
        let (barrier, taken, latencies) = (barrier.clone(), taken.clone(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            while taken.fetch_add(1, Ordering::Relaxed) < takes {
                let start = Instant::now();
                let entry = queue
                    .take(Some(Duration::from_secs(10)))
                    .await?
                    .context("queue ran dry")?;
                latencies.lock().unwrap().push(start.elapsed());
                entry.consume().await?;
            }
            drop(session);
            anyhow::Ok(())
        }));
    }
    let opened = open_start.elapsed();
    barrier.wait().await;
    let start = Instant::now();
    for task in tasks {
        task.await??;
    }
    let elapsed = start.elapsed();
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "take latency: {entries} entries queued (filled in {:.1?}), {consumers} consumers (opened in {:.1?}), {} takes",
        filled,
        opened,
        latencies.len()
    );
    println!(
        "  p50 {:.2} ms | p99 {:.2} ms | max {:.2} ms | {:.0} takes/s",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
