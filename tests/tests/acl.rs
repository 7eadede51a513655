//! Digest auth, ACLs and chroot against a real ZooKeeper: what drover creates with
//! `acl = true` only drover's identity can change; everyone else can read it.

use std::fmt::Debug;
use std::time::{Duration, SystemTime};

use drover_coordination::{Election, Error, ExecutorInfo, Membership, Queue, Session, ZkSettings};
use drover_core::{JobId, Priority};
use drover_tests::{digest_id, init_test_tracing, python_script, within, Python, ZkServer};
use zookeeper_client::{Acl, Acls, Client, CreateMode, Permission};

/// 2 s: the client declares a connection lost after 2/5 of it, and the leader asserted on
/// below steps down on any disconnection, so a loaded machine must not stall that long.
const SESSION: Duration = Duration::from_secs(2);
const AUTH: &str = "drover:secret";
const KAZOO: Duration = Duration::from_secs(20);
const ELECTION: &str = "acl-test";
const EXECUTOR: &str = "exec-1";

fn secure(hosts: &str) -> ZkSettings {
    ZkSettings::new(hosts)
        .with_session_timeout(SESSION)
        .with_auth(AUTH, true)
}

/// The ACL drover puts on every node when `acl = true`, as the server stores it.
fn expected_acl() -> Vec<(Permission, String, String)> {
    vec![
        (
            Permission::ALL,
            "digest".into(),
            digest_id("drover", "secret"),
        ),
        (Permission::READ, "world".into(), "anyone".into()),
    ]
}

fn acl_of(acl: &[Acl]) -> Vec<(Permission, String, String)> {
    acl.iter()
        .map(|a| (a.permission(), a.scheme().to_owned(), a.id().to_owned()))
        .collect()
}

#[track_caller]
fn assert_no_auth<T: Debug>(who: &str, what: &str, result: Result<T, zookeeper_client::Error>) {
    match result {
        Err(zookeeper_client::Error::NoAuth) => {}
        other => panic!("{who}: {what} must fail with NoAuth, got {other:?}"),
    }
}

fn executor(id: &str) -> ExecutorInfo {
    ExecutorInfo {
        id: id.to_owned(),
        host: "node-a".to_owned(),
        slots: 4,
        busy: 1,
        version: "0.1.0-test".to_owned(),
        started: SystemTime::now(),
        actions: Default::default(),
        tags: Vec::new(),
        drain: None,
        heartbeat_ms: None,
        disk: None,
    }
}

/// Every write an intruder could try on drover's nodes; each must be refused.
async fn attack(who: &str, client: &Client, held: &str, free: &str, election_node: &str) {
    let open = Acls::anyone_all();
    let entry = format!("/job/entries/{free}");
    let held_entry = format!("/job/entries/{held}");
    let taken = format!("/job/taken/{held}");
    let executor = format!("/executors/{EXECUTOR}");

    let creates = [
        ("/job/entries/entry-000-", CreateMode::PersistentSequential),
        (&format!("/job/taken/{free}"), CreateMode::Ephemeral),
        (
            &format!("/election/{ELECTION}/00000000000000000000000000000000__lock__"),
            CreateMode::EphemeralSequential,
        ),
        ("/executors/intruder", CreateMode::Ephemeral),
        ("/job/intruder", CreateMode::Persistent),
        ("/election/intruder", CreateMode::Persistent),
    ];
    for (path, mode) in creates {
        let result = client
            .create(path, b"intruder", &mode.with_acls(open))
            .await;
        assert_no_auth(who, &format!("create {path}"), result);
    }
    for path in [&entry, &taken, &executor, election_node] {
        let result = client.set_data(path, b"intruder", None).await;
        assert_no_auth(who, &format!("set_data {path}"), result);
    }
    for path in [&entry, &held_entry, &taken, election_node, &executor] {
        let result = client.delete(path, None).await;
        assert_no_auth(who, &format!("delete {path}"), result);
    }
    for path in ["/job", "/job/entries", "/job/taken", "/executors"] {
        let result = client.set_acl(path, &open, None).await;
        assert_no_auth(who, &format!("set_acl {path}"), result);
    }
}

#[tokio::test]
async fn with_acls_only_drovers_identity_can_change_drovers_nodes() -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let hosts = zk.connect_string();
    let session = Session::connect(&secure(&hosts)).await?;
    let queue = Queue::open(&session, "/job").await?;
    let jobs: Vec<JobId> = (0..3).map(|_| JobId::new()).collect();
    let mut names = Vec::new();
    for job in &jobs {
        names.push(queue.put_job(*job, Priority::default()).await?);
    }
    let held = queue
        .take(Some(Duration::from_secs(5)))
        .await?
        .expect("an entry");
    assert_eq!(held.name(), names[0]);
    let election = Election::new(&session, ELECTION, "leader-1")?;
    let leadership = within("campaign", Duration::from_secs(5), election.campaign()).await??;
    let membership = Membership::new(&session);
    let info = executor(EXECUTOR);
    let registration = membership.register(info.clone()).await?;

    // Every node drover created carries its ACL: all for drover, read for the world.
    let election_node = leadership.node().to_owned();
    let admin = session.client();
    for path in [
        "/job".to_owned(),
        "/job/entries".to_owned(),
        "/job/taken".to_owned(),
        format!("/job/entries/{}", names[0]),
        format!("/job/taken/{}", names[0]),
        "/election".to_owned(),
        format!("/election/{ELECTION}"),
        election_node.clone(),
        "/executors".to_owned(),
        format!("/executors/{EXECUTOR}"),
    ] {
        let (acl, _) = admin.get_acl(&path).await?;
        assert_eq!(acl_of(&acl), expected_acl(), "ACL of {path}");
    }

    let anonymous = Client::connect(&hosts).await?;
    let wrong = Client::connector()
        .with_auth("digest", b"drover:wrong")
        .connect(&hosts)
        .await?;
    let other_user = Client::connector()
        .with_auth("digest", b"mallory:secret")
        .connect(&hosts)
        .await?;
    for (who, client) in [
        ("anonymous", &anonymous),
        ("wrong password", &wrong),
        ("other user", &other_user),
    ] {
        attack(who, client, &names[0], &names[1], &election_node).await;
        // The world may read: an entry's payload, an executor's record.
        let (data, _) = client
            .get_data(&format!("/job/entries/{}", names[1]))
            .await?;
        assert_eq!(data, jobs[1].to_string().as_bytes(), "{who} reads an entry");
        let (data, _) = client.get_data(&format!("/executors/{EXECUTOR}")).await?;
        let read: ExecutorInfo = serde_json::from_slice(&data)?;
        assert_eq!(read, info, "{who} reads an executor record");
        assert_eq!(client.list_children("/job/entries").await?.len(), 3);
    }

    // A drover with the wrong password is told clearly that it is not authorized.
    let impostor = Session::connect(&secure(&hosts).with_auth("drover:wrong", true)).await?;
    let impostor_queue = Queue::open(&impostor, "/job").await?;
    let err = impostor_queue
        .take(Some(Duration::from_secs(2)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotAuthorized { .. }), "{err:?}");
    assert!(err.to_string().contains("zookeeper.auth"), "{err}");
    let err = impostor_queue
        .put(b"intruder", Priority::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotAuthorized { .. }), "{err:?}");
    let err = Membership::new(&impostor)
        .register(executor("intruder"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotAuthorized { .. }), "{err:?}");

    // Everything drover created is intact.
    assert_eq!(queue.counts().await?, (3, 1));
    let (data, _) = admin.get_data(&format!("/job/taken/{}", names[0])).await?;
    assert_eq!(data, queue.taker_id().as_bytes());
    assert!(!held.lost().is_lost(), "the taken entry was not lost");
    assert!(leadership.is_leader(), "leadership was not lost");
    assert_eq!(election.contenders().await?, ["leader-1"]);
    assert_eq!(membership.list().await?, std::slice::from_ref(&info));

    // A second drover with the right credentials takes and consumes the next entry.
    let colleague = Session::connect(&secure(&hosts)).await?;
    let colleague_queue = Queue::open(&colleague, "/job").await?;
    let taken = colleague_queue
        .take(Some(Duration::from_secs(5)))
        .await?
        .expect("the free entry");
    assert_eq!(taken.name(), names[1]);
    assert_eq!(taken.job_id()?, jobs[1]);
    taken.consume().await?;

    // kazoo with the same credentials consumes too; without them it cannot even put.
    let out = within(
        "authenticated kazoo consume",
        KAZOO,
        Python::file(python_script("kazoo_queue.py"))?
            .args([hosts.as_str(), "consume", "/job", "1"])
            .env("KAZOO_AUTH", AUTH)
            .run(),
    )
    .await??;
    assert_eq!(out.trim(), jobs[2].to_string());
    let err = within(
        "anonymous kazoo put",
        KAZOO,
        Python::file(python_script("kazoo_queue.py"))?
            .args([hosts.as_str(), "put", "/job", "1"])
            .run(),
    )
    .await?
    .unwrap_err();
    assert!(err.to_string().contains("NoAuth"), "{err:#}");

    held.consume().await?;
    assert_eq!(queue.counts().await?, (0, 0));
    assert!(leadership.is_leader());
    leadership.resign().await;
    assert!(election.contenders().await?.is_empty());
    registration.deregister().await?;
    assert!(membership.list().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn acl_without_auth_is_refused_naming_the_setting() -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let settings = ZkSettings {
        acl: true,
        ..ZkSettings::new(zk.connect_string()).with_session_timeout(SESSION)
    };
    let err = Session::connect(&settings).await.unwrap_err();
    assert!(matches!(err, Error::InvalidSettings(_)), "{err:?}");
    assert!(err.to_string().contains("zookeeper.auth"), "{err}");
    let admin = Client::connect(&zk.connect_string()).await?;
    assert!(
        admin
            .list_children("/")
            .await?
            .iter()
            .all(|c| c == "zookeeper"),
        "a refused session creates nothing"
    );
    Ok(())
}

#[tokio::test]
async fn with_a_chroot_the_queue_lives_under_it() -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let hosts = zk.connect_string();
    let settings = ZkSettings::new(&hosts)
        .with_session_timeout(SESSION)
        .with_chroot("/drover");
    let session = Session::connect(&settings).await?;
    let queue = Queue::open(&session, "/job").await?;

    // The queue was opened before the put, so the waiting taker can only learn of the
    // entry from a watch event (the periodic resync is 30 s away): events must be
    // delivered and understood under the chroot too.
    let waiting = tokio::spawn({
        let queue = queue.clone();
        async move { queue.take(Some(Duration::from_secs(5))).await }
    });
    let job = JobId::new();
    let name = queue.put_job(job, Priority::default()).await?;
    let taken = within("a take woken by a put", Duration::from_secs(10), waiting)
        .await???
        .expect("the entry put while the taker waited");
    assert_eq!(taken.name(), name);

    let plain = Client::connect(&hosts).await?;
    let (data, _) = plain
        .get_data(&format!("/drover/job/entries/{name}"))
        .await?;
    assert_eq!(data, job.to_string().as_bytes());
    let (data, stat) = plain.get_data(&format!("/drover/job/taken/{name}")).await?;
    assert_eq!(data, queue.taker_id().as_bytes());
    assert_eq!(stat.ephemeral_owner, session.client().session_id().0);
    assert_eq!(
        plain.check_stat("/job").await?,
        None,
        "nothing outside the chroot"
    );

    let batch: Vec<String> = (0..2).map(|_| JobId::new().to_string()).collect();
    let names = queue.put_all(&batch, Priority::default()).await?;
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("entry-100-") && !n.contains('/')),
        "put_all returns bare entry names under a chroot too: {names:?}"
    );
    let mut listed = plain.list_children("/drover/job/entries").await?;
    listed.sort();
    let mut all = names.clone();
    all.push(name.clone());
    all.sort();
    assert_eq!(listed, all);
    taken.consume().await?;

    // kazoo with the same chroot in its connect string sees the same queue.
    let out = within(
        "kazoo consume under the chroot",
        KAZOO,
        Python::file(python_script("kazoo_queue.py"))?
            .args([format!("{hosts}/drover").as_str(), "consume", "/job", "2"])
            .run(),
    )
    .await??;
    assert_eq!(out.lines().collect::<Vec<_>>(), batch);
    assert_eq!(queue.counts().await?, (0, 0));

    // Elections and membership live under the chroot as well.
    let election = Election::new(&session, ELECTION, "leader-1")?;
    let leadership = within("campaign", Duration::from_secs(5), election.campaign()).await??;
    let node = leadership.node().to_owned();
    let (data, _) = plain.get_data(&format!("/drover{node}")).await?;
    assert_eq!(data, b"leader-1", "{node} under /drover");
    assert!(
        node.starts_with(&format!("/election/{ELECTION}/")),
        "{node}"
    );
    let membership = Membership::new(&session);
    let registration = membership.register(executor(EXECUTOR)).await?;
    assert!(plain
        .check_stat(&format!("/drover/executors/{EXECUTOR}"))
        .await?
        .is_some());
    assert_eq!(ids_outside_chroot(&plain).await?, ["zookeeper", "drover"]);
    registration.deregister().await?;
    leadership.resign().await;
    Ok(())
}

/// Top-level nodes, as a client without chroot sees them.
async fn ids_outside_chroot(client: &Client) -> anyhow::Result<Vec<String>> {
    let mut children = client.list_children("/").await?;
    children.sort_by_key(|c| c != "zookeeper");
    Ok(children)
}

#[tokio::test]
async fn a_chroot_with_acls_is_protected_too() -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let hosts = zk.connect_string();
    let session = Session::connect(&secure(&hosts).with_chroot("/tenant/drover")).await?;
    let queue = Queue::open(&session, "/job").await?;
    let name = queue.put(b"payload", Priority::default()).await?;

    // Read with drover's credentials: without ADMIN rights the server masks digests as `x`.
    let reader = Client::connector()
        .with_auth("digest", AUTH.as_bytes())
        .connect(&hosts)
        .await?;
    for path in [
        "/tenant".to_owned(),
        "/tenant/drover".to_owned(),
        "/tenant/drover/job/entries".to_owned(),
        format!("/tenant/drover/job/entries/{name}"),
    ] {
        let (acl, _) = reader.get_acl(&path).await?;
        assert_eq!(acl_of(&acl), expected_acl(), "ACL of {path}");
    }
    let plain = Client::connect(&hosts).await?;
    assert_no_auth(
        "anonymous",
        "create under the chroot",
        plain
            .create(
                "/tenant/drover/intruder",
                b"x",
                &CreateMode::Persistent.with_acls(Acls::anyone_all()),
            )
            .await,
    );
    // A second drover session finds the existing protected chroot and works in it.
    let again = Session::connect(&secure(&hosts).with_chroot("/tenant/drover")).await?;
    let queue = Queue::open(&again, "/job").await?;
    let taken = queue
        .take(Some(Duration::from_secs(5)))
        .await?
        .expect("the entry");
    assert_eq!(taken.data(), b"payload");
    taken.consume().await?;
    assert_eq!(queue.counts().await?, (0, 0));
    Ok(())
}
