//! Interoperability with Python kazoo, both directions, against a real ZooKeeper: the
//! locking queue (`LockingQueue('/job')`) and leader election (`Election`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_coordination::{Election, Queue, RouteFilter};
use drover_core::{JobId, Priority};
use drover_tests::{
    connect, init_test_tracing, python_script, wait_until, within, Python, ZkServer,
};

/// 2 s rather than 1.5 s: the client declares the connection lost after 2/5 of it, and a
/// drover leader steps down on any disconnection, so a loaded machine must not stall that long.
const SESSION: Duration = Duration::from_secs(2);
/// Generous: a kazoo child pays for a Python start-up and a session handshake.
const KAZOO: Duration = Duration::from_secs(20);
/// How long something must *not* happen to count as not happening.
const QUIET: Duration = Duration::from_secs(2);

fn prio(p: u16) -> Priority {
    Priority::new(p).unwrap()
}

/// Runs `kazoo_queue.py HOSTS CMD /job N [PRIORITY]` to completion; returns the printed lines.
async fn kazoo_queue(
    hosts: &str,
    cmd: &str,
    n: usize,
    priority: Option<u16>,
) -> anyhow::Result<Vec<String>> {
    let mut python =
        Python::file(python_script("kazoo_queue.py"))?.args([hosts, cmd, "/job", &n.to_string()]);
    if let Some(p) = priority {
        python = python.arg(p.to_string());
    }
    let out = within(&format!("kazoo {cmd} of {n}"), KAZOO, python.run()).await??;
    Ok(out.lines().map(str::to_owned).collect())
}

/// One kazoo `get(timeout)`: prints `none`, or the value and whether `consume` worked.
const KAZOO_GET_ONCE: &str = r#"
import sys
from kazoo.client import KazooClient
from kazoo.recipe.queue import LockingQueue
hosts, path, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
client = KazooClient(hosts=hosts)
client.start(timeout=10)
queue = LockingQueue(client, path)
value = queue.get(timeout=timeout)
if value is None:
    print("none")
else:
    print(value.decode())
    print("consumed" if queue.consume() else "not consumed")
client.stop()
client.close()
"#;

/// A kazoo taker that holds one entry until stdin closes, then consumes it.
const KAZOO_HOLD: &str = r#"
import sys
from kazoo.client import KazooClient
from kazoo.recipe.queue import LockingQueue
client = KazooClient(hosts=sys.argv[1])
client.start(timeout=10)
queue = LockingQueue(client, sys.argv[2])
value = queue.get(timeout=10)
if value is None:
    sys.exit("kazoo: nothing to take")
print(value.decode(), flush=True)
print(queue.id.decode(), flush=True)
sys.stdin.read()
print("consumed" if queue.consume() else "lost", flush=True)
client.stop()
client.close()
"#;

/// kazoo's own view of an election's contenders, as a JSON list.
const KAZOO_CONTENDERS: &str = r#"
import json, sys
from kazoo.client import KazooClient
client = KazooClient(hosts=sys.argv[1])
client.start(timeout=10)
print(json.dumps(client.Election(sys.argv[2]).contenders()))
client.stop()
client.close()
"#;

/// A kazoo consumer draining the queue until `get` times out, printing each value.
const KAZOO_DRAIN: &str = r#"
import sys
from kazoo.client import KazooClient
from kazoo.recipe.queue import LockingQueue
client = KazooClient(hosts=sys.argv[1])
client.start(timeout=10)
queue = LockingQueue(client, sys.argv[2])
print("ready", flush=True)
while True:
    value = queue.get(timeout=float(sys.argv[3]))
    if value is None:
        break
    if not queue.consume():
        sys.exit("kazoo: consume failed")
    print(value.decode(), flush=True)
client.stop()
client.close()
"#;

fn is_entry_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    parts.len() == 3
        && parts[0] == "entry"
        && parts[1].len() == 3
        && parts[2].len() == 10
        && parts[1..]
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

#[tokio::test]
async fn kazoo_puts_drover_takes_in_priority_order() -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let hosts = zk.connect_string();
    let session = connect(&hosts, SESSION).await?;
    // Open first: the entries reach drover through its watch, not an initial listing.
    let queue = Queue::open(&session, "/job").await?;

    let first_100 = kazoo_queue(&hosts, "put", 3, Some(100)).await?;
    let urgent_5 = kazoo_queue(&hosts, "put", 3, Some(5)).await?;
    let later_100 = kazoo_queue(&hosts, "put", 2, None).await?;
    let expected: Vec<String> = urgent_5
        .iter()
        .chain(&first_100)
        .chain(&later_100)
        .cloned()
        .collect();
    assert_eq!(
        expected.len(),
        8,
        "kazoo printed one UUID per put: {expected:?}"
    );
    assert_eq!(queue.counts().await?, (8, 0));
    wait_until(
        "drover's view to hold kazoo's 8 entries",
        Duration::from_secs(5),
        || async { queue.view_len() == 8 },
    )
    .await?;

    let mut got = Vec::new();
    let mut names = Vec::new();
    while let Some(taken) = queue.take(Some(Duration::from_secs(1))).await? {
        got.push(std::str::from_utf8(taken.data())?.to_owned());
        assert_eq!(
            taken.job_id()?.to_string(),
            got[got.len() - 1],
            "kazoo's payload is a job id"
        );
        names.push(taken.name().to_owned());
        taken.consume().await?;
    }
    assert_eq!(
        got, expected,
        "drover takes kazoo's entries lowest priority number first, FIFO within one"
    );
    assert!(
        names[..3].iter().all(|n| n.starts_with("entry-005-")),
        "{names:?}"
    );
    assert!(
        names[3..].iter().all(|n| n.starts_with("entry-100-")),
        "{names:?}"
    );
    assert!(names.iter().all(|n| is_entry_name(n)), "{names:?}");
    assert_eq!(
        queue.counts().await?,
        (0, 0),
        "drover consumed every kazoo entry"
    );
    Ok(())
}

#[tokio::test]
async fn drover_puts_kazoo_consumes_in_kazoos_layout() -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let hosts = zk.connect_string();
    let session = connect(&hosts, SESSION).await?;
    let queue = Queue::open(&session, "/job").await?;

    let singles: Vec<JobId> = (0..2).map(|_| JobId::new()).collect();
    let mut put = Vec::new();
    for job in &singles {
        put.push((
            queue.put_job(*job, Priority::default()).await?,
            job.to_string(),
        ));
    }
    let batch: Vec<String> = (0..3).map(|_| JobId::new().to_string()).collect();
    let batch_names = queue.put_all(&batch, prio(5)).await?;
    assert_eq!(batch_names.len(), 3);
    put.extend(batch_names.into_iter().zip(batch.iter().cloned()));

    // The exact layout kazoo expects: /job/entries/entry-PPP-NNNNNNNNNN, data = the UUID.
    let client = session.client();
    let mut listed = client.list_children("/job/entries").await?;
    listed.sort();
    let mut names: Vec<String> = put.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    assert_eq!(listed, names, "the names put returned are the nodes' names");
    for (name, job) in &put {
        assert!(is_entry_name(name), "{name} is not entry-PPP-NNNNNNNNNN");
        let (data, stat) = client.get_data(&format!("/job/entries/{name}")).await?;
        assert_eq!(
            std::str::from_utf8(&data)?,
            job,
            "{name} holds the bare UUID"
        );
        assert_eq!(stat.ephemeral_owner, 0, "entries are persistent");
    }
    assert!(
        put[..2].iter().all(|(n, _)| n.starts_with("entry-100-")),
        "{put:?}"
    );
    assert!(
        put[2..].iter().all(|(n, _)| n.starts_with("entry-005-")),
        "{put:?}"
    );
    assert!(client.list_children("/job/taken").await?.is_empty());

    let consumed = kazoo_queue(&hosts, "consume", 5, None).await?;
    let expected: Vec<String> = batch
        .iter()
        .cloned()
        .chain(singles.iter().map(JobId::to_string))
        .collect();
    assert_eq!(
        consumed, expected,
        "kazoo consumes drover's entries in priority order"
    );
    assert_eq!(
        queue.counts().await?,
        (0, 0),
        "kazoo consumed every drover entry"
    );
    wait_until(
        "drover's view to see kazoo consume everything",
        Duration::from_secs(5),
        || async { queue.view_len() == 0 },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn kazoo_consumes_routed_entries_and_drover_takes_only_the_routes_it_accepts(
) -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let hosts = zk.connect_string();
    let session = connect(&hosts, SESSION).await?;
    let queue = Queue::open(&session, "/job").await?;
    let cpu_only = Queue::open(&session, "/job")
        .await?
        .taking_only(RouteFilter::new(|r| !r.contains("gpu")));
    let (train, render, plain) = (JobId::new(), JobId::new(), JobId::new());
    let train_entry = queue
        .put_job_routed(train, Priority::default(), "train+gpu")
        .await?;
    assert!(
        train_entry.starts_with("entry-100-train+gpu-"),
        "{train_entry}"
    );
    queue
        .put_job_routed(render, Priority::default(), "render")
        .await?;
    queue.put_job(plain, prio(200)).await?;
    // A taker that refuses `gpu` routes takes the others in order, then nothing.
    let first = within("take", KAZOO, cpu_only.take(Some(QUIET)))
        .await??
        .expect("render");
    assert_eq!(first.job_id()?, render);
    let second = within("take", KAZOO, cpu_only.take(Some(QUIET)))
        .await??
        .expect("plain");
    assert_eq!(second.job_id()?, plain);
    assert!(within("take", KAZOO, cpu_only.take(Some(QUIET)))
        .await??
        .is_none());
    second.release().await?;
    first.consume().await?;
    // kazoo takes routed and plain entries alike, by name.
    let consumed = kazoo_queue(&hosts, "consume", 2, None).await?;
    assert_eq!(consumed, [train.to_string(), plain.to_string()]);
    assert_eq!(queue.counts().await?, (0, 0));
    Ok(())
}

#[tokio::test]
async fn an_entry_held_by_drover_is_not_taken_by_kazoo() -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let hosts = zk.connect_string();
    let session = connect(&hosts, SESSION).await?;
    let queue = Queue::open(&session, "/job").await?;
    let job = JobId::new();
    queue.put_job(job, Priority::default()).await?;
    let taken = queue
        .take(Some(Duration::from_secs(5)))
        .await?
        .expect("the entry");

    // drover's marker is what kazoo's would be: ephemeral, data = a 32-hex taker id.
    let taker_id = queue.taker_id();
    assert_eq!(taker_id.len(), 32, "{taker_id}");
    assert!(
        taker_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{taker_id}"
    );
    let (data, stat) = session
        .client()
        .get_data(&format!("/job/taken/{}", taken.name()))
        .await?;
    assert_eq!(std::str::from_utf8(&data)?, taker_id);
    assert_eq!(
        stat.ephemeral_owner,
        session.client().session_id().0,
        "the marker dies with drover's session"
    );
    assert_eq!(
        taken.token().get(),
        stat.czxid,
        "the fencing token is the marker's czxid"
    );

    let out = within(
        "kazoo get on a held entry",
        KAZOO,
        Python::source(KAZOO_GET_ONCE)?
            .args([&hosts, "/job", "1.5"])
            .run(),
    )
    .await??;
    assert_eq!(
        out.trim(),
        "none",
        "kazoo must not take an entry drover holds"
    );
    assert_eq!(
        queue.counts().await?,
        (1, 1),
        "kazoo left drover's entry and marker alone"
    );
    assert!(!taken.lost().is_lost());

    taken.release().await?;
    let out = within(
        "kazoo get on a released entry",
        KAZOO,
        Python::source(KAZOO_GET_ONCE)?
            .args([&hosts, "/job", "10"])
            .run(),
    )
    .await??;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [job.to_string().as_str(), "consumed"],
        "kazoo takes the entry once drover releases it"
    );
    assert_eq!(queue.counts().await?, (0, 0));
    Ok(())
}

#[tokio::test]
async fn an_entry_held_by_kazoo_is_not_taken_by_drover() -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let hosts = zk.connect_string();
    let session = connect(&hosts, SESSION).await?;
    let queue = Queue::open(&session, "/job").await?;
    let job = JobId::new();
    let name = queue.put_job(job, Priority::default()).await?;

    let mut kazoo = Python::source(KAZOO_HOLD)?.args([&hosts, "/job"]).spawn()?;
    assert_eq!(
        kazoo.expect_line("kazoo's take", KAZOO).await?,
        job.to_string()
    );
    let kazoo_id = kazoo.expect_line("kazoo's lock id", KAZOO).await?;
    let (data, _) = session
        .client()
        .get_data(&format!("/job/taken/{name}"))
        .await?;
    assert_eq!(
        std::str::from_utf8(&data)?,
        kazoo_id,
        "kazoo's marker holds its lock id"
    );

    wait_until(
        "drover's view to see kazoo's marker",
        Duration::from_secs(5),
        || async { queue.counts().await.is_ok_and(|c| c == (1, 1)) },
    )
    .await?;
    assert!(
        queue.take(Some(QUIET)).await?.is_none(),
        "drover must not take an entry kazoo holds"
    );

    kazoo.close_stdin();
    assert_eq!(
        kazoo.expect_line("kazoo's consume", KAZOO).await?,
        "consumed"
    );
    assert!(within("kazoo exit", KAZOO, kazoo.wait()).await??.success());
    assert_eq!(queue.counts().await?, (0, 0));
    Ok(())
}

#[tokio::test]
async fn kazoo_leads_first_then_drover() -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let hosts = zk.connect_string();
    let session = connect(&hosts, SESSION).await?;
    let election = Election::new(&session, "kazoo-first", "drover-1")?;
    assert_eq!(election.path(), "/election/kazoo-first");

    let mut kazoo = Python::file(python_script("kazoo_election.py"))?
        .args([&hosts, "/election/kazoo-first", "kazoo-1"])
        .spawn()?;
    assert_eq!(kazoo.expect_line("kazoo start", KAZOO).await?, "started");
    assert_eq!(
        kazoo.expect_line("kazoo's election", KAZOO).await?,
        "leader"
    );

    let campaign = election.campaign();
    tokio::pin!(campaign);
    assert!(
        tokio::time::timeout(QUIET, &mut campaign).await.is_err(),
        "drover must not be elected while kazoo leads"
    );
    assert_eq!(
        election.contenders().await?,
        ["kazoo-1", "drover-1"],
        "both contend, kazoo leads"
    );
    assert_eq!(election.leader().await?.as_deref(), Some("kazoo-1"));

    kazoo.close_stdin();
    let leadership = within(
        "drover's campaign after kazoo stepped down",
        Duration::from_secs(10),
        &mut campaign,
    )
    .await??;
    assert!(leadership.is_leader());
    assert!(within("kazoo exit", KAZOO, kazoo.wait()).await??.success());
    assert_eq!(election.contenders().await?, ["drover-1"]);
    leadership.resign().await;
    assert!(
        election.contenders().await?.is_empty(),
        "resign withdraws the node"
    );
    Ok(())
}

#[tokio::test]
async fn drover_leads_first_then_kazoo() -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let hosts = zk.connect_string();
    let session = connect(&hosts, SESSION).await?;
    let election = Election::new(&session, "drover-first", "drover-1")?;
    let leadership = within(
        "an uncontested campaign",
        Duration::from_secs(5),
        election.campaign(),
    )
    .await??;

    let mut kazoo = Python::file(python_script("kazoo_election.py"))?
        .args([&hosts, "/election/drover-first", "kazoo-1"])
        .spawn()?;
    assert_eq!(kazoo.expect_line("kazoo start", KAZOO).await?, "started");
    let joined = wait_until("kazoo to join the election", KAZOO, || async {
        election.contenders().await.is_ok_and(|c| c.len() == 2)
    })
    .await;
    if let Err(e) = joined {
        panic!(
            "{e}: contenders {:?}, drover's leadership lost: {:?}",
            election.contenders().await,
            leadership.lost().reason()
        );
    }
    assert_eq!(
        election.contenders().await?,
        ["drover-1", "kazoo-1"],
        "drover leads, kazoo waits"
    );
    let seen_by_kazoo = within(
        "kazoo contenders",
        KAZOO,
        Python::source(KAZOO_CONTENDERS)?
            .args([&hosts, "/election/drover-first"])
            .run(),
    )
    .await??;
    assert_eq!(
        seen_by_kazoo.trim(),
        r#"["drover-1", "kazoo-1"]"#,
        "kazoo sees the same order"
    );
    match tokio::time::timeout(QUIET, kazoo.next_line()).await {
        Err(_) => {}
        Ok(line) => panic!(
            "kazoo printed {line:?} while drover leads; stderr:\n{}",
            kazoo.stderr()
        ),
    }
    assert!(
        leadership.is_leader(),
        "a waiting kazoo contender does not disturb drover's leadership"
    );

    leadership.resign().await;
    assert_eq!(
        kazoo
            .expect_line(
                "kazoo's election after drover resigned",
                Duration::from_secs(10)
            )
            .await?,
        "leader"
    );
    assert_eq!(election.contenders().await?, ["kazoo-1"]);
    kazoo.close_stdin();
    assert!(within("kazoo exit", KAZOO, kazoo.wait()).await??.success());
    assert!(election.contenders().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn kazoo_and_drover_takers_draining_one_queue_take_each_entry_once() -> anyhow::Result<()> {
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let hosts = zk.connect_string();
    let mut kazoos = Vec::new();
    for _ in 0..2 {
        let mut kazoo = Python::source(KAZOO_DRAIN)?
            .args([&hosts, "/job", "3"])
            .spawn()?;
        assert_eq!(kazoo.expect_line("kazoo start", KAZOO).await?, "ready");
        kazoos.push(kazoo);
    }
    let producer = Queue::open(&connect(&hosts, SESSION).await?, "/job").await?;
    let taken_by_drover: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut takers = Vec::new();
    for _ in 0..2 {
        let queue = Queue::open(&connect(&hosts, SESSION).await?, "/job").await?;
        for _ in 0..2 {
            let (queue, seen) = (queue.clone(), taken_by_drover.clone());
            takers.push(tokio::spawn(async move {
                while let Some(taken) = queue.take(Some(Duration::from_secs(3))).await? {
                    let job = taken.job_id()?.to_string();
                    taken.consume().await?;
                    seen.lock().unwrap().push(job);
                }
                anyhow::Ok(())
            }));
        }
    }
    // Put while everyone waits, so kazoo and drover compete for the same entries.
    let mut all = HashSet::new();
    for round in 0..10u16 {
        let jobs: Vec<String> = (0..20).map(|_| JobId::new().to_string()).collect();
        producer.put_all(&jobs, prio(100 + round % 3)).await?;
        all.extend(jobs);
    }
    within("drover takers draining", Duration::from_secs(60), async {
        for taker in takers {
            taker.await??;
        }
        anyhow::Ok(())
    })
    .await??;
    let mut taken_by_kazoo = Vec::new();
    for kazoo in &mut kazoos {
        while let Some(line) = within("kazoo drain", KAZOO, kazoo.next_line()).await?? {
            taken_by_kazoo.push(line);
        }
        let status = within("kazoo exit", KAZOO, kazoo.wait()).await??;
        assert!(status.success(), "kazoo failed: {}", kazoo.stderr());
    }
    let taken_by_drover = taken_by_drover.lock().unwrap().clone();
    eprintln!(
        "kazoo took {}, drover took {} of {}",
        taken_by_kazoo.len(),
        taken_by_drover.len(),
        all.len()
    );
    let mut seen = HashSet::new();
    for job in taken_by_kazoo.iter().chain(&taken_by_drover) {
        assert!(seen.insert(job.clone()), "{job} was consumed twice");
        assert!(all.contains(job), "{job} was never put");
    }
    assert_eq!(seen.len(), all.len(), "every entry was consumed");
    assert!(
        !taken_by_kazoo.is_empty() && !taken_by_drover.is_empty(),
        "both sides took entries"
    );
    assert_eq!(producer.counts().await?, (0, 0));
    Ok(())
}

#[tokio::test]
async fn a_killed_kazoo_leader_is_replaced_by_drover_when_its_session_expires() -> anyhow::Result<()>
{
    init_test_tracing();
    let zk = ZkServer::start().await?;
    let hosts = zk.connect_string();
    let session = connect(&hosts, SESSION).await?;
    let election = Election::new(&session, "kazoo-dies", "drover-1")?;
    let mut kazoo = Python::file(python_script("kazoo_election.py"))?
        .args([&hosts, "/election/kazoo-dies", "kazoo-1"])
        .spawn()?;
    assert_eq!(kazoo.expect_line("kazoo start", KAZOO).await?, "started");
    assert_eq!(
        kazoo.expect_line("kazoo's election", KAZOO).await?,
        "leader"
    );
    let campaign = election.campaign();
    tokio::pin!(campaign);
    assert!(tokio::time::timeout(QUIET, &mut campaign).await.is_err());

    kazoo.signal(nix::sys::signal::Signal::SIGKILL)?;
    let killed = Instant::now();
    // kazoo_election.py asks for a 2 s session; the server may round it to its ticks.
    let leadership = within(
        "drover's campaign after the kazoo leader died",
        Duration::from_secs(10),
        &mut campaign,
    )
    .await??;
    let elapsed = killed.elapsed();
    eprintln!("drover elected {elapsed:?} after the kazoo leader was killed");
    assert!(leadership.is_leader());
    assert_eq!(election.contenders().await?, ["drover-1"]);
    kazoo.wait().await?;
    Ok(())
}
