//! `drover local-run`: a project's pipeline on one machine, without ZooKeeper, an API or
//! a database server, with the code a cluster runs it with:
//!
//! | piece | shared with the cluster through |
//! |---|---|
//! | project file, matrix, `needs`, cycles | [`drover_pipeline::Project`] |
//! | skip / rerun / `-f` decisions | [`drover_pipeline::plan`] (here over `.drover/manifest.json`) |
//! | an action's job (action, params, outputs) | [`drover_pipeline::Action::job`] |
//! | container, limits, labels, timeout, secrets, staging, collection | [`drover_executor::local`] (the executor's `runner.rs`, `stage.rs`, `collect.rs`) |
//! | release checks | [`drover_outputs::ReleaseRules::check_for`] |
//! | code snapshot | [`drover_outputs::snapshot`] |
//!
//! What is local only: the state directory ([`state`]), the scheduler ([`run`]; one job
//! in `job.rs`) that
//! starts a job once what it needs succeeded (the API's part on a cluster), and
//! publishing outputs into the project directory ([`publish`]).
//! [`recreate`] fetches a cluster job and runs it here the same way.

mod error;
pub mod fetch;
mod job;
pub mod plan;
pub mod publish;
pub mod recreate;
mod report;
pub mod run;
pub mod state;

pub use error::Error;
pub use run::{run, ActionReport, Event, Options, Report};
