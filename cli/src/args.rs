//! The command line: every subcommand and flag, as clap parses them.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use drover_core::{LogFormat, Priority, State};

mod client;
mod local;
mod ops;
pub(crate) use client::{ClientArgs, Output};
pub(crate) use local::LocalRunArgs;
pub(crate) use ops::{
    DrainArgs, InspectArgs, PauseArgs, RebootArgs, ResumeArgs, Target, TopArgs, UndrainArgs,
};

/// The exit codes, as `--help` shows them.
const EXIT_CODES: &str = "\
Exit codes:
    0  success
    1  the job did not succeed (submit --wait), or a role stopped with an error
    2  bad usage or input: arguments, -p syntax, a malformed job id, the configuration
    3  the API cannot be reached (connection refused, timeout): check --url / DROVER_URL
    4  the API refused the request: unknown or ambiguous job id, illegal transition,
       missing or unknown token (401), token without the role (403), invalid input
    5  the API failed (5xx) or gave an answer this client does not understand
  130  interrupted (Ctrl-C) while waiting for a job; the job goes on";

/// `drover local-run`'s exit codes.
const LOCAL_EXIT_CODES: &str = "\
Exit codes:
    0  every action asked for (and all it needs) succeeded, or already had
    1  an action failed, or was not started after a failure
    2  bad usage or input: the project file (with its line), an unknown action
    3  no Docker engine answers (or, with --job, the API cannot be reached)
  130  interrupted (Ctrl-C): running jobs were stopped and count as not done";

/// drover: a horizontally scaled job engine.
///
/// One binary for every role (`drover api`, `drover executor`, `drover distributor`) and
/// the client commands that talk to the API. Job ids may be abbreviated to any unique
/// part.
#[derive(Debug, Parser)]
#[command(name = "drover", version, after_help = EXIT_CODES, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,

    /// How log lines are written to stderr: `text` or `json` (overrides `log_format`).
    #[arg(long, global = true, value_name = "FORMAT")]
    pub(crate) log_format: Option<LogFormat>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Runs the API role: job records in SQL, served over HTTP.
    #[command(after_help = EXIT_CODES)]
    Api(RoleArgs),
    /// Runs the executor role: takes queue entries and runs their jobs (SIGTERM drains).
    #[command(after_help = EXIT_CODES)]
    Executor(RoleArgs),
    /// Runs the distributor role: generates scheduled jobs, one leader per distribution,
    /// and runs the reconciler (SIGTERM resigns and exits).
    #[command(after_help = EXIT_CODES)]
    Distributor(RoleArgs),
    /// Submits a job and prints its id.
    #[command(after_help = EXIT_CODES)]
    Submit(SubmitArgs),
    /// Lists jobs, newest first.
    #[command(after_help = EXIT_CODES)]
    Ls(LsArgs),
    /// Shows one job.
    #[command(after_help = EXIT_CODES)]
    Show(JobArgs),
    /// Prints a job's log.
    #[command(after_help = EXIT_CODES)]
    Logs(LogsArgs),
    /// Cancels a job: at once when queued, by its executor when running. Given a
    /// pipeline request's id (and no job has it), cancels the request's unfinished jobs.
    #[command(after_help = EXIT_CODES)]
    Cancel(JobArgs),
    /// Submits a finished job again, as a new job; prints the new id.
    #[command(after_help = EXIT_CODES)]
    Retry(JobArgs),
    /// Kills jobs (needs an admin token): like cancel, recorded as KILLED_BY_ADMIN. At a
    /// terminal an ambiguous id asks which job; `--cleanup` also removes what is left of
    /// each on the executor that ran it.
    #[command(after_help = EXIT_CODES)]
    Kill(KillArgs),
    /// Runs actions of a project file (`drover.yaml` or `project.yaml`) and what they
    /// need, as one request; skips what already succeeded in the workspace.
    #[command(after_help = EXIT_CODES)]
    Run(RunArgs),
    /// Runs a project's actions on this machine's Docker engine, as a cluster would
    /// (skipping what succeeded, state in `.drover/`); `--job ID` re-creates a cluster
    /// job here.
    #[command(name = "local-run", after_help = LOCAL_EXIT_CODES)]
    LocalRun(LocalRunArgs),
    /// Lists pipeline requests, newest first.
    #[command(after_help = EXIT_CODES)]
    Requests(RequestsArgs),
    /// Shows one pipeline request and its jobs.
    #[command(after_help = EXIT_CODES)]
    Request(RequestArgs),
    /// Cancels every unfinished job of a pipeline request.
    #[command(name = "cancel-request", after_help = EXIT_CODES)]
    CancelRequest(RequestArgs),
    /// Lists a job's or a workspace's published outputs (`--get DIR` downloads them,
    /// each file's SHA-256 checked).
    #[command(after_help = EXIT_CODES)]
    Outputs(OutputsArgs),
    /// Lists the executors registered in ZooKeeper.
    #[command(after_help = EXIT_CODES)]
    Executors(ClientArgs),
    /// Lists the distributions with their current leader and last / next tick.
    #[command(after_help = EXIT_CODES)]
    Distributions(ClientArgs),
    /// A live table of running jobs: age, progress, executor, heartbeat (stale ones marked).
    #[command(after_help = EXIT_CODES)]
    Top(TopArgs),
    /// How to reach a job's container on its executor's host (`docker exec`, `docker cp`
    /// lines, by label).
    #[command(after_help = EXIT_CODES)]
    Inspect(InspectArgs),
    /// Shows what is paused and drained, and the executors (needs any token).
    #[command(after_help = EXIT_CODES)]
    Status(ClientArgs),
    /// Pauses actions, or the whole cluster (admin): queued jobs wait, running ones run on.
    #[command(after_help = EXIT_CODES)]
    Pause(PauseArgs),
    /// Lifts pauses (admin).
    #[command(after_help = EXIT_CODES)]
    Resume(ResumeArgs),
    /// Drains an executor as SIGTERM would, but it stays up, registered as drained, until
    /// `drover undrain` or a restart (admin).
    #[command(after_help = EXIT_CODES)]
    Drain(DrainArgs),
    /// Lets drained executors take jobs again (admin).
    #[command(after_help = EXIT_CODES)]
    Undrain(UndrainArgs),
    /// Drains every executor of a host and waits until no drover container runs there:
    /// prints READY TO REBOOT. Jobs past the deadline are given back and rerun elsewhere
    /// (admin).
    #[command(name = "prepare-for-reboot", after_help = EXIT_CODES)]
    PrepareForReboot(RebootArgs),
    /// The executor's watchdog process (started by `drover executor`, not by hand).
    #[command(name = "executor-watchdog", hide = true)]
    ExecutorWatchdog(WatchdogArgs),
}

/// What `drover executor` passes its watchdog.
#[derive(Debug, Args)]
pub(crate) struct WatchdogArgs {
    /// The executor's id (its containers' `drover.executor` label).
    pub(crate) executor: String,
    /// The directory the two share.
    pub(crate) dir: PathBuf,
    /// Silence, in milliseconds, after which the containers are killed.
    pub(crate) silence_ms: u64,
}

/// A role's options.
#[derive(Debug, Args)]
pub(crate) struct RoleArgs {
    /// The configuration file (TOML, YAML or JSON); `DROVER_*` variables override it,
    /// e.g. DROVER_ZOOKEEPER__HOSTS for `zookeeper.hosts`.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

/// `drover submit`.
#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    /// The action to run (`noop`, `sleep`, a Docker action's name).
    pub(crate) action: String,

    /// A parameter, `key=value`; the value is read as JSON when it parses (`n=3`,
    /// `on=true`, `list=[1,2]`), else taken as a string. Repeat for more.
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub(crate) params: Vec<(String, serde_json::Value)>,

    /// Queue priority, 0 (runs first) to 999; the API's default is 100.
    #[arg(long, value_name = "N")]
    pub(crate) priority: Option<Priority>,

    /// Runs allowed before the job fails with ATTEMPTS_EXHAUSTED.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_attempts: Option<u32>,

    /// How long the action may run before it is stopped (TIMED_OUT), e.g. `90s`, `10m`.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub(crate) timeout: Option<Duration>,

    /// Submitting again with the same key returns the existing job instead of a new one.
    #[arg(long, value_name = "KEY")]
    pub(crate) idempotency_key: Option<String>,

    /// Runs the job only on an executor with this tag (`[executor] tags`), besides the
    /// tags its action file requires. Repeat for more.
    #[arg(long = "require", value_name = "TAG")]
    pub(crate) requires: Vec<String>,

    /// Waits for the job to finish, with a progress bar; exits 0 only if it succeeded.
    #[arg(long)]
    pub(crate) wait: bool,

    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// `drover ls`.
#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// Only jobs in this state (QUEUED, RUNNING, SUCCESS, FAILED, CANCELED).
    #[arg(long, value_name = "STATE")]
    pub(crate) state: Option<State>,

    /// Only jobs of this action.
    #[arg(long, value_name = "ACTION")]
    pub(crate) action: Option<String>,

    /// Only the jobs of this pipeline request (any unique prefix of its id).
    #[arg(long, value_name = "ID")]
    pub(crate) request: Option<String>,

    /// Only the pipeline jobs of this workspace.
    #[arg(long, value_name = "NAME")]
    pub(crate) workspace: Option<String>,

    /// At most this many jobs (1 to 500).
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=500), conflicts_with = "all")]
    pub(crate) limit: u32,

    /// Every matching job, page after page.
    #[arg(long)]
    pub(crate) all: bool,

    /// Shows whole job ids instead of their first 8 characters.
    #[arg(long)]
    pub(crate) no_trunc: bool,

    /// Only RUNNING jobs whose heartbeat is older than three of their executor's
    /// heartbeat intervals (is this job stuck?). Implies --state RUNNING and --all.
    #[arg(long, conflicts_with_all = ["state", "limit"])]
    pub(crate) stale: bool,

    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// `drover run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The actions to run (a matrix action's name runs all its expansions), or
    /// `run_all` for every action.
    #[arg(required = true, value_name = "ACTION")]
    pub(crate) actions: Vec<String>,

    /// Reruns every dependency, even those that already succeeded.
    #[arg(short = 'f', long)]
    pub(crate) force_run_dependencies: bool,

    /// The workspace whose earlier runs decide what is skipped.
    #[arg(long, default_value = "default", value_name = "NAME")]
    pub(crate) workspace: String,

    /// The project file; default `drover.yaml`, else `project.yaml`.
    #[arg(long, value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,

    /// Queue priority of the request's jobs, 0 (runs first) to 999.
    #[arg(long, value_name = "N")]
    pub(crate) priority: Option<Priority>,

    /// Waits for every job of the request to end; exits 0 only if all succeeded.
    #[arg(long)]
    pub(crate) wait: bool,

    /// The project directory sent as the jobs' code (`/workspace`); default the
    /// project file's directory. `.git`, `.drover`, declared outputs and what
    /// `.droverignore` lists are left out.
    #[arg(long, value_name = "DIR")]
    pub(crate) project_dir: Option<PathBuf>,

    /// Sends no code: the jobs' `/workspace` holds only their needs' outputs.
    #[arg(long, conflicts_with = "project_dir")]
    pub(crate) no_code: bool,

    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// `drover requests`.
#[derive(Debug, Args)]
pub(crate) struct RequestsArgs {
    /// Only requests of this workspace.
    #[arg(long, value_name = "NAME")]
    pub(crate) workspace: Option<String>,

    /// At most this many requests (1 to 200).
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=200))]
    pub(crate) limit: u32,

    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// `drover outputs`.
#[derive(Debug, Args)]
pub(crate) struct OutputsArgs {
    /// A job's id (or a unique part of it), else a workspace's name.
    pub(crate) target: String,

    /// Only files of this level (`highly_sensitive`, `moderately_sensitive`,
    /// `minimally_sensitive`).
    #[arg(long)]
    pub(crate) level: Option<String>,

    /// Download the files into this directory, at their paths.
    #[arg(long, value_name = "DIR")]
    pub(crate) get: Option<std::path::PathBuf>,

    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// Commands about one request.
#[derive(Debug, Args)]
pub(crate) struct RequestArgs {
    /// The request's id, or its first characters (at least 4).
    pub(crate) id: String,

    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// Commands about one job.
#[derive(Debug, Args)]
pub(crate) struct JobArgs {
    /// The job's id, or any unique part of it.
    pub(crate) id: String,

    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// `drover kill`.
#[derive(Debug, Args)]
pub(crate) struct KillArgs {
    /// The jobs' ids, or unique parts of them.
    #[arg(required = true, value_name = "ID")]
    pub(crate) ids: Vec<String>,

    /// Once each job has stopped, have the executor that ran it remove its containers and
    /// their volumes; a job already finished is only cleaned up.
    #[arg(long)]
    pub(crate) cleanup: bool,

    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// `drover logs`.
#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// Keeps printing lines as they arrive, until the job finishes.
    #[arg(long, short = 'f')]
    pub(crate) follow: bool,

    #[command(flatten)]
    pub(crate) job: JobArgs,
}

/// Parses `key=value`; the value as JSON when it is JSON, else as a string.
fn parse_param(input: &str) -> Result<(String, serde_json::Value), String> {
    let Some((key, value)) = input.split_once('=') else {
        return Err(format!(
            "{input:?} is not key=value: write -p {input}=VALUE, e.g. -p seconds=5"
        ));
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("{input:?} has no key: write -p KEY=VALUE"));
    }
    let value =
        serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
    Ok((key.to_owned(), value))
}

/// Parses a duration such as `90s`, `10m` or `1h 30m`, at least one second.
fn parse_timeout(input: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(input)
        .map_err(|err| format!("{input:?} is not a duration ({err}): write e.g. 90s, 10m, 1h"))?;
    if duration < Duration::from_secs(1) {
        return Err(format!("{input:?} is too short: give at least 1s"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use serde_json::json;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn params_are_json_when_they_parse_else_strings() {
        let cases = [
            ("n=3", ("n", json!(3))),
            ("on=true", ("on", json!(true))),
            ("list=[1,2]", ("list", json!([1, 2]))),
            ("name=hello world", ("name", json!("hello world"))),
            ("zip=007", ("zip", json!("007"))),
            ("empty=", ("empty", json!(""))),
            ("eq=a=b", ("eq", json!("a=b"))),
            ("quoted=\"3\"", ("quoted", json!("3"))),
        ];
        for (input, (key, value)) in cases {
            assert_eq!(
                parse_param(input).unwrap(),
                (key.to_owned(), value),
                "{input}"
            );
        }
        for bad in ["novalue", "=3", " =3"] {
            assert!(parse_param(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timeouts_are_human_durations() {
        assert_eq!(parse_timeout("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_timeout("1h 30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_timeout("10").is_err());
        assert!(parse_timeout("500ms").is_err());
    }

    #[test]
    fn submit_parses_every_flag() {
        let cli = Cli::try_parse_from([
            "drover",
            "submit",
            "sleep",
            "-p",
            "seconds=5",
            "--param",
            "x=y",
            "--priority",
            "7",
            "--max-attempts",
            "2",
            "--timeout",
            "10m",
            "--idempotency-key",
            "k",
            "--wait",
            "--url",
            "http://h:1",
            "-o",
            "json",
        ])
        .unwrap();
        let Command::Submit(submit) = cli.command else {
            panic!("not submit: {cli:?}");
        };
        assert_eq!(submit.params.len(), 2);
        assert_eq!(submit.priority.map(Priority::get), Some(7));
        assert_eq!(submit.timeout, Some(Duration::from_secs(600)));
        assert!(submit.wait);
        assert_eq!(submit.client.output, Output::Json);
        assert_eq!(submit.client.url, "http://h:1");
    }

    #[test]
    fn bad_input_is_a_usage_error() {
        for args in [
            &["drover", "submit", "noop", "-p", "novalue"][..],
            &["drover", "submit", "noop", "--priority", "1000"],
            &["drover", "submit", "noop", "--max-attempts", "0"],
            &["drover", "ls", "--state", "DONE"],
            &["drover", "ls", "--limit", "0"],
            &["drover", "ls", "--all", "--limit", "5"],
            &["drover", "show"],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        }
    }
}
