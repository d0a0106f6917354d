//! The operator's own HTTP surface: `/metrics` (Prometheus text), `/healthz` (the process
//! serves), `/readyz` (it has reached the API server at least once).
//!
//! Standby replicas are ready too: readiness says "can take over", not "is the leader", so a
//! rolling update never waits on an election. `tally_operator_leader` says which one leads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

/// Which reconcile a metric sample is about.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// `config` (compile + ConfigMap + Ready) or `status` (counters → status, events).
    pub kind: &'static str,
}

/// Metrics of the reconcile loops.
pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<KindLabel, Counter>,
    pub errors: Family<KindLabel, Counter>,
    pub duration: Family<KindLabel, Histogram>,
    pub config_writes: Counter,
    pub events: Counter,
    pub leader: Gauge,
    /// Objects per readiness, set by the config reconcile.
    pub invalid_objects: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tally_operator");
        let r = &mut registry;
        let duration = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        Metrics {
            reconciles: registered(r, "reconciles", "Reconcile passes", Family::default()),
            errors: registered(r, "reconcile_errors", "Reconcile passes that failed", Family::default()),
            duration: registered(
                r,
                "reconcile_duration_seconds",
                "Duration of reconcile passes",
                duration,
            ),
            config_writes: registered(
                r,
                "config_writes",
                "Writes of the compiled-config ConfigMap",
                Counter::default(),
            ),
            events: registered(r, "events", "Kubernetes events published", Counter::default()),
            leader: registered(
                r,
                "leader",
                "1 while this replica holds the leader lease",
                Gauge::default(),
            ),
            invalid_objects: registered(
                r,
                "invalid_objects",
                "TeamBudget and ModelPricing objects with Ready=False",
                Gauge::default(),
            ),
            registry,
        }
    }
}

/// `metric`, registered in `registry` (metrics are shared handles: the clone is the same metric).
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    /// Records one pass of `kind` that took `took` and succeeded or not.
    pub fn observe(&self, kind: &'static str, took: Duration, ok: bool) {
        let label = KindLabel { kind };
        self.reconciles.get_or_create(&label).inc();
        self.duration.get_or_create(&label).observe(took.as_secs_f64());
        if !ok {
            self.errors.get_or_create(&label).inc();
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Shared with the HTTP handlers.
#[derive(Clone)]
pub struct Probe {
    pub metrics: Arc<Metrics>,
    /// Set once the API server answered.
    pub reachable: Arc<AtomicBool>,
}

/// `/metrics`, `/healthz`, `/readyz`.
pub fn router(probe: Probe) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(probe)
}

async fn metrics(State(probe): State<Probe>) -> impl IntoResponse {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        probe.metrics.render(),
    )
}

async fn readyz(State(probe): State<Probe>) -> impl IntoResponse {
    if probe.reachable.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the Kubernetes API server has not answered yet",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_reconcile_metrics() {
        let m = Metrics::default();
        m.observe("config", Duration::from_millis(3), true);
        m.observe("status", Duration::from_millis(5), false);
        let text = m.render();
        assert!(
            text.contains("tally_operator_reconciles_total{kind=\"config\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("tally_operator_reconcile_errors_total{kind=\"status\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("tally_operator_reconcile_duration_seconds_count{kind=\"status\"} 1"),
            "{text}"
        );
    }
}
