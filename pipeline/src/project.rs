//! The project file as a whole: its format version, its actions after matrix
//! expansion, and which actions a request for some of them runs.

use std::collections::HashMap;

use crate::action::{parse_action, Template};
use crate::error::{closest, Problem, ProjectError};
use crate::graph::{check_graph, closure};
use crate::matrix::expand;
use crate::types::{list, unknown_key};
pub use crate::types::{Action, Level, Outputs, RUN_ALL};
use crate::yaml::{self, Node, Value};

/// The newest format version this drover reads. From 5 on, `:latest` images are refused.
pub const LATEST_VERSION: u32 = 5;
/// The most actions a file may have after matrix expansion.
pub const MAX_ACTIONS: usize = 5_000;

const TOP_KEYS: &[&str] = &["version", "actions", "expectations"];

/// A parsed, checked project file.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    /// The format version the file declares (`3`, `4.0`, `5`).
    pub version: f64,
    /// The actions in file order, matrix actions expanded in place.
    pub actions: Vec<Action>,
    /// What the file does that works but should change (an old version, `:latest`).
    pub warnings: Vec<String>,
    index: HashMap<String, usize>,
}

impl Project {
    /// Parses and checks `text`, the contents of the file called `file` (used in errors).
    ///
    /// # Errors
    /// The first problem in file order, with its line, its action and how to fix it.
    pub fn parse(file: &str, text: &str) -> Result<Project, ProjectError> {
        parse_document(text).map_err(|problem| problem.at(file))
    }

    /// The action called `name` (an expanded name).
    #[must_use]
    pub fn action(&self, name: &str) -> Option<&Action> {
        self.index.get(name).map(|&i| &self.actions[i])
    }

    /// The actions a request for `requested` runs: each named action (a matrix action's
    /// file key names all its expansions; [`RUN_ALL`] names every action) and
    /// everything it needs, transitively, dependencies before their dependents.
    ///
    /// # Errors
    /// A name that is not an action of this file, with the names there are.
    pub fn resolve(&self, requested: &[String]) -> Result<Vec<&Action>, String> {
        let mut roots = Vec::new();
        for name in requested {
            if name == RUN_ALL {
                roots.extend(0..self.actions.len());
                continue;
            }
            let named = self.named(name);
            if named.is_empty() {
                let known: Vec<&str> = self.actions.iter().map(|a| a.template.as_str()).collect();
                let hint = closest(name, &known)
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                return Err(format!(
                    "the project has no action `{name}`{hint}: ask for one of {}, or `{RUN_ALL}`",
                    list(&known)
                ));
            }
            roots.extend(named);
        }
        Ok(closure(&self.actions, &self.index, &roots)
            .into_iter()
            .map(|i| &self.actions[i])
            .collect())
    }

    /// Indices of the actions `name` names: itself, or a matrix action's expansions.
    fn named(&self, name: &str) -> Vec<usize> {
        if let Some(&i) = self.index.get(name) {
            return vec![i];
        }
        (0..self.actions.len())
            .filter(|&i| self.actions[i].template == name)
            .collect()
    }
}

fn parse_document(text: &str) -> Result<Project, Problem> {
    let root = yaml::load(text).map_err(|err| Problem::new(err.line, err.message, err.fix))?;
    let Value::Map(entries) = &root.value else {
        return Err(Problem::new(
            root.line,
            format!(
                "a project file is a mapping with `version` and `actions`, but this one is {}",
                root.kind()
            ),
            "start the file with `version: 5` and an `actions:` mapping",
        ));
    };
    for (key, _) in entries {
        if !TOP_KEYS.contains(&key.text.as_str()) {
            return Err(unknown_key(
                key.line,
                &key.text,
                "at the top of the file",
                TOP_KEYS,
            ));
        }
    }
    let get = |name: &str| entries.iter().find(|(k, _)| k.text == name).map(|(_, v)| v);
    let version = parse_version(get("version"))?;
    let mut warnings = Vec::new();
    if version < f64::from(LATEST_VERSION) {
        warnings.push(format!(
            "the file uses format version {version}; version {LATEST_VERSION} is current (it refuses `:latest` images)"
        ));
    }
    if let Some(expectations) = get("expectations") {
        if version >= 4.0 {
            return Err(Problem::new(
                expectations.line,
                "`expectations` belongs to format versions before 4 (cohort-extractor's dummy data)",
                "remove the `expectations` section",
            ));
        }
    }
    let actions = get("actions").ok_or_else(|| {
        Problem::new(
            root.line,
            "the file has no `actions`",
            "add `actions:` with one entry per action, each with a `run:` line",
        )
    })?;
    let templates = parse_actions(actions)?;
    let actions = expand(
        &templates,
        version >= f64::from(LATEST_VERSION),
        &mut warnings,
    )?;
    if actions.len() > MAX_ACTIONS {
        return Err(Problem::new(
            root.line,
            format!(
                "the file expands to {} actions; at most {MAX_ACTIONS} are allowed",
                actions.len()
            ),
            "use fewer matrix values, or split the project",
        ));
    }
    let mut actions = actions;
    let index = actions
        .iter()
        .enumerate()
        .map(|(i, action)| (action.name.clone(), i))
        .collect();
    check_graph(&mut actions, &index, &templates, version)?;
    Ok(Project {
        version,
        actions,
        warnings,
        index,
    })
}

fn parse_version(node: Option<&Node>) -> Result<f64, Problem> {
    let fix =
        format!("write `version: {LATEST_VERSION}` (the current format) at the top of the file");
    let Some(node) = node else {
        return Err(Problem::new(1, "the file has no `version`", fix));
    };
    let version = node.as_str().and_then(|t| t.trim().parse::<f64>().ok());
    match version {
        Some(v) if (1.0..=f64::from(LATEST_VERSION)).contains(&v) => Ok(v),
        Some(v) if v > f64::from(LATEST_VERSION) => Err(Problem::new(
            node.line,
            format!("format version {v} is newer than this drover reads (up to {LATEST_VERSION})"),
            format!("upgrade drover, or write `version: {LATEST_VERSION}`"),
        )),
        _ => Err(Problem::new(
            node.line,
            format!("`version` must be a number from 1 to {LATEST_VERSION}"),
            fix,
        )),
    }
}

fn parse_actions(node: &Node) -> Result<Vec<Template>, Problem> {
    let Value::Map(entries) = &node.value else {
        return Err(Problem::new(
            node.line,
            format!(
                "`actions` must be a mapping of action names to actions, but it is {}",
                node.kind()
            ),
            "write each action as `name:` followed by its indented keys",
        ));
    };
    if entries.is_empty() {
        return Err(Problem::new(
            node.line,
            "`actions` is empty",
            "add at least one action with a `run:` line",
        ));
    }
    entries
        .iter()
        .map(|(key, body)| parse_action(key, body))
        .collect()
}
