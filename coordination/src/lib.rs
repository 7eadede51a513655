//! drover's coordination layer: everything that talks to ZooKeeper.
//!
//! - [`Session`] — one ZooKeeper session with drover's identity, ACLs and a [`Health`] signal.
//! - [`Queue`] / [`Taken`] — the locking queue at `/job`, byte-compatible with kazoo's
//!   `LockingQueue`, with fencing tokens and a lost signal per taken entry.
//! - [`QueueView`] — the one watched picture of a queue that a process's takers share.
//!   Inside: `queue_core` (what a handle and its entries share), `holdings` (giving up a
//!   session's holdings in time), `view` (the picture itself, in zxid order).
//! - [`Election`] / [`Leadership`] — per-name leader election in kazoo's `Election` layout.
//! - [`Membership`] / [`Registration`] — executors' ephemeral `/executors/<id>` records.
//! - [`Control`] — operators' orders at `/control`: pauses and remote drains, watched.
//! - [`ZkSettings`] — hosts, chroot, session timeout, digest auth and ACLs.
//! - [`Lock`] — a try-lock: one ephemeral node, at most one session at a time.
//! - [`supervise`] / [`Role`] — a role attached to ZooKeeper: connect, build, run while
//!   the session lives, start over after a loss, until shutdown.
//! - [`LostSignal`] — what a holder watches to stop acting on something it no longer holds.

mod control;
mod election;
mod entry;
mod error;
mod holdings;
mod lock;
mod lost;
mod membership;
mod queue;
mod queue_core;
mod queue_view;
mod session;
mod settings;
mod supervisor;
mod taken;
mod view;

pub use control::Control;
pub use election::{Election, Leadership};
pub use entry::{is_entry_name, route_of};
pub use error::{Error, LostReason, Result, ZkError};
pub use lock::Lock;
pub use lost::LostSignal;
pub use membership::{ExecutorInfo, Membership, Registration};
pub use queue::{EntryState, Queue, QueueStats, RouteFilter};
pub use queue_view::QueueView;
pub use session::{Health, Session};
pub use settings::ZkSettings;
pub use supervisor::{supervise, Ended, Role, SessionEnd};
pub use taken::Taken;

/// The default queue path, the one kazoo users pass to `LockingQueue(client, "/job")`.
pub const DEFAULT_QUEUE_PATH: &str = drover_model::paths::QUEUE;
