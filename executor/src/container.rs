//! Running one action as a Docker container through bollard.
//!
//! Parameters are copied in as `/drover/params.json` through the Docker API rather than
//! bind-mounted from an executor path: the executor may itself run in a container that
//! talks to the host's Docker socket. Parameters seen before share a read-only volume
//! filled once through the same API (see `params.rs`); `/drover` is read-only either way.
//!
//! Inside: `runtime` (the handle, labels, errors, specs), `image`, `lifecycle` (create
//! to remove), `output` (the followed log stream), `volumes` (parameters), `listing`
//! (by label).

mod image;
mod lifecycle;
mod listing;
mod output;
mod runtime;
mod volumes;

pub use output::MAX_LINE_BYTES;
pub use runtime::{
    ContainerError, ContainerSpec, DockerRuntime, Exit, OutputLine, LABEL_ATTEMPT, LABEL_CLUSTER,
    LABEL_EXECUTOR, LABEL_JOB, LABEL_PARAMS_OF,
};
