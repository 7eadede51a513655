//! `drover local-run` benchmark (#16): a pipeline of `true` containers through
//! `drover local-run` against the same containers run with `docker run --rm`, in the
//! same dependency order, in one run; and the start-up of a run with nothing to do.
//!
//! ```text
//! cargo run --release -p drover-tests --bin local-run-bench -- [--actions 20] [--rounds 3]
//! ```
//! The pipeline is a chain (`a1 -> a2 -> ... -> aN`), so both sides run one container
//! at a time. Each round runs both sides, alternating which goes first; the figures are
//! the medians, and their ratio. Needs Docker and `drover/busybox:v1`
//! (`deploy/images/build-busybox`).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::ensure;
use clap::Parser;
use drover_tests::drover_command;

#[derive(Parser, Debug)]
#[command(about = "drover local-run against docker run --rm")]
struct Args {
    /// Actions in the chain.
    #[arg(long, default_value_t = 20)]
    actions: usize,
    /// Rounds of both sides.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Start-ups measured on a project with nothing to do.
    #[arg(long, default_value_t = 20)]
    startups: usize,
}

const IMAGE: &str = "drover/busybox:v1";

fn chain(n: usize) -> String {
    let mut text = String::from("version: 5\nactions:\n");
    for i in 1..=n {
        text.push_str(&format!("  a{i}:\n    run: {IMAGE} true {i}\n"));
        if i > 1 {
            text.push_str(&format!("    needs: [a{}]\n", i - 1));
        }
    }
    text
}

async fn local_run(dir: &Path, args: &[&str]) -> anyhow::Result<Duration> {
    let mut command = drover_command().await?;
    command.arg("local-run").args(args).current_dir(dir);
    let started = Instant::now();
    let out = command.output().await?;
    let took = started.elapsed();
    ensure!(
        out.status.success(),
        "drover local-run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(took)
}

async fn docker_chain(n: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for _ in 0..n {
        let out = tokio::process::Command::new("docker")
            .args(["run", "--rm", "--network", "none", IMAGE, "true"])
            .output()
            .await?;
        ensure!(out.status.success(), "docker run failed");
    }
    Ok(started.elapsed())
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("drover.yaml"), chain(args.actions))?;
    // builds the binary, warms the image cache
    local_run(dir.path(), &["-f", &format!("a{}", args.actions)]).await?;
    docker_chain(1).await?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let last = format!("a{}", args.actions);
    for round in 0..args.rounds {
        if round % 2 == 0 {
            ours.push(local_run(dir.path(), &["-f", &last]).await?);
            theirs.push(docker_chain(args.actions).await?);
        } else {
            theirs.push(docker_chain(args.actions).await?);
            ours.push(local_run(dir.path(), &["-f", &last]).await?);
        }
    }
    let (ours, theirs) = (median(ours), median(theirs));
    println!(
        "{} actions, chained, median of {} rounds:",
        args.actions, args.rounds
    );
    println!("  drover local-run -f   {:>8.2} s", ours.as_secs_f64());
    println!(
        "  docker run --rm × {:<3} {:>8.2} s",
        args.actions,
        theirs.as_secs_f64()
    );
    println!(
        "  ratio                 {:>8.3}",
        ours.as_secs_f64() / theirs.as_secs_f64()
    );
    let mut startups = Vec::new();
    for _ in 0..args.startups {
        startups.push(local_run(dir.path(), &["run_all"]).await?);
    }
    let startup = median(startups.clone());
    let worst = startups.iter().max().copied().unwrap_or_default();
    println!(
        "start-up with nothing to do ({} runs): median {:.1} ms, worst {:.1} ms",
        args.startups,
        startup.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3
    );
    Ok(())
}
