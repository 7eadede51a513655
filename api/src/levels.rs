//! Output sensitivity levels as tokens see them: each token reads outputs up to a level.

use serde::{Deserialize, Serialize};

/// The most sensitive output level a token may read (`level` of `[[api.tokens]]`),
/// ordered from least to most sensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadLevel {
    /// Released after light checks.
    MinimallySensitive,
    /// Released after the release checks.
    ModeratelySensitive,
    /// Never leaves the secure level.
    HighlySensitive,
}

impl ReadLevel {
    /// Its name, as in project files.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ReadLevel::MinimallySensitive => "minimally_sensitive",
            ReadLevel::ModeratelySensitive => "moderately_sensitive",
            ReadLevel::HighlySensitive => "highly_sensitive",
        }
    }

    /// The level named `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<ReadLevel> {
        [
            ReadLevel::MinimallySensitive,
            ReadLevel::ModeratelySensitive,
            ReadLevel::HighlySensitive,
        ]
        .into_iter()
        .find(|l| l.as_str() == name)
    }
}
