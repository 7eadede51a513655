//! What a running job tells the API: heartbeats (whose answers can stop it) and its
//! output, shipped in batches.

use std::time::Duration;

use drover_api::client::ApiClient;
use drover_api::model::{AppendLogs, Heartbeat, LogLine};
use drover_core::{FencingToken, JobId, StatusCode};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::stop::{Stop, StopReason};

/// Lines waiting for the API at most; beyond, the oldest are dropped (with a warning) so
/// an API outage cannot exhaust the executor's memory.
const MAX_BUFFERED_LINES: usize = 20_000;

/// Heartbeats and log shipping for one job.
#[derive(Debug)]
pub(crate) struct Reporter {
    lines: Option<mpsc::Sender<LogLine>>,
    shipper: JoinHandle<()>,
    heartbeat: JoinHandle<()>,
    status: tokio::sync::watch::Sender<StatusCode>,
}

/// Where and how often to report.
#[derive(Debug, Clone)]
pub(crate) struct ReportTo {
    pub(crate) api: ApiClient,
    pub(crate) job: JobId,
    pub(crate) token: FencingToken,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) batch_lines: usize,
    pub(crate) flush_interval: Duration,
}

impl Reporter {
    /// Starts heartbeating and shipping for a job; trips `stop` on cancel, kill or a
    /// refused token.
    pub(crate) fn start(to: ReportTo, stop: Stop) -> Reporter {
        let (tx, rx) = mpsc::channel(to.batch_lines.max(64) * 4);
        let (status, status_rx) = tokio::sync::watch::channel(StatusCode::Preparing);
        let shipper = tokio::spawn(ship(to.clone(), rx, stop.clone()));
        let heartbeat = tokio::spawn(beat(to, status_rx, stop));
        Reporter {
            lines: Some(tx),
            shipper,
            heartbeat,
            status,
        }
    }

    /// A sender for output lines.
    pub(crate) fn lines(&self) -> mpsc::Sender<LogLine> {
        self.lines.clone().expect("lines is only taken by close")
    }

    /// Reports a forward move (`EXECUTING`, `FINALIZING`) with the next heartbeat.
    pub(crate) fn set_status(&self, code: StatusCode) {
        let _ = self.status.send(code);
    }

    /// Stops heartbeating and waits (up to `wait`) until every line was shipped.
    pub(crate) async fn close(mut self, wait: Duration) {
        self.heartbeat.abort();
        self.lines = None;
        if tokio::time::timeout(wait, &mut self.shipper).await.is_err() {
            warn!("log shipping did not finish in time; the last lines may be missing");
            self.shipper.abort();
        }
    }
}

async fn beat(to: ReportTo, status: tokio::sync::watch::Receiver<StatusCode>, stop: Stop) {
    // the claim itself was the first sign of life
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + to.heartbeat_interval,
        to.heartbeat_interval,
    );
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = StatusCode::Preparing;
    loop {
        ticks.tick().await;
        let code = *status.borrow();
        let heartbeat = Heartbeat {
            token: to.token,
            progress: None,
            status_code: (code != sent).then_some(code),
        };
        match to.api.heartbeat(to.job, &heartbeat).await {
            Ok(reply) => {
                sent = code;
                if reply.kill_requested {
                    stop.trip(StopReason::Kill);
                } else if reply.cancel_requested {
                    stop.trip(StopReason::Cancel);
                }
            }
            Err(e) if e.is_conflict() => {
                warn!(job = %to.job, error = %e, "the API refused our heartbeat: another executor holds the job");
                stop.trip(StopReason::Fenced);
                return;
            }
            Err(e) => {
                debug!(job = %to.job, error = %e, "heartbeat failed; retrying at the next tick")
            }
        }
    }
}

async fn ship(to: ReportTo, mut rx: mpsc::Receiver<LogLine>, stop: Stop) {
    let mut batch: Vec<LogLine> = Vec::new();
    let mut open = true;
    let mut failures = 0u32;
    while open || !batch.is_empty() {
        if open {
            // gather until the batch is full or the flush interval passes
            let deadline = tokio::time::sleep(to.flush_interval);
            tokio::pin!(deadline);
            while batch.len() < to.batch_lines {
                tokio::select! {
                    line = rx.recv() => match line {
                        Some(line) => batch.push(line),
                        None => { open = false; break; },
                    },
                    () = &mut deadline => break,
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        if stop.reason().is_some_and(StopReason::abandons) {
            return; // not ours any more: write nothing
        }
        let logs = AppendLogs {
            token: to.token,
            lines: std::mem::take(&mut batch),
        };
        match to.api.append_logs(to.job, &logs).await {
            Ok(_) => failures = 0,
            Err(e) if e.is_conflict() => {
                stop.trip(StopReason::Fenced);
                return;
            }
            Err(e) => {
                failures += 1;
                batch = logs.lines;
                if batch.len() > MAX_BUFFERED_LINES {
                    let excess = batch.len() - MAX_BUFFERED_LINES;
                    batch.drain(..excess);
                    warn!(job = %to.job, dropped = excess, "dropped log lines while the API is unreachable");
                }
                if !open && failures > 10 {
                    warn!(job = %to.job, error = %e, lines = batch.len(), "giving up shipping the last log lines");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200) * failures.min(10)).await;
            }
        }
    }
}
