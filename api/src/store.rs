//! Durable job records: creating, reading, listing and resolving them.
//!
//! The fenced lifecycle updates are in [`lifecycle`](self::lifecycle) (their pure
//! decisions in [`decide`](self::decide)), the logs in [`logs`](self::logs), SQLite's
//! single group-committing writer in [`writer`](self::writer), pipeline requests in
//! [`pipeline`](self::pipeline) (creating a request's jobs, settling a job's dependents
//! in the operation that ends it) and `requests` (reading them back); all share
//! [`Store`] (`handle`), and the row types (`record`); `attempts` reads a job's runs.

mod attempts;
pub(crate) mod db;
mod decide;
mod handle;
mod lifecycle;
mod logs;
pub(crate) mod maintenance;
pub(crate) mod outputs;
pub(crate) mod pipeline;
mod record;
pub(crate) mod requests;
mod statements;
mod writer;

pub(crate) use decide::CancelKind;
pub(crate) use handle::{Created, ListFilter, NewJob, Store, ENQUEUED_MESSAGE, MAX_CANDIDATES};
pub(crate) use record::{now_us, rfc3339 as rfc3339_micros, system_rfc3339, QueuedRecord};
pub(crate) use requests::RequestRow;
