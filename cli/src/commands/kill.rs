//! `drover kill ID... [--cleanup]`: kills jobs (admin), each id possibly partial; at a
//! terminal an ambiguous one asks which job is meant. With `--cleanup` it waits for each
//! job to stop, then has the executor that ran it remove what is left on its Docker
//! engine; a job already finished is only cleaned up.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use drover_client::ApiClient;
use drover_model::{Cleaning, Job};
use serde_json::json;

use crate::args::{KillArgs, Output};
use crate::exit::{AmbiguousId, UsageError};
use crate::output;

/// How long `--cleanup` waits for a killed job to stop, and then for its clean-up.
const STOP_WAIT: Duration = Duration::from_secs(120);
const CLEANUP_WAIT: Duration = Duration::from_secs(30);

/// `drover kill`.
pub(crate) async fn run(args: KillArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect::client(&args.client)?;
    let ask = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let mut failed = None;
    let mut answers = Vec::new();
    for fragment in &args.ids {
        match kill_one(&client, fragment, args.cleanup, ask).await {
            Ok((job, cleaning, text)) => {
                if args.client.output == Output::Table {
                    output::emit(&text)?;
                }
                answers.push(json!({ "job": job, "cleanup": cleaning }));
            }
            Err(err) => {
                eprintln!("error: {fragment}: {err:#}");
                failed.get_or_insert(crate::exit::code_of(&err));
            }
        }
    }
    if args.client.output == Output::Json {
        output::emit(&output::json(&answers)?)?;
    }
    Ok(failed.map_or(ExitCode::SUCCESS, ExitCode::from))
}

/// Kills (unless `cleanup` and already finished) and cleans one job; what to print.
async fn kill_one(
    client: &ApiClient,
    fragment: &str,
    cleanup: bool,
    ask: bool,
) -> anyhow::Result<(Job, Option<Cleaning>, String)> {
    let job = resolve_choosing(client, fragment, ask).await?;
    let mut text = String::new();
    let job = if job.state.is_terminal() && cleanup {
        text.push_str(&format!("{}\n", output::job_summary(&job)));
        job
    } else {
        let killed = client
            .kill(job.id)
            .await
            .with_context(|| format!("cannot kill job {}", job.id))?;
        if killed.state.is_terminal() {
            text.push_str(&format!("{}\n", output::job_summary(&killed)));
        } else {
            text.push_str(&format!(
                "job {} is {}: kill requested, its executor will stop it\n",
                killed.id, killed.state
            ));
        }
        killed
    };
    if !cleanup {
        return Ok((job, None, text));
    }
    let job = stopped(client, job).await?;
    let cleaning = client
        .cleanup_job(job.id)
        .await
        .with_context(|| format!("cannot clean up job {}", job.id))?;
    match &cleaning.order {
        None => text.push_str(&format!("{}\n", cleaning.message)),
        Some(order) if cleaned(client, &job).await? => text.push_str(&format!(
            "cleaned up on {}: no container or volume of job {} is left there\n",
            order.executor, job.id
        )),
        Some(order) => text.push_str(&format!(
            "the clean-up order is still pending on {} after {}s: it runs when that executor next reads its orders\n",
            order.executor,
            CLEANUP_WAIT.as_secs()
        )),
    }
    Ok((job, Some(cleaning), text))
}

/// `job` once it is terminal (its executor stopped its container and reported).
async fn stopped(client: &ApiClient, mut job: Job) -> anyhow::Result<Job> {
    let started = Instant::now();
    while !job.state.is_terminal() {
        if started.elapsed() > STOP_WAIT {
            anyhow::bail!(
                "job {} is still {} after {}s: its executor has not stopped it; see `drover show {}`",
                job.id,
                job.state,
                STOP_WAIT.as_secs(),
                job.id
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        job = client.get(job.id).await?;
    }
    Ok(job)
}

/// Whether the executor carried out `job`'s clean-up order (withdrew it) in time.
async fn cleaned(client: &ApiClient, job: &Job) -> anyhow::Result<bool> {
    let started = Instant::now();
    let id = job.id.to_string();
    while started.elapsed() < CLEANUP_WAIT {
        if !client.orders().await?.cleanups.contains_key(&id) {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(false)
}

/// The job `fragment` names; at a terminal, an ambiguous fragment asks which one.
async fn resolve_choosing(client: &ApiClient, fragment: &str, ask: bool) -> anyhow::Result<Job> {
    match super::connect::resolve(client, fragment).await {
        Err(err) if ask && err.is::<AmbiguousId>() => {
            let ambiguous = err.downcast::<AmbiguousId>()?;
            tokio::task::spawn_blocking(move || choose(&ambiguous)).await?
        }
        other => other,
    }
}

/// Lists the candidates numbered on stderr and reads the choice from stdin.
fn choose(ambiguous: &AmbiguousId) -> anyhow::Result<Job> {
    let candidates = &ambiguous.candidates;
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "job id {:?} matches {} jobs:",
        ambiguous.fragment,
        candidates.len()
    )?;
    for (n, line) in output::candidates_table(candidates).lines().enumerate() {
        let number = if n == 0 {
            "    ".to_owned()
        } else {
            format!("{n:>3})")
        };
        writeln!(err, "{number} {line}")?;
    }
    for _ in 0..3 {
        write!(err, "which one? [1-{}, empty to skip]: ", candidates.len())?;
        err.flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        let answer = answer.trim();
        if answer.is_empty() {
            break;
        }
        match answer.parse::<usize>() {
            Ok(n) if (1..=candidates.len()).contains(&n) => return Ok(candidates[n - 1].clone()),
            _ => writeln!(
                err,
                "{answer:?} is not a number from 1 to {}",
                candidates.len()
            )?,
        }
    }
    Err(UsageError(format!("no job chosen for {:?}", ambiguous.fragment)).into())
}
