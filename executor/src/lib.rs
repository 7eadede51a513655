//! drover's executor (work in progress).
//!
//! - [`container`] — one action run as a Docker container through bollard.

pub mod container;
