use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::SpanData;
use tally_config::ledger::Outcome;

use super::settings::QueueSettings;
use super::*;

/// An exporter that keeps what it is sent, or fails every export like a collector that is down.
#[derive(Debug, Clone, Default)]
pub(super) struct Collect {
    pub spans: Arc<Mutex<Vec<SpanData>>>,
    pub fail: bool,
}

impl SpanExporter for Collect {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if self.fail {
            return Err(OTelSdkError::InternalFailure("collector down".into()));
        }
        self.spans.lock().expect("lock").extend(batch);
        Ok(())
    }
}

fn settings() -> Settings {
    Settings {
        protocol: Protocol::Grpc,
        queue: QueueSettings {
            // Long enough that only shutdown flushes: the test sees exactly what it sent.
            schedule_delay: Duration::from_secs(60),
            ..QueueSettings::default()
        },
    }
}

fn record() -> LedgerRecord {
    serde_json::from_value(serde_json::json!({
        "requestId": "req-7", "chargeId": "req-7#1", "time": "2026-12-06T12:00:00Z",
        "operation": "Converse", "modelId": "amazon.nova-pro-v1:0", "model": "amazon.nova-pro-v1:0",
        "region": "us-east-1", "team": "search", "inputTokens": 10, "outputTokens": 5,
        "cacheReadTokens": 0, "cacheWrite5mTokens": 0, "cacheWrite1hTokens": 0, "latencyMs": 3,
        "status": 200, "outcome": "ok", "costNanos": 24000, "costUsd": "0.000024", "priceSource": "x"
    }))
    .expect("a ledger record")
}

#[tokio::test]
async fn a_span_continues_the_clients_trace_and_is_exported_at_shutdown() {
    let counters = TraceCounters::default();
    let collect = Collect::default();
    let traces = Traces::start(collect.clone(), settings(), &counters);
    let parent = Parent {
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        tracestate: Some("vendor=x".into()),
    };
    let started = Instant::now() - Duration::from_millis(40);
    traces.record(&record(), Some(Nanos(5_000_000_000)), &parent, started);
    traces.record(&record(), None, &Parent::default(), Instant::now());
    traces.shutdown().await;
    let spans = collect.spans.lock().expect("lock").clone();
    assert_eq!(spans.len(), 2);
    let joined = &spans[0];
    assert_eq!(
        joined.span_context.trace_id(),
        TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap()
    );
    assert_eq!(joined.parent_span_id, SpanId::from_hex("b7ad6b7169203331").unwrap());
    assert_eq!(joined.span_context.trace_state().header(), "vendor=x");
    assert_eq!(joined.span_kind, SpanKind::Client);
    assert_eq!(joined.name, "chat amazon.nova-pro-v1:0");
    assert_eq!(joined.status, Status::Unset);
    let took = joined
        .end_time
        .duration_since(joined.start_time)
        .expect("ends after it starts");
    assert!(took >= Duration::from_millis(40), "{took:?}");
    let root = &spans[1];
    assert_eq!(root.parent_span_id, SpanId::INVALID);
    assert_ne!(root.span_context.trace_id(), joined.span_context.trace_id());
    assert_eq!(counters.exported.get(), 2);
    assert_eq!((counters.failed.get(), counters.dropped.get()), (0, 0));
}

#[tokio::test]
async fn a_collector_that_is_down_costs_the_call_nothing_and_is_counted() {
    let counters = TraceCounters::default();
    let down = Collect {
        fail: true,
        ..Collect::default()
    };
    let traces = Traces::start(down, settings(), &counters);
    let mut refused = record();
    refused.outcome = Outcome::Blocked;
    for _ in 0..3 {
        traces.record(&refused, None, &Parent::default(), Instant::now());
    }
    traces.shutdown().await;
    assert_eq!(counters.failed.get(), 3);
    assert_eq!(counters.exported.get(), 0);
}

#[test]
fn off_records_nothing_and_needs_no_runtime() {
    let traces = Traces::off();
    assert!(!traces.enabled());
    traces.record(&record(), None, &Parent::default(), Instant::now());
}
