//! drover's job API (work in progress).

pub mod model;
