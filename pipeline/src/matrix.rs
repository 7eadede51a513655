//! Matrix expansion (JobServ's `loop-on`): one action per combination of values,
//! named `action-value-value` in the order the keys are written, with each
//! `{matrix.KEY}` in `run`, `config`, `params` and output paths replaced.

use std::collections::{BTreeMap, HashMap};

use crate::action::Template;
use crate::error::Problem;
use crate::run::{parse_run, Run};
use crate::types::{list, Action, Outputs};

/// Every template's actions, in file order.
pub(crate) fn expand(
    templates: &[Template],
    refuse_latest: bool,
    warnings: &mut Vec<String>,
) -> Result<Vec<Action>, Problem> {
    let mut actions: Vec<Action> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for template in templates {
        for values in combinations(&template.matrix) {
            let action = instantiate(template, values, refuse_latest, warnings)
                .map_err(|problem| problem.in_action(&template.name))?;
            if let Some(&line) = seen.get(&action.name) {
                return Err(Problem::new(
                    template.line,
                    format!(
                        "the name `{}` is taken twice (also on line {line})",
                        action.name
                    ),
                    "rename one action: matrix actions are named `action-value-value`",
                )
                .in_action(&template.name));
            }
            seen.insert(action.name.clone(), template.line);
            actions.push(action);
        }
    }
    Ok(actions)
}

/// Each combination as (key, value) pairs in key order; one empty combination when
/// there is no matrix.
fn combinations(matrix: &[(String, Vec<String>)]) -> Vec<Vec<(String, String)>> {
    let mut all = vec![Vec::new()];
    for (key, values) in matrix {
        all = all
            .into_iter()
            .flat_map(|combination: Vec<(String, String)>| {
                values.iter().map(move |value| {
                    let mut next = combination.clone();
                    next.push((key.clone(), value.clone()));
                    next
                })
            })
            .collect();
    }
    all
}

fn instantiate(
    template: &Template,
    values: Vec<(String, String)>,
    refuse_latest: bool,
    warnings: &mut Vec<String>,
) -> Result<Action, Problem> {
    let mut name = template.name.clone();
    for (_, value) in &values {
        name.push('-');
        name.push_str(value);
    }
    let matrix: BTreeMap<String, String> = values.into_iter().collect();
    let keys: Vec<&str> = template.matrix.iter().map(|(k, _)| k.as_str()).collect();
    let fill = |text: &str, line: usize| fill(text, &matrix, &keys, line);
    // parse_action made sure an action has exactly one of `run` and `action`.
    let run = match &template.run {
        Some(run) => {
            let raw = fill(&run.text, run.line)?;
            let command = parse_run(&raw, !refuse_latest)
                .map_err(|(problem, fix)| Problem::new(run.line, problem, fix))?;
            if command.tag() == "latest" {
                warnings.push(format!(
                    "action `{name}` runs `{}`: `latest` changes under a rerun; format version 5 refuses it",
                    command.image
                ));
            }
            Run::Image(command)
        }
        None => Run::Catalogue(
            template
                .catalogue
                .as_ref()
                .map(|action| action.text.clone())
                .unwrap_or_default(),
        ),
    };
    let json = |node: &Option<crate::yaml::Node>| -> Result<Option<serde_json::Value>, Problem> {
        node.as_ref()
            .map(|node| fill_json(node.to_json(), &|s| fill(s, node.line)))
            .transpose()
    };
    let config = json(&template.config)?;
    let params = json(&template.params)?.unwrap_or_else(|| serde_json::json!({}));
    let outputs = filled_outputs(template, &name, &fill)?;
    Ok(Action {
        name,
        template: template.name.clone(),
        line: template.line,
        run,
        needs: template.needs.iter().map(|n| n.text.clone()).collect(),
        config,
        params,
        outputs,
        timeout: template.timeout,
        cpus: template.cpus,
        memory: template.memory,
        requires: template.requires.clone(),
        matrix,
    })
}

/// The template's outputs with this combination's values put in, each checked again
/// once filled: a value such as `..` must not lead out of /workspace.
fn filled_outputs(
    template: &Template,
    name: &str,
    fill: &impl Fn(&str, usize) -> Result<String, Problem>,
) -> Result<Outputs, Problem> {
    let mut bad = None;
    let outputs = template.outputs_with(|path, line| {
        let filled = fill(path, line).and_then(|text| {
            drover_outputs::Pattern::parse(&text)
                .map(|_| text)
                .map_err(|e| {
                    let problem = format!("{e} once `{name}`'s matrix values are put in");
                    Problem::new(line, problem, e.hint())
                })
        });
        filled.unwrap_or_else(|problem| {
            bad.get_or_insert(problem);
            String::new()
        })
    });
    match bad {
        Some(problem) => Err(problem),
        None => Ok(outputs),
    }
}

/// `text` with each `{matrix.KEY}` replaced by this combination's value.
fn fill(
    text: &str,
    matrix: &BTreeMap<String, String>,
    keys: &[&str],
    line: usize,
) -> Result<String, Problem> {
    const OPEN: &str = "{matrix.";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find('}') else {
            return Err(Problem::new(
                line,
                format!("`{}` is not closed", &rest[start..]),
                "write `{matrix.KEY}`",
            ));
        };
        let key = &after[..end];
        let Some(value) = matrix.get(key) else {
            let fix = if keys.is_empty() {
                "add a `matrix:` to the action, or remove the reference".to_owned()
            } else {
                format!("the action's matrix keys are {}", list(keys))
            };
            return Err(Problem::new(
                line,
                format!("`{{matrix.{key}}}` names no matrix key of this action"),
                fix,
            ));
        };
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn fill_json(
    value: serde_json::Value,
    fill: &dyn Fn(&str) -> Result<String, Problem>,
) -> Result<serde_json::Value, Problem> {
    use serde_json::Value as J;
    Ok(match value {
        J::String(s) => J::String(fill(&s)?),
        J::Array(items) => J::Array(
            items
                .into_iter()
                .map(|v| fill_json(v, fill))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(map) => J::Object(
            map.into_iter()
                .map(|(k, v)| Ok((k, fill_json(v, fill)?)))
                .collect::<Result<_, Problem>>()?,
        ),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations_follow_key_order() {
        let matrix = vec![
            ("py".to_owned(), vec!["3.11".to_owned(), "3.12".to_owned()]),
            (
                "os".to_owned(),
                vec!["linux".to_owned(), "mac".to_owned(), "win".to_owned()],
            ),
        ];
        let all = combinations(&matrix);
        assert_eq!(all.len(), 6);
        assert_eq!(
            all[1],
            vec![("py".into(), "3.11".into()), ("os".into(), "mac".into())]
        );
        assert_eq!(combinations(&[]), vec![Vec::<(String, String)>::new()]);
    }

    #[test]
    fn references_are_filled_or_refused() {
        let matrix: BTreeMap<String, String> = [("py".to_owned(), "3.12".to_owned())].into();
        assert_eq!(
            fill("python:{matrix.py} x", &matrix, &["py"], 1).unwrap(),
            "python:3.12 x"
        );
        let err = fill("{matrix.os}", &matrix, &["py"], 4).unwrap_err();
        assert_eq!(err.line, 4);
        assert!(
            err.problem.contains("names no matrix key"),
            "{}",
            err.problem
        );
        assert!(fill("{matrix.py", &matrix, &["py"], 1).is_err());
    }
}
