//! Newline-delimited JSON answers (`application/x-ndjson`) as a stream of values.

use std::time::Duration;

use futures::stream::{self, BoxStream, Stream, StreamExt};
use serde::de::DeserializeOwned;

use crate::ClientError;

/// Splits `body` into lines and decodes each non-blank one as a `T`.
///
/// `base` names the API in transport errors and `url` the endpoint in decode errors;
/// `timeout` is the one a timed-out read would have passed.
/// The stream ends after the first error. A last line without its newline still
/// counts; blank lines (keep-alives) are skipped.
pub(crate) fn decode_lines<T, B>(
    base: String,
    url: String,
    timeout: Duration,
    body: impl Stream<Item = reqwest::Result<B>> + Send + 'static,
) -> BoxStream<'static, Result<T, ClientError>>
where
    T: DeserializeOwned + Send + 'static,
    B: AsRef<[u8]> + Send + 'static,
{
    let state = Lines {
        base,
        url,
        timeout,
        body: body.boxed(),
        buffer: Vec::new(),
        ended: false,
    };
    stream::try_unfold(state, |mut lines| async move {
        let item = lines.next_value().await?;
        Ok(item.map(|value| (value, lines)))
    })
    .boxed()
}

/// The reading state: the body, and bytes received but not yet split off.
struct Lines<B> {
    base: String,
    url: String,
    timeout: Duration,
    body: BoxStream<'static, reqwest::Result<B>>,
    buffer: Vec<u8>,
    ended: bool,
}

impl<B: AsRef<[u8]>> Lines<B> {
    /// The next decoded value, or `None` at the end of the body.
    async fn next_value<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ClientError> {
        loop {
            let line = match self.buffer.iter().position(|&byte| byte == b'\n') {
                Some(end) => self.buffer.drain(..=end).collect::<Vec<_>>(),
                None if self.ended => std::mem::take(&mut self.buffer),
                None => {
                    self.fill().await?;
                    continue;
                }
            };
            if line.trim_ascii().is_empty() {
                if self.ended && self.buffer.is_empty() {
                    return Ok(None);
                }
                continue;
            }
            return serde_json::from_slice(&line)
                .map(Some)
                .map_err(|err| ClientError::Decode {
                    url: self.url.clone(),
                    detail: format!(
                        "a streamed line is not the expected JSON ({err}): {}",
                        String::from_utf8_lossy(line.trim_ascii())
                    ),
                });
        }
    }

    /// Reads the next chunk of the body into the buffer, or notes the end.
    async fn fill(&mut self) -> Result<(), ClientError> {
        match self.body.next().await {
            Some(Ok(chunk)) => self.buffer.extend_from_slice(chunk.as_ref()),
            Some(Err(err)) => return Err(ClientError::transport(&self.base, self.timeout, err)),
            None => self.ended = true,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use super::*;
    use drover_model::StoredLogLine;

    fn body(chunks: &[&'static str]) -> impl Stream<Item = reqwest::Result<&'static [u8]>> {
        stream::iter(
            chunks
                .iter()
                .map(|chunk| Ok(chunk.as_bytes()))
                .collect::<Vec<_>>(),
        )
    }

    fn line(seq: i64, text: &str) -> StoredLogLine {
        StoredLogLine {
            seq,
            stream: "stdout".to_owned(),
            line: text.to_owned(),
        }
    }

    async fn decode(chunks: &[&'static str]) -> Result<Vec<StoredLogLine>, ClientError> {
        decode_lines(
            "http://h:1".into(),
            "http://h:1/x".into(),
            Duration::from_secs(1),
            body(chunks),
        )
        .try_collect()
        .await
    }

    #[tokio::test]
    async fn lines_split_across_chunks_and_a_last_line_without_newline() {
        let lines = decode(&[
            r#"{"seq":1,"stream":"stdout","line":"a"}"#,
            "\n\n{\"seq\":2,\"stream\":\"std",
            "out\",\"line\":\"b\"}\n",
            r#"{"seq":3,"stream":"stdout","line":"c"}"#,
        ])
        .await
        .unwrap();
        assert_eq!(lines, [line(1, "a"), line(2, "b"), line(3, "c")]);
    }

    #[tokio::test]
    async fn an_empty_or_blank_body_is_an_empty_stream() {
        assert_eq!(decode(&[]).await.unwrap(), []);
        assert_eq!(decode(&["\n", " \n\n"]).await.unwrap(), []);
    }

    #[tokio::test]
    async fn a_bad_line_ends_the_stream_with_a_decode_error() {
        let err = decode(&["{\"seq\":1,\"stream\":\"stdout\",\"line\":\"a\"}\nnope\n"])
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Decode { .. }), "{err:?}");
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
