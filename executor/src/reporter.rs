//! What a running job tells the API: heartbeats (whose answers can stop it) and its
//! output, shipped in batches bounded by lines and bytes. A batch the API refuses (413
//! or another 4xx but 409) is never sent again as it is: it is split, and a single line
//! that still cannot be stored is dropped for a `drover` line saying so.

use std::collections::VecDeque;
use std::time::Duration;

use drover_client::{ApiClient, ClientError, StatusCode as HttpStatus};
use drover_core::{FencingToken, JobId, StatusCode};
use drover_model::{AppendLogs, Heartbeat, LogLine};
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
    /// Ships the lines; none when the caller reads them itself (a local run).
    shipper: Option<JoinHandle<()>>,
    heartbeat: Option<JoinHandle<()>>,
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
            shipper: Some(shipper),
            heartbeat: Some(heartbeat),
            status,
        }
    }

    /// A reporter whose lines and status go to the caller (`drover local-run`): no
    /// API, no heartbeats.
    pub(crate) fn local(
        lines: mpsc::Sender<LogLine>,
        status: tokio::sync::watch::Sender<StatusCode>,
    ) -> Reporter {
        Reporter {
            lines: Some(lines),
            shipper: None,
            heartbeat: None,
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
        if let Some(heartbeat) = &self.heartbeat {
            heartbeat.abort();
        }
        self.lines = None;
        let Some(mut shipper) = self.shipper.take() else {
            return;
        };
        if tokio::time::timeout(wait, &mut shipper).await.is_err() {
            warn!("log shipping did not finish in time; the last lines may be missing");
            shipper.abort();
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

/// A batch's size at most, in bytes of JSON: half the API's default `max_body_bytes`
/// (2 MiB). An API with a smaller limit answers 413, which lowers it for the job.
const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// What a refused append means for its batch. 408 and 429 are the API (or a proxy)
/// asking to be asked again later, not a refusal of the lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// 409: another executor holds the job; write nothing more.
    Fenced,
    /// 404: the job is gone; nothing more can be stored.
    Gone,
    /// Any other 4xx: sending the same again would fail the same way.
    Refused,
    /// The API is unreachable or failing: try the same again after a pause.
    Retry,
}

impl Verdict {
    fn of(error: &ClientError) -> Verdict {
        match error.status() {
            Some(HttpStatus::CONFLICT) => Verdict::Fenced,
            Some(HttpStatus::NOT_FOUND) => Verdict::Gone,
            Some(HttpStatus::REQUEST_TIMEOUT | HttpStatus::TOO_MANY_REQUESTS) => Verdict::Retry,
            Some(status) if status.is_client_error() => Verdict::Refused,
            _ => Verdict::Retry,
        }
    }
}

/// About the bytes `line` adds to an `AppendLogs` body.
fn wire_bytes(line: &LogLine) -> usize {
    let escaped = |text: &str| -> usize {
        text.chars()
            .map(|c| match c {
                '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
                c if c < ' ' => 6,
                c => c.len_utf8(),
            })
            .sum()
    };
    // {"stream":"…","line":"…"},
    24 + escaped(&line.stream) + escaped(&line.line)
}

/// Lines waiting to be shipped, and how many go in one request.
#[derive(Debug)]
struct Pending {
    lines: VecDeque<LogLine>,
    bytes: usize,
    /// A batch's bytes at most (one line always goes, however long).
    budget: usize,
    /// What the budget grows back to after a refusal: lowered by a 413 only, since the
    /// API's body limit holds for every later batch while another refusal was about
    /// some line of the batch.
    ceiling: usize,
    max_lines: usize,
}

impl Pending {
    fn new(max_lines: usize, budget: usize) -> Pending {
        Pending {
            lines: VecDeque::new(),
            bytes: 0,
            budget,
            ceiling: budget,
            max_lines: max_lines.max(1),
        }
    }

    fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Whether a whole batch is waiting.
    fn full(&self) -> bool {
        self.lines.len() >= self.max_lines || self.bytes >= self.budget
    }

    fn push(&mut self, line: LogLine) {
        self.bytes += wire_bytes(&line);
        self.lines.push_back(line);
    }

    /// The next batch: the oldest lines, within the line and byte limits.
    fn take(&mut self) -> Vec<LogLine> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(line) = self.lines.front() {
            let size = wire_bytes(line);
            if !batch.is_empty() && (batch.len() >= self.max_lines || bytes + size > self.budget) {
                break;
            }
            bytes += size;
            self.bytes -= size;
            batch.extend(self.lines.pop_front());
        }
        batch
    }

    /// Puts a batch that was not stored back in front.
    fn put_back(&mut self, batch: Vec<LogLine>) {
        for line in batch.into_iter().rev() {
            self.bytes += wire_bytes(&line);
            self.lines.push_front(line);
        }
    }

    /// The API stored a batch: the budget grows back towards its ceiling.
    fn stored(&mut self) {
        self.budget = self.budget.saturating_mul(2).min(self.ceiling);
    }

    /// The API refused `batch` as it is: halves the budget and puts it back to go again
    /// in smaller batches; a single line is dropped instead, for a `drover` line saying
    /// so (unless it was such a note itself). Returns the dropped line's stream and size.
    fn refused(&mut self, mut batch: Vec<LogLine>, why: &ClientError) -> Option<(String, usize)> {
        if batch.len() > 1 {
            let bytes: usize = batch.iter().map(wire_bytes).sum();
            self.budget = (bytes / 2).max(1);
            if why.status() == Some(HttpStatus::PAYLOAD_TOO_LARGE) {
                self.ceiling = self.budget;
            }
            self.put_back(batch);
            return None;
        }
        let line = batch.pop()?;
        let size = line.line.len();
        if line.stream != DROVER_STREAM {
            self.put_back(vec![LogLine {
                stream: DROVER_STREAM.to_owned(),
                line: format!(
                    "[drover] a {} line of {size} bytes was dropped: the API refused it ({why})",
                    line.stream
                ),
            }]);
        }
        Some((line.stream, size))
    }

    /// Drops the oldest lines beyond `max` (the API has been unreachable too long).
    fn trim(&mut self, max: usize) -> usize {
        let excess = self.lines.len().saturating_sub(max);
        for line in self.lines.drain(..excess) {
            self.bytes -= wire_bytes(&line);
        }
        excess
    }
}

/// The stream of lines the executor itself writes into a job's log.
const DROVER_STREAM: &str = "drover";

async fn ship(to: ReportTo, mut rx: mpsc::Receiver<LogLine>, stop: Stop) {
    let mut pending = Pending::new(to.batch_lines, MAX_BATCH_BYTES);
    let mut open = true;
    let mut failures = 0u32;
    while open || !pending.is_empty() {
        if open {
            // gather until a batch is full or the flush interval passes
            let deadline = tokio::time::sleep(to.flush_interval);
            tokio::pin!(deadline);
            while !pending.full() {
                tokio::select! {
                    line = rx.recv() => match line {
                        Some(line) => pending.push(line),
                        None => { open = false; break; },
                    },
                    () = &mut deadline => break,
                }
            }
        }
        if pending.is_empty() {
            continue;
        }
        if stop.reason().is_some_and(StopReason::abandons) {
            return; // not ours any more: write nothing
        }
        let logs = AppendLogs {
            token: to.token,
            lines: pending.take(),
        };
        let Err(e) = to.api.append_logs(to.job, &logs).await else {
            failures = 0;
            pending.stored();
            continue;
        };
        match Verdict::of(&e) {
            Verdict::Fenced => {
                stop.trip(StopReason::Fenced);
                return;
            }
            Verdict::Gone => {
                warn!(job = %to.job, error = %e, "the job is gone; its remaining log lines are dropped");
                return;
            }
            Verdict::Refused => {
                let lines = logs.lines.len();
                match pending.refused(logs.lines, &e) {
                    Some((stream, bytes)) => {
                        warn!(job = %to.job, %stream, bytes, error = %e, "the API refused a log line; dropped it");
                    }
                    None => {
                        debug!(job = %to.job, lines, budget = pending.budget, error = %e, "the API refused a log batch; splitting it");
                    }
                }
            }
            Verdict::Retry => {
                failures += 1;
                pending.put_back(logs.lines);
                let dropped = pending.trim(MAX_BUFFERED_LINES);
                if dropped > 0 {
                    warn!(job = %to.job, dropped, "dropped log lines while the API is unreachable");
                }
                if !open && failures > 10 {
                    warn!(job = %to.job, error = %e, lines = pending.lines.len(), "giving up shipping the last log lines");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200) * failures.min(10)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use drover_model::ApiError;

    use super::*;

    fn line(stream: &str, text: &str) -> LogLine {
        LogLine {
            stream: stream.to_owned(),
            line: text.to_owned(),
        }
    }

    fn answer(status: u16) -> ClientError {
        ClientError::Api {
            status: HttpStatus::from_u16(status).unwrap(),
            body: ApiError {
                error: "too_large".to_owned(),
                message: "the request body is larger than the limit of 8192 bytes".to_owned(),
                state: None,
                status_code: None,
            },
        }
    }

    fn texts(batch: &[LogLine]) -> Vec<&str> {
        batch.iter().map(|l| l.line.as_str()).collect()
    }

    #[test]
    fn batches_are_bounded_by_lines_and_by_bytes_but_always_carry_a_line() {
        let ten = "x".repeat(10);
        let size = wire_bytes(&line("stdout", &ten));
        assert_eq!(size, 24 + 6 + 10);
        let mut pending = Pending::new(3, 2 * size);
        for _ in 0..4 {
            pending.push(line("stdout", &ten));
        }
        assert!(pending.full());
        assert_eq!(pending.take().len(), 2, "two fit in the bytes");
        let mut pending = Pending::new(3, 100 * size);
        for _ in 0..4 {
            pending.push(line("stdout", &ten));
        }
        assert_eq!(pending.take().len(), 3, "three lines at most");
        assert_eq!(pending.take().len(), 1);
        assert!(pending.is_empty());
        assert_eq!(pending.bytes, 0);
        let mut pending = Pending::new(3, 1);
        pending.push(line("stdout", &ten));
        pending.push(line("stdout", &ten));
        assert_eq!(
            pending.take().len(),
            1,
            "a line longer than the budget goes alone"
        );
        // escapes count
        assert_eq!(wire_bytes(&line("stdout", "\u{1b}\"é")), 24 + 6 + 6 + 2 + 2);
    }

    #[test]
    fn a_refused_batch_is_split_and_a_refused_line_dropped_for_a_note() {
        let mut pending = Pending::new(10, 1 << 20);
        for text in ["a", "b", "c", "d"] {
            pending.push(line("stdout", text));
        }
        let batch = pending.take();
        let bytes: usize = batch.iter().map(wire_bytes).sum();
        assert_eq!(pending.refused(batch, &answer(413)), None);
        assert_eq!(pending.budget, bytes / 2);
        assert_eq!(texts(&pending.take()), ["a", "b"], "half as many bytes");
        pending.stored();
        assert_eq!(pending.budget, bytes / 2, "a 413 lowered the ceiling too");
        let batch = pending.take();
        assert_eq!(texts(&batch), ["c", "d"]);
        pending.refused(batch, &answer(413));
        let single = pending.take();
        assert_eq!(texts(&single), ["c"]);
        assert_eq!(
            pending.refused(single, &answer(413)),
            Some(("stdout".to_owned(), 1))
        );
        let note = pending.take();
        assert_eq!(note.len(), 1);
        assert_eq!(note[0].stream, "drover");
        assert!(
            note[0]
                .line
                .contains("a stdout line of 1 bytes was dropped")
                && note[0].line.contains("limit of 8192 bytes"),
            "{:?}",
            note[0].line
        );
        // a refused note goes without another
        assert_eq!(
            pending.refused(note, &answer(400)),
            Some(("drover".to_owned(), note_len()))
        );
        assert_eq!(texts(&pending.take()), ["d"]);
        assert!(pending.is_empty());
    }

    #[test]
    fn a_refusal_that_is_not_about_size_lowers_the_budget_for_a_while() {
        let mut pending = Pending::new(10, 1 << 20);
        for text in ["a", "b", "c", "d"] {
            pending.push(line("stdout", text));
        }
        let batch = pending.take();
        pending.refused(batch, &answer(400));
        let halved = pending.budget;
        assert_eq!(texts(&pending.take()), ["a", "b"]);
        pending.stored();
        assert_eq!(pending.budget, 2 * halved);
        for _ in 0..40 {
            pending.stored();
        }
        assert_eq!(pending.budget, 1 << 20, "back to the ceiling, no further");
    }

    fn note_len() -> usize {
        let mut pending = Pending::new(1, 1);
        pending.refused(vec![line("stdout", "c")], &answer(413));
        pending.take()[0].line.len()
    }

    #[test]
    fn only_a_refusal_is_not_retried() {
        assert_eq!(Verdict::of(&answer(409)), Verdict::Fenced);
        assert_eq!(Verdict::of(&answer(404)), Verdict::Gone);
        for refused in [400, 401, 403, 413, 422] {
            assert_eq!(Verdict::of(&answer(refused)), Verdict::Refused, "{refused}");
        }
        for later in [408, 429, 500, 502, 503, 504] {
            assert_eq!(Verdict::of(&answer(later)), Verdict::Retry, "{later}");
        }
    }
}
