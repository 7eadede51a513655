//! How answers look: aligned tables, job details, ages, JSON.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;

use drover_model::{ExecutorInfo, Job};
use serde::Serialize;

/// How many characters of an id tables show (like `git log --oneline`).
pub(crate) const SHORT_ID: usize = 8;

/// Columns of text, left-aligned, two spaces apart, headers first.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|&h| h.to_owned()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The job list of `drover ls`.
pub(crate) fn jobs_table(jobs: &[Job], full_ids: bool) -> String {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|job| {
            vec![
                id_cell(job, full_ids),
                // A pipeline's job: the project's action, then what runs it.
                match &job.pipeline_action {
                    Some(name) if *name != job.action => format!("{name} ({})", job.action),
                    _ => job.action.clone(),
                },
                job.state.to_string(),
                job.status_code.to_string(),
                format!("{}%", job.progress),
                format!("{}/{}", job.attempts, job.max_attempts),
                age(&job.created_at),
            ]
        })
        .collect();
    let headers = [
        "ID", "ACTION", "STATE", "STATUS", "PROGRESS", "ATTEMPTS", "CREATED",
    ];
    table(&headers, &rows)
}

/// The jobs an ambiguous id matches: whole ids, so that any of them can be pasted.
pub(crate) fn candidates_table(jobs: &[Job]) -> String {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|job| {
            vec![
                job.id.to_string(),
                job.action.clone(),
                job.state.to_string(),
                format!("{} ({})", job.created_at, age(&job.created_at)),
            ]
        })
        .collect();
    table(&["ID", "ACTION", "STATE", "CREATED"], &rows)
}

/// The executor list of `drover executors`.
pub(crate) fn executors_table(executors: &[ExecutorInfo]) -> String {
    let rows: Vec<Vec<String>> = executors
        .iter()
        .map(|executor| {
            vec![
                executor.id.clone(),
                executor.host.clone(),
                executor.slots.to_string(),
                executor.busy.to_string(),
                executor_state(executor),
                executor.disk.as_ref().map_or_else(
                    || "-".to_owned(),
                    |d| {
                        format!(
                            "{} ctr {}, {} vol, img {}",
                            d.containers,
                            human_bytes(d.container_bytes),
                            d.volumes,
                            human_bytes(d.image_bytes)
                        )
                    },
                ),
                executor.version.clone(),
                format!("{} ({})", executor.started_at, age(&executor.started_at)),
                list_or_dash(executor.tags.iter().map(String::as_str)),
                list_or_dash(executor.actions.iter().map(|(name, needs)| {
                    if needs.is_empty() {
                        name.clone()
                    } else {
                        format!("{name}[{}]", needs.join("+"))
                    }
                })),
            ]
        })
        .collect();
    table(
        &[
            "ID", "HOST", "SLOTS", "BUSY", "STATE", "DISK", "VERSION", "STARTED", "TAGS", "ACTIONS",
        ],
        &rows,
    )
}

/// `512 B`, `3.2 MiB`, `1.1 GiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `taking`, `draining (by ops, 2 running)` or `drained (by ops, 0 containers)`.
pub(crate) fn executor_state(executor: &ExecutorInfo) -> String {
    let Some(drain) = &executor.drain else {
        return "taking".to_owned();
    };
    let containers = drain
        .containers
        .map_or_else(String::new, |n| format!(", {n} containers running"));
    match drain.phase {
        drover_model::DrainPhase::Draining => format!(
            "draining (by {}, {} running{containers})",
            drain.by, executor.busy
        ),
        drover_model::DrainPhase::Drained => format!("drained (by {}{containers})", drain.by),
    }
}

/// `a,b,c`, or `-` for none.
fn list_or_dash<S: AsRef<str>>(items: impl Iterator<Item = S>) -> String {
    let items: Vec<String> = items.map(|s| s.as_ref().to_owned()).collect();
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(",")
    }
}

/// Every field of a job, one per line, for `drover show`.
pub(crate) fn job_details(job: &Job) -> String {
    let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    let time = |value: &Option<String>| {
        or_dash(value.as_ref().map(|text| format!("{text} ({})", age(text))))
    };
    let mut state = format!("{} ({})", job.state, job.status_code);
    if job.cancel_requested {
        state.push_str(", cancel requested");
    }
    if job.kill_requested {
        state.push_str(", kill requested");
    }
    let fields = [
        ("id", job.id.to_string()),
        ("action", job.action.clone()),
        ("requires", list_or_dash(job.requires.iter())),
        ("state", state),
        (
            "message",
            or_dash(Some(printable(&job.status_message).into_owned()).filter(|m| !m.is_empty())),
        ),
        ("progress", format!("{}%", job.progress)),
        (
            "exit code",
            or_dash(job.exit_code.map(|code| code.to_string())),
        ),
        (
            "attempts",
            format!("{} of {}", job.attempts, job.max_attempts),
        ),
        ("priority", job.priority.to_string()),
        (
            "timeout",
            humantime::format_duration(std::time::Duration::from_secs(job.timeout_secs))
                .to_string(),
        ),
        ("executor", or_dash(job.executor.clone())),
        ("created", time(&Some(job.created_at.clone()))),
        ("started", time(&job.started_at)),
        ("finished", time(&job.finished_at)),
        (
            "last heartbeat",
            format!(
                "{}{}",
                time(&job.last_heartbeat),
                if job.stale {
                    " STALE: more than three heartbeat intervals ago; is its executor alive? (`drover executors`)"
                } else {
                    ""
                }
            ),
        ),
        (
            "enqueued",
            if job.enqueued { "yes" } else { "not yet" }.to_owned(),
        ),
        ("retry of", or_dash(job.retry_of.map(|id| id.to_string()))),
        ("idempotency key", or_dash(job.idempotency_key.clone())),
    ];
    let mut out = String::new();
    for (name, value) in fields {
        let _ = writeln!(out, "{:<16} {value}", format!("{name}:"));
    }
    let params = serde_json::to_string_pretty(&job.params).unwrap_or_default();
    let _ = writeln!(out, "params:");
    for line in params.lines() {
        let _ = writeln!(out, "  {line}");
    }
    out
}

/// The `attempts:` table and the `retries:` chain of `drover show`.
pub(crate) fn history(attempts: &[drover_model::Attempt], chain: &[Job]) -> String {
    let mut out = String::new();
    if !attempts.is_empty() {
        let rows: Vec<Vec<String>> = attempts
            .iter()
            .map(|a| {
                vec![
                    a.attempt.to_string(),
                    a.executor.clone().unwrap_or_else(|| "-".into()),
                    a.started_at.clone(),
                    a.ended_at.clone().unwrap_or_else(|| "running".into()),
                    a.outcome.clone().unwrap_or_else(|| "-".into()),
                    printable(a.message.as_deref().unwrap_or("")).into_owned(),
                ]
            })
            .collect();
        out.push_str("attempts:\n");
        let table = table(
            &["#", "EXECUTOR", "STARTED", "ENDED", "OUTCOME", "MESSAGE"],
            &rows,
        );
        for line in table.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    if !chain.is_empty() {
        out.push_str("retries:\n");
        for earlier in chain {
            let _ = writeln!(
                out,
                "  {} {} ({}): {}",
                earlier.id,
                earlier.state,
                earlier.status_code,
                printable(&earlier.status_message)
            );
        }
    }
    out
}

/// One line saying how a job ended, or where it is.
pub(crate) fn job_summary(job: &Job) -> String {
    let mut line = format!("job {} {} ({})", job.id, job.state, job.status_code);
    if let Some(code) = job.exit_code {
        let _ = write!(line, ", exit code {code}");
    }
    if !job.status_message.is_empty() {
        let _ = write!(line, ": {}", printable(&job.status_message));
    }
    line
}

/// `text` safe to write to a terminal: control characters (escape sequences, bells,
/// carriage returns, 8-bit CSI) as `\x1b` or `\u{9b}`, tabs as they are. Text written by
/// jobs or from their output goes through it; `-o json` shows the exact text instead.
pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    let escaped = |c: char| c.is_control() && c != '\t';
    if !text.chars().any(escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        let code = u32::from(c);
        let _ = match c {
            c if !escaped(c) => write!(out, "{c}"),
            '\0'..='\x7f' => write!(out, "\\x{code:02x}"),
            _ => write!(out, "\\u{{{code:x}}}"),
        };
    }
    Cow::Owned(out)
}

/// `value` as pretty JSON, with a final newline.
pub(crate) fn json<T: Serialize>(value: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(value)? + "\n")
}

/// Writes `text` on stdout and flushes it.
///
/// # Errors
///
/// The io error; a reader that went away (`drover ls | head`) is
/// [`ErrorKind::BrokenPipe`](std::io::ErrorKind::BrokenPipe), which `main` takes as a
/// quiet end rather than a failure.
pub(crate) fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn id_cell(job: &Job, full: bool) -> String {
    let id = job.id.to_string();
    if full {
        id
    } else {
        id.chars().take(SHORT_ID).collect()
    }
}

/// How long ago an RFC 3339 time was (`5s ago`); the text itself if it does not parse.
pub(crate) fn age(rfc3339: &str) -> String {
    match drover_core::clock::parse_rfc3339(rfc3339) {
        Some(then) => ago(match std::time::SystemTime::now().duration_since(then) {
            Ok(ago) => i64::try_from(ago.as_secs()).unwrap_or(i64::MAX),
            Err(ahead) => -i64::try_from(ahead.duration().as_secs()).unwrap_or(i64::MAX),
        }),
        None => rfc3339.to_owned(),
    }
}

/// `seconds` as the largest whole unit: `42s ago`, `5m ago`, `3h ago`, `2d ago`.
fn ago(seconds: i64) -> String {
    match seconds {
        ..=0 => "just now".to_owned(),
        1..=59 => format!("{seconds}s ago"),
        60..=3599 => format!("{}m ago", seconds / 60),
        3600..=86_399 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_trim_lines() {
        let rows = vec![
            vec!["a".to_owned(), "long value".to_owned(), String::new()],
            vec!["longer".to_owned(), "x".to_owned(), "end".to_owned()],
        ];
        let text = table(&["ONE", "TWO", "THREE"], &rows);
        assert_eq!(
            text,
            "ONE     TWO         THREE\na       long value\nlonger  x           end\n"
        );
    }

    #[test]
    fn control_characters_are_escaped_for_the_terminal() {
        assert!(matches!(printable("plain\ttext é"), Cow::Borrowed(_)));
        assert_eq!(
            printable("\u{1b}[31mred\u{1b}[0m\r\u{7}\u{7f}\u{9b}2J\tok"),
            "\\x1b[31mred\\x1b[0m\\x0d\\x07\\x7f\\u{9b}2J\tok"
        );
    }

    #[test]
    fn sizes_use_the_largest_binary_unit() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024 + 200 * 1024), "3.2 MiB");
        assert_eq!(human_bytes(5 << 40), "5.0 TiB");
    }

    #[test]
    fn ages_use_the_largest_unit() {
        assert_eq!(ago(-3), "just now");
        assert_eq!(ago(42), "42s ago");
        assert_eq!(ago(300), "5m ago");
        assert_eq!(ago(3 * 3600 + 5), "3h ago");
        assert_eq!(ago(2 * 86_400), "2d ago");
        assert_eq!(age("not a time"), "not a time");
        assert!(age("2020-01-01T00:00:00Z").ends_with("d ago"));
    }
}
