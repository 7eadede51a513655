//! `drover executors`.

use std::process::ExitCode;

use crate::args::{ClientArgs, Output};
use crate::output;

/// `drover executors`: who is registered in ZooKeeper, with their slots.
pub(crate) async fn run(args: ClientArgs) -> anyhow::Result<ExitCode> {
    let executors = super::connect::client(&args)?.executors().await?;
    match args.output {
        Output::Json => output::emit(&output::json(&executors)?)?,
        Output::Table if executors.is_empty() => eprintln!("no executors are registered"),
        Output::Table => output::emit(&output::executors_table(&executors))?,
    }
    Ok(ExitCode::SUCCESS)
}
