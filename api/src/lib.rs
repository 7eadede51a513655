//! drover's job API (work in progress).
//!
//! - [`model`] — the wire types shared by the server, the client, the CLI and executors.
//! - [`client`] — the HTTP client (reqwest) every other role uses.

pub mod client;
pub mod model;
