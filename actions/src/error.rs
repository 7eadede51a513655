//! The catalogue's error type.

use std::path::PathBuf;

/// Why the action catalogue could not be loaded. Start-up stops on any of these.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An action file is malformed or invalid.
    #[error("{}{}: {reason}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// The line, when the problem has one.
        line: Option<usize>,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Two actions share a name.
    #[error("action {name:?} is declared twice: in {} and in {}; action names must be unique", first.display(), second.display())]
    Duplicate {
        /// The name.
        name: String,
        /// Where it was first declared (`<built-in>` for built-in actions).
        first: PathBuf,
        /// Where it was declared again.
        second: PathBuf,
    },
    /// The actions directory or a file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// What could not be read.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A secret's source is missing.
    #[error("{}: secret {variable} comes from {source_desc}, which is not available: {reason}", file.display())]
    Secret {
        /// The action file naming the secret.
        file: PathBuf,
        /// The variable the secret fills.
        variable: String,
        /// Where it should come from.
        source_desc: String,
        /// Why it is not available.
        reason: String,
    },
}
