//! How a client command reaches the API and prints its answers.

use clap::{Args, ValueEnum};
use drover_client::DEFAULT_URL;

/// How to reach the API, and how to print the answer.
#[derive(Debug, Clone, Args)]
pub(crate) struct ClientArgs {
    /// The API's base URL.
    #[arg(long, env = "DROVER_URL", default_value = DEFAULT_URL, value_name = "URL")]
    pub(crate) url: String,

    /// The bearer token (role submitter or admin).
    #[arg(
        long,
        env = "DROVER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub(crate) token: Option<String>,

    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub(crate) output: Output,
}

/// How answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// For people: tables and short lines.
    Table,
    /// For programs: the API's JSON (one object per line for logs).
    Json,
}
