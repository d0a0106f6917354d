use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;

use super::*;

/// A queue of `capacity` that nobody drains: what it cannot hold is dropped and counted.
fn stuck_queue(capacity: usize, counters: &TraceCounters) -> (BoundedQueue, mpsc::Receiver<SpanData>) {
    let (tx, rx) = mpsc::channel(capacity);
    let queue = BoundedQueue {
        tx,
        counters: counters.clone(),
    };
    (queue, rx)
}

#[test]
fn a_full_queue_drops_and_counts_instead_of_waiting() {
    let counters = TraceCounters::default();
    let (queue, mut rx) = stuck_queue(2, &counters);
    let provider = SdkTracerProvider::builder().with_span_processor(queue).build();
    let tracer = provider.tracer("test");
    for _ in 0..5 {
        tracer.start("call").end();
    }
    assert_eq!(counters.dropped.get(), 3);
    let mut queued = 0;
    while rx.try_recv().is_ok() {
        queued += 1;
    }
    assert_eq!(queued, 2);
}

#[test]
fn a_batch_is_cut_into_export_sized_chunks() {
    let counters = TraceCounters::default();
    let (queue, mut rx) = stuck_queue(8, &counters);
    let provider = SdkTracerProvider::builder().with_span_processor(queue).build();
    let tracer = provider.tracer("test");
    for _ in 0..5 {
        tracer.start("call").end();
    }
    let mut batch = Vec::new();
    while let Ok(span) = rx.try_recv() {
        batch.push(span);
    }
    let sizes: Vec<usize> = batch_chunks(&mut batch, 2).iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1]);
    assert!(batch.is_empty());
}
