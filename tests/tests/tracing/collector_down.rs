//! The collector's trouble is never the call's: with Jaeger killed every call still
//! succeeds and the failed exports are counted; with a collector that accepts and never
//! answers, the full queue drops spans — counted — instead of waiting.

use std::time::Duration;

use tally_tests::client::Attribution;
use tally_tests::fixtures::jaeger::Jaeger;
use tally_tests::scenarios::HAIKU;

use crate::support::{span_counter, traced_stack, wait_counter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_succeed_with_the_collector_down_and_the_failed_spans_are_counted() {
    let mut jaeger = Jaeger::start().await;
    let otel = [
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", jaeger.otlp_grpc_endpoint()),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc".to_string()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000".to_string()),
    ];
    let stack = traced_stack("tally-extproc-down", &otel).await;
    let client = stack.client(Attribution::new("search", "acme", "rag"));
    client
        .converse(HAIKU, "Up [[usage in=10 out=2]]")
        .await
        .expect("the call succeeds");
    jaeger
        .wait_spans("tally-extproc-down", 1, Duration::from_secs(30))
        .await;
    assert_eq!(
        wait_counter(&stack, "exported", 1.0, Duration::from_secs(10)).await,
        1.0
    );
    jaeger.kill();
    for _ in 0..5 {
        let out = client.converse(HAIKU, "Down [[usage in=10 out=2]]").await;
        out.expect("a call succeeds with the collector down");
        assert!(client.last_header("x-tally-cost-usd").parse::<f64>().is_ok());
    }
    let failed = wait_counter(&stack, "failed", 5.0, Duration::from_secs(20)).await;
    assert_eq!(failed, 5.0, "every span of the down collector is counted as failed");
    assert_eq!(span_counter(&stack, "exported").await, 1.0);
    assert_eq!(stack.extproc.wait_ledger(6, Duration::from_secs(10)).await.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_collector_fills_the_queue_and_spans_are_dropped_not_waited_for() {
    // Accepts connections and never answers: each export hangs until its timeout.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!("http://{}", hole.local_addr().expect("addr"));
    let held = tokio::spawn(async move {
        let mut conns = vec![];
        while let Ok((conn, _)) = hole.accept().await {
            conns.push(conn);
        }
    });
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_string()),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "2".to_string()),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1".to_string()),
        ("OTEL_BSP_EXPORT_TIMEOUT", "60000".to_string()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "60000".to_string()),
    ];
    let stack = traced_stack("tally-extproc-stuck", &otel).await;
    let client = stack.client(Attribution::new("search", "acme", "rag"));
    let calls = 8;
    for _ in 0..calls {
        client
            .converse(HAIKU, "Stuck [[usage in=10 out=2]]")
            .await
            .expect("a call succeeds while the collector hangs");
    }
    // One span is in the hanging export, two wait in the queue: the rest were dropped.
    let dropped = span_counter(&stack, "dropped").await;
    assert!(dropped >= (calls - 3) as f64, "dropped {dropped} of {calls}");
    assert_eq!(span_counter(&stack, "exported").await, 0.0);
    assert_eq!(
        stack.extproc.wait_ledger(calls, Duration::from_secs(10)).await.len(),
        calls
    );
    held.abort();
}
