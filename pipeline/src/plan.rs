//! What a request does with each action it needs, given the workspace's state: the
//! newest non-cancelled job of each action there.
//!
//! - a job that is queued or running is reused, never copied;
//! - a requested action otherwise always runs;
//! - a dependency that succeeded is skipped, unless `force` (`-f`) reruns it;
//! - a dependency that failed, or never ran, runs;
//! - a new job starts from the outputs of every job it needs, skipped ones included
//!   ([`Need::Done`]), and waits only for the ones not yet done.

use std::collections::{BTreeSet, HashMap};

use crate::types::Action;

/// Where an action stands in the workspace: its newest job that was not cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing<Id> {
    /// No job yet (or only cancelled ones).
    Never,
    /// Queued or running.
    Live(Id),
    /// Succeeded.
    Succeeded(Id),
    /// Failed.
    Failed(Id),
}

/// What the request does with one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<Id> {
    /// Create a job that waits for `needs`.
    Create {
        /// The jobs it waits for.
        needs: Vec<Need<Id>>,
    },
    /// Its queued or running job serves the request.
    Reuse(Id),
    /// Its job succeeded and is not rerun.
    Skip(Id),
}

/// A job a new job waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need<Id> {
    /// A job this request creates: the index of its action in the plan.
    New(usize),
    /// A queued or running job that already exists.
    Existing(Id),
    /// A job that succeeded (a skipped dependency): nothing to wait for, but the new
    /// job starts from its outputs.
    Done(Id),
}

impl<Id> Need<Id> {
    /// Whether the new job has to wait for it.
    pub fn waits(&self) -> bool {
        !matches!(self, Need::Done(_))
    }
}

/// One step per action of `order` (dependencies before dependents, as
/// [`Project::resolve`](crate::Project::resolve) gives them).
pub fn plan<Id: Clone>(
    order: &[&Action],
    requested: &BTreeSet<String>,
    force: bool,
    standing: impl Fn(&str) -> Standing<Id>,
) -> Vec<Step<Id>> {
    let mut at: HashMap<&str, usize> = HashMap::new();
    let mut steps: Vec<Step<Id>> = Vec::with_capacity(order.len());
    for (i, action) in order.iter().enumerate() {
        let asked = requested.contains(&action.name) || requested.contains(&action.template);
        let step = match standing(&action.name) {
            Standing::Live(id) => Step::Reuse(id),
            Standing::Succeeded(id) if !asked && !force => Step::Skip(id),
            _ => {
                let needs = action
                    .needs
                    .iter()
                    .map(|need| match &steps[at[need.as_str()]] {
                        Step::Create { .. } => Need::New(at[need.as_str()]),
                        Step::Reuse(id) => Need::Existing(id.clone()),
                        Step::Skip(id) => Need::Done(id.clone()),
                    })
                    .collect();
                Step::Create { needs }
            }
        };
        at.insert(&action.name, i);
        steps.push(step);
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Project;

    const DIAMOND: &str = "version: 5\nactions:\n  a: {action: noop}\n  b: {action: noop, needs: [a]}\n  c: {action: noop, needs: [a]}\n  d: {action: noop, needs: [b, c]}\n";

    fn run(standing: &[(&str, Standing<u32>)], requested: &[&str], force: bool) -> Vec<Step<u32>> {
        let project = Project::parse("drover.yaml", DIAMOND).unwrap();
        let requested: Vec<String> = requested.iter().map(|s| (*s).to_owned()).collect();
        let order = project.resolve(&requested).unwrap();
        let standing: HashMap<&str, Standing<u32>> = standing.iter().cloned().collect();
        let requested = requested.into_iter().collect();
        plan(&order, &requested, force, |name| {
            standing.get(name).cloned().unwrap_or(Standing::Never)
        })
    }

    fn create(needs: &[Need<u32>]) -> Step<u32> {
        Step::Create {
            needs: needs.to_vec(),
        }
    }

    #[test]
    fn a_fresh_workspace_runs_everything_in_order() {
        assert_eq!(
            run(&[], &["d"], false),
            [
                create(&[]),
                create(&[Need::New(0)]),
                create(&[Need::New(0)]),
                create(&[Need::New(1), Need::New(2)]),
            ]
        );
    }

    #[test]
    fn done_dependencies_are_skipped_live_ones_reused_failed_ones_rerun() {
        use Standing::*;
        let standing = [
            ("a", Succeeded(1)),
            ("b", Live(2)),
            ("c", Failed(3)),
            ("d", Succeeded(4)),
        ];
        assert_eq!(
            run(&standing, &["d"], false),
            [
                Step::Skip(1),
                Step::Reuse(2),
                create(&[Need::Done(1)]),
                create(&[Need::Existing(2), Need::New(2)])
            ]
        );
        // -f reruns what succeeded, still never copies a live job.
        assert_eq!(
            run(&standing, &["d"], true),
            [
                create(&[]),
                Step::Reuse(2),
                create(&[Need::New(0)]),
                create(&[Need::Existing(2), Need::New(2)])
            ]
        );
        // A requested action that runs is reused, not run twice.
        let running = [
            ("a", Succeeded(1)),
            ("b", Succeeded(2)),
            ("c", Succeeded(3)),
            ("d", Live(4)),
        ];
        assert_eq!(
            run(&running, &["d"], false),
            [Step::Skip(1), Step::Skip(2), Step::Skip(3), Step::Reuse(4)]
        );
        let done = [
            ("a", Succeeded(1)),
            ("b", Succeeded(2)),
            ("c", Succeeded(3)),
            ("d", Succeeded(4)),
        ];
        assert_eq!(
            run(&done, &["d"], false),
            [
                Step::Skip(1),
                Step::Skip(2),
                Step::Skip(3),
                create(&[Need::Done(2), Need::Done(3)])
            ]
        );
    }
}
