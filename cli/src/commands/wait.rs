//! Following a job to its end with a progress bar (`submit --wait`).

use std::time::Duration;

use anyhow::Context;
use drover_client::ApiClient;
use drover_model::Job;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;

/// How often the job is read.
const POLL: Duration = Duration::from_millis(500);

/// How long the API may stay unreachable before waiting gives up.
const UNREACHABLE_FOR: Duration = Duration::from_secs(60);

/// Polls `job` until it is terminal, drawing its progress on stderr (when stderr is a
/// terminal); `None` when interrupted (Ctrl-C) first: the job goes on.
///
/// # Errors
///
/// The API refused the read, or stayed unreachable for a minute.
pub(crate) async fn until_finished(
    client: &ApiClient,
    mut job: Job,
) -> anyhow::Result<Option<Job>> {
    let bar = ProgressBar::new(100).with_style(style());
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut unreachable_since: Option<Instant> = None;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        bar.set_position(u64::from(job.progress.min(100)));
        bar.set_message(status(&job));
        if job.state.is_terminal() {
            bar.finish_and_clear();
            return Ok(Some(job));
        }
        tokio::select! {
            _ = &mut interrupted => {
                bar.abandon();
                eprintln!("stopped waiting; job {} goes on: see `drover show {}`", job.id, job.id);
                return Ok(None);
            }
            () = tokio::time::sleep(POLL) => {}
        }
        match client.get(job.id).await {
            Ok(fresh) => {
                job = fresh;
                unreachable_since = None;
            }
            Err(err) if err.is_unavailable() => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= UNREACHABLE_FOR {
                    bar.abandon();
                    return Err(err).with_context(|| format!("gave up waiting for job {}", job.id));
                }
                bar.set_message(format!("{} (API unreachable, retrying)", status(&job)));
            }
            Err(err) => {
                bar.abandon();
                return Err(err).with_context(|| format!("cannot follow job {}", job.id));
            }
        }
    }
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} [{bar:30}] {pos:>3}% {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// `RUNNING EXECUTING`, with a pending cancel or kill.
fn status(job: &Job) -> String {
    let mut text = format!("{} {}", job.state, job.status_code);
    if job.kill_requested {
        text.push_str(", kill requested");
    } else if job.cancel_requested {
        text.push_str(", cancel requested");
    }
    text
}
