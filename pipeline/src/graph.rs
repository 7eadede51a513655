//! The `needs` graph: names resolved (a matrix action's key names all its
//! expansions), cycles named, commands and output paths unique, and the order in
//! which a request's actions can run.

use std::collections::HashMap;

use crate::action::Template;
use crate::error::{closest, Problem};
use crate::run::Run;
use crate::types::{list, Action};

/// The most cycles one error lists.
const SHOWN_CYCLES: usize = 5;

/// Resolves every action's `needs` in place and checks the whole graph.
pub(crate) fn check_graph(
    actions: &mut [Action],
    index: &HashMap<String, usize>,
    templates: &[Template],
    version: f64,
) -> Result<(), Problem> {
    let lines: HashMap<&str, &Template> = templates.iter().map(|t| (t.name.as_str(), t)).collect();
    for i in 0..actions.len() {
        let template = lines[actions[i].template.as_str()];
        let mut resolved = Vec::new();
        for need in &template.needs {
            let named = named(actions, index, &need.text);
            if named.is_empty() {
                let known: Vec<&str> = templates.iter().map(|t| t.name.as_str()).collect();
                let fix = match closest(&need.text, &known) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => format!("the actions are {}", list(&known)),
                };
                return Err(Problem::new(
                    need.line,
                    format!(
                        "`needs` names `{}`, which is not an action of this file",
                        need.text
                    ),
                    fix,
                )
                .in_action(&template.name));
            }
            for name in named {
                if !resolved.contains(&name) {
                    resolved.push(name);
                }
            }
        }
        actions[i].needs = resolved;
    }
    check_cycles(actions, index)?;
    check_unique(actions, version)
}

/// The expanded names `name` stands for: itself, or a matrix action's expansions.
fn named(actions: &[Action], index: &HashMap<String, usize>, name: &str) -> Vec<String> {
    if index.contains_key(name) {
        return vec![name.to_owned()];
    }
    actions
        .iter()
        .filter(|a| a.template == name)
        .map(|a| a.name.clone())
        .collect()
}

fn check_cycles(actions: &[Action], index: &HashMap<String, usize>) -> Result<(), Problem> {
    let cycles = find_cycles(actions, index);
    let Some(first) = cycles.first() else {
        return Ok(());
    };
    let mut shown: Vec<String> = cycles
        .iter()
        .take(SHOWN_CYCLES)
        .map(|cycle| {
            let mut names: Vec<String> = cycle.iter().map(|&i| actions[i].name.clone()).collect();
            names.push(names[0].clone());
            if names.len() > 10 {
                let hidden = names.len() - 8;
                names.splice(5..names.len() - 3, [format!("({hidden} more)")]);
            }
            names.join(" -> ")
        })
        .collect();
    if cycles.len() > SHOWN_CYCLES {
        shown.push(format!("and {} more", cycles.len() - SHOWN_CYCLES));
    }
    let action = &actions[first[0]];
    let what = if cycles.len() == 1 {
        "a cycle"
    } else {
        "cycles"
    };
    Err(Problem::new(
        action.line,
        format!(
            "`needs` make {what} (each needs the next): {}",
            shown.join("; ")
        ),
        "remove a need from each cycle so the actions can run in order",
    )
    .in_action(&action.template))
}

/// Each cycle once, as the actions on it starting from the earliest in the file.
fn find_cycles(actions: &[Action], index: &HashMap<String, usize>) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut marks = vec![Mark::New; actions.len()];
    let mut cycles: Vec<Vec<usize>> = Vec::new();
    for start in 0..actions.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // An explicit stack of (action, next need to look at) keeps deep chains off
        // the call stack.
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::OnPath;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            let Some(need) = actions[node].needs.get(*next) else {
                marks[node] = Mark::Done;
                path.pop();
                continue;
            };
            *next += 1;
            let need = index[need];
            match marks[need] {
                Mark::New => {
                    marks[need] = Mark::OnPath;
                    path.push((need, 0));
                }
                Mark::OnPath => {
                    let from = path.iter().position(|&(n, _)| n == need).unwrap_or(0);
                    let mut cycle: Vec<usize> = path[from..].iter().map(|&(n, _)| n).collect();
                    let lowest = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
                    cycle.rotate_left(lowest);
                    if !cycles.contains(&cycle) {
                        cycles.push(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
    }
    cycles.sort();
    cycles
}

fn check_unique(actions: &[Action], version: f64) -> Result<(), Problem> {
    let mut commands: HashMap<String, &Action> = HashMap::new();
    let mut paths: HashMap<&str, &Action> = HashMap::new();
    for action in actions {
        if let Run::Image(command) = &action.run {
            // The same words are the same command, however they are spaced or quoted.
            let words = format!("{:?}", (&command.image, &command.args));
            if let Some(other) = commands.get(&words) {
                if other.template != action.template {
                    return Err(Problem::new(
                        action.line,
                        format!("the action runs the same command as `{}` (line {}): `{}`", other.name, other.line, command.raw),
                        "two actions with one command make the same outputs: remove one, or make their commands differ",
                    )
                    .in_action(&action.template));
                }
            }
            commands.entry(words).or_insert(action);
        }
        if version < 2.0 {
            continue;
        }
        for (_, path) in action.outputs.paths() {
            if let Some(other) = paths.insert(path, action) {
                return Err(Problem::new(
                    action.line,
                    format!("the output path `{path}` is also an output of `{}` (line {})", other.name, other.line),
                    "each file is the output of one action: rename one of them (a matrix action can use `{matrix.KEY}` in paths)",
                )
                .in_action(&action.template));
            }
        }
    }
    Ok(())
}

/// `roots` and everything they need, transitively, each after what it needs.
pub(crate) fn closure(
    actions: &[Action],
    index: &HashMap<String, usize>,
    roots: &[usize],
) -> Vec<usize> {
    let mut done = vec![false; actions.len()];
    let mut order = Vec::new();
    for &root in roots {
        if done[root] {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            match actions[node].needs.get(*next) {
                Some(need) => {
                    *next += 1;
                    let need = index[need];
                    if !done[need] && !stack.iter().any(|&(n, _)| n == need) {
                        stack.push((need, 0));
                    }
                }
                None => {
                    stack.pop();
                    if !done[node] {
                        done[node] = true;
                        order.push(node);
                    }
                }
            }
        }
    }
    order
}
