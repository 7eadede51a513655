//! `drover local-run`: prints the plan, a live line per running action, each log line,
//! and a summary per action; the work is `drover_local`'s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use drover_local::{ActionReport, Event, Options, Report};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::args::LocalRunArgs;
use crate::exit::{self, UsageError};

/// Runs the command.
pub(crate) async fn run(args: LocalRunArgs) -> anyhow::Result<ExitCode> {
    if let Some(job) = args.job.clone() {
        return recreate(args, &job).await;
    }
    let root = args
        .project_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("."));
    let file = super::requests::project_file(args.file.clone(), &root)?;
    let options = options(&args, root, file, args.actions.clone())?;
    execute(options, args.timestamps, None).await
}

fn options(
    args: &LocalRunArgs,
    root: PathBuf,
    file: PathBuf,
    actions: Vec<String>,
) -> anyhow::Result<Options> {
    let memory = args
        .memory
        .as_deref()
        .map(drover_actions::parse_memory)
        .transpose()
        .map_err(|e| UsageError(format!("--memory: {e}")))?;
    if args.cpus.is_some_and(|c| !(c > 0.0 && c <= 1024.0)) {
        return Err(
            UsageError("--cpus must be a positive number of cores, like 0.5".into()).into(),
        );
    }
    Ok(Options {
        root,
        file,
        actions,
        force: args.force_run_dependencies,
        concurrency: usize::from(args.concurrency),
        continue_on_error: args.continue_on_error,
        keep: args.debug,
        cpus: args.cpus,
        memory,
        actions_dir: args.actions_dir.clone(),
        release: drover_outputs::ReleaseRules::default(),
        max_output_bytes: drover_executor::ExecutorConfig::default().max_output_bytes,
    })
}

/// Runs `options` with a live display; the exit code says how it went.
async fn execute(
    options: Options,
    timestamps: bool,
    recreated: Option<drover_local::recreate::Recreated>,
) -> anyhow::Result<ExitCode> {
    let (events, received) = mpsc::channel(1024);
    let cancel = CancellationToken::new();
    let interrupted = CancellationToken::new();
    tokio::spawn({
        let (cancel, interrupted) = (cancel.clone(), interrupted.clone());
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("drover: interrupted: stopping the running actions");
                interrupted.cancel();
                cancel.cancel();
            }
        }
    });
    let display = tokio::spawn(show(received, timestamps));
    let ran = match recreated {
        Some(job) => drover_local::recreate::run(&options, job, events, cancel).await,
        None => drover_local::run(&options, events, cancel).await,
    };
    let _ = display.await;
    let report = match ran {
        Ok(report) => report,
        Err(e) => return Err(local_error(e)),
    };
    summary(&report);
    Ok(if interrupted.is_cancelled() {
        ExitCode::from(exit::INTERRUPTED)
    } else if report.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILED)
    })
}

/// A run that could not start, with the exit code its cause gets.
fn local_error(e: drover_local::Error) -> anyhow::Error {
    use drover_local::Error as E;
    match e {
        E::Project(_) | E::Actions(_) | E::ProjectFile { .. } | E::Catalogue(_) => {
            UsageError(e.to_string()).into()
        }
        E::NoDocker(_) => exit::Unreachable(e.to_string()).into(),
        other => anyhow::Error::new(other),
    }
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// Prints what the run tells, as it goes.
async fn show(mut events: mpsc::Receiver<Event>, timestamps: bool) {
    let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let mut running: HashMap<String, ProgressBar> = HashMap::new();
    while let Some(event) = events.recv().await {
        match event {
            Event::Plan(plan) => print_plan(&plan),
            Event::Started { action, job } => {
                let bar = bars.add(ProgressBar::new_spinner());
                bar.set_style(style());
                bar.set_prefix(action.clone());
                bar.set_message("PREPARING");
                bar.enable_steady_tick(Duration::from_millis(120));
                if bars.is_hidden() {
                    eprintln!("started {action} (job {job})");
                }
                running.insert(action, bar);
            }
            Event::Status { action, code } => {
                if let Some(bar) = running.get(&action) {
                    bar.set_message(code.to_string());
                }
            }
            Event::Line { action, line } => {
                let text = if timestamps {
                    let now = drover_core::clock::rfc3339_millis(std::time::SystemTime::now());
                    format!("{now} {action}: {}", line.line)
                } else {
                    format!("{action}: {}", line.line)
                };
                let _ = bars.println(&text);
                if bars.is_hidden() {
                    eprintln!("{text}");
                }
            }
            Event::Ended(report) => {
                if let Some(bar) = running.remove(&report.action) {
                    bar.finish_and_clear();
                }
                eprintln!("{}", ended_line(&report));
            }
        }
    }
}

fn print_plan(plan: &[(String, bool, String)]) {
    for (action, runs, why) in plan {
        let verb = if *runs { "will run" } else { "skipped " };
        eprintln!("{verb} {action}: {why}");
    }
    if plan.iter().all(|(_, runs, _)| !runs) {
        eprintln!("nothing to do: every action asked for has already succeeded (-f reruns its dependencies)");
    }
}

fn ended_line(report: &ActionReport) -> String {
    match &report.record {
        Some(r) => format!(
            "ended {}: {} ({})",
            report.action, r.status_code, r.status_message
        ),
        None => format!("{}: {}", report.action, report.why),
    }
}

/// The summary per action: status, message, log, outputs, withheld files, the last
/// lines of a failure; then the containers `--debug` kept.
fn summary(report: &Report) {
    if report.actions.iter().all(|a| !a.ran) {
        return;
    }
    println!("\nsummary:");
    for action in &report.actions {
        print_action(action);
    }
    if !report.kept.is_empty() {
        println!("\n--debug kept these containers and their volumes; remove them with:");
        for id in &report.kept {
            println!("  docker rm -f -v {id}");
        }
    }
}

fn print_action(action: &ActionReport) {
    let Some(record) = &action.record else {
        println!("  {}: NOT STARTED — {}", action.action, action.why);
        return;
    };
    if !action.ran {
        println!("  {}: skipped — {}", action.action, action.why);
        return;
    }
    println!(
        "  {}: {} — {}",
        action.action, record.status_code, record.status_message
    );
    if action.log.is_file() {
        println!("    log: {}", shown(&action.log));
    }
    for file in &record.outputs {
        match &file.withheld {
            Some(why) => println!(
                "    output: {} ({}; WITHHELD from release: {why})",
                file.path, file.level
            ),
            None => println!("    output: {} ({})", file.path, file.level),
        }
    }
    if !action.tail.is_empty() {
        println!("    last {} log lines:", action.tail.len());
        for line in &action.tail {
            println!("    | {line}");
        }
    }
}

fn shown(path: &Path) -> String {
    path.strip_prefix("./")
        .unwrap_or(path)
        .display()
        .to_string()
}

/// `--job ID`: the cluster job, run here.
async fn recreate(args: LocalRunArgs, fragment: &str) -> anyhow::Result<ExitCode> {
    let client = super::connect::client(&args.client)?;
    let job = super::connect::resolve(&client, fragment).await?;
    let root = args
        .project_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("drover-job-{}", job.id)));
    let recreated = drover_local::recreate::prepare(&client, job, &root)
        .await
        .map_err(local_error)?;
    let options = options(&args, root, PathBuf::new(), Vec::new())?;
    execute(options, args.timestamps, Some(recreated)).await
}
