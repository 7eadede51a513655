//! The queue on a three-node ZooKeeper ensemble that loses a node.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_coordination::{Error, Queue};
use drover_core::Priority;
use drover_tests::{connect, init_test_tracing, wait_until, within, Ensemble};

/// Long enough to ride out a leader election without losing the session.
const SESSION: Duration = Duration::from_secs(4);

type Consumed = Arc<Mutex<HashMap<String, usize>>>;

/// Takers that consume until told to stop, counting each payload they consumed.
fn spawn_takers(
    queues: &[Queue],
    per_queue: usize,
    consumed: &Consumed,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let mut tasks = Vec::new();
    for queue in queues {
        for _ in 0..per_queue {
            let (queue, consumed, stop) = (queue.clone(), consumed.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Some(taken) = queue.take(Some(Duration::from_millis(200))).await? else {
                        continue;
                    };
                    let payload = String::from_utf8(taken.data().to_vec())?;
                    match taken.consume().await {
                        Ok(()) => *consumed.lock().unwrap().entry(payload).or_default() += 1,
                        // lost during the outage: someone else will take it again
                        Err(Error::NotHeld { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                anyhow::Ok(())
            }));
        }
    }
    tasks
}

/// Puts `payload`; `Ok(false)` when the connection dropped mid-put, which leaves it
/// unknown whether the entry exists (retrying could duplicate it).
async fn put_once(queue: &Queue, payload: &str) -> anyhow::Result<bool> {
    match queue.put(payload.as_bytes(), Priority::default()).await {
        Ok(_) => Ok(true),
        Err(e) if e.is_transient() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[tokio::test]
async fn the_queue_works_with_one_of_three_nodes_killed() -> anyhow::Result<()> {
    init_test_tracing();
    let mut ensemble = Ensemble::start(3).await?;
    let hosts = ensemble.connect_string();
    let producer = Queue::open(&connect(&hosts, SESSION).await?, "/job").await?;
    let payloads: Vec<String> = (0..300).map(|i| format!("job-{i}")).collect();
    producer
        .put_all(&payloads[..150], Priority::default())
        .await?;

    let leader = ensemble.leader_index().await.expect("a leader");
    ensemble.kill(leader).await?;
    ensemble.wait_quorum(Duration::from_secs(15)).await?;
    eprintln!("killed node {leader} (the leader); quorum of two is back");

    let queues = vec![
        Queue::open(&connect(&hosts, SESSION).await?, "/job").await?,
        Queue::open(&connect(&hosts, SESSION).await?, "/job").await?,
    ];
    for payload in &payloads[150..] {
        assert!(
            put_once(&producer, payload).await?,
            "put {payload} with two nodes up"
        );
    }
    let consumed: Consumed = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = spawn_takers(&queues, 2, &consumed, &stop);
    wait_until(
        "all 300 entries consumed",
        Duration::from_secs(60),
        || async { consumed.lock().unwrap().len() == 300 },
    )
    .await?;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    let consumed = consumed.lock().unwrap().clone();
    assert!(
        consumed.values().all(|n| *n == 1),
        "each entry consumed once"
    );
    assert_eq!(
        consumed.keys().cloned().collect::<HashSet<_>>(),
        payloads.into_iter().collect()
    );
    assert_eq!(producer.counts().await?, (0, 0));
    Ok(())
}

#[tokio::test]
async fn the_queue_keeps_working_across_a_restart_of_the_zookeeper_leader() -> anyhow::Result<()> {
    init_test_tracing();
    let mut ensemble = Ensemble::start(3).await?;
    let hosts = ensemble.connect_string();
    let producer = Queue::open(&connect(&hosts, SESSION).await?, "/job").await?;
    let queues = vec![
        Queue::open(&connect(&hosts, SESSION).await?, "/job").await?,
        Queue::open(&connect(&hosts, SESSION).await?, "/job").await?,
    ];
    let consumed: Consumed = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = spawn_takers(&queues, 2, &consumed, &stop);

    // Produce steadily while the leader restarts in the middle.
    let (mut confirmed, mut uncertain) = (HashSet::new(), HashSet::new());
    for i in 0..400 {
        if i == 150 {
            let leader = ensemble.leader_index().await.expect("a leader");
            ensemble.stop(leader).await?;
            eprintln!("stopped the leader (node {leader})");
            ensemble.restart(leader).await?;
            ensemble.wait_quorum(Duration::from_secs(20)).await?;
            eprintln!(
                "node {leader} restarted; new leader is {:?}",
                ensemble.leader_index().await
            );
        }
        let payload = format!("job-{i}");
        if put_once(&producer, &payload).await? {
            confirmed.insert(payload);
        } else {
            uncertain.insert(payload);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (entries, _) = within(
        "counting entries",
        Duration::from_secs(20),
        producer.counts(),
    )
    .await??;
    wait_until(
        "every put entry consumed",
        Duration::from_secs(60),
        || async {
            let done = consumed.lock().unwrap().len();
            done >= confirmed.len()
                && producer
                    .counts()
                    .await
                    .map(|c| c == (0, 0))
                    .unwrap_or(false)
        },
    )
    .await?;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    let consumed = consumed.lock().unwrap().clone();
    eprintln!(
        "{} confirmed puts, {} uncertain, {} consumed, {entries} entries left when production ended",
        confirmed.len(),
        uncertain.len(),
        consumed.len()
    );
    let twice: Vec<_> = consumed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "consumed more than once: {twice:?}");
    let missing: Vec<_> = confirmed
        .iter()
        .filter(|p| !consumed.contains_key(*p))
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert!(consumed
        .keys()
        .all(|p| confirmed.contains(p) || uncertain.contains(p)));
    assert!(
        confirmed.len() >= 390,
        "the queue kept taking puts across the restart"
    );
    Ok(())
}
