//! A span per call in Jaeger, equal to the call's ledger record; the client's trace
//! continued; a refused call's span. Over OTLP/gRPC and OTLP/HTTP.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tally_tests::client::Attribution;
use tally_tests::expect::usd_to_nanos;
use tally_tests::fixtures::jaeger::{Jaeger, JaegerSpan};
use tally_tests::scenarios::HAIKU;

use crate::support::{converse_with_traceparent, ledger_by_request_id, span_counter, traced_stack};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

/// Calls with cache reads and writes, so `gen_ai.usage.input_tokens` must add them up.
const DIRECTIVES: [&str; 3] = [
    "Summarise [[usage in=1200 out=300 cr=40 cw5m=5 cw1h=1]]",
    "Classify [[usage in=10 out=2]]",
    "Answer [[usage in=500 out=120 cr=2000]]",
];

/// The spans of `service` by `tally.request_id`.
fn by_request_id(spans: Vec<JaegerSpan>) -> BTreeMap<String, JaegerSpan> {
    spans
        .into_iter()
        .map(|s| (s.tag("tally.request_id").expect("every span names its request"), s))
        .collect()
}

fn int(record: &Value, key: &str) -> i64 {
    record[key].as_i64().unwrap_or_else(|| panic!("{key} in {record}"))
}

/// The span says what the ledger says: money, tokens, attribution and ids.
fn assert_span_matches_record(span: &JaegerSpan, r: &Value) {
    let text = |key: &str| r[key].as_str().map(str::to_string);
    let tag = |key: &str| span.tag(key);
    assert_eq!(tag("gen_ai.provider.name").as_deref(), Some("aws.bedrock"));
    assert_eq!(tag("span.kind").as_deref(), Some("client"));
    assert_eq!(tag("gen_ai.request.model"), text("modelId"));
    assert_eq!(tag("tally.team"), text("team"));
    assert_eq!(tag("tally.tenant"), text("tenant"));
    assert_eq!(tag("tally.workflow"), text("workflow"));
    assert_eq!(tag("tally.cost_usd"), text("costUsd"), "exact, as the ledger writes it");
    assert_eq!(tag("tally.request_id"), text("requestId"));
    assert_eq!(tag("tally.charge_id"), text("chargeId"));
    assert_eq!(tag("tally.outcome"), text("outcome"));
    assert_eq!(tag("http.response.status_code"), Some(int(r, "status").to_string()));
    if let Some(remaining) = r["teamBudgetRemainingNanos"].as_i64() {
        let span_remaining = tag("tally.budget_remaining_usd").expect("a budget's remaining amount");
        assert_eq!(usd_to_nanos(&span_remaining), remaining);
    }
}

fn assert_usage_matches_record(span: &JaegerSpan, r: &Value) {
    let cache_write = int(r, "cacheWrite5mTokens") + int(r, "cacheWrite1hTokens");
    let input = int(r, "inputTokens") + int(r, "cacheReadTokens") + cache_write;
    let tag = |key: &str| span.tag(key);
    assert_eq!(tag("gen_ai.operation.name").as_deref(), Some("chat"));
    assert_eq!(span.name, format!("chat {}", r["modelId"].as_str().unwrap()));
    assert_eq!(tag("gen_ai.usage.input_tokens"), Some(input.to_string()));
    assert_eq!(
        tag("gen_ai.usage.output_tokens"),
        Some(int(r, "outputTokens").to_string())
    );
    assert_eq!(
        tag("gen_ai.usage.cache_read.input_tokens"),
        Some(int(r, "cacheReadTokens").to_string())
    );
    assert_eq!(
        tag("gen_ai.usage.cache_creation.input_tokens"),
        Some(cache_write.to_string())
    );
    assert_eq!(tag("error.type"), None);
}

/// N calls, one of them traced by the client and one refused: a span each, equal to its record.
async fn spans_equal_the_ledger(protocol: &str, endpoint: impl Fn(&Jaeger) -> String) {
    let mut jaeger = Jaeger::start().await;
    let service = format!("tally-extproc-{}", protocol.replace('/', "-"));
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint(&jaeger)),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_string()),
    ];
    let stack = traced_stack(&service, &otel).await;
    let client = stack.client(Attribution::new("search", "acme", "rag"));
    let mut ids = vec![];
    for directive in DIRECTIVES {
        client.converse(HAIKU, directive).await.expect("the call succeeds");
        ids.push(client.request_id());
    }
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
    converse_with_traceparent(&client, HAIKU, "Traced [[usage in=7 out=3]]", &traceparent).await;
    let traced = client.request_id();
    ids.push(traced.clone());
    // `ads` may only call amazon.nova-*: refused with 403 before Bedrock, and recorded.
    let ads = stack.client(Attribution::team("ads"));
    let denied = ads.converse(HAIKU, "hello").await.expect_err("ads may not call Haiku");
    assert_eq!(denied.raw_response().map(|r| r.status().as_u16()), Some(403));
    let refused = ads.request_id();
    let n = ids.len() + 1;

    let ledger = ledger_by_request_id(&stack, n).await;
    let spans = by_request_id(jaeger.wait_spans(&service, n, Duration::from_secs(30)).await);
    assert_eq!(spans.len(), n, "one span per call: {:?}", spans.keys());
    for id in &ids {
        let (span, record) = (&spans[id], &ledger[id]);
        assert_eq!(span.service, service);
        assert_span_matches_record(span, record);
        assert_usage_matches_record(span, record);
    }
    let joined = &spans[&traced];
    assert_eq!(joined.trace_id, TRACE_ID, "the span continues the client's trace");
    assert_eq!(joined.parent, Some((TRACE_ID.to_string(), PARENT_SPAN_ID.to_string())));
    for id in ids.iter().filter(|id| **id != traced) {
        assert_eq!(spans[id].parent, None, "a call without traceparent is a root span");
        assert_ne!(spans[id].trace_id, TRACE_ID);
    }
    let refusal = &spans[&refused];
    assert_span_matches_record(refusal, &ledger[&refused]);
    assert_eq!(refusal.tag("tally.outcome").as_deref(), Some("denied"));
    assert_eq!(refusal.tag("error.type").as_deref(), Some("AccessDeniedException"));
    assert_eq!(refusal.tag("otel.status_code").as_deref(), Some("ERROR"));
    assert_eq!(refusal.tag("gen_ai.usage.input_tokens"), None);
    assert_eq!(span_counter(&stack, "exported").await, n as f64);
    assert_eq!(span_counter(&stack, "dropped").await, 0.0);
    assert_eq!(span_counter(&stack, "failed").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_has_a_span_equal_to_its_ledger_record_over_otlp_grpc() {
    spans_equal_the_ledger("grpc", Jaeger::otlp_grpc_endpoint).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_has_a_span_equal_to_its_ledger_record_over_otlp_http() {
    spans_equal_the_ledger("http/protobuf", Jaeger::otlp_http_endpoint).await;
}
