//! What a parsed project is made of: its actions, their outputs and levels, and the
//! message helpers every part of the parser shares.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::error::{closest, Problem};
use crate::run::Run;

/// The name that asks for every action; no action may take it.
pub const RUN_ALL: &str = "run_all";

/// One action of the project, after matrix expansion.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Its name: the file's key, plus `-value` for each matrix value (`test-3.11-linux`).
    pub name: String,
    /// The file's key this action comes from (the same as `name` without a matrix).
    pub template: String,
    /// The line of its key in the file.
    pub line: usize,
    /// What it runs.
    pub run: Run,
    /// The actions it needs, by (expanded) name, in the order written.
    pub needs: Vec<String>,
    /// `config:` as JSON, for the container (never spliced into a command line).
    pub config: Option<serde_json::Value>,
    /// `params:` for a catalogue action, as JSON (`{}` when absent).
    pub params: serde_json::Value,
    /// Declared outputs by sensitivity level.
    pub outputs: Outputs,
    /// `timeout:` (`"10m"` or seconds).
    pub timeout: Option<Duration>,
    /// `cpus:` (cores, may be fractional).
    pub cpus: Option<f64>,
    /// `memory:` in bytes (`"512m"`).
    pub memory: Option<u64>,
    /// Tags an executor must carry to run it (`requires: [gpu]`).
    pub requires: BTreeSet<String>,
    /// This expansion's matrix values, by matrix key.
    pub matrix: BTreeMap<String, String>,
}

/// How sensitive an output is, as OpenSAFELY's levels say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Never leaves the secure server.
    HighlySensitive,
    /// May be released after review.
    ModeratelySensitive,
    /// May be released after lighter checks.
    MinimallySensitive,
}

impl Level {
    /// Every level, most sensitive first.
    pub const ALL: [Level; 3] = [
        Level::HighlySensitive,
        Level::ModeratelySensitive,
        Level::MinimallySensitive,
    ];

    /// Its key in a project file.
    #[must_use]
    pub fn key(self) -> &'static str {
        match self {
            Level::HighlySensitive => "highly_sensitive",
            Level::ModeratelySensitive => "moderately_sensitive",
            Level::MinimallySensitive => "minimally_sensitive",
        }
    }
}

/// Declared outputs: level → output name → path or glob, relative to the workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outputs(pub BTreeMap<Level, BTreeMap<String, String>>);

impl Outputs {
    /// Every declared path with its level.
    pub fn paths(&self) -> impl Iterator<Item = (Level, &str)> {
        self.0
            .iter()
            .flat_map(|(level, named)| named.values().map(move |path| (*level, path.as_str())))
    }
}

/// Distinct names joined for a message, the first ten of them.
pub(crate) fn list(names: &[&str]) -> String {
    let mut unique: Vec<&str> = Vec::new();
    for name in names {
        if !unique.contains(name) {
            unique.push(name);
        }
    }
    let shown: Vec<String> = unique.iter().take(10).map(|n| format!("`{n}`")).collect();
    let more = unique.len().saturating_sub(10);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

pub(crate) fn unknown_key(line: usize, key: &str, place: &str, known: &[&str]) -> Problem {
    let fix = match closest(key, known) {
        Some(near) => format!(
            "did you mean `{near}`? The keys allowed here are {}",
            list(known)
        ),
        None => format!("the keys allowed here are {}", list(known)),
    };
    Problem::new(line, format!("unknown key `{key}` {place}"), fix)
}
