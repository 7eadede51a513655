//! What job an action of a project runs: the action name an executor looks up and its
//! params. The API plans a request's jobs with it and `drover local-run` runs the same
//! jobs, so a pipeline runs the same container with the same params in both places.

use crate::project::Action;
use crate::run::Run;

/// The catalogue action of a job whose project action has a `run:` line: a container of
/// that image with those arguments, run by executors whose `container` action file
/// allows the image.
pub const CONTAINER_ACTION: &str = "container";

impl Action {
    /// The executor action this action's job runs, and the job's params: a catalogue
    /// action gets its `params` (and `config`); a `run:` line becomes
    /// [`CONTAINER_ACTION`] with `image`, `args`, `config`, `cpus` and `memory`. Declared
    /// outputs go in as `outputs: {level: {name: pattern}}`, for the executor to collect.
    #[must_use]
    pub fn job(&self) -> (String, serde_json::Value) {
        let (name, mut params) = match &self.run {
            Run::Catalogue(name) => {
                let mut params = self.params.clone();
                if let (Some(config), Some(object)) = (&self.config, params.as_object_mut()) {
                    object.entry("config").or_insert_with(|| config.clone());
                }
                (name.clone(), params)
            }
            Run::Image(command) => (
                CONTAINER_ACTION.to_owned(),
                serde_json::json!({
                    "image": command.image,
                    "args": command.args,
                    "config": self.config,
                    "cpus": self.cpus,
                    "memory": self.memory,
                }),
            ),
        };
        if let (Some(outputs), Some(object)) = (self.outputs_param(), params.as_object_mut()) {
            object.insert("outputs".to_owned(), outputs);
        }
        (name, params)
    }

    fn outputs_param(&self) -> Option<serde_json::Value> {
        let levels: serde_json::Map<String, serde_json::Value> = self
            .outputs
            .0
            .iter()
            .filter(|(_, named)| !named.is_empty())
            .map(|(level, named)| (level.key().to_owned(), serde_json::json!(named)))
            .collect();
        (!levels.is_empty()).then_some(serde_json::Value::Object(levels))
    }
}

impl crate::Project {
    /// Every declared output pattern of every action: what a code snapshot leaves out.
    #[must_use]
    pub fn declared_patterns(&self) -> Vec<drover_outputs::Pattern> {
        self.actions
            .iter()
            .flat_map(|action| action.outputs.0.values())
            .flat_map(|named| named.values())
            .filter_map(|pattern| drover_outputs::Pattern::parse(pattern).ok())
            .collect()
    }
}

/// The status message of a job that will not run because one it needs did not succeed:
/// `name` (job `id`) ended `code`.
#[must_use]
pub fn dependency_failed(name: &str, id: &str, code: drover_core::StatusCode) -> String {
    format!("a job it needs did not succeed: `{name}` (job {id}) ended {code}")
}
