//! Prometheus metrics: request latency by route and status, jobs by state.
//!
//! The recorder is owned by the API (never installed globally), so several APIs in one
//! process, as in tests, keep separate metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Key, KeyName, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::startup::{StartError, StartResult};

const HTTP_DURATION: &str = "drover_http_request_duration_seconds";
const JOBS: &str = "drover_jobs";
const ZK_CONNECTED: &str = "drover_zookeeper_connected";
const RECONCILE_RUNS: &str = "drover_reconcile_runs_total";
const RECONCILE_REPAIRS: &str = "drover_reconcile_repairs_total";
const CLEANUP_DELETED: &str = "drover_cleanup_deleted_jobs_total";
const CLAIM_CHECK: &str = "drover_claim_check_seconds";
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The API's metrics. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh recorder with the latency histogram's buckets.
    ///
    /// # Errors
    /// [`StartError::Internal`] if the exporter rejects the buckets (it never should).
    pub(crate) fn new() -> StartResult<Metrics> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.to_owned()), &BUCKETS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(Matcher::Full(CLAIM_CHECK.to_owned()), &BUCKETS)
            })
            .map_err(|err| StartError::Internal(format!("metrics buckets: {err}")))?
            .build_recorder();
        recorder.describe_histogram(
            KeyName::from_const_str(HTTP_DURATION),
            Some(Unit::Seconds),
            SharedString::const_str("HTTP request latency by method, route and status"),
        );
        recorder.describe_gauge(
            KeyName::from_const_str(JOBS),
            None,
            SharedString::const_str("jobs in the database by state"),
        );
        recorder.describe_gauge(
            KeyName::from_const_str(ZK_CONNECTED),
            None,
            SharedString::const_str("1 while the API has a healthy ZooKeeper session"),
        );
        recorder.describe_counter(
            KeyName::from_const_str(RECONCILE_RUNS),
            None,
            SharedString::const_str("reconcile runs this API served"),
        );
        recorder.describe_counter(
            KeyName::from_const_str(RECONCILE_REPAIRS),
            None,
            SharedString::const_str("repairs made by the reconciler, by kind"),
        );
        recorder.describe_counter(
            KeyName::from_const_str(CLEANUP_DELETED),
            None,
            SharedString::const_str("finished jobs deleted by cleanup"),
        );
        recorder.describe_histogram(
            KeyName::from_const_str(CLAIM_CHECK),
            Some(Unit::Seconds),
            SharedString::const_str(
                "time a claim spends proving its queue entry in ZooKeeper, by outcome",
            ),
        );
        let handle = recorder.handle();
        Ok(Metrics {
            recorder: Arc::new(recorder),
            handle,
        })
    }

    fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let key = Key::from_parts(
            HTTP_DURATION,
            vec![
                Label::new("method", method.to_owned()),
                Label::new("route", route.to_owned()),
                Label::new("status", status.to_string()),
            ],
        );
        self.recorder
            .register_histogram(&key, &METADATA)
            .record(elapsed.as_secs_f64());
    }

    /// The Prometheus text, with the given job counts and ZooKeeper state.
    pub(crate) fn render(&self, jobs: &[(drover_core::State, i64)], zk_connected: bool) -> String {
        for (state, count) in jobs {
            let key = Key::from_parts(JOBS, vec![Label::new("state", state.as_str())]);
            #[allow(clippy::cast_precision_loss)]
            self.recorder
                .register_gauge(&key, &METADATA)
                .set(*count as f64);
        }
        self.recorder
            .register_gauge(&Key::from_static_name(ZK_CONNECTED), &METADATA)
            .set(if zk_connected { 1.0 } else { 0.0 });
        self.handle.run_upkeep();
        self.handle.render()
    }

    /// Counts a reconcile run and its repairs by kind.
    pub(crate) fn count_reconcile(&self, report: &drover_model::Reconciled) {
        self.recorder
            .register_counter(&Key::from_static_name(RECONCILE_RUNS), &METADATA)
            .increment(1);
        let kinds = [
            ("enqueued", &report.enqueued),
            ("marked_enqueued", &report.marked_enqueued),
            ("released", &report.released),
            ("ended", &report.ended),
            ("removed_entries", &report.removed_entries),
        ];
        for (kind, repairs) in kinds {
            let key = Key::from_parts(RECONCILE_REPAIRS, vec![Label::new("kind", kind)]);
            self.recorder
                .register_counter(&key, &METADATA)
                .increment(repairs.count);
        }
    }

    /// Records how long a claim's ZooKeeper check took and whether it passed.
    pub(crate) fn observe_claim_check(&self, passed: bool, elapsed: Duration) {
        let outcome = if passed { "proven" } else { "refused" };
        let key = Key::from_parts(CLAIM_CHECK, vec![Label::new("outcome", outcome)]);
        self.recorder
            .register_histogram(&key, &METADATA)
            .record(elapsed.as_secs_f64());
    }

    /// Counts jobs deleted by cleanup.
    pub(crate) fn count_cleanup(&self, jobs: u64) {
        self.recorder
            .register_counter(&Key::from_static_name(CLEANUP_DELETED), &METADATA)
            .increment(jobs);
    }

    /// Drains histogram buffers; call periodically.
    pub(crate) fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// Middleware recording each request's latency under its route pattern.
pub(crate) async fn track(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    metrics.observe(
        method.as_str(),
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
