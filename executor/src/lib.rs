//! drover's executor: takes queue entries, runs each job's action, reports to the API.
//!
//! - [`run`] — start-up (`prepare`), the slots, the session supervisor, the two-phase
//!   drain and leaving (`leave`: give-backs settled, deregistered); `drain.rs` drains on
//!   SIGTERM and on remote orders (`drover drain`), and resumes when undrained.
//! - [`ExecutorConfig`] — the `[executor]` settings.
//! - [`container`] — one action as a Docker container through bollard (runtime, image,
//!   lifecycle, output, parameters volumes, listings).
//! - slots (`slot.rs`) take → fetch → claim → run → finish → consume; `runner.rs` runs an
//!   action to an [`outcome`](crate::outcome) (`cleanup.rs` runs `cleanup_jobs`);
//!   `reporter.rs` heartbeats and ships logs; `backoff.rs` keeps an API outage from
//!   turning into a hot loop; `stop.rs` says why a job stops early; `supervisor.rs` is the
//!   executor's [`Role`](drover_coordination::Role) on each ZooKeeper session (queue,
//!   registration, busy count); `reap.rs` removes what dead executors left on the daemon;
//!   `watchdog.rs` kills our containers if we freeze or die; `files.rs` is where a job's
//!   inputs come from and its outputs go (the API, or a project directory for
//!   [`local`], the runner of `drover local-run`).

mod backoff;
mod cleanup;
mod collect;
mod config;
pub mod container;
mod drain;
mod error;
mod files;
mod health;
pub mod local;
mod outcome;
mod params;
mod reap;
mod reporter;
mod routing;
mod runner;
mod slot;
mod stage;
mod stage_tar;
mod stop;
mod supervisor;
pub mod watchdog;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use drover_actions::{Action, Catalogue};
use drover_client::ApiClient;
use drover_coordination::ZkSettings;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use config::{ExecutorConfig, DEREGISTER_TIMEOUT, STOP_MARGIN};
pub use error::Error;

use crate::backoff::Backoff;
use crate::container::{DockerRuntime, LABEL_EXECUTOR};
use crate::outcome::RunEnv;
use crate::slot::SlotContext;

/// The two phases of shutdown, as tokens the caller cancels (e.g. on signals).
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// First SIGTERM: stop taking entries, let running jobs finish up to the drain
    /// deadline.
    pub drain: CancellationToken,
    /// Second SIGTERM or SIGINT: skip the wait, stop and release running jobs now.
    pub force: CancellationToken,
}

/// Runs an executor until `shutdown` drains it.
///
/// # Errors
/// Start-up failures: invalid configuration, a malformed action file, no Docker engine
/// for Docker actions. Once running, trouble with ZooKeeper, the API or Docker is
/// retried, never fatal.
pub async fn run(
    config: ExecutorConfig,
    zk: ZkSettings,
    api: ApiClient,
    shutdown: Shutdown,
) -> Result<(), Error> {
    config.validate().map_err(Error::Config)?;
    let id = config.executor_id();
    let slots = config.slot_count();
    let mut prepared = prepare(&config, &id, &zk, api.bearer()).await?;
    let (queue_tx, queue_rx) = watch::channel(None);
    let listener_stop = CancellationToken::new();
    let _stop_listener = listener_stop.clone().drop_guard();
    if let Some(handle) = prepared.metrics.take() {
        let readiness = health::Readiness {
            queue: queue_rx.clone(),
            drain: shutdown.drain.clone(),
        };
        health::start(config.metrics_listen, handle, readiness, listener_stop).await?;
    }
    let (published_tx, published_rx) = watch::channel(supervisor::Published::default());
    let (orders_tx, orders_rx) = watch::channel(drover_model::Orders::default());
    let context = slot_context(config, api, prepared, &id, queue_rx, published_tx);
    let routing = context.routing.clone();
    let started = std::time::SystemTime::now();
    let supervisor_stop = CancellationToken::new();
    let supervisor = tokio::spawn(supervisor::supervise(
        zk,
        context.config.queue_path.clone(),
        supervisor::Identity {
            id: id.clone(),
            host: context.config.host(),
            slots,
            cluster: context.env.cluster.clone(),
            routing,
            started,
            heartbeat: context.config.heartbeat_interval,
        },
        supervisor::Channels {
            queue: queue_tx,
            orders: orders_tx,
            published: published_rx,
        },
        supervisor_stop.clone(),
    ));
    let reaper_stop = CancellationToken::new();
    let reapers = start_reapers(&context, &id, &orders_rx, &reaper_stop);
    let offer = context.routing.offer();
    info!(executor = %id, slots, actions = ?offer.runnable_actions(), tags = ?offer.tags, "executor running");

    let me = drain::Me::new(&id, started);
    let served = drain::serve(&context, &shutdown, orders_rx, &me);
    let reaping = async {
        shutdown.drain.cancelled().await;
        reaper_stop.cancel();
        for reaper in reapers {
            let _ = reaper.await;
        }
    };
    tokio::join!(served, reaping);
    leave(&context, supervisor, supervisor_stop).await;
    info!(executor = %id, "executor stopped");
    Ok(())
}

/// What every slot shares, from the configuration and what start-up prepared.
fn slot_context(
    config: ExecutorConfig,
    api: ApiClient,
    prepared: Prepared,
    id: &str,
    queue: watch::Receiver<Option<drover_coordination::Queue>>,
    published: watch::Sender<supervisor::Published>,
) -> Arc<SlotContext> {
    let routing = routing::Routing::for_catalogue(&prepared.catalogue, &config.tags);
    Arc::new(SlotContext {
        api: api.clone(),
        catalogue: prepared.catalogue,
        routing,
        env: RunEnv {
            executor_id: id.to_owned(),
            docker: prepared.docker,
            stop_grace: config.stop_grace,
            max_output_bytes: config.max_output_bytes,
            api: Some(api),
            watchdog: prepared.watchdog,
            cluster: Arc::default(),
            keep_containers: false,
            secrets: Arc::new(prepared.secrets),
        },
        backoff: Backoff::new(Duration::from_millis(200), config.backoff_max),
        queue,
        busy: AtomicUsize::new(0),
        published,
        config,
    })
}

/// When Docker is in use: the reaper of what dead executors left on the daemon, and the
/// follower of clean-up orders (`drover kill --cleanup`).
fn start_reapers(
    context: &Arc<SlotContext>,
    id: &str,
    orders: &watch::Receiver<drover_model::Orders>,
    stop: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let Some(docker) = context.env.docker.clone() else {
        return Vec::new();
    };
    vec![
        tokio::spawn(reap::run(context.clone(), docker.clone(), stop.clone())),
        tokio::spawn(reap::follow_cleanups(
            docker,
            id.to_owned(),
            context.queue.clone(),
            orders.clone(),
            stop.clone(),
        )),
    ]
}

/// What start-up sets up before anything is taken.
struct Prepared {
    catalogue: Catalogue,
    secrets: Vec<drover_actions::Secret>,
    docker: Option<DockerRuntime>,
    watchdog: Option<Arc<watchdog::Watchdog>>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// Loads the actions, connects to Docker (required only for Docker actions) and clears
/// what a previous run left there, starts the watchdog and the metrics recorder.
async fn prepare(
    config: &ExecutorConfig,
    id: &str,
    zk: &ZkSettings,
    token: Option<&str>,
) -> Result<Prepared, Error> {
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let catalogue = Catalogue::load(config.actions_dir.as_deref(), &env).map_err(Error::Actions)?;
    let secrets = own_secrets(config, zk, token, &env)?;
    let needs_docker = catalogue
        .names()
        .iter()
        .any(|n| matches!(catalogue.get(n), Some(Action::Docker(_))));
    let docker = match DockerRuntime::connect().await {
        Ok(docker) => Some(docker),
        Err(e) if needs_docker => return Err(Error::Docker(e)),
        Err(e) => {
            warn!(error = %e, "no Docker engine; only built-in actions can run");
            None
        }
    };
    if let Some(docker) = &docker {
        remove_leftovers(docker, id).await;
    }
    let watchdog = match &docker {
        Some(_) if config.watchdog => Some(Arc::new(watchdog::Watchdog::start(
            id,
            watchdog::silence_for(zk.session_timeout),
        )?)),
        _ => None,
    };
    let metrics = if config.metrics {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .map_err(|e| Error::Metrics(format!("cannot record metrics: {e}")))?;
        Some(handle)
    } else {
        None
    };
    Ok(Prepared {
        catalogue,
        secrets,
        docker,
        watchdog,
        metrics,
    })
}

/// The executor's own secrets, to hide from every job's output: its API token, its
/// ZooKeeper password and the values of `secret_env`.
fn own_secrets(
    config: &ExecutorConfig,
    zk: &ZkSettings,
    token: Option<&str>,
    env: &std::collections::HashMap<String, String>,
) -> Result<Vec<drover_actions::Secret>, Error> {
    let mut secrets = Vec::new();
    let zk_password = zk
        .auth
        .as_deref()
        .and_then(|a| a.split_once(':'))
        .map(|(_, p)| p);
    for (label, value) in [
        ("the API token", token),
        ("the ZooKeeper password", zk_password),
    ] {
        // Too short to hide without hiding ordinary text: the catalogue's rule does not
        // bind the operator's own credentials, which never reach a container anyway.
        if let Some(secret) =
            value.and_then(|v| drover_actions::Secret::hidden(label, v.to_owned()).ok())
        {
            secrets.push(secret);
        }
    }
    for name in &config.secret_env {
        let key = "executor.secret_env";
        let value = env.get(name).ok_or_else(|| {
            Error::Config(drover_core::ConfigError::new(
                key,
                format!("names {name}, which is not set in the executor's environment: set it or remove it from the list"),
            ))
        })?;
        let secret = drover_actions::Secret::hidden(name, value.clone())
            .map_err(|why| Error::Config(drover_core::ConfigError::new(key, why)))?;
        secrets.push(secret);
    }
    Ok(secrets)
}

/// After the drain: removes the shared parameters volumes, lets the give-backs in flight
/// finish, and deregisters, all within [`config::DEREGISTER_TIMEOUT`].
async fn leave(
    context: &SlotContext,
    supervisor: tokio::task::JoinHandle<()>,
    supervisor_stop: CancellationToken,
) {
    if let Some(docker) = &context.env.docker {
        docker.remove_params_volumes().await;
    }
    let deadline = tokio::time::Instant::now() + config::DEREGISTER_TIMEOUT;
    let queue = context.queue.borrow().clone();
    if let Some(queue) = queue {
        if !queue.settle(config::DEREGISTER_TIMEOUT / 3).await {
            warn!("drain: some entries were still being given back; their markers go with the session");
        }
    }
    supervisor_stop.cancel();
    match tokio::time::timeout_at(deadline, supervisor).await {
        Ok(Ok(())) => info!("drain: deregistered from /executors"),
        _ => warn!("drain: could not deregister in time; the registration goes with the session"),
    }
}

/// Removes containers a previous run of this executor left behind (only its own: other
/// executors may share the Docker daemon).
async fn remove_leftovers(docker: &DockerRuntime, id: &str) {
    match docker.list_labelled(LABEL_EXECUTOR, id).await {
        Ok(ids) if ids.is_empty() => {}
        Ok(ids) => {
            info!(count = ids.len(), executor = %id, "removing containers left by a previous run");
            for container in ids {
                docker.remove(&container).await;
            }
        }
        Err(e) => warn!(error = %e, "cannot list leftover containers"),
    }
    match docker.remove_params_leftovers(id).await {
        Ok(0) => {}
        Ok(count) => info!(
            count,
            "removed shared parameters volumes left by a previous run"
        ),
        Err(e) => warn!(error = %e, "cannot list leftover parameters volumes"),
    }
}
