//! OpenTelemetry traces: one span per metered Bedrock call, sent over OTLP.
//!
//! What a span says is decided in [`span`] from the settled ledger record alone
//! (pure, unit-tested); whether and how spans are exported in [`settings`] (the
//! standard `OTEL_*` variables, off by default); the bounded queue that keeps
//! exporting off the data path in [`queue`]. [`Traces`] is the small edge the
//! exchange calls once a call is settled or refused: it must never block, fail
//! or slow the call, whatever the collector does.

pub mod queue;
pub mod settings;
pub mod span;

use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanExporter};
use tally_config::ledger::LedgerRecord;
use tally_config::money::Nanos;

use crate::metrics::TraceCounters;

pub use settings::{Protocol, Settings, SettingsError};
pub use span::{CallSpan, Parent};

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("tracing settings: {0}")]
    Settings(#[from] SettingsError),
    #[error("building the OTLP span exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// The service name when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one.
const SERVICE_NAME: &str = "tally-extproc";

/// The ext_proc's call spans: off (nothing is built, nothing is spent), or a
/// tracer whose spans go to the bounded queue.
#[derive(Debug, Default)]
pub struct Traces {
    on: Option<On>,
}

#[derive(Debug)]
struct On {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
    /// Taken by [`Traces::shutdown`].
    worker: Mutex<Option<queue::Worker>>,
}

impl Traces {
    /// Tracing off.
    pub fn off() -> Traces {
        Traces::default()
    }

    /// Tracing as the process environment configures it. Needs a Tokio runtime
    /// (the queue's worker and the gRPC exporter run on it).
    pub fn from_env(counters: &TraceCounters) -> Result<Traces, TraceError> {
        let Some(settings) = Settings::from_env(|name| std::env::var(name).ok())? else {
            return Ok(Traces::off());
        };
        let builder = opentelemetry_otlp::SpanExporter::builder();
        // Endpoint, headers, timeout and compression come from OTEL_EXPORTER_OTLP_*.
        let exporter = match settings.protocol {
            Protocol::Grpc => builder.with_tonic().build()?,
            Protocol::HttpProtobuf => builder.with_http().build()?,
        };
        tracing::info!(protocol = ?settings.protocol, queue = settings.queue.max_queue_size, "exporting call spans over OTLP");
        Ok(Traces::start(exporter, settings, counters))
    }

    /// Tracing into `exporter` (tests give their own).
    pub fn start<E: SpanExporter + 'static>(mut exporter: E, settings: Settings, counters: &TraceCounters) -> Traces {
        let resource = resource();
        exporter.set_resource(&resource);
        let (queue, worker) = queue::start(exporter, settings.queue, counters.clone());
        // The sampler (OTEL_TRACES_SAMPLER, _ARG) is the SDK's default config, read from the environment.
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_span_processor(queue)
            .build();
        let tracer = provider.tracer("tally-extproc");
        Traces {
            on: Some(On {
                provider,
                tracer,
                propagator: TraceContextPropagator::new(),
                worker: Mutex::new(Some(worker)),
            }),
        }
    }

    pub fn enabled(&self) -> bool {
        self.on.is_some()
    }

    /// The span of a settled (or refused) call, from the request's arrival
    /// (`started`) to now, continuing the client's trace when it sent one.
    pub fn record(&self, record: &LedgerRecord, remaining: Option<Nanos>, parent: &Parent, started: Instant) {
        let Some(on) = &self.on else { return };
        let span = span::call_span(record, remaining);
        let end = SystemTime::now();
        let start = end.checked_sub(started.elapsed()).unwrap_or(end);
        let parent_cx = on.propagator.extract(&Headers(parent));
        let mut s = on
            .tracer
            .span_builder(span.name)
            .with_kind(SpanKind::Client)
            .with_start_time(start)
            .with_attributes(span.attributes)
            .start_with_context(&on.tracer, &parent_cx);
        s.set_status(span.status);
        s.end_with_timestamp(end);
    }

    /// Exports what is queued (each export bounded by `OTEL_BSP_EXPORT_TIMEOUT`) and stops.
    pub async fn shutdown(&self) {
        let Some(on) = &self.on else { return };
        let worker = on.worker.lock().map(|mut w| w.take()).unwrap_or_default();
        if let Some(worker) = worker {
            worker.stop().await;
        }
        let _ = on.provider.shutdown();
    }
}

/// The resource every span carries: the SDK's detectors (`OTEL_SERVICE_NAME`,
/// `OTEL_RESOURCE_ATTRIBUTES`), named `tally-extproc` when they name no service.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let unnamed = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_none_or(|v| v.as_str().starts_with("unknown_service"));
    if unnamed {
        Resource::builder().with_service_name(SERVICE_NAME).build()
    } else {
        detected
    }
}

/// The request's trace headers as the W3C propagator reads them.
struct Headers<'a>(&'a Parent);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.0.traceparent.as_deref(),
            "tracestate" => self.0.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

#[cfg(test)]
mod tests;
