//! One action's mapping, checked key by key, before its matrix is expanded.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use drover_core::names::check_name;
use drover_core::route::tag_set;

use crate::error::Problem;
use crate::types::{list, unknown_key, Level, Outputs, RUN_ALL};
use crate::yaml::{Key, Node, Value};

const ACTION_KEYS: &[&str] = &[
    "run",
    "action",
    "params",
    "needs",
    "config",
    "outputs",
    "timeout",
    "cpus",
    "memory",
    "requires",
    "matrix",
    "dummy_data_file",
];

/// The most combinations one matrix may expand to.
pub(crate) const MAX_COMBINATIONS: usize = 256;

/// A text and the line it is on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spanned {
    pub(crate) text: String,
    pub(crate) line: usize,
}

/// An action as written: its run line and outputs may still hold `{matrix.KEY}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Template {
    pub(crate) name: String,
    pub(crate) line: usize,
    pub(crate) run: Option<Spanned>,
    pub(crate) catalogue: Option<Spanned>,
    pub(crate) needs: Vec<Spanned>,
    pub(crate) config: Option<Node>,
    pub(crate) params: Option<Node>,
    pub(crate) outputs: BTreeMap<Level, BTreeMap<String, Spanned>>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) cpus: Option<f64>,
    pub(crate) memory: Option<u64>,
    pub(crate) requires: BTreeSet<String>,
    /// Matrix keys with their values, in file order.
    pub(crate) matrix: Vec<(String, Vec<String>)>,
}

impl Template {
    /// The outputs with `fill` applied to each path.
    pub(crate) fn outputs_with(&self, mut fill: impl FnMut(&str, usize) -> String) -> Outputs {
        Outputs(
            self.outputs
                .iter()
                .map(|(level, named)| {
                    let paths = named
                        .iter()
                        .map(|(name, path)| (name.clone(), fill(&path.text, path.line)))
                        .collect();
                    (*level, paths)
                })
                .collect(),
        )
    }
}

pub(crate) fn parse_action(key: &Key, body: &Node) -> Result<Template, Problem> {
    let name = key.text.as_str();
    parse_body(key, body).map_err(|problem| problem.in_action(name))
}

fn parse_body(key: &Key, body: &Node) -> Result<Template, Problem> {
    let name = key.text.clone();
    if name == RUN_ALL {
        return Err(Problem::new(
            key.line,
            format!("`{RUN_ALL}` is reserved: it asks for every action"),
            "rename the action",
        ));
    }
    check_name("action", &name).map_err(|e| Problem::new(key.line, e, "rename the action"))?;
    let Value::Map(entries) = &body.value else {
        return Err(Problem::new(
            key.line,
            format!(
                "an action is a mapping of keys such as `run` and `needs`, but this one is {}",
                body.kind()
            ),
            "indent the action's keys under its name, like `run: python:v2 analysis/model.py`",
        ));
    };
    let mut template = Template {
        name,
        line: key.line,
        run: None,
        catalogue: None,
        needs: Vec::new(),
        config: None,
        params: None,
        outputs: BTreeMap::new(),
        timeout: None,
        cpus: None,
        memory: None,
        requires: BTreeSet::new(),
        matrix: Vec::new(),
    };
    for (key, value) in entries {
        apply(&mut template, key, value)?;
    }
    match (&template.run, &template.catalogue) {
        (None, None) => Err(Problem::new(
            key.line,
            "the action has no `run`",
            "add `run: IMAGE:TAG ARGS…` (or `action: NAME` for an action of the executors' catalogue)",
        )),
        (Some(run), Some(_)) => Err(Problem::new(
            run.line,
            "the action has both `run` and `action`",
            "keep one: `run` for an image, `action` for an action of the executors' catalogue",
        )),
        (Some(_), None) if template.params.is_some() => Err(Problem::new(
            template.params.as_ref().map_or(key.line, |p| p.line),
            "`params` goes with `action:`; an image's action takes `config`",
            "rename `params` to `config`",
        )),
        _ => Ok(template),
    }
}

fn apply(template: &mut Template, key: &Key, value: &Node) -> Result<(), Problem> {
    match key.text.as_str() {
        "run" => template.run = Some(text(key, value)?),
        "action" => {
            let action = text(key, value)?;
            check_name("action", &action.text).map_err(|e| {
                Problem::new(
                    value.line,
                    e,
                    "name an action the executors offer (`drover executors`)",
                )
            })?;
            template.catalogue = Some(action);
        }
        "needs" => template.needs = needs(value)?,
        "config" => template.config = Some(mapping(key, value)?.clone()),
        "params" => template.params = Some(mapping(key, value)?.clone()),
        "outputs" => template.outputs = outputs(value)?,
        "timeout" => template.timeout = Some(timeout(key, value)?),
        "cpus" => template.cpus = Some(cpus(key, value)?),
        "memory" => {
            let size = text(key, value)?;
            let memory = drover_actions::parse_memory(&size.text)
                .map_err(|e| Problem::new(value.line, e, ""))?;
            template.memory = Some(memory);
        }
        "requires" => {
            let tags: Vec<Spanned> = names(key, value)?;
            template.requires = tag_set(tags.iter().map(|t| &t.text))
                .map_err(|e| Problem::new(value.line, e, "like `requires: [gpu]`"))?;
        }
        "matrix" => template.matrix = matrix(value)?,
        "dummy_data_file" => {
            text(key, value)?;
        }
        other => return Err(unknown_key(key.line, other, "in an action", ACTION_KEYS)),
    }
    Ok(())
}

fn text(key: &Key, value: &Node) -> Result<Spanned, Problem> {
    match value.as_str() {
        Some(text) if !value.is_null() => Ok(Spanned {
            text: text.to_owned(),
            line: value.line,
        }),
        _ => Err(Problem::new(
            value.line.max(key.line),
            format!(
                "`{}` must be a single value, but it is {}",
                key.text,
                value.kind()
            ),
            format!("write it on one line after `{}:`", key.text),
        )),
    }
}

fn mapping<'a>(key: &Key, value: &'a Node) -> Result<&'a Node, Problem> {
    match &value.value {
        Value::Map(_) => Ok(value),
        _ => Err(Problem::new(
            value.line,
            format!(
                "`{}` must be a mapping of names to values, but it is {}",
                key.text,
                value.kind()
            ),
            format!("indent `name: value` lines under `{}:`", key.text),
        )),
    }
}

/// A list of single values (`[a, b]` or one `- a` per line).
fn names(key: &Key, value: &Node) -> Result<Vec<Spanned>, Problem> {
    let fix = format!("write a list: `{}: [a, b]`", key.text);
    let Value::Seq(items) = &value.value else {
        return Err(Problem::new(
            value.line,
            format!("`{}` must be a list, but it is {}", key.text, value.kind()),
            fix,
        ));
    };
    items
        .iter()
        .map(|item| match item.as_str() {
            Some(text) if !item.is_null() => Ok(Spanned {
                text: text.to_owned(),
                line: item.line,
            }),
            _ => Err(Problem::new(
                item.line,
                format!("`{}` holds {}, not a name", key.text, item.kind()),
                fix.clone(),
            )),
        })
        .collect()
}

fn needs(value: &Node) -> Result<Vec<Spanned>, Problem> {
    let key = Key {
        text: "needs".into(),
        line: value.line,
    };
    if let Some(text) = value.as_str().filter(|_| !value.is_null()) {
        let names: Vec<&str> = text.split([' ', ',']).filter(|w| !w.is_empty()).collect();
        return Err(Problem::new(
            value.line,
            format!("`needs` must be a list, but it is the single value `{text}`"),
            format!("write `needs: [{}]`", names.join(", ")),
        ));
    }
    if value.is_null() {
        return Ok(Vec::new());
    }
    let needs = names(&key, value)?;
    for need in &needs {
        if need.text.contains([' ', ',']) {
            let names: Vec<&str> = need
                .text
                .split([' ', ','])
                .filter(|w| !w.is_empty())
                .collect();
            return Err(Problem::new(
                need.line,
                format!("`needs` lists `{}` as one name", need.text),
                format!(
                    "separate the names with commas: `needs: [{}]`",
                    names.join(", ")
                ),
            ));
        }
    }
    Ok(needs)
}

fn outputs(value: &Node) -> Result<BTreeMap<Level, BTreeMap<String, Spanned>>, Problem> {
    let levels: Vec<&str> = Level::ALL.iter().map(|l| l.key()).collect();
    let Value::Map(entries) = &value.value else {
        return Err(Problem::new(
            value.line,
            format!("`outputs` must map sensitivity levels to files, but it is {}", value.kind()),
            format!("write e.g. `outputs: {{moderately_sensitive: {{table: output/table.csv}}}}`; the levels are {}", list(&levels)),
        ));
    };
    let mut outputs = BTreeMap::new();
    for (key, named) in entries {
        let Some(level) = Level::ALL.into_iter().find(|l| l.key() == key.text) else {
            return Err(unknown_key(key.line, &key.text, "in `outputs`", &levels));
        };
        let Value::Map(files) = &named.value else {
            return Err(Problem::new(
                named.line,
                format!(
                    "`{}` must map output names to paths, but it is {}",
                    key.text,
                    named.kind()
                ),
                "write `name: path/to/file.csv` lines under it",
            ));
        };
        let mut paths = BTreeMap::new();
        for (name, path) in files {
            let path = text(name, path)?;
            check_output_path(&path)?;
            paths.insert(name.text.clone(), path);
        }
        outputs.insert(level, paths);
    }
    Ok(outputs)
}

fn check_output_path(path: &Spanned) -> Result<(), Problem> {
    drover_outputs::Pattern::parse(&path.text)
        .map(drop)
        .map_err(|e| Problem::new(path.line, e.to_string(), e.hint()))
}

fn timeout(key: &Key, value: &Node) -> Result<Duration, Problem> {
    let raw = text(key, value)?;
    let parsed = match raw.text.parse::<u64>() {
        Ok(seconds) => Ok(Duration::from_secs(seconds)),
        Err(_) => humantime::parse_duration(&raw.text).map_err(|e| e.to_string()),
    };
    match parsed {
        Ok(timeout) if !timeout.is_zero() => Ok(timeout),
        Ok(_) => Err(Problem::new(
            raw.line,
            "`timeout` is zero",
            "leave it out, or write e.g. `timeout: 30m`",
        )),
        Err(_) => Err(Problem::new(
            raw.line,
            format!("`timeout: {}` is not a duration", raw.text),
            "write seconds or a duration like `90s`, `30m` or `2h`",
        )),
    }
}

fn cpus(key: &Key, value: &Node) -> Result<f64, Problem> {
    let raw = text(key, value)?;
    match raw.text.parse::<f64>() {
        Ok(cpus) if cpus > 0.0 && cpus <= 1024.0 => Ok(cpus),
        _ => Err(Problem::new(
            raw.line,
            format!("`cpus: {}` is not a number of cores", raw.text),
            "write a positive number like `cpus: 2` or `cpus: 0.5`",
        )),
    }
}

fn matrix(value: &Node) -> Result<Vec<(String, Vec<String>)>, Problem> {
    let Value::Map(entries) = &value.value else {
        return Err(Problem::new(
            value.line,
            format!(
                "`matrix` must map names to lists of values, but it is {}",
                value.kind()
            ),
            "write e.g. `matrix: {python: [\"3.11\", \"3.12\"], os: [linux, mac]}`",
        ));
    };
    if entries.is_empty() {
        return Err(Problem::new(
            value.line,
            "`matrix` is empty",
            "list at least one key with its values, or remove `matrix`",
        ));
    }
    let mut matrix = Vec::new();
    let mut combinations = 1usize;
    for (key, values) in entries {
        check_name("matrix key", &key.text)
            .map_err(|e| Problem::new(key.line, e, "rename the key"))?;
        let values = names(key, values)?;
        if values.is_empty() {
            return Err(Problem::new(
                key.line,
                format!("the matrix key `{}` has no values", key.text),
                "list at least one value",
            ));
        }
        let mut texts = Vec::new();
        for v in values {
            check_name("matrix value", &v.text).map_err(|e| {
                Problem::new(v.line, e, "matrix values become part of action names")
            })?;
            if texts.contains(&v.text) {
                return Err(Problem::new(
                    v.line,
                    format!("the matrix value `{}` appears twice", v.text),
                    "remove one",
                ));
            }
            texts.push(v.text);
        }
        combinations = combinations.saturating_mul(texts.len());
        matrix.push((key.text.clone(), texts));
    }
    if combinations > MAX_COMBINATIONS {
        return Err(Problem::new(
            value.line,
            format!("the matrix expands to {combinations} actions; at most {MAX_COMBINATIONS} are allowed"),
            "use fewer values, or split the action",
        ));
    }
    Ok(matrix)
}
