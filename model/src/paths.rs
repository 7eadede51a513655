//! Where each role finds the others in ZooKeeper (below the configured chroot).
//!
//! ```text
//! /job/entries, /job/taken     the locking queue (kazoo's LockingQueue layout)
//! /executors/<id>              ephemeral: a live executor's record
//! /election/<name>/…           one election per distribution (kazoo's Election layout)
//! /distributions/<name>        persistent JSON: a distribution leader's status
//! /locks/reconcile             ephemeral: held by the one reconciler running
//! /cluster-id                  persistent: the cluster's id, for container labels
//! /control/pauses              persistent JSON: what is paused (drover pause)
//! /control/drains/<executor>   persistent JSON: a remote drain order (drover drain)
//! /control/cleanups/<job>      persistent JSON: a clean-up order (drover kill --cleanup)
//! ```

/// The default queue: the path kazoo users pass to `LockingQueue(client, "/job")`.
pub const QUEUE: &str = "/job";
/// Executors' ephemeral records, one child per live executor.
pub const EXECUTORS: &str = "/executors";
/// Elections, one child per distribution.
pub const ELECTIONS: &str = "/election";
/// Distribution leaders' status, one persistent JSON child per distribution, holding a
/// [`Distribution`](crate::Distribution).
pub const DISTRIBUTIONS: &str = "/distributions";
/// The reconciler's cluster-wide lock: one reconcile at a time, whichever API replica or
/// distributor asks.
pub const RECONCILE_LOCK: &str = "/locks/reconcile";
/// The cluster's id, written once by the first executor that finds it missing.
pub const CLUSTER_ID: &str = "/cluster-id";

/// The election of distribution `name`.
pub fn election(name: &str) -> String {
    format!("{ELECTIONS}/{name}")
}

/// Operators' orders: pauses and drains. Every role that acts on them watches this tree.
pub const CONTROL: &str = "/control";
/// What is paused, a JSON [`Pauses`](crate::Pauses); absent when nothing ever was.
pub const PAUSES: &str = "/control/pauses";
/// Remote drain orders, one persistent JSON [`DrainOrder`](crate::DrainOrder) child per
/// executor id.
pub const DRAINS: &str = "/control/drains";

/// Clean-up orders, one persistent JSON [`CleanupOrder`](crate::CleanupOrder) child per
/// job id.
pub const CLEANUPS: &str = "/control/cleanups";

/// The clean-up order of job `id`.
pub fn cleanup(id: &str) -> String {
    format!("{CLEANUPS}/{id}")
}

/// The drain order of executor `id`.
pub fn drain(id: &str) -> String {
    format!("{DRAINS}/{id}")
}
