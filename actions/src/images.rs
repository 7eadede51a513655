//! Actions that run the image a job names (`images = [...]` in the action file), as a
//! project file's `run: image:tag args` line asks: the job's params carry `image`, `args`
//! and the limits the project asked for; the action file says which images are allowed
//! and caps the limits.

use std::borrow::Cow;

use serde::Deserialize;
use wildmatch::WildMatch;

use crate::catalogue::DockerSpec;

/// What a job of an `images` action asks for (other params, such as `config`, are passed
/// to the container like any parameter).
#[derive(Deserialize)]
struct ImageJob {
    image: serde_json::Value,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    cpus: Option<f64>,
    #[serde(default)]
    memory: Option<u64>,
}

impl DockerSpec {
    /// The spec a job with `params` runs: this one for an action with one `image`; for an
    /// action with `images`, a copy with the job's image, its arguments as the command
    /// and its limits (the file's when the job asks for none).
    ///
    /// # Errors
    /// Params that name no image, an image no pattern allows, or a limit above the file's,
    /// each saying what to change.
    pub fn for_job(&self, params: &serde_json::Value) -> Result<Cow<'_, DockerSpec>, String> {
        let action = &self.action;
        if action.images.is_empty() {
            return Ok(Cow::Borrowed(self));
        }
        let file = self.file.display();
        let job: ImageJob = serde_json::from_value(params.clone()).map_err(|e| {
            format!(
                "action `{}` runs the image a job names, and this job's params do not say which ({e}): \
                 give {{\"image\": \"name:tag\", \"args\": [\"word\", ...]}}, as a project file's run: line does",
                action.name
            )
        })?;
        let image = match &job.image {
            serde_json::Value::String(s) if !s.is_empty() && !s.contains(char::is_whitespace) => {
                s.clone()
            }
            other => {
                return Err(format!(
                    "params.image is {other}: name the image to run as \"name:tag\""
                ))
            }
        };
        if !action
            .images
            .iter()
            .any(|p| WildMatch::new(p).matches(&image))
        {
            return Err(format!(
                "image {image} is not allowed here: {file} allows {}; add a pattern to its images to run it",
                action.images.join(", ")
            ));
        }
        if job.cpus.is_some_and(|c| !(c > 0.0 && c <= 1024.0)) {
            return Err(format!(
                "cpus = {} is out of range: ask for a positive number of cores like 0.5",
                job.cpus.unwrap_or_default()
            ));
        }
        if job.memory.is_some_and(|m| m < 4 << 20) {
            return Err("memory is below Docker's minimum of 4m: ask for e.g. 64m".into());
        }
        let cpus = capped(
            "cpus",
            job.cpus,
            action.cpus,
            |c| format!("{c} cores"),
            &file,
        )?;
        let memory = capped(
            "memory",
            job.memory,
            action.memory,
            |m| format!("{} MiB", m >> 20),
            &file,
        )?;
        let mut spec = self.clone();
        spec.action.image = image;
        spec.action.command = job.args;
        spec.action.cpus = cpus;
        spec.action.memory = memory;
        Ok(Cow::Owned(spec))
    }
}

/// What a job asked for, at most the file's ceiling; the ceiling when it asked nothing.
fn capped<T: PartialOrd + Copy>(
    what: &str,
    asked: Option<T>,
    ceiling: Option<T>,
    show: impl Fn(T) -> String,
    file: &impl std::fmt::Display,
) -> Result<Option<T>, String> {
    match (asked, ceiling) {
        (Some(a), Some(c)) if a > c => Err(format!(
            "the job asks for {what} = {}, above the {} that {file} allows: ask for less, or raise {what} there",
            show(a),
            show(c)
        )),
        (Some(a), _) => Ok(Some(a)),
        (None, c) => Ok(c),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;
    use crate::docker::DockerAction;

    fn spec(toml: &str) -> DockerSpec {
        let action: DockerAction = toml::from_str(toml).unwrap();
        action.validate().unwrap();
        DockerSpec {
            action,
            secrets: Vec::new(),
            file: PathBuf::from("/actions/container.toml"),
        }
    }

    const ALLOWING: &str = "name = \"container\"\nimages = [\"drover/busybox:*\", \"ghcr.io/org/*\"]\ncpus = 2.0\nmemory = \"1g\"\n";

    #[test]
    fn a_job_runs_the_image_it_names_with_its_arguments_and_limits() {
        let spec = spec(ALLOWING);
        let params = json!({"image": "ghcr.io/org/python:v2", "args": ["-m", "a b"], "memory": 64 << 20, "config": {"x": 1}});
        let job = spec.for_job(&params).unwrap();
        assert_eq!(job.action.image, "ghcr.io/org/python:v2");
        assert_eq!(job.action.command, ["-m", "a b"]);
        assert_eq!(job.action.memory, Some(64 << 20));
        assert_eq!(
            job.action.cpus,
            Some(2.0),
            "the file's limit when the job asks none"
        );
    }

    #[test]
    fn an_action_with_one_image_ignores_the_params() {
        let spec = spec("name = \"echo\"\nimage = \"drover/busybox:latest\"\n");
        let job = spec.for_job(&json!({"image": "evil:v1"})).unwrap();
        assert!(matches!(job, Cow::Borrowed(_)));
        assert_eq!(job.action.image, "drover/busybox:latest");
    }

    #[test]
    fn what_the_file_does_not_allow_is_refused_with_the_fix() {
        let spec = spec(ALLOWING);
        let cases = [
            (json!({"image": "python:3.12"}), "image python:3.12 is not allowed here: /actions/container.toml allows drover/busybox:*, ghcr.io/org/*"),
            (json!({"args": []}), "do not say which (missing field `image`)"),
            (json!({"image": 5}), "params.image is 5: name the image"),
            (json!({"image": "a b:v1"}), "params.image is \"a b:v1\""),
            (json!({"image": "drover/busybox:v1", "cpus": 4.0}), "cpus = 4 cores, above the 2 cores that /actions/container.toml allows"),
            (json!({"image": "drover/busybox:v1", "memory": 2u64 << 30}), "memory = 2048 MiB, above the 1024 MiB"),
            (json!({"image": "drover/busybox:v1", "cpus": -1.0}), "cpus = -1 is out of range"),
            (json!({"image": "drover/busybox:v1", "memory": 1024}), "below Docker's minimum"),
            (json!({"image": "drover/busybox:v1", "args": "ls -l"}), "invalid type"),
        ];
        for (params, want) in cases {
            let err = spec.for_job(&params).unwrap_err();
            assert!(err.contains(want), "{params}: {err:?} should say {want:?}");
        }
    }

    #[test]
    fn image_and_images_are_checked_together() {
        let check = |text: &str| {
            toml::from_str::<DockerAction>(text)
                .unwrap()
                .validate()
                .unwrap_err()
        };
        assert!(check("name = \"c\"\n").contains("or list the images"));
        assert!(check("name = \"c\"\nimage = \"x\"\nimages = [\"y\"]\n")
            .contains("both image and images"));
        assert!(
            check("name = \"c\"\nimages = [\"y\"]\ncommand = [\"ls\"]\n")
                .contains("remove command")
        );
        assert!(check("name = \"c\"\nimages = [\"a b\"]\n").contains("not an image pattern"));
    }
}
