//! The operator's commands: `drover status`, `pause`, `resume`, `drain`, `undrain` and
//! `prepare-for-reboot`. Orders go through the API into ZooKeeper, where executors watch
//! them; these commands then watch the executors' records to say when an order took.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use drover_client::ApiClient;
use drover_model::{DrainPhase, DrainRequest, ExecutorInfo, Orders, PauseRequest, Pauses};
use serde_json::json;

use crate::args::{
    ClientArgs, DrainArgs, Output, PauseArgs, RebootArgs, ResumeArgs, Target, UndrainArgs,
};
use crate::exit::{UsageError, FAILED};
use crate::output;

/// How often waiting commands read the executors again.
const POLL: Duration = Duration::from_millis(500);

/// `drover status`: what is paused and drained, and the executors.
pub(crate) async fn status(args: ClientArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect::client(&args)?;
    let orders = client.orders().await?;
    let executors = client.executors().await?;
    match args.output {
        Output::Json => output::emit(&output::json(
            &json!({ "orders": orders, "executors": executors }),
        )?)?,
        Output::Table => output::emit(&describe_status(&orders, &executors))?,
    }
    Ok(ExitCode::SUCCESS)
}

fn describe_status(orders: &Orders, executors: &[ExecutorInfo]) -> String {
    let mut text = describe_pauses(&orders.pauses);
    for (id, order) in &orders.drains {
        if !executors.iter().any(|e| &e.id == id) {
            let _ = writeln!(
                text,
                "drain order for {id} (by {} since {}): that executor is not registered",
                order.by, order.since
            );
        }
    }
    if executors.is_empty() {
        text.push_str("no executors are registered\n");
    } else {
        text.push('\n');
        text.push_str(&output::executors_table(executors));
    }
    text
}

/// `paused: …` lines, or `nothing is paused`.
fn describe_pauses(pauses: &Pauses) -> String {
    let mut text = String::new();
    let reason = |r: &Option<String>| r.as_deref().map_or_else(String::new, |r| format!(": {r}"));
    if let Some(all) = &pauses.all {
        let _ = writeln!(
            text,
            "paused: the whole cluster, by {} since {}{}",
            all.by,
            all.since,
            reason(&all.reason)
        );
    }
    for (action, pause) in &pauses.actions {
        let _ = writeln!(
            text,
            "paused: action {action}, by {} since {}{}",
            pause.by,
            pause.since,
            reason(&pause.reason)
        );
    }
    if text.is_empty() {
        text.push_str("nothing is paused\n");
    }
    text
}

/// `drover pause [ACTION ...]`.
pub(crate) async fn pause(args: PauseArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect::client(&args.client)?;
    let request = PauseRequest {
        actions: args.actions,
        reason: args.reason,
    };
    let pauses = client.pause(&request).await.context("cannot pause")?;
    print_pauses(&pauses, args.client.output)
}

/// `drover resume [ACTION ...]`.
pub(crate) async fn resume(args: ResumeArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect::client(&args.client)?;
    let pauses = client
        .resume(&args.actions)
        .await
        .context("cannot resume")?;
    print_pauses(&pauses, args.client.output)
}

fn print_pauses(pauses: &Pauses, format: Output) -> anyhow::Result<ExitCode> {
    match format {
        Output::Json => output::emit(&output::json(pauses)?)?,
        Output::Table => output::emit(&describe_pauses(pauses))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The executors `target` names, as registered now.
async fn targets(client: &ApiClient, target: &Target) -> anyhow::Result<Vec<ExecutorInfo>> {
    let executors = client.executors().await?;
    let chosen: Vec<ExecutorInfo> = match (&target.executor, &target.host) {
        (Some(id), _) => executors.into_iter().filter(|e| &e.id == id).collect(),
        (None, Some(host)) => executors.into_iter().filter(|e| &e.host == host).collect(),
        (None, None) => Vec::new(),
    };
    if chosen.is_empty() {
        let what = match (&target.executor, &target.host) {
            (Some(id), _) => format!("no executor {id:?} is registered"),
            (None, host) => format!(
                "no executor is registered from host {:?}",
                host.as_deref().unwrap_or_default()
            ),
        };
        return Err(UsageError(format!("{what}: `drover executors` lists them")).into());
    }
    Ok(chosen)
}

/// `drover drain EXECUTOR|--host HOST [--deadline D] [--wait]`.
pub(crate) async fn drain(args: DrainArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect::client(&args.client)?;
    let chosen = targets(&client, &args.target).await?;
    let ids = order_drains(&client, &chosen, args.deadline, false).await?;
    if args.wait {
        let done = wait_for(&client, &ids, None, |e| {
            e.drain
                .as_ref()
                .is_some_and(|d| d.phase == DrainPhase::Drained)
        })
        .await?;
        report(&done, args.client.output)?;
    } else if args.client.output == Output::Json {
        output::emit(&output::json(&json!({ "ordered": ids }))?)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Orders each of `executors` to drain; their ids.
async fn order_drains(
    client: &ApiClient,
    executors: &[ExecutorInfo],
    deadline: Duration,
    reboot: bool,
) -> anyhow::Result<Vec<String>> {
    let request = DrainRequest {
        deadline_ms: Some(deadline.as_millis() as u64),
        reboot,
    };
    let mut ids = Vec::new();
    for executor in executors {
        let order = client
            .drain(&executor.id, &request)
            .await
            .with_context(|| format!("cannot drain {}", executor.id))?;
        eprintln!(
            "drain ordered for {} on {} ({} running; deadline {})",
            executor.id,
            executor.host,
            executor.busy,
            humantime::format_duration(Duration::from_millis(order.deadline_ms))
        );
        ids.push(executor.id.clone());
    }
    Ok(ids)
}

/// `drover undrain EXECUTOR|--host HOST`.
pub(crate) async fn undrain(args: UndrainArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect::client(&args.client)?;
    let mut ids: Vec<String> = match (&args.target.executor, &args.target.host) {
        // An order may outlive its executor's registration: withdraw it by id anyway.
        (Some(id), _) => vec![id.clone()],
        _ => targets(&client, &args.target)
            .await?
            .into_iter()
            .map(|e| e.id)
            .collect(),
    };
    ids.dedup();
    let mut answers = Vec::new();
    for id in &ids {
        let answer = client
            .undrain(id)
            .await
            .with_context(|| format!("cannot undrain {id}"))?;
        if args.client.output == Output::Table {
            let what = if answer.withdrawn {
                "drain withdrawn: it takes jobs again"
            } else {
                "was not drained"
            };
            output::emit(&format!("{id}: {what}\n"))?;
        }
        answers.push(json!({ "id": answer.id, "withdrawn": answer.withdrawn }));
    }
    if args.client.output == Output::Json {
        output::emit(&output::json(&answers)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `drover prepare-for-reboot --host HOST`: drains every executor there (jobs past the
/// deadline are given back and rerun elsewhere), then waits until each is drained and
/// counts no drover container running on its engine.
pub(crate) async fn prepare_for_reboot(args: RebootArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect::client(&args.client)?;
    let target = Target {
        executor: None,
        host: Some(args.host.clone()),
    };
    let chosen = targets(&client, &target).await?;
    let ids = order_drains(&client, &chosen, args.deadline, true).await?;
    let limit = args.deadline + args.timeout;
    let clear = |e: &ExecutorInfo| {
        e.drain
            .as_ref()
            .is_some_and(|d| d.phase == DrainPhase::Drained && d.containers == Some(0))
    };
    let done = wait_for(&client, &ids, Some(limit), clear).await?;
    let ready = done.iter().all(|(_, e)| e.as_ref().is_none_or(clear));
    if ready {
        match args.client.output {
            Output::Json => output::emit(&output::json(
                &json!({ "host": args.host, "ready": true, "executors": ids }),
            )?)?,
            Output::Table => output::emit(&format!(
                "READY TO REBOOT: {} is drained and runs no drover container\n",
                args.host
            ))?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    report(&done, args.client.output)?;
    eprintln!(
        "{} is not ready after {}: some drover containers still run there; look with `docker ps --filter label=drover.job`",
        args.host,
        humantime::format_duration(limit)
    );
    Ok(ExitCode::from(FAILED))
}

/// Polls the executors until each of `ids` satisfies `done` or is gone (deregistered: it
/// left, which a drain ends with on SIGTERM), or `limit` passes. Prints each change of
/// what is left. Returns each id with its last record (`None`: gone).
async fn wait_for(
    client: &ApiClient,
    ids: &[String],
    limit: Option<Duration>,
    done: impl Fn(&ExecutorInfo) -> bool,
) -> anyhow::Result<Vec<(String, Option<ExecutorInfo>)>> {
    let started = Instant::now();
    let mut shown = String::new();
    loop {
        let executors = client.executors().await?;
        let states: Vec<(String, Option<ExecutorInfo>)> = ids
            .iter()
            .map(|id| (id.clone(), executors.iter().find(|e| &e.id == id).cloned()))
            .collect();
        let waiting: Vec<String> = states
            .iter()
            .filter_map(|(id, e)| {
                let e = e.as_ref().filter(|e| !done(e))?;
                Some(format!("{id}: {}", output::executor_state(e)))
            })
            .collect();
        if waiting.is_empty() || limit.is_some_and(|l| started.elapsed() >= l) {
            return Ok(states);
        }
        let line = format!("waiting for {}", waiting.join("; "));
        if line != shown {
            eprintln!("{line}");
            shown = line;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Each executor's state at the end of a wait.
fn report(states: &[(String, Option<ExecutorInfo>)], format: Output) -> anyhow::Result<()> {
    match format {
        Output::Json => {
            let executors: Vec<&ExecutorInfo> =
                states.iter().filter_map(|(_, e)| e.as_ref()).collect();
            output::emit(&output::json(&executors)?)
        }
        Output::Table => {
            let mut text = String::new();
            for (id, e) in states {
                let state = e
                    .as_ref()
                    .map_or_else(|| "gone (deregistered)".to_owned(), output::executor_state);
                let _ = writeln!(text, "{id}: {state}");
            }
            output::emit(&text)
        }
    }
}
