//! The HTTP handlers, by audience.

pub(crate) mod admin;
pub(crate) mod code;
pub(crate) mod control;
pub(crate) mod executor;
pub(crate) mod jobs;
pub(crate) mod logs;
pub(crate) mod ops;
pub(crate) mod outputs;
pub(crate) mod requests;
mod shown;
