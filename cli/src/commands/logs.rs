//! `drover logs [-f] ID`.

use std::process::ExitCode;
use std::time::Duration;

use drover_client::{ApiClient, ClientError};
use drover_core::JobId;
use drover_model::StoredLogLine;
use futures::StreamExt;

use crate::args::{LogsArgs, Output};
use crate::output;

/// How many times in a row `-f` reconnects after losing the stream.
const RECONNECTS: u32 = 10;

/// `drover logs`: the job's stored lines, then with `-f` every new one until it finishes.
pub(crate) async fn run(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect::client(&args.job.client)?;
    let job = super::connect::resolve(&client, &args.job.id).await?;
    let mut printer = Printer {
        output: args.job.client.output,
    };
    if args.follow {
        follow(&client, job.id, &mut printer).await?;
    } else {
        let mut after = 0;
        loop {
            let page = client.logs(job.id, after, None).await?;
            if page.lines.is_empty() {
                break;
            }
            for line in &page.lines {
                printer.print(line)?;
            }
            after = page.next;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Streams lines until the job is terminal, reconnecting after the last line received
/// when the connection breaks.
async fn follow(client: &ApiClient, id: JobId, printer: &mut Printer) -> anyhow::Result<()> {
    let mut after = 0;
    let mut failures = 0;
    loop {
        let lost = match client.follow_logs(id, after).await {
            Ok(mut lines) => loop {
                match lines.next().await {
                    None => return Ok(()),
                    Some(Ok(line)) => {
                        printer.print(&line)?;
                        after = line.seq;
                        failures = 0;
                    }
                    Some(Err(err)) => break err,
                }
            },
            Err(err) => err,
        };
        failures += 1;
        if !retryable(&lost) || failures > RECONNECTS {
            return Err(lost.into());
        }
        tracing::debug!(error = %lost, after, "log stream lost, reconnecting");
        tokio::time::sleep(Duration::from_millis(500) * failures).await;
    }
}

fn retryable(err: &ClientError) -> bool {
    err.is_unavailable()
}

/// Writes lines as text (the line itself, control characters escaped) or JSON (one
/// object per line, exact).
struct Printer {
    output: Output,
}

impl Printer {
    /// Writes and flushes one line: followed lines must show up as they arrive, even
    /// through a pipe.
    fn print(&mut self, line: &StoredLogLine) -> anyhow::Result<()> {
        let text = match self.output {
            Output::Json => serde_json::to_string(line)?,
            Output::Table => output::printable(&line.line).into_owned(),
        };
        output::emit(&format!("{text}\n"))
    }
}
