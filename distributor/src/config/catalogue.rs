//! The action names a distribution may use: built in, or declared in the actions
//! directory (only each file's `name` is read).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use drover_actions::Builtin;
use drover_core::ConfigError;

/// Built-in action names, plus those declared in `actions_dir`.
pub(super) fn known_actions(actions_dir: Option<&Path>) -> Result<Known, ConfigError> {
    let mut names: BTreeSet<String> = Builtin::ALL.iter().map(|b| b.name().to_owned()).collect();
    if let Some(dir) = actions_dir {
        names.extend(action_names(dir)?);
    }
    Ok(Known {
        names,
        dir: actions_dir.map(Path::to_owned),
    })
}

/// The action names a distribution may use.
pub(super) struct Known {
    pub(super) names: BTreeSet<String>,
    pub(super) dir: Option<PathBuf>,
}

/// The `name` of every `*.toml` action file in `dir` (secrets are not read: a
/// distributor only needs the names).
fn action_names(dir: &Path) -> Result<Vec<String>, ConfigError> {
    let field = "distributor.actions_dir";
    let entries = std::fs::read_dir(dir).map_err(|e| {
        ConfigError::new(
            field.to_string(),
            format!("cannot read {}: {e}", dir.display()),
        )
    })?;
    let mut names = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "toml") || !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ConfigError::new(
                field.to_string(),
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            ConfigError::new(
                field.to_string(),
                format!("{} is not valid TOML: {}", path.display(), e.message()),
            )
        })?;
        match table.get("name").and_then(toml::Value::as_str) {
            Some(name) => names.push(name.to_owned()),
            None => {
                return Err(ConfigError::new(
                    field.to_string(),
                    format!("{} declares no `name`", path.display()),
                ))
            }
        }
    }
    Ok(names)
}
