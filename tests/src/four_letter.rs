//! ZooKeeper's four-letter words (`ruok`, `srvr`, `cons`, ...) spoken over plain TCP.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{ensure, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `cmd` to the server listening on `127.0.0.1:port` and returns its whole answer.
///
/// The server closes the connection after answering, so the answer is everything read
/// until end of stream. A server that accepted the connection but never answers (it can
/// happen while the JVM is still starting) is cut off after `timeout`.
pub(crate) async fn four_letter(port: u16, cmd: &str, timeout: Duration) -> anyhow::Result<String> {
    ensure!(
        cmd.len() == 4 && cmd.bytes().all(|b| b.is_ascii_lowercase()),
        "a four-letter word is 4 lowercase ascii letters, got {cmd:?}"
    );
    let exchange = async {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
        stream.write_all(cmd.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(timeout, exchange)
        .await
        .with_context(|| {
            format!("zookeeper on port {port} did not answer {cmd:?} within {timeout:?}")
        })?
        .with_context(|| format!("failed to send {cmd:?} to zookeeper on port {port}"))?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// The role a server reports in the `Mode:` line of `srvr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ZkMode {
    /// A single server without a quorum.
    Standalone,
    /// The elected leader of an ensemble.
    Leader,
    /// A voting follower of an ensemble.
    Follower,
    /// A non-voting observer of an ensemble.
    Observer,
    /// The server runs but does not serve requests (no quorum, election under way).
    NotServing,
}

impl ZkMode {
    /// Parses the answer to `srvr`.
    pub(crate) fn from_srvr(answer: &str) -> anyhow::Result<ZkMode> {
        if answer.contains("not currently serving requests") {
            return Ok(ZkMode::NotServing);
        }
        let mode = answer
            .lines()
            .find_map(|line| line.strip_prefix("Mode:"))
            .map(str::trim)
            .with_context(|| format!("no Mode line in srvr answer {answer:?}"))?;
        Ok(match mode {
            "standalone" => ZkMode::Standalone,
            "leader" => ZkMode::Leader,
            "follower" => ZkMode::Follower,
            "observer" => ZkMode::Observer,
            other => anyhow::bail!("unknown zookeeper mode {other:?}"),
        })
    }

    /// Whether the server is part of a working quorum (leader or follower).
    pub fn in_quorum(self) -> bool {
        matches!(self, ZkMode::Leader | ZkMode::Follower)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_srvr_modes() {
        let answer = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: follower\nNode count: 5\n";
        assert_eq!(ZkMode::from_srvr(answer).unwrap(), ZkMode::Follower);
        assert_eq!(
            ZkMode::from_srvr("Mode: standalone\n").unwrap(),
            ZkMode::Standalone
        );
        assert_eq!(
            ZkMode::from_srvr("This ZooKeeper instance is not currently serving requests\n")
                .unwrap(),
            ZkMode::NotServing
        );
        assert!(ZkMode::from_srvr("").is_err());
        assert!(ZkMode::Leader.in_quorum() && !ZkMode::Standalone.in_quorum());
    }
}
