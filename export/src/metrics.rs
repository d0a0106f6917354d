//! The exporter's metrics (`tally_ledger_export_*`) and its HTTP surface: `/metrics`
//! (Prometheus text) and `/healthz`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// What the exporter has done and how far behind it is.
pub struct Metrics {
    registry: Registry,
    /// Ledger records written into Parquet files (a record rewritten after a crash counts again).
    pub records: Counter,
    pub files: Counter,
    pub bytes: Counter,
    /// Export attempts (a stream's read, a file's write, an acknowledgement) that failed.
    pub failures: Counter,
    /// Records that could not become rows, kept verbatim under `ledger-invalid/`.
    pub invalid: Counter,
    /// Entries the SETTLE script's length guard cut before they were exported, over all teams
    /// (read from Redis: alert when it grows), plus pending entries found already trimmed.
    pub dropped: Gauge<u64, AtomicU64>,
    /// Entries not yet acknowledged, over all teams, as of the last cycle.
    pub lag_records: Gauge<u64, AtomicU64>,
    /// Age of the oldest entry not yet acknowledged, over all teams (0 when caught up).
    pub lag_seconds: Gauge<f64, AtomicU64>,
    /// Completed export cycles.
    pub cycles: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tally_ledger_export");
        let m = Metrics {
            records: Counter::default(),
            files: Counter::default(),
            bytes: Counter::default(),
            failures: Counter::default(),
            invalid: Counter::default(),
            dropped: Gauge::default(),
            lag_records: Gauge::default(),
            lag_seconds: Gauge::default(),
            cycles: Counter::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register("records", "Ledger records written to Parquet files", m.records.clone());
        r.register("files", "Parquet and NDJSON objects stored", m.files.clone());
        r.register("bytes", "Bytes of objects stored", m.bytes.clone());
        r.register(
            "failures",
            "Failed reads, writes or acknowledgements",
            m.failures.clone(),
        );
        r.register(
            "invalid_records",
            "Records kept verbatim because they cannot be rows",
            m.invalid.clone(),
        );
        r.register(
            "dropped_records",
            "Ledger entries trimmed by the length guard before export (alert on any increase)",
            m.dropped.clone(),
        );
        r.register(
            "lag_records",
            "Ledger entries not yet acknowledged",
            m.lag_records.clone(),
        );
        r.register(
            "lag_seconds",
            "Age of the oldest ledger entry not yet acknowledged",
            m.lag_seconds.clone(),
        );
        r.register("cycles", "Completed passes over every ledger stream", m.cycles.clone());
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// `/metrics` and `/healthz`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(metrics)
}

async fn render(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exposed_under_the_exporter_prefix() {
        let m = Metrics::default();
        m.files.inc();
        m.lag_seconds.set(1.5);
        let text = m.render();
        for name in [
            "tally_ledger_export_records_total",
            "tally_ledger_export_files_total 1",
            "tally_ledger_export_bytes_total",
            "tally_ledger_export_failures_total",
            "tally_ledger_export_invalid_records_total",
            "tally_ledger_export_dropped_records",
            "tally_ledger_export_lag_records",
            "tally_ledger_export_lag_seconds 1.5",
            "tally_ledger_export_cycles_total",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
