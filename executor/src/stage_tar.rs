//! A code snapshot's tar rewritten under a prefix (`workspace/`) as it streams, so it
//! can share one archive upload with the parameters and the needed outputs. Entries keep
//! their headers (mode, times, owners, link targets); only their paths change.

use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

/// Chunks written here go to the archive's stream until it is closed; what is written
/// after (the end blocks a dropped `tar::Builder` adds) goes nowhere.
struct ChannelWriter<'a> {
    tx: &'a mpsc::Sender<Bytes>,
    open: bool,
}

impl Write for ChannelWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.open {
            self.tx
                .blocking_send(Bytes::copy_from_slice(buf))
                .map_err(|_| std::io::Error::other("Docker stopped reading"))?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads the tar on `body` and sends its entries, each path under `prefix`, to `tx`,
/// without the end blocks. Blocking: run it on a blocking thread. The whole of `body`
/// is read, so an error it ends with (a hash that does not match) is returned.
///
/// # Errors
/// `body`'s error, a malformed tar, or Docker no longer reading.
pub(crate) fn rewrite(
    body: impl futures::Stream<Item = std::io::Result<Bytes>> + Send + Unpin,
    prefix: &str,
    tx: &mpsc::Sender<Bytes>,
) -> std::io::Result<()> {
    let mut archive = tar::Archive::new(SyncIoBridge::new(StreamReader::new(body)));
    let writer = std::io::BufWriter::with_capacity(256 * 1024, ChannelWriter { tx, open: true });
    let mut out = tar::Builder::new(writer);
    let prefix = Path::new(prefix);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let target = prefix.join(entry.path()?);
        let mut header = entry.header().clone();
        let kind = header.entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let link = entry
                .link_name()?
                .map(|l| l.into_owned())
                .unwrap_or_default();
            // a hard link names a path in the archive, which moved too
            let link = if kind.is_hard_link() {
                prefix.join(link)
            } else {
                link
            };
            out.append_link(&mut header, &target, &link)?;
        } else if kind.is_file() || kind.is_dir() {
            out.append_data(&mut header, &target, &mut entry)?;
        }
    }
    // to the end: the hash is checked once the last byte went by
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink())?;
    out.get_mut().flush()?;
    out.get_mut().get_mut().open = false;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(3);
        header.set_mode(0o755);
        let long = format!("analysis/{}/model.py", "deep".repeat(40));
        builder
            .append_data(&mut header, &long, &b"abc"[..])
            .unwrap();
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        link.set_mode(0o777);
        builder.append_link(&mut link, "latest.py", &long).unwrap();
        builder.into_inner().unwrap()
    }

    #[tokio::test]
    async fn entries_move_under_the_prefix_with_their_modes_links_and_long_names() {
        let (tx, mut rx) = mpsc::channel(1024);
        let body = futures::stream::iter(vec![Ok(Bytes::from(snapshot()))]);
        tokio::task::spawn_blocking(move || rewrite(body, "workspace/", &tx).unwrap())
            .await
            .unwrap();
        let mut bytes = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            bytes.extend_from_slice(&chunk);
        }
        bytes.extend_from_slice(&[0; 1024]);
        let mut archive = tar::Archive::new(&bytes[..]);
        let seen: Vec<(String, u32, Option<String>)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let link = e.link_name().unwrap().map(|l| l.display().to_string());
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                    link,
                )
            })
            .collect();
        let long = format!("analysis/{}/model.py", "deep".repeat(40));
        assert_eq!(seen[0].0, format!("workspace/{long}"));
        assert_eq!(seen[0].1, 0o755);
        assert_eq!(seen[1].0, "workspace/latest.py");
        assert_eq!(seen[1].2.as_deref(), Some(long.as_str()));
    }

    #[tokio::test]
    async fn an_error_after_the_last_entry_is_returned() {
        let (tx, _rx) = mpsc::channel(1024);
        let body = futures::stream::iter(vec![
            Ok(Bytes::from(snapshot())),
            Err(std::io::Error::other("it hashes to 00, not ff")),
        ]);
        let err = tokio::task::spawn_blocking(move || rewrite(body, "workspace/", &tx))
            .await
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("hashes to 00"), "{err}");
    }
}
