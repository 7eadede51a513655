//! The catalogue an executor loads once at start-up.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use tracing::info;

use crate::builtin::Builtin;
use crate::docker::DockerAction;
use crate::error::Error;
use crate::secret::{Secret, SecretSource};

/// What an action name resolves to.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Compiled into the executor.
    Builtin(Builtin),
    /// A container, with its secrets resolved.
    Docker(Box<DockerSpec>),
}

/// A Docker action with everything needed to run it.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerSpec {
    /// The declaration.
    pub action: DockerAction,
    /// Its secrets, read at load time.
    pub secrets: Vec<Secret>,
    /// The file it came from.
    pub file: PathBuf,
}

/// All actions an executor can run, by name.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    actions: BTreeMap<String, Action>,
}

impl Catalogue {
    /// Only the built-in actions.
    pub fn builtin() -> Catalogue {
        let actions = Builtin::ALL
            .iter()
            .map(|b| (b.name().to_owned(), Action::Builtin(*b)))
            .collect();
        Catalogue { actions }
    }

    /// The built-in actions plus every `*.toml` file in `dir` (when given); secrets come
    /// from `env` (the executor's environment, injected so tests need not mutate it).
    ///
    /// # Errors
    /// The first malformed file (with its line and what is wrong), a duplicate name, a
    /// secret that cannot be read, or an unreadable directory.
    pub fn load(dir: Option<&Path>, env: &HashMap<String, String>) -> Result<Catalogue, Error> {
        let mut catalogue = Catalogue::builtin();
        let Some(dir) = dir else { return Ok(catalogue) };
        let read_err = |source| Error::Read {
            path: dir.to_owned(),
            source,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read_err)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
            .collect();
        files.sort();
        let mut origin: HashMap<String, PathBuf> = HashMap::new();
        for file in files {
            let spec = load_file(&file, env)?;
            let name = spec.action.name.clone();
            if let Some(first) = origin.get(&name).cloned().or_else(|| {
                matches!(catalogue.actions.get(&name), Some(Action::Builtin(_)))
                    .then(|| PathBuf::from("<built-in>"))
            }) {
                return Err(Error::Duplicate {
                    name,
                    first,
                    second: file,
                });
            }
            origin.insert(name.clone(), file);
            catalogue
                .actions
                .insert(name, Action::Docker(Box::new(spec)));
        }
        info!(actions = ?catalogue.names(), dir = %dir.display(), "action catalogue loaded");
        Ok(catalogue)
    }

    /// Adds `name` when the catalogue has no action by that name: a `drover local-run`
    /// without an action file for `container` runs any image a project names (on one's
    /// own machine; a cluster's `container.toml` says which images it allows).
    pub fn or_insert(&mut self, name: &str, image_patterns: &[&str]) {
        if self.actions.contains_key(name) {
            return;
        }
        let action = DockerAction {
            name: name.to_owned(),
            image: String::new(),
            images: image_patterns.iter().map(|p| (*p).to_owned()).collect(),
            entrypoint: None,
            command: Vec::new(),
            env: BTreeMap::new(),
            workdir: None,
            timeout: None,
            cpus: None,
            memory: None,
            network: "none".to_owned(),
            pull: crate::docker::PullPolicy::IfNotPresent,
            user: None,
            read_only: false,
            requires: Vec::new(),
            secrets: BTreeMap::new(),
        };
        let spec = DockerSpec {
            action,
            secrets: Vec::new(),
            file: PathBuf::from(format!("<built-in {name}>")),
        };
        self.actions
            .insert(name.to_owned(), Action::Docker(Box::new(spec)));
    }

    /// The action called `name`.
    pub fn get(&self, name: &str) -> Option<&Action> {
        self.actions.get(name)
    }

    /// Every action name, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.actions.keys().map(String::as_str).collect()
    }

    /// The images of its Docker actions, each once, sorted.
    pub fn docker_images(&self) -> Vec<String> {
        let images: std::collections::BTreeSet<String> = self
            .actions
            .values()
            .filter_map(|action| match action {
                Action::Docker(spec) => Some(spec.action.image.clone()),
                Action::Builtin(_) => None,
            })
            .collect();
        images.into_iter().collect()
    }

    /// Every action with the tags its file requires (none for built-in actions), as an
    /// executor publishes them in its membership record.
    pub fn requirements(&self) -> BTreeMap<String, Vec<String>> {
        self.actions
            .iter()
            .map(|(name, action)| {
                let needs = match action {
                    Action::Builtin(_) => Vec::new(),
                    Action::Docker(spec) => drover_core::route::tag_set(&spec.action.requires)
                        .map(|set| set.into_iter().collect())
                        .unwrap_or_default(),
                };
                (name.clone(), needs)
            })
            .collect()
    }
}

fn load_file(file: &Path, env: &HashMap<String, String>) -> Result<DockerSpec, Error> {
    let text = std::fs::read_to_string(file).map_err(|source| Error::Read {
        path: file.to_owned(),
        source,
    })?;
    let invalid = |line: Option<usize>, reason: String| Error::Invalid {
        file: file.to_owned(),
        line,
        reason,
    };
    let action: DockerAction = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        invalid(line, e.message().to_owned())
    })?;
    action.validate().map_err(|reason| invalid(None, reason))?;
    let base = file.parent().unwrap_or(Path::new("."));
    let mut secrets = Vec::with_capacity(action.secrets.len());
    for (variable, source) in &action.secrets {
        let value = source.resolve(env, base).map_err(|reason| Error::Secret {
            file: file.to_owned(),
            variable: variable.clone(),
            source_desc: source.describe(),
            reason,
        })?;
        SecretSource::check_value(&value).map_err(|reason| {
            let reason = format!(
                "secret {variable} (from {}) cannot be redacted: {reason}",
                source.describe()
            );
            invalid(secret_line(&text, variable), reason)
        })?;
        secrets.push(SecretSource::into_secret(variable, value));
    }
    Ok(DockerSpec {
        action,
        secrets,
        file: file.to_owned(),
    })
}

/// The line of `text` that declares secret `variable`.
fn secret_line(text: &str, variable: &str) -> Option<usize> {
    #[derive(serde::Deserialize)]
    struct Declared {
        #[serde(default)]
        secrets: BTreeMap<toml::Spanned<String>, serde::de::IgnoredAny>,
    }
    let declared: Declared = toml::from_str(text).ok()?;
    let key = declared.secrets.keys().find(|k| k.get_ref() == variable)?;
    let start = key.span().start.min(text.len());
    Some(text[..start].matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn builtins_and_files_load() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "echo.toml",
            "name = \"echo\"\nimage = \"drover/busybox:latest\"\ncommand = [\"echo\", \"hi\"]\nmemory = \"64m\"\ntimeout = \"30s\"\nrequires = [\"gpu\", \"db\"]\n[secrets]\nTOKEN = { env = \"ECHO_TOKEN\" }\n",
        );
        write(dir.path(), "notes.txt", "ignored");
        let env = HashMap::from([("ECHO_TOKEN".to_owned(), "s3cret-value".to_owned())]);
        let catalogue = Catalogue::load(Some(dir.path()), &env).unwrap();
        assert_eq!(catalogue.names(), ["cleanup_jobs", "echo", "noop", "sleep"]);
        let Some(Action::Docker(spec)) = catalogue.get("echo") else {
            panic!("echo is a docker action")
        };
        assert_eq!(spec.action.memory, Some(64 << 20));
        assert_eq!(spec.action.network, "none");
        assert_eq!(spec.secrets[0].value(), "s3cret-value");
        let requirements = catalogue.requirements();
        assert_eq!(requirements["echo"], ["db", "gpu"]);
        assert!(requirements["noop"].is_empty());
        assert!(
            !format!("{catalogue:?}").contains("s3cret-value"),
            "secrets never show in Debug"
        );
    }

    #[test]
    fn malformed_files_name_the_file_line_and_problem() {
        let cases = [
            (
                "name = \"a\"\nimage = \"x\"\nmemroy = \"1g\"\n",
                ":3",
                "unknown field `memroy`",
            ),
            (
                "name = \"a\"\nimage = \"x\"\ncpus = \"lots\"\n",
                ":3",
                "invalid type",
            ),
            ("name = \"a\"\n\nimage = \n", ":3", ""),
            ("image = \"x\"\n", "", "missing field `name`"),
            ("name = \"a b\"\nimage = \"x\"\n", "", "name"),
            (
                "name = \"a\"\nimage = \"x\"\nrequires = [\"g p u\"]\n",
                "",
                "requires: tag name \"g p u\" contains ' '",
            ),
            ("name = \"a\"\nimage = \"x\"\nmemory = \"1m\"\n", "", "4m"),
            (
                "name = \"a\"\nimage = \"x\"\nmemory = \"12x\"\n",
                ":3",
                "memory size",
            ),
            (
                "name = \"a\"\nimage = \"x\"\n[secrets]\nK = { env = \"MISSING\" }\n",
                "",
                "set MISSING",
            ),
        ];
        for (text, line, reason) in cases {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), "bad.toml", text);
            let err = Catalogue::load(Some(dir.path()), &HashMap::new())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("bad.toml{line}")),
                "{err:?} should point at bad.toml{line}"
            );
            assert!(err.contains(reason), "{err:?} should say {reason:?}");
        }
    }

    #[test]
    fn a_secret_too_short_to_redact_names_the_file_line_and_secret() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "short.toml",
            "name = \"short\"\nimage = \"x\"\n\n[secrets]\nLONG = { env = \"LONG\" }\nPIN = { env = \"PIN\" }\n",
        );
        let env = HashMap::from([
            ("LONG".to_owned(), "long enough".to_owned()),
            ("PIN".to_owned(), "123".to_owned()),
        ]);
        let err = Catalogue::load(Some(dir.path()), &env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("short.toml:6: secret PIN (from environment variable PIN)")
                && err.contains("3 bytes")
                && err.contains("use a longer value"),
            "{err}"
        );
        assert!(!err.contains("123"), "never the value: {err}");
        // a table of its own
        write(
            dir.path(),
            "short.toml",
            "name = \"short\"\nimage = \"x\"\n[secrets.PIN]\nenv = \"PIN\"\n",
        );
        let err = Catalogue::load(Some(dir.path()), &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("short.toml:3: secret PIN"), "{err}");
    }

    #[test]
    fn duplicate_names_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.toml", "name = \"dup\"\nimage = \"x\"\n");
        write(dir.path(), "b.toml", "name = \"dup\"\nimage = \"y\"\n");
        let err = Catalogue::load(Some(dir.path()), &HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("declared twice") && err.contains("a.toml") && err.contains("b.toml"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "sleep.toml",
            "name = \"sleep\"\nimage = \"x\"\n",
        );
        let err = Catalogue::load(Some(dir.path()), &HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("<built-in>"), "{err}");
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let err =
            Catalogue::load(Some(Path::new("/nonexistent/actions")), &HashMap::new()).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/actions"));
    }
}
