//! drover's job API: durable job records behind a fenced state machine, on SQLite or
//! PostgreSQL, served over HTTP (see `api/API.md`).
//!
//! - [`run`] / [`serve`] — the `api` role: bind (or take a listener), serve until the
//!   shutdown token is cancelled, then close in order.
//! - [`ApiConfig`] — the `[api]` settings, with defaults and [`ApiConfig::validate`].
//! - [`StartError`] — what stops the API from starting (configuration, listen address,
//!   database); what goes wrong answering a request maps to an HTTP status in one place
//!   (`error`).
//!
//! The wire types are `drover-model`'s and the typed client is `drover-client`, so
//! the roles that only call the API build neither the database nor the OpenAPI layer.
//!
//! Inside, top to bottom: `server` (start-up, the router, shutdown) over `handlers`,
//! which reach everything through `state` (`AppState`); `auth` (roles, the `Authorized`
//! extractor) over `tokens`; `extract` (extractors whose rejections are JSON, the body
//! deadline); `listener` (the accept loop: connection limit, header timeout, graceful
//! close); `coordinator` (the optional ZooKeeper session, through the coordination
//! supervisor); `reconcile` (repairs between the database and the queue); `store` (the
//! `handle`, pure `decide`-ions, fenced `lifecycle` moves, logs, migrations, SQLite's
//! group-committing single writer); `metrics`; `openapi`; `startup` and `error`.

mod artifacts;
mod auth;
mod config;
mod coordinator;
mod enqueuer;
mod error;
mod extract;
mod handlers;
mod levels;
mod listener;
mod metrics;
#[cfg(feature = "openapi")]
mod openapi;
mod reconcile;
mod server;
mod startup;
mod state;
mod store;
mod tokens;

pub use artifacts::{ArtifactsConfig, S3Config};
pub use config::{ApiConfig, ApiToken, Role};
pub use levels::ReadLevel;
#[cfg(feature = "openapi")]
pub use openapi::document as openapi_document;
pub use server::{run, serve};
pub use startup::{StartError, StartResult};
