//! What is wrong with a declared output pattern, or with a set of release rules.

/// Why a declared output path cannot be used. Its text reads
/// "the output path `X` <reason>"; [`PatternError::hint`] says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The path is the empty string.
    #[error("the output path `` is empty")]
    Empty,
    /// The path starts at `/` or at a drive (`c:/`).
    #[error("the output path `{path}` is absolute")]
    Absolute {
        /// The path as written.
        path: String,
    },
    /// The path separates its parts with `\`.
    #[error("the output path `{path}` uses `\\`")]
    Backslash {
        /// The path as written.
        path: String,
    },
    /// The path holds a control character (a newline, a tab, NUL, …).
    #[error("the output path `{path}` holds a control character ({character:?})")]
    Control {
        /// The path as written.
        path: String,
        /// The first control character found.
        character: char,
    },
    /// A part of the path is `..`.
    #[error("the output path `{path}` leaves the workspace with `..`")]
    Parent {
        /// The path as written.
        path: String,
    },
    /// A part of the path is `.`.
    #[error("the output path `{path}` has a `.` part")]
    CurrentDir {
        /// The path as written.
        path: String,
    },
    /// Two `/` in a row, or a `/` at the end.
    #[error("the output path `{path}` has an empty part (`//` or a trailing `/`)")]
    EmptyPart {
        /// The path as written.
        path: String,
    },
    /// `**`, which would match across directories.
    #[error("the output path `{path}` uses `**`, which would match across directories")]
    DoubleStar {
        /// The path as written.
        path: String,
    },
    /// `?`, `[` or `]`, glob syntax drover does not take.
    #[error("the output path `{path}` uses `{character}`, which is not a wildcard here")]
    Wildcard {
        /// The path as written.
        path: String,
        /// The character (`?`, `[` or `]`).
        character: char,
    },
    /// The path starts with `metadata/`.
    #[error(
        "the output path `{path}` is under `metadata/`, which is reserved for drover's own files"
    )]
    Reserved {
        /// The path as written.
        path: String,
    },
    /// The file name has no extension (`output/table`, `output/.env`, `output/table.`).
    #[error("the output path `{path}` has no file extension")]
    NoExtension {
        /// The path as written.
        path: String,
    },
}

impl PatternError {
    /// How to fix the path, in one sentence.
    pub fn hint(&self) -> &'static str {
        match self {
            Self::DoubleStar { .. } | Self::Wildcard { .. } => {
                "only `*` is a wildcard, and it matches within one directory, like `output/*.csv`"
            }
            Self::Reserved { .. } => "write the file somewhere else, like `output/run.log`",
            Self::NoExtension { .. } => {
                "name the file with its type, like `output/table.csv` (or `output/table/*.csv` for the files of a directory)"
            }
            Self::Empty
            | Self::Absolute { .. }
            | Self::Backslash { .. }
            | Self::Control { .. }
            | Self::Parent { .. }
            | Self::CurrentDir { .. }
            | Self::EmptyPart { .. } => {
                "write a path inside the workspace with `/`, like `output/table.csv`"
            }
        }
    }
}

/// Release rules that make no sense; each text names the setting and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// `max_bytes` is 0, which would withhold every file.
    #[error("release rule `max_bytes` is 0, which withholds every file; write a size in bytes, like 16777216 (16 MiB)")]
    ZeroMaxBytes,
    /// `max_csv_rows` is 0, which would withhold every CSV file with data.
    #[error("release rule `max_csv_rows` is 0, which withholds every CSV file with a row; write a number of rows, like 5000")]
    ZeroMaxRows,
    /// An entry of `extensions` is not of the form `.ext`.
    #[error("release rule `extensions` lists {entry:?}, which is not a file extension; write it with a leading dot and no `/`, like \".csv\"")]
    BadExtension {
        /// The entry as written.
        entry: String,
    },
    /// An entry of `forbidden_columns` is empty or blank.
    #[error("release rule `forbidden_columns` lists an empty name; remove it, or write a column name like \"patient_id\"")]
    EmptyColumn,
}
