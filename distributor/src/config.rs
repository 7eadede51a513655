//! The distributor's configuration: the `[distributor]` table, or `DROVER_DISTRIBUTOR__*`.

use drover_core::ConfigError;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use drover_actions::Builtin;
use drover_core::Priority;
use serde::{Deserialize, Serialize};

use crate::schedule::{CatchUp, Schedule};

mod catalogue;
mod pipeline;
use catalogue::Known;
pub use pipeline::PipelineConfig;
pub(crate) use pipeline::PipelineWork;

/// The name of the built-in reconcile distribution (reserved).
pub const RECONCILE: &str = "reconcile";
/// The shortest interval a schedule may have.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The longest interval a schedule may have, and the longest jitter: 366 days (longer
/// periods are cron expressions). Keeps every tick and wake-up time representable.
pub const MAX_INTERVAL: Duration = Duration::from_secs(366 * 86_400);
/// [`MAX_INTERVAL`] as written in messages.
const MAX_INTERVAL_TEXT: &str = "366d";

/// How a distributor runs, and what it distributes.
///
/// ```toml
/// [distributor]
/// id = "dist-1"                 # default: the host name
/// reconcile_every = "5s"
/// [[distributor.distributions]]
/// name = "nightly-cleanup"       # default: the action
/// action = "cleanup_jobs"
/// params = { older_than = "7d" }
/// priority = 200
/// cron = "0 2 * * *"             # or every = "1h"
/// jitter = "30s"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistributorConfig {
    /// This distributor's id, stored in its election nodes and shown as the leader
    /// (default: the host name). Give each replica its own.
    pub id: Option<String>,
    /// Run the built-in `reconcile` distribution (default true). Turn it off only where
    /// another group of distributors runs it against the same API and queue.
    pub reconcile: bool,
    /// How often the reconcile leader asks the API to reconcile (default `5s`).
    #[serde(with = "humantime_serde")]
    pub reconcile_every: Duration,
    /// A QUEUED record younger than this is never re-enqueued (default `10s`): its submit
    /// may still be putting it on the queue.
    #[serde(with = "humantime_serde")]
    pub reconcile_grace: Duration,
    /// A RUNNING job whose executor's taken node is gone is only given back once its
    /// last heartbeat is older than this (default `30s`).
    #[serde(with = "humantime_serde")]
    pub reconcile_stale_after: Duration,
    /// The executors' actions directory: distributions may name the Docker actions
    /// declared there. Unset, only built-in actions are accepted (the `drover` binary
    /// falls back to `executor.actions_dir` from the same file).
    pub actions_dir: Option<PathBuf>,
    /// The scheduled distributions.
    pub distributions: Vec<DistributionConfig>,
}

impl Default for DistributorConfig {
    fn default() -> Self {
        DistributorConfig {
            id: None,
            reconcile: true,
            reconcile_every: Duration::from_secs(5),
            reconcile_grace: Duration::from_secs(10),
            reconcile_stale_after: Duration::from_secs(30),
            actions_dir: None,
            distributions: Vec::new(),
        }
    }
}

/// One `[[distributor.distributions]]` entry: an action (or a pipeline) on a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistributionConfig {
    /// The distribution's name: its election is `/election/<name>` and its jobs'
    /// idempotency keys start with it (default: the action).
    #[serde(default)]
    pub name: Option<String>,
    /// The action each tick's job runs (or set `pipeline`).
    #[serde(default)]
    pub action: Option<String>,
    /// Instead of `action`: each tick submits one request of this project file.
    #[serde(default)]
    pub pipeline: Option<PipelineConfig>,
    /// The jobs' parameters.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    /// The jobs' queue priority, 0–999 (default: the API's, 100).
    #[serde(default)]
    pub priority: Option<u16>,
    /// Ticks at every multiple of this interval since the Unix epoch (`"30s"`, `"1h"`).
    #[serde(default, with = "humantime_serde::option")]
    pub every: Option<Duration>,
    /// Ticks at the times of this cron expression, in UTC (`"0 2 * * *"`; a sixth
    /// leading field gives seconds).
    #[serde(default)]
    pub cron: Option<String>,
    /// Each tick's job is submitted a random delay of up to this after the tick (its
    /// idempotency key still names the tick). Default none.
    #[serde(default, with = "humantime_serde::option")]
    pub jitter: Option<Duration>,
    /// Whether to run it at all (default true).
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// What a new leader does about ticks that passed without a leader:
    /// `latest` (default), `none` or `all`.
    #[serde(default)]
    pub catch_up: CatchUp,
    /// The jobs' `max_attempts` (default: the API's).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// The jobs' timeout (default: the API's).
    #[serde(default, with = "humantime_serde::option")]
    pub timeout: Option<Duration>,
    /// Tags an executor must carry to run the jobs (`["gpu"]`), besides those the
    /// action's file requires. Default none.
    #[serde(default)]
    pub requires: Vec<String>,
}

fn enabled_default() -> bool {
    true
}

/// What one tick does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Work {
    /// Submit a job of this action.
    Job {
        action: String,
        params: BTreeMap<String, serde_json::Value>,
        priority: Option<Priority>,
        max_attempts: Option<u32>,
        timeout_secs: Option<u64>,
        requires: Vec<String>,
    },
    /// Submit a pipeline request.
    Pipeline(PipelineWork),
    /// Ask the API to reconcile.
    Reconcile {
        grace: Duration,
        stale_after: Duration,
    },
}

/// A validated distribution, ready to run.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) name: String,
    pub(crate) schedule: Schedule,
    pub(crate) jitter: Duration,
    pub(crate) catch_up: CatchUp,
    pub(crate) work: Work,
}

impl Plan {
    /// The action name shown in status.
    pub(crate) fn action(&self) -> &str {
        match &self.work {
            Work::Job { action, .. } => action,
            Work::Pipeline(pipeline) => &pipeline.shown,
            Work::Reconcile { .. } => RECONCILE,
        }
    }
}

impl DistributorConfig {
    /// The distributor's id: configured, else the host name.
    pub fn distributor_id(&self) -> String {
        self.id.clone().unwrap_or_else(|| {
            hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "distributor".to_owned())
        })
    }

    /// Checks every field once, at start-up; the message names the field, e.g.
    /// `distributor.distributions[2].cron: ...`.
    ///
    /// # Errors
    /// A message for the first invalid field and how to fix it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.plans().map(|_| ())
    }

    /// Like [`validate`](Self::validate) but without reading the actions directory:
    /// any well-formed action name is accepted. For roles other than the distributor
    /// that share the configuration file (their host may not have the directory).
    ///
    /// # Errors
    /// A message for the first invalid field and how to fix it.
    pub fn validate_fields(&self) -> Result<(), ConfigError> {
        self.checked(false).map(|_| ())
    }

    /// The distributions to run (enabled ones, and `reconcile` when on), validated.
    pub(crate) fn plans(&self) -> Result<Vec<Plan>, ConfigError> {
        self.checked(true)
    }

    fn checked(&self, catalogue: bool) -> Result<Vec<Plan>, ConfigError> {
        let id = self.distributor_id();
        drover_core::names::check_id("distributor", &id)
            .map_err(|e| ConfigError::new("distributor.id", e.to_string()))?;
        let positive = [
            ("reconcile_every", self.reconcile_every, MIN_INTERVAL),
            // the API refuses a grace below its enqueue timeout (2 s by default)
            (
                "reconcile_grace",
                self.reconcile_grace,
                Duration::from_secs(1),
            ),
            (
                "reconcile_stale_after",
                self.reconcile_stale_after,
                Duration::ZERO,
            ),
        ];
        for (field, value, min) in positive {
            if value < min || value > Duration::from_secs(86_400) {
                return Err(ConfigError::new(
                    format!("distributor.{field}"),
                    format!(
                        "{} is out of range: use {} to 1 day",
                        humantime::format_duration(value),
                        humantime::format_duration(min)
                    ),
                ));
            }
        }
        let needs_catalogue = self.distributions.iter().any(|d| {
            d.action
                .as_deref()
                .is_some_and(|a| Builtin::from_name(a).is_none())
        });
        let known = if catalogue && needs_catalogue {
            Some(catalogue::known_actions(self.actions_dir.as_deref())?)
        } else if catalogue {
            Some(Known {
                names: Builtin::ALL.iter().map(|b| b.name().to_owned()).collect(),
                dir: None,
            })
        } else {
            None
        };
        let mut plans = Vec::new();
        if self.reconcile {
            plans.push(Plan {
                name: RECONCILE.to_owned(),
                schedule: Schedule::Every(self.reconcile_every),
                jitter: Duration::ZERO,
                catch_up: CatchUp::Latest,
                work: Work::Reconcile {
                    grace: self.reconcile_grace,
                    stale_after: self.reconcile_stale_after,
                },
            });
        }
        let mut names = HashSet::new();
        for (i, distribution) in self.distributions.iter().enumerate() {
            let field = format!("distributor.distributions[{i}]");
            let plan = distribution.plan(&field, known.as_ref())?;
            if !names.insert(plan.name.clone()) {
                return Err(ConfigError::new(format!("{field}.name"), format!(
                    "{:?} is used by an earlier distribution: give each its own name (it names the election and the idempotency keys)",
                    plan.name
                )));
            }
            if distribution.enabled {
                plans.push(plan);
            }
        }
        Ok(plans)
    }
}

impl DistributionConfig {
    fn plan(&self, field: &str, known: Option<&Known>) -> Result<Plan, ConfigError> {
        let pipeline = match &self.pipeline {
            Some(pipeline) => Some(pipeline.work(
                field,
                self.name.as_deref(),
                self.job_only_field(),
                known.is_some(),
            )?),
            None => None,
        };
        let action = self.action.clone().unwrap_or_default();
        if pipeline.is_none() {
            self.check_action(&action, field, known)?;
        }
        let name = self.checked_name(field, &action)?;
        let object: serde_json::Map<String, serde_json::Value> =
            self.params.clone().into_iter().collect();
        let checked = match Builtin::from_name(&action) {
            Some(Builtin::CleanupJobs) => Builtin::cleanup_params(&object).map(|_| ()),
            Some(Builtin::Sleep) => Builtin::sleep_duration(&object).map(|_| ()),
            _ => Ok(()),
        };
        checked.map_err(|e| ConfigError::new(format!("{field}.params"), e.to_string()))?;
        let priority = self
            .priority
            .map(Priority::new)
            .transpose()
            .map_err(|e| ConfigError::new(format!("{field}.priority"), e.to_string()))?;
        if let Some(attempts) = self.max_attempts.filter(|a| !(1..=1000).contains(a)) {
            return Err(ConfigError::new(
                format!("{field}.max_attempts"),
                format!("{attempts} is out of range: use 1 to 1000"),
            ));
        }
        let timeout_secs = match self.timeout {
            Some(t) if t < Duration::from_secs(1) || t > Duration::from_secs(30 * 86_400) => {
                return Err(ConfigError::new(
                    format!("{field}.timeout"),
                    format!(
                        "{} is out of range: use 1s to 30days",
                        humantime::format_duration(t)
                    ),
                ))
            }
            t => t.map(|t| t.as_secs()),
        };
        let requires = drover_core::route::tag_set(&self.requires)
            .map_err(|e| ConfigError::new(format!("{field}.requires"), e))?
            .into_iter()
            .collect();
        let schedule = self.schedule(field)?;
        let jitter = self.jitter(field, &schedule)?;
        Ok(Plan {
            name,
            schedule,
            jitter,
            catch_up: self.catch_up,
            work: match pipeline {
                Some(pipeline) => Work::Pipeline(PipelineWork {
                    priority,
                    ..pipeline
                }),
                None => Work::Job {
                    action,
                    params: self.params.clone(),
                    priority,
                    max_attempts: self.max_attempts,
                    timeout_secs,
                    requires,
                },
            },
        })
    }

    /// The distribution's name (default: its action), checked.
    fn checked_name(&self, field: &str, action: &str) -> Result<String, ConfigError> {
        let name = self.name.clone().unwrap_or_else(|| action.to_owned());
        drover_core::names::check_name("distribution", &name)
            .map_err(|e| ConfigError::new(format!("{field}.name"), e.to_string()))?;
        if name == RECONCILE {
            return Err(ConfigError::new(
                format!("{field}.name"),
                format!(
                    "{RECONCILE:?} is reserved for the built-in reconciler: choose another name"
                ),
            ));
        }
        Ok(name)
    }

    /// What a pipeline distribution may not set (its jobs take theirs from the project
    /// file): the first such field.
    fn job_only_field(&self) -> Option<&'static str> {
        [
            ("action", self.action.is_some()),
            ("params", !self.params.is_empty()),
            ("max_attempts", self.max_attempts.is_some()),
            ("timeout", self.timeout.is_some()),
            ("requires", !self.requires.is_empty()),
        ]
        .into_iter()
        .find(|(_, set)| *set)
        .map(|(field, _)| field)
    }

    /// The action must be a valid name the catalogue (when known) has.
    fn check_action(
        &self,
        action: &str,
        field: &str,
        known: Option<&Known>,
    ) -> Result<(), ConfigError> {
        if action.is_empty() {
            return Err(ConfigError::new(
                format!("{field}.action"),
                "is missing: name the action each tick runs, or give a [distributor.distributions.pipeline] table",
            ));
        }
        drover_actions::check_name(action)
            .map_err(|e| ConfigError::new(format!("{field}.action"), e.to_string()))?;
        if let Some(known) = known.filter(|k| !k.names.contains(action)) {
            let list = known.names.iter().cloned().collect::<Vec<_>>().join(", ");
            let hint = match &known.dir {
                Some(dir) => format!("it is neither built in nor declared in {}", dir.display()),
                None => "it is not built in, and no distributor.actions_dir (or executor.actions_dir) declares Docker actions".to_owned(),
            };
            return Err(ConfigError::new(
                format!("{field}.action"),
                format!("unknown action {action:?}: {hint}; known actions: {list}"),
            ));
        }
        Ok(())
    }

    /// The jitter: at most the longest interval, and shorter than this schedule's.
    fn jitter(&self, field: &str, schedule: &Schedule) -> Result<Duration, ConfigError> {
        let jitter = self.jitter.unwrap_or_default();
        if jitter > MAX_INTERVAL {
            return Err(ConfigError::new(
                format!("{field}.jitter"),
                format!(
                    "{} is out of range: use at most {MAX_INTERVAL_TEXT}",
                    humantime::format_duration(jitter)
                ),
            ));
        }
        if let Schedule::Every(interval) = *schedule {
            if jitter >= interval {
                return Err(ConfigError::new(
                    format!("{field}.jitter"),
                    format!(
                        "{} is not shorter than the interval ({}): ticks would overtake each other",
                        humantime::format_duration(jitter),
                        humantime::format_duration(interval)
                    ),
                ));
            }
        }
        Ok(jitter)
    }

    fn schedule(&self, field: &str) -> Result<Schedule, ConfigError> {
        match (&self.every, &self.cron) {
            (Some(_), Some(_)) => Err(ConfigError::new(
                field,
                "both `every` and `cron` are set: keep exactly one",
            )),
            (None, None) => Err(ConfigError::new(
                field,
                "neither `every` nor `cron` is set: add every = \"1h\" or cron = \"0 2 * * *\"",
            )),
            (Some(every), None) => {
                if *every < MIN_INTERVAL || *every > MAX_INTERVAL {
                    return Err(ConfigError::new(format!("{field}.every"), format!(
                        "{} is out of range: use {} to {MAX_INTERVAL_TEXT} (for longer periods write a cron expression, e.g. cron = \"0 0 1 1 *\" for yearly)",
                        humantime::format_duration(*every),
                        humantime::format_duration(MIN_INTERVAL)
                    )));
                }
                if every.subsec_nanos() % 1_000_000 != 0 {
                    return Err(ConfigError::new(
                        format!("{field}.every"),
                        format!(
                            "{} is not a whole number of milliseconds",
                            humantime::format_duration(*every)
                        ),
                    ));
                }
                Ok(Schedule::Every(*every))
            }
            (None, Some(cron)) => Schedule::cron(cron)
                .map_err(|e| ConfigError::new(format!("{field}.cron"), e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests;
