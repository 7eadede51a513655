//! Declared outputs (#15): the patterns an action's files are claimed by, and the
//! checks a file passes before it may be released. Pure logic: the API streams
//! uploaded files through it, the executor matches a container's `/workspace` with it.
//!
//! - [`Pattern`]: a declared output path, checked ([`PatternError`] with a hint) and
//!   matched against files, `*` within one directory.
//! - [`did_you_mean`]: a hint for patterns that matched nothing, from the files no
//!   pattern matched.
//! - [`ReleaseRules`]: the release rules for `moderately_sensitive` files (size, type,
//!   CSV rows, forbidden columns), as a config table; [`RulesError`] when they make no
//!   sense.
//! - [`FileCheck`]: one file fed chunk by chunk, in bounded memory, to a
//!   [`FileReport`] (size, SHA-256, [`CsvStats`], why it is withheld).
//! - `csv`: the incremental CSV counter behind a report.
//! - [`snapshot`]: a project directory as a reproducible tar (the code a pipeline's
//!   jobs start from), `.git`, `.droverignore`d paths and declared outputs left out.

mod check;
mod csv;
mod error;
mod pattern;
mod release;
mod snapshot;
mod suggest;

pub use check::{CsvStats, FileCheck, FileReport};
pub use error::{PatternError, RulesError};
pub use pattern::Pattern;
pub use release::ReleaseRules;
pub use snapshot::{snapshot, Snapshot, SnapshotError};
pub use suggest::did_you_mean;

/// The largest code snapshot `drover run` and `drover local-run` make; the API may allow
/// less (`api.artifacts.max_code_bytes`) and then says so.
pub const MAX_SNAPSHOT_BYTES: u64 = 1 << 30;
