//! The long-running roles the `drover` binary plays (`drover api`, `drover executor`,
//! `drover distributor`): configuration, signals, run until stopped.

pub(crate) mod api;
pub(crate) mod distributor;
pub(crate) mod executor;
mod signals;
