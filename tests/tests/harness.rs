//! The harness's own tests: real ZooKeeper servers, an ensemble, the proxy, the venv.

use std::path::Path;
use std::time::{Duration, Instant};

use drover_tests::{
    init_test_tracing, run_python, spawn_python, wait_until, wait_until_sync, within, Ensemble,
    TcpProxy, ZkMode, ZkServer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zookeeper_client::{Acls, Client, CreateMode, SessionState};

const DEADLINE: Duration = Duration::from_secs(30);

async fn connect(connect_string: &str, session_timeout: Duration) -> anyhow::Result<Client> {
    let connecting = Client::connector()
        .with_session_timeout(session_timeout)
        .connect(connect_string);
    Ok(within("zookeeper client connect", DEADLINE, connecting).await??)
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn server_starts_and_answers_four_letter_words() -> anyhow::Result<()> {
    init_test_tracing();
    let started = Instant::now();
    let zk = ZkServer::start().await?;
    println!("zookeeper start to ready: {:?}", started.elapsed());

    assert!(zk.is_running());
    assert_eq!(zk.connect_string(), format!("127.0.0.1:{}", zk.port()));
    assert_eq!(zk.four_letter("ruok").await?, "imok");
    assert_eq!(zk.mode().await?, ZkMode::Standalone);
    assert!(zk.four_letter("cons").await?.contains("127.0.0.1"));
    assert!(zk.four_letter("nope!").await.is_err());
    Ok(())
}

#[tokio::test]
async fn restart_keeps_port_and_data() -> anyhow::Result<()> {
    init_test_tracing();
    let mut zk = ZkServer::start().await?;
    let port = zk.port();
    let client = connect(&zk.connect_string(), Duration::from_secs(2)).await?;
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client
        .create("/kept", b"across restarts", &persistent)
        .await?;
    drop(client);

    zk.stop().await?;
    assert!(!zk.is_running());
    let elapsed = zk.restart().await?;
    println!("zookeeper restart to ready: {elapsed:?}");
    assert_eq!(zk.port(), port);

    zk.kill().await?;
    assert!(!zk.is_running() && zk.pid().is_none());
    zk.restart().await?;
    let client = connect(&zk.connect_string(), Duration::from_secs(2)).await?;
    let (data, _) = client.get_data("/kept").await?;
    assert_eq!(data, b"across restarts");
    Ok(())
}

#[tokio::test]
async fn failed_start_reports_the_log() {
    init_test_tracing();
    let err = ZkServer::builder()
        .config("tickTime", "not-a-number")
        .start()
        .await
        .expect_err("a bad tickTime must fail the start");
    let message = format!("{err:#}");
    assert!(message.contains("last log lines"), "{message}");
    assert!(message.contains("not-a-number"), "{message}");
}

#[tokio::test]
async fn super_digest_bypasses_acls() -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::builder().super_password("s3cret").start().await?;
    let owner = Client::connector()
        .with_session_timeout(Duration::from_secs(2))
        .with_auth("digest", b"owner:pw")
        .connect(&zk.connect_string())
        .await?;
    let private = CreateMode::Persistent.with_acls(Acls::creator_all());
    owner.create("/private", b"secret", &private).await?;

    let anonymous = connect(&zk.connect_string(), Duration::from_secs(2)).await?;
    assert!(matches!(
        anonymous.get_data("/private").await,
        Err(zookeeper_client::Error::NoAuth)
    ));
    let auth = zk.super_auth().expect("super password set");
    let admin = Client::connector()
        .with_session_timeout(Duration::from_secs(2))
        .with_auth("digest", auth.as_bytes())
        .connect(&zk.connect_string())
        .await?;
    assert_eq!(admin.get_data("/private").await?.0, b"secret");
    Ok(())
}

#[tokio::test]
async fn ensemble_elects_a_new_leader_and_keeps_writing() -> anyhow::Result<()> {
    init_test_tracing();
    let started = Instant::now();
    let mut ensemble = Ensemble::start(3).await?;
    println!("ensemble of 3 start to quorum: {:?}", started.elapsed());
    assert_eq!(ensemble.connect_string().split(',').count(), 3);

    let leader = ensemble
        .leader_index()
        .await
        .expect("a quorum has a leader");
    let client = connect(&ensemble.connect_string(), Duration::from_secs(4)).await?;
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.create("/before", b"", &persistent).await?;

    ensemble.kill(leader).await?;
    assert!(!ensemble.node(leader).is_running());
    let elapsed = ensemble.wait_quorum(DEADLINE).await?;
    println!("ensemble re-election after leader kill: {elapsed:?}");
    let new_leader = ensemble
        .leader_index()
        .await
        .expect("two of three elect a leader");
    assert_ne!(new_leader, leader);

    wait_until("a write after the leader died", DEADLINE, || async {
        client.create("/after", b"", &persistent).await.is_ok()
    })
    .await?;

    ensemble.restart(leader).await?;
    let elapsed = ensemble.wait_quorum(DEADLINE).await?;
    println!("ensemble rejoin after restart: {elapsed:?}");
    assert!(ensemble.node(leader).mode().await?.in_quorum());
    Ok(())
}

#[tokio::test]
async fn blocked_proxy_expires_the_session() -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let proxy = TcpProxy::start(zk.connect_string()).await?;
    let client = connect(&proxy.connect_string(), Duration::from_secs(1)).await?;
    let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    client.create("/ephemeral", b"", &ephemeral).await?;
    assert_eq!(proxy.connections(), 1);

    proxy.block().await;
    assert_eq!(proxy.connections(), 0);
    // The server, seen directly, drops the ephemeral node when it expires the session.
    let observer = connect(&zk.connect_string(), Duration::from_secs(4)).await?;
    let expired = wait_until("the server to expire the session", DEADLINE, || async {
        matches!(observer.check_stat("/ephemeral").await, Ok(None))
    })
    .await?;
    println!("session of 1 s expired by the server {expired:?} after the block");

    proxy.unblock();
    wait_until_sync("the client to see its session expired", DEADLINE, || {
        client.state() == SessionState::Expired
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn blackholed_proxy_holds_bytes_until_unblocked() -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let proxy = TcpProxy::start(zk.connect_string()).await?;
    proxy.blackhole();
    let mut stream = TcpStream::connect(proxy.addr()).await?;
    stream.write_all(b"ruok").await?;
    let mut answer = Vec::new();
    let silent = tokio::time::timeout(Duration::from_millis(300), stream.read_to_end(&mut answer));
    assert!(silent.await.is_err(), "a blackholed proxy must stay silent");
    assert_eq!(proxy.connections(), 1);

    proxy.unblock();
    within(
        "the held ruok answer",
        DEADLINE,
        stream.read_to_end(&mut answer),
    )
    .await??;
    assert_eq!(answer, b"imok");
    Ok(())
}

#[tokio::test]
async fn drop_kills_processes_and_removes_directories() -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let pid = zk.pid().expect("running");
    let dir = zk.dir().to_path_buf();
    assert!(process_exists(pid) && dir.join("zoo.cfg").exists());
    drop(zk);
    assert!(!process_exists(pid), "zookeeper {pid} survived drop");
    assert!(!dir.exists(), "{} survived drop", dir.display());

    let ensemble = Ensemble::start(3).await?;
    let nodes: Vec<_> = (0..ensemble.size())
        .map(|i| {
            (
                ensemble.node(i).pid().expect("running"),
                ensemble.node(i).dir().to_path_buf(),
            )
        })
        .collect();
    drop(ensemble);
    for (pid, dir) in nodes {
        assert!(!process_exists(pid), "ensemble node {pid} survived drop");
        assert!(!dir.exists(), "{} survived drop", dir.display());
    }
    Ok(())
}

#[tokio::test]
async fn python_venv_runs_kazoo() -> anyhow::Result<()> {
    init_test_tracing();
    let version = run_python(
        "import sys, kazoo.version; print(kazoo.version.__version__, sys.argv[1])",
        &["arg"],
    )
    .await?;
    assert_eq!(version.trim(), "2.10.0 arg");
    assert!(run_python("raise SystemExit(3)", &[]).await.is_err());

    let zk = ZkServer::start().await?;
    let script = "
import sys
from kazoo.client import KazooClient
client = KazooClient(hosts=sys.argv[1])
client.start(timeout=10)
client.create('/from-kazoo', b'hi')
print('created', flush=True)
sys.stdin.read()
";
    let mut child = spawn_python(script, &[&zk.connect_string()])?;
    assert_eq!(
        child.expect_line("kazoo create", DEADLINE).await?,
        "created"
    );
    let client = connect(&zk.connect_string(), Duration::from_secs(2)).await?;
    assert_eq!(client.get_data("/from-kazoo").await?.0, b"hi");
    child.close_stdin();
    assert!(within("kazoo exit", DEADLINE, child.wait())
        .await??
        .success());
    Ok(())
}
