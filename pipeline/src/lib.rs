//! drover's project files (`drover.yaml`, or OpenSAFELY's `project.yaml`): what a
//! pipeline's actions run, what they need and what they output, checked with the line
//! of every problem before anything runs.
//!
//! - [`Project::parse`]: a file's text → its [`Action`]s, or a [`ProjectError`] naming
//!   the file, the line, the action and the fix.
//! - [`Project::resolve`]: the actions a request for some of them runs, in order.
//! - [`plan`]: what a request does with each action given the workspace's state:
//!   create, reuse a live job, or skip a success.
//! - [`Action::job`]: the executor action and params of an action's job (the API and
//!   `drover local-run` both use it).
//! - [`Run`]: an image with its tag and arguments ([`Command`]), or a catalogue action.
//! - `matrix`: one action per combination of values (`test-3.11-linux`).
//! - `yaml`: a YAML tree that keeps lines and refuses duplicate keys.

mod action;
mod error;
mod graph;
mod job;
mod matrix;
mod plan;
mod project;
mod run;
mod types;
mod yaml;

pub use error::ProjectError;
pub use job::{dependency_failed, CONTAINER_ACTION};
pub use plan::{plan, Need, Standing, Step};
pub use project::{Action, Level, Outputs, Project, LATEST_VERSION, MAX_ACTIONS, RUN_ALL};
pub use run::{Command, Run};
