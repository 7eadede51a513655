//! `drover run`, `drover requests`, `drover request` and `drover cancel-request`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use drover_client::ApiClient;
use drover_core::State;
use drover_model::{Request, RequestDetail, SubmitRequest};

use crate::args::{Output, RequestArgs, RequestsArgs, RunArgs};
use crate::exit::{self, UsageError};
use crate::output;

/// How often `run --wait` reads the request.
const POLL: Duration = Duration::from_millis(500);

/// The project file: `--file`, else `drover.yaml`, else `project.yaml` in `dir`.
pub(super) fn project_file(
    file: Option<PathBuf>,
    dir: &std::path::Path,
) -> Result<PathBuf, UsageError> {
    if let Some(file) = file {
        return Ok(file);
    }
    ["drover.yaml", "project.yaml"]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            UsageError("no drover.yaml or project.yaml here: run from the project's directory, or pass --file".into())
        })
}

/// Submits the request and prints what it created; with `--wait`, follows it to the end.
pub(crate) async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let path = project_file(args.file, std::path::Path::new(""))?;
    let project = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the project file {}", path.display()))?;
    let client = super::connect::client(&args.client)?;
    let code = if args.no_code {
        None
    } else {
        let dir = args.project_dir.clone().unwrap_or_else(|| {
            path.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        });
        Some(super::code::send(&client, &dir, &path, &project).await?)
    };
    let answer = client
        .submit_request(&SubmitRequest {
            project,
            file_name: Some(file_name(&path)),
            actions: args.actions,
            workspace: Some(args.workspace),
            force_run_dependencies: args.force_run_dependencies,
            priority: args.priority,
            idempotency_key: None,
            code,
        })
        .await
        .context("cannot run the request")?;
    for warning in &answer.warnings {
        eprintln!("warning: {}", output::printable(warning));
    }
    let output_kind = args.client.output;
    if output_kind == Output::Json && !args.wait {
        output::emit(&output::json(&answer)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if output_kind == Output::Table {
        let id = answer
            .request
            .as_ref()
            .map_or_else(|| "-".to_owned(), |r| r.id.to_string());
        output::emit(&format!(
            "request {id}: {}\n",
            output::printable(&answer.message)
        ))?;
        output::emit(&output::jobs_table(&answer.jobs, false))?;
    }
    let Some(request) = answer.request.filter(|_| args.wait) else {
        return Ok(ExitCode::SUCCESS);
    };
    let Some(detail) = until_done(&client, &request.id.to_string()).await? else {
        return Ok(ExitCode::from(exit::INTERRUPTED));
    };
    match output_kind {
        Output::Json => output::emit(&output::json(&detail)?)?,
        Output::Table => output::emit(&details(&detail))?,
    }
    Ok(if detail.request.state == State::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILED)
    })
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Reads the request until every job ended; `None` on Ctrl-C (the jobs go on).
async fn until_done(client: &ApiClient, id: &str) -> anyhow::Result<Option<RequestDetail>> {
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let detail = client
            .request_detail(id)
            .await
            .context("cannot read the request")?;
        if detail.jobs.iter().all(|j| j.state.is_terminal()) {
            return Ok(Some(detail));
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = &mut interrupted => {
                eprintln!("interrupted: request {id} goes on; `drover request {id}` shows it");
                return Ok(None);
            }
        }
    }
}

fn summary(request: &Request) -> Vec<String> {
    let p = request.progress;
    vec![
        request.id.to_string()[..8].to_owned(),
        request.workspace.clone(),
        request.requested.join(" "),
        request.state.to_string(),
        format!(
            "{}/{} done, {} running, {} failed",
            p.succeeded, p.total, p.running, p.failed
        ),
        output::age(&request.created_at),
    ]
}

fn details(detail: &RequestDetail) -> String {
    let headers = ["ID", "WORKSPACE", "ACTIONS", "STATE", "PROGRESS", "CREATED"];
    let mut text = output::table(&headers, &[summary(&detail.request)]);
    text.push('\n');
    text.push_str(&output::jobs_table(&detail.jobs, false));
    text
}

/// `drover requests`.
pub(crate) async fn list(args: RequestsArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect::client(&args.client)?;
    let page = client
        .requests(args.workspace.as_deref(), args.limit)
        .await
        .context("cannot list requests")?;
    match args.client.output {
        Output::Json => output::emit(&output::json(&page)?)?,
        Output::Table => {
            let rows: Vec<Vec<String>> = page.requests.iter().map(summary).collect();
            let headers = ["ID", "WORKSPACE", "ACTIONS", "STATE", "PROGRESS", "CREATED"];
            output::emit(&output::table(&headers, &rows))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `drover request ID`.
pub(crate) async fn show(args: RequestArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect::client(&args.client)?;
    let detail = client
        .request_detail(&args.id)
        .await
        .with_context(|| format!("cannot read request {}", args.id))?;
    print_detail(&detail, args.client.output)?;
    Ok(ExitCode::SUCCESS)
}

/// `drover cancel-request ID` (and `drover cancel ID` when no job has that id).
pub(crate) async fn cancel(args: RequestArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect::client(&args.client)?;
    let detail = client
        .cancel_request(&args.id)
        .await
        .with_context(|| format!("cannot cancel request {}", args.id))?;
    print_detail(&detail, args.client.output)?;
    Ok(ExitCode::SUCCESS)
}

/// A request and its jobs, as a table or JSON.
pub(super) fn print_detail(detail: &RequestDetail, kind: Output) -> anyhow::Result<()> {
    match kind {
        Output::Json => output::emit(&output::json(detail)?),
        Output::Table => output::emit(&details(detail)),
    }
}
