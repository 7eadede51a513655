//! Running one claimed job's action to an outcome: built-in actions in-process, Docker
//! actions as containers; cancel, kill, timeout, loss and drain stop it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_actions::{params_env, redact, Action, Builtin, DockerSpec, Secret};
use drover_core::StatusCode;
use drover_model::{Job, LogLine};
use futures::StreamExt;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::collect::{collect, Declared, WORKSPACE};
use crate::container::{
    ContainerError, ContainerSpec, DockerRuntime, Exit, LABEL_ATTEMPT, LABEL_CLUSTER,
    LABEL_EXECUTOR, LABEL_JOB,
};
use crate::files::Files;
use crate::outcome::{stopped, Outcome, RunEnv};
use crate::reporter::Reporter;
use crate::stop::{Stop, StopReason};

/// Runs `job`'s action from `catalogue`; an action it does not know ends the job with
/// `UNKNOWN_ACTION`, naming what it knows.
pub(crate) async fn run_named(
    env: &RunEnv,
    catalogue: &drover_actions::Catalogue,
    job: &Job,
    reporter: &Reporter,
    files: Files<'_>,
    stop: &Stop,
) -> Outcome {
    match catalogue.get(&job.action) {
        Some(action) => run(env, job, action, reporter, files, stop).await,
        None => Outcome::Finished {
            code: StatusCode::UnknownAction,
            exit_code: None,
            message: format!(
                "action {:?} is not known to executor {} (it knows {}); add an action file or fix the name",
                job.action,
                env.executor_id,
                some_names(&catalogue.names(), 10)
            ),
        },
    }
}

/// The first line of every job's log on a cluster: how to run it again on a laptop.
pub(crate) fn recreate_line(job: &Job) -> LogLine {
    LogLine {
        stream: "drover".to_owned(),
        line: format!(
            "[drover] to re-create this job on your machine: drover local-run --job {}",
            job.id
        ),
    }
}

pub(crate) fn some_names(names: &[&str], n: usize) -> String {
    let shown = names.iter().take(n).copied().collect::<Vec<_>>().join(", ");
    match names.len().saturating_sub(n) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// Runs `action` for `job` until it ends or `stop` trips.
async fn run(
    env: &RunEnv,
    job: &Job,
    action: &Action,
    reporter: &Reporter,
    files: Files<'_>,
    stop: &Stop,
) -> Outcome {
    let timeout = job_timeout(job, action);
    let started = Instant::now();
    let outcome = match action {
        Action::Builtin(Builtin::CleanupJobs) => {
            crate::cleanup::run(env, job, reporter, stop, timeout).await
        }
        Action::Builtin(builtin) => run_builtin(*builtin, job, reporter, stop, timeout).await,
        Action::Docker(spec) => match spec.for_job(&job.params) {
            Ok(spec) => {
                let run = Run {
                    env,
                    job,
                    spec: &spec,
                    reporter,
                    files,
                    stop,
                };
                run_docker(&run, timeout).await
            }
            // what the job asks for is not allowed here: running it again would not help
            Err(message) => Outcome::Finished {
                code: StatusCode::NonzeroExit,
                exit_code: None,
                message,
            },
        },
    };
    info!(job = %job.id, action = %job.action, elapsed = ?started.elapsed(), ?outcome, "job ran");
    outcome
}

fn job_timeout(job: &Job, action: &Action) -> Duration {
    let job_timeout = Duration::from_secs(job.timeout_secs.max(1));
    match action {
        Action::Docker(spec) => spec
            .action
            .timeout
            .map_or(job_timeout, |t| t.min(job_timeout)),
        Action::Builtin(_) => job_timeout,
    }
}

async fn run_builtin(
    builtin: Builtin,
    job: &Job,
    reporter: &Reporter,
    stop: &Stop,
    timeout: Duration,
) -> Outcome {
    reporter.set_status(StatusCode::Executing);
    let params = job.params.as_object().cloned().unwrap_or_default();
    let work = match builtin {
        Builtin::Noop | Builtin::CleanupJobs => Duration::ZERO,
        Builtin::Sleep => match Builtin::sleep_duration(&params) {
            Ok(d) => d,
            Err(message) => {
                return Outcome::Finished {
                    code: StatusCode::NonzeroExit,
                    exit_code: Some(2),
                    message,
                }
            }
        },
    };
    if work.is_zero() {
        return success(Some(0));
    }
    tokio::select! {
        () = tokio::time::sleep(work) => success(Some(0)),
        () = tokio::time::sleep(timeout) => stopped(StopReason::Timeout(timeout), None),
        reason = stop.tripped() => stopped(reason, None),
    }
}

fn success(exit_code: Option<i64>) -> Outcome {
    Outcome::Finished {
        code: StatusCode::Succeeded,
        exit_code,
        message: "exited with code 0".into(),
    }
}

/// One Docker job's run and what it has to hand.
struct Run<'a> {
    env: &'a RunEnv,
    job: &'a Job,
    spec: &'a DockerSpec,
    reporter: &'a Reporter,
    files: Files<'a>,
    stop: &'a Stop,
}

async fn run_docker(run: &Run<'_>, timeout: Duration) -> Outcome {
    let Run {
        env,
        job,
        spec,
        stop,
        ..
    } = *run;
    let internal = |message: String| Outcome::Finished {
        code: StatusCode::InternalError,
        exit_code: None,
        message,
    };
    let Some(docker) = &env.docker else {
        return internal(format!(
            "executor {} has no Docker engine to run {}",
            env.executor_id, job.action
        ));
    };
    let action = &spec.action;
    if let Err(e) = docker.ensure_image(&action.image, action.pull).await {
        // The job's own configuration (its image), not drover's fault: say what it is.
        return refused(redact(&e.to_string(), &spec.secrets));
    }
    let (declared, container) = match planned(env, job, spec) {
        Ok(planned) => planned,
        Err(message) => return refused(message),
    };
    if job.attempts > 1 {
        // A take-over: a previous holder's container may still run on this daemon (it
        // froze or died); it is not its job any more.
        docker.kill_job_leftovers(job.id).await;
    }
    if let Some(reason) = stop.reason() {
        return stopped(reason, None);
    }
    // a pipeline job's parameters go in with its inputs, in one upload
    let staged = job.request_id.is_some();
    let (id, params) = match create(docker, &container, spec, staged).await {
        Ok(created) => created,
        Err(message) => return internal(message),
    };
    // The create may have taken long (a slow daemon, a paused executor): the job may
    // not be ours any more, and starting it now would be a second live run.
    if let Some(reason) = stop.reason() {
        env.remove(docker, &id).await;
        return stopped(reason, None);
    }
    if staged {
        // staging may take long too: the same check follows it
        let staged = match crate::stage::stage(docker, &id, params, run.files, stop).await {
            None => stop.reason().map(|reason| stopped(reason, None)),
            failed => failed,
        };
        if let Some(outcome) = staged {
            env.remove(docker, &id).await;
            return outcome;
        }
    }
    let mut outcome = supervise(docker, &id, run, timeout).await;
    if let Some(declared) = declared.filter(|_| outcome.succeeded()) {
        if let Some(failed) = collect(docker, &id, declared, run.files, env.max_output_bytes).await
        {
            outcome = failed;
        }
    }
    env.remove(docker, &id).await;
    outcome
}

/// Creates the container (looking for its image again if it went since it was seen);
/// the error is the job's message, secrets redacted.
async fn create(
    docker: &DockerRuntime,
    container: &ContainerSpec,
    spec: &DockerSpec,
    defer_params: bool,
) -> Result<(String, Option<Vec<u8>>), String> {
    let action = &spec.action;
    let mut created = docker.create_deferring(container, defer_params).await;
    if created
        .as_ref()
        .is_err_and(ContainerError::is_missing_image)
    {
        // Removed since it was last seen: look again (and pull, as the policy allows).
        docker.forget_image(&action.image);
        if let Err(e) = docker.ensure_image(&action.image, action.pull).await {
            return Err(redact(&e.to_string(), &spec.secrets));
        }
        created = docker.create_deferring(container, defer_params).await;
    }
    created.map_err(|e| redact(&format!("cannot create the container: {e}"), &spec.secrets))
}

/// What the job declares it leaves in `/workspace`, and its container.
fn planned(
    env: &RunEnv,
    job: &Job,
    spec: &DockerSpec,
) -> Result<(Option<Arc<Declared>>, ContainerSpec), String> {
    let declared = Declared::of(&job.params)?.map(Arc::new);
    // a pipeline job's /workspace holds its inputs even when it declares no outputs
    let workspace = declared.is_some() || job.request_id.is_some();
    let container = container_spec(env, job, spec, workspace)?;
    Ok((declared, container))
}

/// A job whose params this executor will not run: running it again would not help.
fn refused(message: String) -> Outcome {
    Outcome::Finished {
        code: StatusCode::NonzeroExit,
        exit_code: None,
        message,
    }
}

/// A start Docker refused as a bad request is the job's (its command cannot be run: not
/// found, not executable), as a shell's 127 would be, with Docker's words; any other
/// start failure is drover's.
fn start_failed(e: &crate::container::ContainerError, secrets: &[Secret]) -> Outcome {
    let message = redact(&format!("cannot start the container: {e}"), secrets);
    if e.is_refused_start() {
        return refused(message);
    }
    Outcome::Finished {
        code: StatusCode::InternalError,
        exit_code: None,
        message,
    }
}

/// Starts the container, forwards its output and waits for it or for a stop.
async fn supervise(docker: &DockerRuntime, id: &str, run: &Run<'_>, timeout: Duration) -> Outcome {
    let Run {
        env,
        spec,
        reporter,
        stop,
        ..
    } = *run;
    // a second early: the daemon's event times and ours may disagree a little
    let started = std::time::SystemTime::now() - Duration::from_secs(1);
    if let Err(e) = docker.start(id).await {
        return start_failed(&e, &spec.secrets);
    }
    reporter.set_status(StatusCode::Executing);
    let secrets = spec
        .secrets
        .iter()
        .chain(env.secrets.iter())
        .cloned()
        .collect();
    let forward = tokio::spawn(forward_output(docker.output(id), reporter.lines(), secrets));
    let mut reason = None;
    let exit = tokio::select! {
        exit = docker.wait(id) => exit,
        () = tokio::time::sleep(timeout) => {
            reason = Some(StopReason::Timeout(timeout));
            docker.stop(id, env.stop_grace).await;
            docker.wait(id).await
        },
        why = stop.tripped() => {
            reason = Some(why);
            if why.abandons() {
                // Someone else may run the job now: not a second of grace.
                docker.kill(id).await;
            } else {
                docker.stop(id, env.stop_grace).await;
            }
            docker.wait(id).await
        },
    };
    reporter.set_status(StatusCode::Finalizing);
    let mut forward = forward;
    if tokio::time::timeout(Duration::from_secs(10), &mut forward)
        .await
        .is_err()
    {
        // not left behind: it would hold the container's output stream
        forward.abort();
        warn!(container = %id, "container output did not end within 10 s of its exit");
    }
    if env.watchdog.as_ref().is_some_and(|w| w.killed(id)) {
        // We were frozen long enough for the watchdog to act: the job did not fail, it
        // was stopped so that no second run could overlap it. Give it back.
        return Outcome::Released(format!(
            "executor {} stopped answering (frozen or starved) for longer than its watchdog allows, so the watchdog killed the container before anyone else could run the job",
            env.executor_id
        ));
    }
    match (reason, exit) {
        (Some(reason), exit) => stopped(reason, exit.ok().map(|e| e.code)),
        (None, Ok(mut exit)) => {
            if exit.code == 137 && !exit.oom_killed {
                exit.oom_killed = docker.oom_reported(id, started).await;
            }
            exited(exit, spec)
        }
        (None, Err(e)) => Outcome::Finished {
            code: StatusCode::InternalError,
            exit_code: None,
            message: redact(&format!("lost track of the container: {e}"), &spec.secrets),
        },
    }
}

fn exited(exit: Exit, spec: &DockerSpec) -> Outcome {
    if exit.code == 0 {
        return success(Some(0));
    }
    let message = if exit.oom_killed {
        match spec.action.memory {
            Some(limit) => format!(
                "killed for running out of memory: the action's memory limit is {} MiB (raise `memory` in {})",
                limit >> 20,
                spec.file.display()
            ),
            None => "killed for running out of memory (the host ran out; set a `memory` limit)".to_owned(),
        }
    } else if let (137, Some(limit)) = (exit.code, spec.action.memory) {
        // Docker can lose the OOM notice of a container that dies at once; with a limit
        // set, say what the likely cause is rather than only the code
        format!(
            "killed with SIGKILL (exit code 137), and Docker did not report the OOM killer; \
             the action's memory limit is {} MiB: if it ran out of memory, raise `memory` in {}",
            limit >> 20,
            spec.file.display()
        )
    } else {
        format!("exited with code {}", exit.code)
    };
    Outcome::Finished {
        code: StatusCode::NonzeroExit,
        exit_code: Some(exit.code),
        message,
    }
}

fn container_spec(
    env: &RunEnv,
    job: &Job,
    spec: &DockerSpec,
    workspace: bool,
) -> Result<ContainerSpec, String> {
    let action = &spec.action;
    let params = job.params.as_object().cloned().unwrap_or_default();
    let mut vars: Vec<String> = action.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    vars.extend(
        spec.secrets
            .iter()
            .map(|s| format!("{}={}", s.variable, s.value())),
    );
    vars.extend(
        params_env(&params)?
            .into_iter()
            .map(|(k, v)| format!("{k}={v}")),
    );
    vars.push(format!("DROVER_JOB_ID={}", job.id));
    let mut labels = HashMap::from([
        (LABEL_JOB.to_owned(), job.id.to_string()),
        (LABEL_EXECUTOR.to_owned(), env.executor_id.clone()),
        (LABEL_ATTEMPT.to_owned(), job.attempts.to_string()),
    ]);
    if let Some(cluster) = env.cluster.get() {
        labels.insert(LABEL_CLUSTER.to_owned(), cluster.clone());
    }
    Ok(ContainerSpec {
        name: format!("drover-{}-{}", job.id, job.attempts),
        labels,
        image: action.image.clone(),
        entrypoint: action.entrypoint.clone(),
        command: action.command.clone(),
        env: vars,
        workdir: action
            .workdir
            .clone()
            .or_else(|| workspace.then(|| WORKSPACE.to_owned())),
        user: action.user.clone(),
        memory: action.memory,
        cpus: action.cpus,
        network: action.network.clone(),
        read_only: action.read_only,
        params_json: serde_json::to_vec(&job.params).unwrap_or_else(|_| b"{}".to_vec()),
        workspace,
    })
}

/// Sends the container's output to the reporter, redacted: one redactor per stream, since
/// a secret can straddle a line cut at the length cap.
async fn forward_output(
    output: impl futures::Stream<Item = crate::container::OutputLine>,
    lines: mpsc::Sender<LogLine>,
    secrets: Vec<Secret>,
) {
    tokio::pin!(output);
    let mut redactors = [
        ("stdout", drover_actions::LineRedactor::new(&secrets)),
        ("stderr", drover_actions::LineRedactor::new(&secrets)),
    ];
    let send = |stream: &str, line: String| {
        lines.send(LogLine {
            stream: stream.to_owned(),
            line,
        })
    };
    while let Some(line) = output.next().await {
        let (stream, redactor) = &mut redactors[usize::from(line.stream == "stderr")];
        if let Some(text) = redactor.push(&line.line, line.continued) {
            let text = drover_actions::mask_credentials(&text).into_owned();
            if send(stream, text).await.is_err() {
                return;
            }
        }
    }
    for (stream, redactor) in &mut redactors {
        if let Some(text) = redactor.finish() {
            let _ = send(stream, text).await;
        }
    }
}
