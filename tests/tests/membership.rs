//! Executor membership (`/executors/<id>`, ephemeral JSON) against a real ZooKeeper.

use std::time::{Duration, Instant, SystemTime};

use drover_coordination::{Error, ExecutorInfo, Membership};
use drover_tests::{connect, init_test_tracing, wait_until, within, ZkServer};

const SESSION: Duration = Duration::from_millis(1500);
const WATCH: Duration = Duration::from_secs(5);

fn executor(id: &str, slots: u32) -> ExecutorInfo {
    ExecutorInfo {
        id: id.to_owned(),
        host: format!("host-of-{id}"),
        slots,
        busy: 0,
        version: "0.1.0-test".to_owned(),
        started: SystemTime::now(),
        actions: Default::default(),
        tags: Vec::new(),
        drain: None,
        heartbeat_ms: None,
        disk: None,
    }
}

fn ids(list: &[ExecutorInfo]) -> Vec<&str> {
    list.iter().map(|e| e.id.as_str()).collect()
}

#[tokio::test]
async fn executors_of_two_sessions_are_listed_sorted_with_their_fields() -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let a = connect(&zk.connect_string(), SESSION).await?;
    let b = connect(&zk.connect_string(), SESSION).await?;
    let (zulu, alpha) = (executor("zulu", 4), executor("alpha", 2));
    // Registered in the opposite order of their ids: the listing sorts.
    let _zulu = Membership::new(&a).register(zulu.clone()).await?;
    let _alpha = Membership::new(&b).register(alpha.clone()).await?;

    let observer = connect(&zk.connect_string(), SESSION).await?;
    let listed = Membership::new(&observer).list().await?;
    assert_eq!(listed, [alpha.clone(), zulu.clone()]);

    // The node is what DESIGN.md promises: ephemeral, JSON with host, slots, busy, version.
    let client = observer.client();
    for (info, owner) in [(&alpha, &b), (&zulu, &a)] {
        let (data, stat) = client.get_data(&format!("/executors/{}", info.id)).await?;
        assert_eq!(
            stat.ephemeral_owner,
            owner.client().session_id().0,
            "{} is ephemeral, owned by its registering session",
            info.id
        );
        let json: serde_json::Value = serde_json::from_slice(&data)?;
        assert_eq!(json["id"], info.id.as_str());
        assert_eq!(json["host"], info.host.as_str());
        assert_eq!(json["slots"], info.slots);
        assert_eq!(json["busy"], 0);
        assert_eq!(json["version"], "0.1.0-test");
        let started = json["started"].as_str().unwrap_or_default();
        assert!(
            started.contains('T') && started.ends_with('Z'),
            "started is RFC 3339: {json}"
        );
    }
    let (_, stat) = client.get_data("/executors").await?;
    assert_eq!(stat.ephemeral_owner, 0, "the parent is persistent");
    Ok(())
}

#[tokio::test]
async fn watch_sees_busy_updates_a_closed_session_and_a_deregistration() -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let observer = connect(&zk.connect_string(), SESSION).await?;
    let mut members = Membership::new(&observer).watch().await?;
    assert!(members.borrow().is_empty());

    let a = connect(&zk.connect_string(), SESSION).await?;
    let b = connect(&zk.connect_string(), SESSION).await?;
    let mut reg_a = Membership::new(&a).register(executor("exec-a", 4)).await?;
    let reg_b = Membership::new(&b).register(executor("exec-b", 2)).await?;
    within(
        "the watch to list both executors",
        WATCH,
        members.wait_for(|m| ids(m) == ["exec-a", "exec-b"]),
    )
    .await??;

    reg_a.publish(3, None, None).await?;
    assert_eq!(reg_a.info().busy, 3);
    within(
        "the watch to see exec-a busy with 3",
        WATCH,
        members.wait_for(|m| m.first().is_some_and(|e| e.id == "exec-a" && e.busy == 3)),
    )
    .await??;
    assert_eq!(Membership::new(&observer).list().await?[0].busy, 3);

    // Dropping every handle of a session closes it: its executor goes at once, not at expiry.
    let closed_at = Instant::now();
    drop(reg_a);
    drop(a);
    within(
        "the watch to see exec-a go with its session",
        WATCH,
        members.wait_for(|m| ids(m) == ["exec-b"]),
    )
    .await??;
    let gone_after = closed_at.elapsed();
    eprintln!("exec-a gone {gone_after:?} after its session was dropped");
    assert!(
        gone_after < SESSION,
        "a dropped session must close, not wait {SESSION:?} to expire (took {gone_after:?})"
    );

    reg_b.deregister().await?;
    within(
        "the watch to see exec-b deregister",
        WATCH,
        members.wait_for(|m| m.is_empty()),
    )
    .await??;
    assert!(b.client().check_stat("/executors/exec-b").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn an_id_held_by_another_live_session_is_refused_and_re_registering_updates(
) -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let a = connect(&zk.connect_string(), SESSION).await?;
    let b = connect(&zk.connect_string(), SESSION).await?;
    let first = executor("exec-1", 4);
    let _reg = Membership::new(&a).register(first.clone()).await?;

    let err = Membership::new(&b)
        .register(executor("exec-1", 8))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("exec-1") && message.contains("registered by another live process"),
        "{message}"
    );
    assert_eq!(
        Membership::new(&b).list().await?,
        std::slice::from_ref(&first),
        "the refused registration changed nothing"
    );

    // The same session registering again replaces its record, keeping the node its own.
    let updated = ExecutorInfo {
        slots: 8,
        busy: 2,
        ..first.clone()
    };
    let reg = Membership::new(&a).register(updated.clone()).await?;
    assert_eq!(reg.info(), &updated);
    assert_eq!(Membership::new(&b).list().await?, [updated]);
    let (_, stat) = b.client().get_data("/executors/exec-1").await?;
    assert_eq!(stat.ephemeral_owner, a.client().session_id().0);

    for bad in ["", "a/b"] {
        let err = Membership::new(&a)
            .register(executor(bad, 1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{bad:?}: {err:?}");
    }

    // Once the holder's session is gone the id is free again.
    drop((reg, _reg, a));
    let freed = executor("exec-1", 16);
    wait_until("exec-1 to go with its session", WATCH, || async {
        b.client()
            .check_stat("/executors/exec-1")
            .await
            .is_ok_and(|s| s.is_none())
    })
    .await?;
    let _now_b = Membership::new(&b).register(freed.clone()).await?;
    assert_eq!(Membership::new(&b).list().await?, [freed]);
    let (_, stat) = b.client().get_data("/executors/exec-1").await?;
    assert_eq!(stat.ephemeral_owner, b.client().session_id().0);
    Ok(())
}
