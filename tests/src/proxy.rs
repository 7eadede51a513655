//! A TCP forwarder that can cut or silence a client's link to a server.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Bytes flow both ways.
    Forward,
    /// Open connections are reset and new ones are reset as soon as accepted.
    Block,
    /// Connections stay open but no byte moves, like a network partition; new
    /// connections are accepted and held silent.
    Blackhole,
    /// Requests reach the server but no answer comes back: a client cannot tell whether
    /// what it sent was done.
    Deaf,
}

/// A TCP proxy on `127.0.0.1:0` in front of one target address.
///
/// Point a client at [`TcpProxy::connect_string`] instead of the server, then
/// [`block`](TcpProxy::block) or [`blackhole`](TcpProxy::blackhole) to partition it without
/// touching the server: past its session timeout, the server expires the client's session.
/// Dropping the proxy resets every connection through it.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    target: String,
    mode: watch::Sender<Mode>,
    connections: Arc<watch::Sender<usize>>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Starts forwarding from a fresh loopback port to `target` (`host:port`).
    ///
    /// The target is connected once per accepted connection, so it may be down now and
    /// come back later (a restarted server keeps its port).
    ///
    /// # Errors
    /// Fails when no loopback port can be bound.
    pub async fn start(target: impl Into<String>) -> anyhow::Result<TcpProxy> {
        let target = target.into();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("failed to bind the proxy port")?;
        let addr = listener.local_addr()?;
        let (mode, mode_rx) = watch::channel(Mode::Forward);
        let connections = Arc::new(watch::Sender::new(0));
        let accept = tokio::spawn(accept_loop(
            listener,
            target.clone(),
            mode_rx,
            Arc::clone(&connections),
        ));
        tracing::debug!(%addr, target, "proxy started");
        Ok(TcpProxy {
            addr,
            target,
            mode,
            connections,
            accept,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT` of the proxy, for a ZooKeeper client.
    pub fn connect_string(&self) -> String {
        self.addr.to_string()
    }

    /// The address traffic is forwarded to.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// How many client connections are open through the proxy.
    pub fn connections(&self) -> usize {
        *self.connections.borrow()
    }

    /// Resets every open connection and every new one until [`unblock`](TcpProxy::unblock).
    ///
    /// Returns once every open connection is closed.
    pub async fn block(&self) {
        self.set(Mode::Block);
        let mut open = self.connections.subscribe();
        // Cannot fail: `self` holds the sender.
        let _ = open.wait_for(|n| *n == 0).await;
    }

    /// Stops moving bytes while keeping every socket open, so peers see silence.
    ///
    /// Bytes already sent wait in socket buffers and flow again after
    /// [`unblock`](TcpProxy::unblock), as after a healed partition.
    pub fn blackhole(&self) {
        self.set(Mode::Blackhole);
    }

    /// Forwards what clients send but holds every answer back (until
    /// [`unblock`](TcpProxy::unblock) or [`block`](TcpProxy::block)): the server acts on
    /// requests whose replies are lost.
    pub fn deafen(&self) {
        self.set(Mode::Deaf);
    }

    /// Forwards traffic again.
    pub fn unblock(&self) {
        self.set(Mode::Forward);
    }

    fn set(&self, mode: Mode) {
        tracing::debug!(addr = %self.addr, ?mode, "proxy mode");
        self.mode.send_replace(mode);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        // Connection tasks see the mode sender go away and reset their sockets.
        self.accept.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: String,
    mode: watch::Receiver<Mode>,
    connections: Arc<watch::Sender<usize>>,
) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(err) => {
                tracing::warn!(error = %err, "proxy accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        if *mode.borrow() == Mode::Block {
            reset(&client);
            continue;
        }
        let guard = ConnectionGuard::open(Arc::clone(&connections));
        tokio::spawn(serve(client, target.clone(), mode.clone(), guard));
    }
}

/// Counts a connection as open for as long as it lives.
struct ConnectionGuard(Arc<watch::Sender<usize>>);

impl ConnectionGuard {
    fn open(counter: Arc<watch::Sender<usize>>) -> ConnectionGuard {
        counter.send_modify(|n| *n += 1);
        ConnectionGuard(counter)
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

async fn serve(
    mut client: TcpStream,
    target: String,
    mut mode: watch::Receiver<Mode>,
    _guard: ConnectionGuard,
) {
    if !wait_forward(&mut mode).await {
        reset(&client);
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(&target).await else {
        tracing::debug!(target, "proxy target unreachable");
        reset(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (mut client_read, mut client_write) = client.split();
    let (mut upstream_read, mut upstream_write) = upstream.split();
    let end = tokio::select! {
        end = pump(&mut client_read, &mut upstream_write, mode.clone(), Way::Request) => end,
        end = pump(&mut upstream_read, &mut client_write, mode.clone(), Way::Answer) => end,
    };
    if end == End::Blocked {
        reset(&client);
        reset(&upstream);
    }
}

/// Why a pump stopped.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// A side closed or failed; the other is closed normally.
    Closed,
    /// The proxy blocked or went away; both sides are reset.
    Blocked,
}

/// Which way a pump moves bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Client to server.
    Request,
    /// Server to client.
    Answer,
}

async fn pump<R, W>(from: &mut R, to: &mut W, mut mode: watch::Receiver<Mode>, way: Way) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0; 16 * 1024];
    loop {
        if !wait_flowing(&mut mode, way).await {
            return End::Blocked;
        }
        tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return End::Closed,
                Ok(n) => {
                    if to.write_all(&buf[..n]).await.is_err() {
                        return End::Closed;
                    }
                }
            },
            // Re-check the mode; `read` is cancel safe, nothing is lost.
            changed = mode.changed() => {
                if changed.is_err() {
                    return End::Blocked;
                }
            }
        }
    }
}

/// Waits while blackholed; `true` once forwarding, `false` when blocked or the proxy is gone.
async fn wait_forward(mode: &mut watch::Receiver<Mode>) -> bool {
    wait_flowing(mode, Way::Answer).await
}

/// Waits while bytes going `way` are held; `true` once they flow, `false` when blocked or
/// the proxy is gone.
async fn wait_flowing(mode: &mut watch::Receiver<Mode>, way: Way) -> bool {
    loop {
        match *mode.borrow_and_update() {
            Mode::Forward => return true,
            Mode::Deaf if way == Way::Request => return true,
            Mode::Block => return false,
            Mode::Blackhole | Mode::Deaf => {}
        }
        if mode.changed().await.is_err() {
            return false;
        }
    }
}

/// Makes the coming close send RST rather than FIN: the peer sees a cut, not a goodbye.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}
