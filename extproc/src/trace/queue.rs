//! The bounded queue between the data path and the OTLP exporter. A span ended
//! on the data path is only offered to the queue (`try_send`): when the queue is
//! full it is dropped and counted, never waited for. One worker task batches the
//! queue (`OTEL_BSP_*`) and exports, counting what was exported and what failed.
//!
//! The SDK's own batch processor is not used because it keeps its drop count to
//! itself; this one reports to `/metrics` ([`TraceCounters`]).

use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::metrics::TraceCounters;

use super::settings::QueueSettings;

/// The span processor the tracer provider calls on every ended span.
#[derive(Debug)]
pub struct BoundedQueue {
    tx: mpsc::Sender<SpanData>,
    counters: TraceCounters,
}

impl SpanProcessor for BoundedQueue {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.tx.try_send(span).is_err() {
            self.counters.dropped.inc();
        }
    }

    /// Flushing happens on the worker's schedule and at [`Worker::stop`]; this
    /// synchronous hook cannot wait for an async export without blocking a runtime thread.
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// The exporting task: stopped (and its last spans flushed) by [`Worker::stop`].
#[derive(Debug)]
pub struct Worker {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Worker {
    /// Flushes what is queued (bounded by the export timeout) and ends the task.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// A queue sized by `settings` and the worker that drains it into `exporter`.
pub fn start<E: SpanExporter + 'static>(
    exporter: E,
    settings: QueueSettings,
    counters: TraceCounters,
) -> (BoundedQueue, Worker) {
    let (tx, rx) = mpsc::channel(settings.max_queue_size);
    let stop = CancellationToken::new();
    let task = tokio::spawn(drain(rx, exporter, settings, counters.clone(), stop.clone()));
    (BoundedQueue { tx, counters }, Worker { stop, task })
}

/// Collects a batch until it is full or the schedule delay passes, exports it, repeats;
/// on stop, exports what is left and shuts the exporter down.
async fn drain<E: SpanExporter>(
    mut rx: mpsc::Receiver<SpanData>,
    exporter: E,
    settings: QueueSettings,
    counters: TraceCounters,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(settings.max_export_batch_size);
    // Made once: a fresh waiter per received span would cost the data path's thread for nothing.
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        let deadline = tokio::time::sleep(settings.schedule_delay);
        tokio::pin!(deadline);
        let stopping = loop {
            tokio::select! {
                span = rx.recv() => match span {
                    Some(span) => {
                        batch.push(span);
                        if batch.len() >= settings.max_export_batch_size {
                            break false;
                        }
                    }
                    None => break true,
                },
                _ = &mut deadline => break false,
                _ = &mut stopped => break true,
            }
        };
        if stopping {
            rx.close();
            while let Some(span) = rx.recv().await {
                batch.push(span);
            }
        }
        for chunk in batch_chunks(&mut batch, settings.max_export_batch_size) {
            export(&exporter, chunk, settings.export_timeout, &counters).await;
        }
        if stopping {
            let _ = exporter.shutdown();
            return;
        }
    }
}

/// Takes `batch` apart in export-sized pieces.
fn batch_chunks(batch: &mut Vec<SpanData>, size: usize) -> Vec<Vec<SpanData>> {
    let mut chunks = Vec::new();
    while !batch.is_empty() {
        let rest = batch.split_off(batch.len().min(size));
        chunks.push(std::mem::replace(batch, rest));
    }
    chunks
}

async fn export<E: SpanExporter>(exporter: &E, batch: Vec<SpanData>, timeout: Duration, counters: &TraceCounters) {
    let n = batch.len() as u64;
    match tokio::time::timeout(timeout, exporter.export(batch)).await {
        Ok(Ok(())) => {
            counters.exported.inc_by(n);
        }
        Ok(Err(e)) => {
            counters.failed.inc_by(n);
            tracing::debug!(spans = n, error = %e, "span export failed");
        }
        Err(_) => {
            counters.failed.inc_by(n);
            tracing::debug!(spans = n, ?timeout, "span export timed out");
        }
    }
}

#[cfg(test)]
mod tests;
