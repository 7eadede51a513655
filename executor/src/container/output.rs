//! Container output as lines: the bytes of each stream are buffered separately and
//! decoded only at line boundaries, so a character split across chunks stays whole.
//!
//! A line is at most [`MAX_LINE_BYTES`]: longer output (a stream without newlines, a
//! progress bar redrawn with `\r`) is cut into several lines of at most that size,
//! between characters, with no marker; [`OutputLine::continued`] says where a cut was.
//! What is left when the stream ends is the last line, newline or not.
//!
//! Docker's messages come with their timestamps, so that those read again after the
//! follow ended (see [`super::DockerRuntime::output`]) are told from new ones.

use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{LogsOptions, LogsOptionsBuilder};
use bollard::Docker;
use futures::{Stream, StreamExt};
use tracing::debug;

use super::runtime::OutputLine;

/// The longest line, in bytes of output (Docker's own message size: it hands output
/// over in pieces of at most 16 KiB, which are joined again up to this).
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// The newest Docker message of one stream: its timestamp, how many had it, and how
/// many of those were read again.
#[derive(Debug, Default)]
struct Seen {
    at: Vec<u8>,
    count: usize,
    again: usize,
}

impl Seen {
    fn record(&mut self, at: &[u8]) {
        if at == self.at {
            self.count += 1;
        } else {
            self.at = at.to_vec();
            self.count = 1;
        }
    }

    /// Whether a message stamped `at`, read again, is new (and if so records it).
    fn is_new(&mut self, at: &[u8]) -> bool {
        match at.cmp(&self.at[..]) {
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal if self.again < self.count => {
                self.again += 1;
                false
            }
            _ => {
                self.record(at);
                self.again = self.count;
                true
            }
        }
    }
}

/// A Docker message split into its timestamp (`2006-01-02T15:04:05.000000000Z`, fixed
/// width, so they compare as bytes) and its text.
fn stamped(message: &[u8]) -> (&[u8], &[u8]) {
    let looks_stamped = message.get(4) == Some(&b'-') && message.get(10) == Some(&b'T');
    let stamp = message
        .iter()
        .take(40)
        .position(|&b| b == b' ')
        .filter(|_| looks_stamped);
    match stamp {
        Some(at) => (&message[..at], &message[at + 1..]),
        None => (&[], message),
    }
}

/// One stream's bytes not yet ended by a newline.
#[derive(Debug)]
struct Splitter {
    stream: &'static str,
    seen: Seen,
    buffer: Vec<u8>,
    /// How many leading bytes of `buffer` are known to hold no newline.
    scanned: usize,
    max: usize,
}

impl Splitter {
    fn new(stream: &'static str, max: usize) -> Splitter {
        Splitter {
            stream,
            seen: Seen::default(),
            buffer: Vec::new(),
            scanned: 0,
            max,
        }
    }

    /// Adds `bytes`; appends every line they complete to `out`.
    fn push(&mut self, bytes: &[u8], out: &mut Vec<OutputLine>) {
        self.buffer.extend_from_slice(bytes);
        let mut start = 0;
        loop {
            let rest = &self.buffer[start..];
            // a newline right after `max` bytes still ends a whole line
            let window = &rest[..rest.len().min(self.max + 1)];
            let from = self.scanned.min(window.len());
            if let Some(at) = window[from..].iter().position(|&b| b == b'\n') {
                let end = from + at;
                out.push(self.line(&rest[..end], false));
                start += end + 1;
                self.scanned = 0;
            } else if rest.len() > self.max {
                let cut = cut_point(rest, self.max);
                out.push(self.line(&rest[..cut], true));
                start += cut;
                self.scanned = 0;
            } else {
                self.scanned = rest.len();
                break;
            }
        }
        self.buffer.drain(..start);
    }

    /// The rest, at the end of the stream.
    fn finish(&mut self) -> Option<OutputLine> {
        self.scanned = 0;
        if self.buffer.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.buffer);
        Some(self.line(&rest, false))
    }

    fn line(&self, bytes: &[u8], continued: bool) -> OutputLine {
        let bytes = if continued {
            bytes
        } else {
            bytes.strip_suffix(b"\r").unwrap_or(bytes)
        };
        OutputLine {
            stream: self.stream,
            line: String::from_utf8_lossy(bytes).into_owned(),
            continued,
        }
    }
}

/// Where to cut `bytes` (longer than `max`) at `max` or just before: never inside a
/// valid character.
fn cut_point(bytes: &[u8], max: usize) -> usize {
    let is_continuation = |b: u8| b & 0xC0 == 0x80;
    if !is_continuation(bytes[max]) {
        return max;
    }
    // the lead byte of the character `bytes[max]` belongs to, if within three bytes
    let Some(lead) = (max.saturating_sub(3)..max)
        .rev()
        .find(|&i| !is_continuation(bytes[i]))
    else {
        return max;
    };
    let width = match bytes[lead] {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return max, // not a lead byte: invalid either way
    };
    let whole = bytes
        .get(lead..lead + width)
        .is_some_and(|c| std::str::from_utf8(c).is_ok());
    if whole && lead + width > max && lead > 0 {
        lead
    } else {
        max
    }
}

/// A container's stdout and stderr, split into lines separately.
#[derive(Debug)]
pub(crate) struct OutputLines {
    streams: [Splitter; 2],
}

impl Default for OutputLines {
    fn default() -> Self {
        OutputLines::with_max(MAX_LINE_BYTES)
    }
}

impl OutputLines {
    fn with_max(max: usize) -> OutputLines {
        OutputLines {
            streams: [Splitter::new("stdout", max), Splitter::new("stderr", max)],
        }
    }

    /// The lines a followed message completes.
    pub(crate) fn push(&mut self, chunk: LogOutput) -> Vec<OutputLine> {
        self.take(chunk, false)
    }

    /// The lines a message read again completes, if it was not seen yet.
    pub(crate) fn push_again(&mut self, chunk: LogOutput) -> Vec<OutputLine> {
        self.take(chunk, true)
    }

    fn take(&mut self, chunk: LogOutput, again: bool) -> Vec<OutputLine> {
        let (index, bytes) = match chunk {
            LogOutput::StdErr { message } => (1, message),
            other => (0, other.into_bytes()),
        };
        let stream = &mut self.streams[index];
        let (at, text) = stamped(&bytes);
        let mut out = Vec::new();
        if again {
            if !stream.seen.is_new(at) {
                return out;
            }
        } else {
            stream.seen.record(at);
        }
        stream.push(text, &mut out);
        out
    }

    /// The last line of each stream, at the end of the output.
    pub(crate) fn finish(&mut self) -> Vec<OutputLine> {
        self.streams
            .iter_mut()
            .filter_map(Splitter::finish)
            .collect()
    }
}

/// The container's output until it stops: see [`super::DockerRuntime::output`].
pub(super) fn follow(docker: &Docker, id: &str) -> impl Stream<Item = OutputLine> + Send + 'static {
    let start = Output {
        phase: Phase::Follow(docker.logs(id, Some(logs_options(true))).boxed()),
        docker: docker.clone(),
        container: id.to_owned(),
        lines: OutputLines::default(),
    };
    futures::stream::unfold(start, |mut output| async move {
        let chunks = match &mut output.phase {
            Phase::Follow(chunks) | Phase::Tail(chunks) => chunks,
            Phase::Done => return None,
        };
        match chunks.next().await {
            Some(Ok(chunk)) => {
                let lines = match output.phase {
                    Phase::Tail(_) => output.lines.push_again(chunk),
                    _ => output.lines.push(chunk),
                };
                return Some((lines, output));
            }
            Some(Err(e)) => {
                debug!(container = %output.container, error = %e, "container output ended early");
            }
            None => {}
        }
        let lines = match output.phase {
            Phase::Follow(_) => {
                let options = logs_options(false);
                let tail = output.docker.logs(&output.container, Some(options));
                output.phase = Phase::Tail(tail.boxed());
                Vec::new()
            }
            _ => {
                output.phase = Phase::Done;
                output.lines.finish()
            }
        };
        Some((lines, output))
    })
    .flat_map(futures::stream::iter)
}

/// Docker log chunks.
type LogChunks = futures::stream::BoxStream<'static, Result<LogOutput, DockerError>>;

/// Where [`follow`] is.
enum Phase {
    /// Following the log while the container runs.
    Follow(LogChunks),
    /// Reading its last messages again once it stopped.
    Tail(LogChunks),
    /// Done.
    Done,
}

/// The state of one container's output.
struct Output {
    phase: Phase,
    docker: Docker,
    container: String,
    lines: OutputLines,
}

/// Both streams, with timestamps (to tell the messages read again from the new ones):
/// followed, or the last [`TAIL_MESSAGES`].
fn logs_options(follow: bool) -> LogsOptions {
    let options = LogsOptionsBuilder::default()
        .follow(follow)
        .stdout(true)
        .stderr(true)
        .timestamps(true);
    if follow {
        options.build()
    } else {
        options.tail(TAIL_MESSAGES).build()
    }
}

/// How many of a stopped container's last log messages are read again.
const TAIL_MESSAGES: &str = "64";

#[cfg(test)]
mod tests {
    use super::*;

    fn out(bytes: &[u8]) -> LogOutput {
        LogOutput::StdOut {
            message: bytes.to_vec().into(),
        }
    }

    fn err(bytes: &[u8]) -> LogOutput {
        LogOutput::StdErr {
            message: bytes.to_vec().into(),
        }
    }

    /// `(stream, line, continued)` of everything `chunks` produce, the end included.
    fn split(max: usize, chunks: Vec<LogOutput>) -> Vec<(&'static str, String, bool)> {
        let mut lines = OutputLines::with_max(max);
        let mut all: Vec<OutputLine> = chunks.into_iter().flat_map(|c| lines.push(c)).collect();
        all.extend(lines.finish());
        all.into_iter()
            .map(|l| (l.stream, l.line, l.continued))
            .collect()
    }

    fn whole(stream: &'static str, line: &str) -> (&'static str, String, bool) {
        (stream, line.to_owned(), false)
    }

    #[test]
    fn lines_end_at_newlines_and_the_last_one_at_the_end() {
        assert_eq!(
            split(64, vec![out(b"one\ntwo\r\n\nthr"), out(b"ee\nx")]),
            [
                whole("stdout", "one"),
                whole("stdout", "two"),
                whole("stdout", ""),
                whole("stdout", "three"),
                whole("stdout", "x"),
            ]
        );
        assert_eq!(split(64, vec![out(b"")]), []);
    }

    #[test]
    fn streams_are_buffered_apart() {
        assert_eq!(
            split(64, vec![out(b"o"), err(b"e"), out(b"ut\n"), err(b"rr")]),
            [whole("stdout", "out"), whole("stderr", "err")]
        );
    }

    #[test]
    fn a_character_split_across_chunks_stays_whole() {
        // é is C3 A9, € is E2 82 AC
        assert_eq!(
            split(
                64,
                vec![
                    out(b"caf\xc3"),
                    err(b"\xe2\x82"),
                    out(b"\xa9\n"),
                    err(b"\xac\n")
                ]
            ),
            [whole("stdout", "café"), whole("stderr", "€")]
        );
        // only bytes that are no UTF-8 at all are replaced
        assert_eq!(
            split(64, vec![out(b"\xffok\n\xc3")]),
            [whole("stdout", "\u{fffd}ok"), whole("stdout", "\u{fffd}")]
        );
    }

    #[test]
    fn long_output_is_cut_at_the_cap_between_characters() {
        assert_eq!(
            split(4, vec![out(b"abcdefghij")]),
            [
                ("stdout", "abcd".to_owned(), true),
                ("stdout", "efgh".to_owned(), true),
                whole("stdout", "ij"),
            ]
        );
        // exactly the cap, then its newline: one whole line
        assert_eq!(split(4, vec![out(b"abcd\n")]), [whole("stdout", "abcd")]);
        // "abc€": the cut at 4 would split €, so it comes before it
        assert_eq!(
            split(4, vec![out(b"abc\xe2\x82\xac\n")]),
            [("stdout", "abc".to_owned(), true), whole("stdout", "€")]
        );
        // invalid bytes are cut anywhere
        assert_eq!(
            split(2, vec![out(b"\x80\x80\x80\n")]),
            [
                ("stdout", "\u{fffd}\u{fffd}".to_owned(), true),
                whole("stdout", "\u{fffd}")
            ]
        );
    }

    fn stamped_out(at: u32, bytes: &[u8]) -> LogOutput {
        let mut message = format!("2024-05-01T10:00:00.{at:09}Z ").into_bytes();
        message.extend_from_slice(bytes);
        out(&message)
    }

    #[test]
    fn messages_read_again_count_only_when_new() {
        let mut lines = OutputLines::with_max(64);
        let mut all = Vec::new();
        all.extend(lines.push(stamped_out(1, b"one\n")));
        all.extend(lines.push(stamped_out(2, b"two\n")));
        all.extend(lines.push(stamped_out(2, b"two again\n")));
        all.extend(lines.push(err(b"e")));
        // the follow ended: the tail holds all of those and what the follow missed
        for (at, text) in [
            (1, &b"one\n"[..]),
            (2, b"two\n"),
            (2, b"two again\n"),
            (2, b"same time, new\n"),
            (3, b"last, no newline"),
        ] {
            all.extend(lines.push_again(stamped_out(at, text)));
        }
        all.extend(lines.finish());
        let texts: Vec<(&str, &str)> = all.iter().map(|l| (l.stream, l.line.as_str())).collect();
        assert_eq!(
            texts,
            [
                ("stdout", "one"),
                ("stdout", "two"),
                ("stdout", "two again"),
                ("stdout", "same time, new"),
                ("stdout", "last, no newline"),
                ("stderr", "e"),
            ]
        );
        assert_eq!(stamped(b"no stamp here"), (&b""[..], &b"no stamp here"[..]));
    }

    #[test]
    fn a_stream_of_small_chunks_without_newlines_stays_within_the_cap() {
        let mut lines = OutputLines::with_max(16);
        let mut all = Vec::new();
        for _ in 0..100 {
            all.extend(lines.push(out(b"xyz")));
            assert!(lines.streams[0].buffer.len() <= 16);
        }
        all.extend(lines.finish());
        assert!(all.iter().all(|l| l.line.len() <= 16));
        assert_eq!(all.iter().map(|l| l.line.len()).sum::<usize>(), 300);
        assert_eq!(all.iter().filter(|l| !l.continued).count(), 1);
    }
}
