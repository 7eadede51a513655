//! `drover local-run`'s flags.

use std::path::PathBuf;

use clap::Args;

use super::client::ClientArgs;

/// `drover local-run`.
#[derive(Debug, Args)]
pub(crate) struct LocalRunArgs {
    /// The actions to run (a matrix action's name runs all its expansions), or
    /// `run_all` for every action.
    #[arg(value_name = "ACTION", required_unless_present = "job")]
    pub(crate) actions: Vec<String>,

    /// Reruns every dependency, even those that already succeeded.
    #[arg(short = 'f', long)]
    pub(crate) force_run_dependencies: bool,

    /// The project directory (its `.drover/` holds the run's state); default the
    /// current directory.
    #[arg(long, value_name = "DIR")]
    pub(crate) project_dir: Option<PathBuf>,

    /// The project file; default `drover.yaml`, else `project.yaml`, in the project
    /// directory.
    #[arg(long, value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,

    /// Actions run at once.
    #[arg(short = 'c', long, default_value_t = 2, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) concurrency: u16,

    /// Goes on after a failure with every action that does not depend on it (by
    /// default the run starts nothing new after the first failure).
    #[arg(long)]
    pub(crate) continue_on_error: bool,

    /// Prefixes each log line printed with the time it arrived.
    #[arg(long)]
    pub(crate) timestamps: bool,

    /// Keeps each job's container and volumes once it ended, and prints the commands
    /// that remove them.
    #[arg(long)]
    pub(crate) debug: bool,

    /// CPU limit of a `run:` action that sets no `cpus`, in cores.
    #[arg(long, value_name = "CORES")]
    pub(crate) cpus: Option<f64>,

    /// Memory limit of a `run:` action that sets no `memory` (`512m`, `2g`).
    #[arg(long, value_name = "SIZE")]
    pub(crate) memory: Option<String>,

    /// Action files (`<name>.toml`, as an executor's `actions_dir`): catalogue actions
    /// and their secrets; `run:` lines need none.
    #[arg(long, env = "DROVER_ACTIONS_DIR", value_name = "DIR")]
    pub(crate) actions_dir: Option<PathBuf>,

    /// Re-creates a cluster job here: fetches it (and its code and inputs, as far as
    /// the token may read them) from the API and runs it as its executor did; its
    /// outputs go to `--project-dir` (default `./drover-job-<id>`).
    #[arg(long, value_name = "ID", conflicts_with_all = ["actions", "force_run_dependencies", "file"])]
    pub(crate) job: Option<String>,

    #[command(flatten)]
    pub(crate) client: ClientArgs,
}
