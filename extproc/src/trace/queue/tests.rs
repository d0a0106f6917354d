use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;

use super::*;

/// Ends `spans` spans into a queue of `capacity` that nobody drains; what the queue then holds.
fn end_into_stuck_queue(capacity: usize, spans: usize, counters: &TraceCounters) -> Vec<SpanData> {
    let (tx, mut rx) = mpsc::channel(capacity);
    let queue = BoundedQueue {
        tx,
        counters: counters.clone(),
    };
    let provider = SdkTracerProvider::builder().with_span_processor(queue).build();
    let tracer = provider.tracer("test");
    for _ in 0..spans {
        tracer.start("call").end();
    }
    let mut queued = Vec::new();
    while let Ok(span) = rx.try_recv() {
        queued.push(span);
    }
    queued
}

#[test]
fn a_full_queue_drops_and_counts_instead_of_waiting() {
    let counters = TraceCounters::default();
    let queued = end_into_stuck_queue(2, 5, &counters);
    assert_eq!(queued.len(), 2);
    assert_eq!(counters.dropped.get(), 3);
}

#[test]
fn a_batch_is_cut_into_export_sized_chunks() {
    let counters = TraceCounters::default();
    let mut batch = end_into_stuck_queue(8, 5, &counters);
    let sizes: Vec<usize> = batch_chunks(&mut batch, 2).iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1]);
    assert!(batch.is_empty());
    assert_eq!(counters.dropped.get(), 0);
}
