//! The test's own hands on the queue: take one job's entry as an executor would.

use std::time::Duration;

use anyhow::{bail, Context};
use drover_coordination::Session;
use zookeeper_client::{Acls, CreateMode};

use crate::wait::wait_until;

/// A taken marker the test holds for one job's queue entry (at `/job`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The entry's name, `entry-PPP-NNNNNNNNNN`.
    pub entry: String,
    /// The fencing token: the marker's creation zxid.
    pub token: i64,
}

const ENTRIES: &str = "/job/entries";
const TAKEN: &str = "/job/taken";

/// The entry names whose payload is `job`, oldest first.
///
/// # Errors
/// ZooKeeper errors.
pub async fn entries_of(session: &Session, job: &str) -> anyhow::Result<Vec<String>> {
    let client = session.client();
    let mut names = client
        .list_children(ENTRIES)
        .await
        .context("failed to list the queue")?;
    names.sort();
    let mut found = Vec::new();
    for name in names {
        if let Ok((data, _)) = client.get_data(&format!("{ENTRIES}/{name}")).await {
            if String::from_utf8_lossy(&data).trim() == job {
                found.push(name);
            }
        }
    }
    Ok(found)
}

/// Takes `job`'s (first) queue entry on `session` as an executor would: creates its
/// ephemeral taken marker, whose creation zxid is the token. Waits up to 10 s for the
/// entry to appear.
///
/// # Errors
/// No entry for `job` in time; the entry is taken already; ZooKeeper errors.
pub async fn hold_entry(session: &Session, job: &str) -> anyhow::Result<Hold> {
    wait_until(
        &format!("a queue entry for job {job}"),
        Duration::from_secs(10),
        || async { entries_of(session, job).await.is_ok_and(|e| !e.is_empty()) },
    )
    .await?;
    let entry = entries_of(session, job).await?.remove(0);
    take_named(session, &entry).await
}

/// Takes the entry `entry` on `session`.
///
/// # Errors
/// The entry is taken already; ZooKeeper errors.
pub async fn take_named(session: &Session, entry: &str) -> anyhow::Result<Hold> {
    let options = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    let path = format!("{TAKEN}/{entry}");
    match session
        .client()
        .create(&path, b"test-hands", &options)
        .await
    {
        Ok((stat, _)) => Ok(Hold {
            entry: entry.to_owned(),
            token: stat.czxid,
        }),
        Err(zookeeper_client::Error::NodeExists) => bail!("queue entry {entry} is taken already"),
        Err(err) => Err(err).context(format!("failed to create {path}")),
    }
}

/// Deletes the marker of `hold` (as its holder's session ending would) and takes the same
/// entry again: a newer token of the same entry.
///
/// # Errors
/// ZooKeeper errors.
pub async fn retake(session: &Session, hold: &Hold) -> anyhow::Result<Hold> {
    release_hold(session, hold).await?;
    take_named(session, &hold.entry).await
}

/// Deletes the marker of `hold`, if it is still there.
///
/// # Errors
/// ZooKeeper errors.
pub async fn release_hold(session: &Session, hold: &Hold) -> anyhow::Result<()> {
    match session
        .client()
        .delete(&format!("{TAKEN}/{}", hold.entry), None)
        .await
    {
        Ok(()) | Err(zookeeper_client::Error::NoNode) => Ok(()),
        Err(err) => Err(err).context("failed to delete a taken marker"),
    }
}
