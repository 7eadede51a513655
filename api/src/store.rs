//! Durable job records: creating, reading, listing and resolving them.
//!
//! The fenced lifecycle updates are in [`lifecycle`](self::lifecycle) (their pure
//! decisions in [`decide`](self::decide)), the logs in [`logs`](self::logs), SQLite's
//! single group-committing writer in [`writer`](self::writer); all share [`Store`]
//! (`handle`), and the row type (`record`).

pub(crate) mod db;
mod decide;
mod handle;
mod lifecycle;
mod logs;
pub(crate) mod maintenance;
mod record;
mod statements;
mod writer;

pub(crate) use decide::CancelKind;
pub(crate) use handle::{Created, ListFilter, NewJob, Store, ENQUEUED_MESSAGE, MAX_CANDIDATES};
pub(crate) use record::{now_us, system_rfc3339};
