//! Leader election against a real ZooKeeper.

use std::time::{Duration, Instant};

use drover_coordination::{Election, LostReason};
use drover_tests::{connect, init_test_tracing, within, LineChild, TcpProxy, ZkServer};

const SESSION: Duration = Duration::from_millis(1500);

#[tokio::test]
async fn one_leader_at_a_time_and_succession_on_resign() -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let a = Election::new(
        &connect(&zk.connect_string(), SESSION).await?,
        "cleanup",
        "a",
    )?;
    let b = Election::new(
        &connect(&zk.connect_string(), SESSION).await?,
        "cleanup",
        "b",
    )?;
    let leader_a = within("a's campaign", Duration::from_secs(5), a.campaign()).await??;
    let b_campaign = tokio::spawn(async move { b.campaign().await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!b_campaign.is_finished(), "b must not lead while a does");
    assert_eq!(a.contenders().await?, ["a", "b"]);
    assert_eq!(a.leader().await?.as_deref(), Some("a"));

    leader_a.resign().await;
    let leader_b = within("b's succession", Duration::from_secs(5), b_campaign).await???;
    assert!(leader_b.is_leader());
    assert_eq!(a.leader().await?.as_deref(), Some("b"));
    assert!(Election::new(&connect(&zk.connect_string(), SESSION).await?, "a/b", "x").is_err());
    Ok(())
}

#[tokio::test]
async fn a_dropped_campaign_withdraws_its_contender() -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    // One contender per session and election: b runs on a session of its own.
    let a = Election::new(&connect(&zk.connect_string(), SESSION).await?, "poll", "a")?;
    let b = Election::new(&connect(&zk.connect_string(), SESSION).await?, "poll", "b")?;
    let _leader = a.campaign().await?;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), b.campaign())
            .await
            .is_err()
    );
    drover_tests::wait_until(
        "b's contender node withdrawn",
        Duration::from_secs(5),
        || async { a.contenders().await.map(|c| c == ["a"]).unwrap_or(false) },
    )
    .await?;
    Ok(())
}

fn lead_actor(hosts: &str, id: &str) -> anyhow::Result<LineChild> {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_zk-actor"));
    command.args([
        "lead",
        hosts,
        "reconcile",
        id,
        &SESSION.as_millis().to_string(),
    ]);
    LineChild::spawn(command)
}

#[tokio::test]
async fn a_killed_leader_is_replaced_within_session_timeout_plus_one_second() -> anyhow::Result<()>
{
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let mut actor = lead_actor(&zk.connect_string(), "doomed")?;
    assert_eq!(
        actor
            .expect_line("the actor's leadership", Duration::from_secs(15))
            .await?,
        "leader doomed"
    );
    let election = Election::new(
        &connect(&zk.connect_string(), SESSION).await?,
        "reconcile",
        "heir",
    )?;
    let campaign = tokio::spawn(async move { election.campaign().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !campaign.is_finished(),
        "the heir must wait while the actor leads"
    );

    actor.signal(nix::sys::signal::Signal::SIGKILL)?;
    let killed = Instant::now();
    let leadership = within(
        "the heir's election",
        SESSION + Duration::from_secs(1),
        campaign,
    )
    .await???;
    eprintln!(
        "new leader {:?} after SIGKILL (session timeout {SESSION:?})",
        killed.elapsed()
    );
    assert!(leadership.is_leader());
    Ok(())
}

#[tokio::test]
async fn an_expired_leader_reports_the_loss_before_a_new_leader_is_elected() -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let proxy = TcpProxy::start(zk.connect_string()).await?;
    let old = Election::new(
        &connect(&proxy.connect_string(), SESSION).await?,
        "reconcile",
        "old",
    )?;
    let new = Election::new(
        &connect(&zk.connect_string(), SESSION).await?,
        "reconcile",
        "new",
    )?;
    let old_leadership = old.campaign().await?;
    let campaign = tokio::spawn(async move {
        let leadership = new.campaign().await;
        (Instant::now(), leadership)
    });

    // A silent network, as in a partition: the old leader hears nothing.
    proxy.blackhole();
    let cut = Instant::now();
    let reason = within(
        "the old leader's loss",
        SESSION * 2,
        old_leadership.lost().tripped(),
    )
    .await?;
    let lost_at = Instant::now();
    let (elected_at, leadership) = within("the new election", SESSION * 3, campaign).await??;
    leadership?;
    eprintln!(
        "old leader lost ({reason}) after {:?}; new leader after {:?}",
        lost_at - cut,
        elected_at - cut
    );
    assert!(
        lost_at < elected_at,
        "the old leader must stop before the new one starts"
    );
    assert!(matches!(
        reason,
        LostReason::Suspended | LostReason::SessionExpired
    ));
    proxy.unblock();
    Ok(())
}

#[tokio::test]
async fn deleting_the_leaders_node_trips_its_loss() -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let session = connect(&zk.connect_string(), SESSION).await?;
    let leadership = Election::new(&session, "poll", "me")?.campaign().await?;
    session.client().delete(leadership.node(), None).await?;
    let reason = within(
        "the loss",
        Duration::from_secs(5),
        leadership.lost().tripped(),
    )
    .await?;
    assert_eq!(reason, LostReason::NodeDeleted);
    assert!(!leadership.is_leader());
    Ok(())
}

/// What a distributor does with an election: lead until the leadership is lost, drop
/// it, campaign again. Sends its id each time it is elected.
fn campaign_forever(
    election: Election,
    id: &'static str,
    elected: tokio::sync::mpsc::UnboundedSender<&'static str>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match election.campaign().await {
                Ok(leadership) => {
                    let _ = elected.send(id);
                    leadership.lost().tripped().await;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
}

#[tokio::test]
async fn a_leader_whose_connection_blips_never_waits_on_its_own_old_node() -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let proxies = [
        TcpProxy::start(zk.connect_string()).await?,
        TcpProxy::start(zk.connect_string()).await?,
    ];
    let sessions = [
        connect(&proxies[0].connect_string(), SESSION).await?,
        connect(&proxies[1].connect_string(), SESSION).await?,
    ];
    let (tx, mut elected) = tokio::sync::mpsc::unbounded_channel();
    let a = campaign_forever(Election::new(&sessions[0], "blip", "a")?, "a", tx.clone());
    let mut leader = within("a's first election", Duration::from_secs(5), elected.recv()).await?;
    assert_eq!(leader, Some("a"));
    let b = campaign_forever(Election::new(&sessions[1], "blip", "b")?, "b", tx);
    let observer = Election::new(&connect(&zk.connect_string(), SESSION).await?, "blip", "-")?;
    drover_tests::wait_until("b to queue behind a", Duration::from_secs(5), || async {
        observer.contenders().await.is_ok_and(|c| c == ["a", "b"])
    })
    .await?;

    for blip in 0..4 {
        // A short cut of the leader's link, well inside the session timeout: the session
        // survives, the leadership does not (it trips at the disconnection).
        let proxy = &proxies[usize::from(leader == Some("b"))];
        proxy.block().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.unblock();
        leader = within(
            "a new leader after the blip (a stuck election never elects one)",
            SESSION * 4,
            elected.recv(),
        )
        .await?;
        eprintln!("blip {blip}: {leader:?} leads");
        drover_tests::wait_until(
            "one contender node per session",
            Duration::from_secs(5),
            || async { observer.contenders().await.is_ok_and(|c| c.len() == 2) },
        )
        .await?;
    }
    for session in &sessions {
        assert_eq!(session.health(), drover_coordination::Health::Connected);
    }
    a.abort();
    b.abort();
    Ok(())
}
