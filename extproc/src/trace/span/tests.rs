use opentelemetry::{Key, Value};

use super::*;

fn record(outcome: Outcome) -> LedgerRecord {
    LedgerRecord {
        request_id: "req-1".into(),
        charge_id: "req-1#1".into(),
        time: "2026-12-06T12:00:00Z".into(),
        operation: "Converse".into(),
        model_id: "anthropic.claude-sonnet-4-5-20250929-v1:0".into(),
        model: "anthropic.claude-sonnet-4-5-20250929-v1:0".into(),
        region: "eu-west-1".into(),
        team: "search".into(),
        tenant: Some("acme".into()),
        workflow: Some("rag".into()),
        claimed_team: None,
        principal: None,
        client: None,
        input_tokens: 100,
        output_tokens: 20,
        cache_read_tokens: 1000,
        cache_write5m_tokens: 300,
        cache_write1h_tokens: 7,
        units: None,
        latency_ms: 12,
        status: 200,
        outcome,
        cost_nanos: 1_234_567,
        cost_usd: "0.001234567".into(),
        team_budget_remaining_nanos: None,
        price_source: "catalog".into(),
        unpriced: false,
        over_budget: vec![],
        service_tier: None,
        note: None,
    }
}

fn attr<'a>(span: &'a CallSpan, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == Key::from(key.to_string()))
        .map(|kv| &kv.value)
}

fn string(span: &CallSpan, key: &str) -> String {
    match attr(span, key) {
        Some(Value::String(s)) => s.to_string(),
        other => panic!("{key}: {other:?}"),
    }
}

fn int(span: &CallSpan, key: &str) -> i64 {
    match attr(span, key) {
        Some(Value::I64(n)) => *n,
        other => panic!("{key}: {other:?}"),
    }
}

#[test]
fn a_settled_chat_call_carries_the_genai_attributes_and_the_ledger_values() {
    let span = call_span(&record(Outcome::Ok), Some(Nanos(9_876_543_210)));
    assert_eq!(span.name, "chat anthropic.claude-sonnet-4-5-20250929-v1:0");
    assert_eq!(span.status, Status::Unset);
    assert_eq!(string(&span, "gen_ai.provider.name"), "aws.bedrock");
    assert_eq!(string(&span, "gen_ai.operation.name"), "chat");
    assert_eq!(
        string(&span, "gen_ai.request.model"),
        "anthropic.claude-sonnet-4-5-20250929-v1:0"
    );
    assert_eq!(string(&span, "cloud.region"), "eu-west-1");
    assert_eq!(int(&span, "http.response.status_code"), 200);
    assert_eq!(string(&span, "tally.team"), "search");
    assert_eq!(string(&span, "tally.tenant"), "acme");
    assert_eq!(string(&span, "tally.workflow"), "rag");
    assert_eq!(string(&span, "tally.cost_usd"), "0.001234567");
    assert_eq!(string(&span, "tally.budget_remaining_usd"), "9.87654321");
    assert_eq!(string(&span, "tally.request_id"), "req-1");
    assert_eq!(string(&span, "tally.charge_id"), "req-1#1");
    assert_eq!(string(&span, "tally.outcome"), "ok");
    assert_eq!(attr(&span, "error.type"), None);
}

#[test]
fn input_tokens_include_cache_reads_and_writes_that_bedrock_leaves_out() {
    let span = call_span(&record(Outcome::Ok), None);
    assert_eq!(int(&span, "gen_ai.usage.input_tokens"), 100 + 1000 + 300 + 7);
    assert_eq!(int(&span, "gen_ai.usage.output_tokens"), 20);
    assert_eq!(int(&span, "gen_ai.usage.cache_read.input_tokens"), 1000);
    assert_eq!(int(&span, "gen_ai.usage.cache_creation.input_tokens"), 307);
    assert_eq!(attr(&span, "tally.budget_remaining_usd"), None);
}

#[test]
fn a_refused_call_is_an_error_with_the_exception_its_caller_sees_and_no_usage() {
    let mut r = record(Outcome::Blocked);
    r.status = 400;
    r.note = Some("Team budget exhausted".into());
    r.cost_usd = "0.00".into();
    let span = call_span(&r, None);
    assert_eq!(string(&span, "tally.outcome"), "blocked");
    assert_eq!(string(&span, "error.type"), "ServiceQuotaExceededException");
    assert_eq!(span.status, Status::error("Team budget exhausted"));
    assert_eq!(attr(&span, "gen_ai.usage.input_tokens"), None);
    assert_eq!(string(&span, "tally.cost_usd"), "0.00");
    let mut denied = record(Outcome::Denied);
    denied.status = 403;
    assert_eq!(string(&call_span(&denied, None), "error.type"), "AccessDeniedException");
}

#[test]
fn an_upstream_failure_is_typed_by_its_status_and_a_cut_call_is_no_error() {
    let mut r = record(Outcome::UpstreamError);
    r.status = 429;
    assert_eq!(string(&call_span(&r, None), "error.type"), "429");
    r.status = 0;
    let span = call_span(&r, None);
    assert_eq!(string(&span, "error.type"), "_OTHER");
    assert_eq!(attr(&span, "http.response.status_code"), None);
    assert!(matches!(span.status, Status::Error { .. }));
    let cut = call_span(&record(Outcome::Incomplete), None);
    assert_eq!(cut.status, Status::Unset);
    assert_eq!(attr(&cut, "error.type"), None);
}

#[test]
fn operations_take_the_conventions_well_known_names() {
    assert_eq!(operation_name("ConverseStream", "amazon.nova-pro-v1:0"), "chat");
    assert_eq!(
        operation_name("InvokeModel", "anthropic.claude-3-haiku"),
        "text_completion"
    );
    assert_eq!(
        operation_name("InvokeModelWithResponseStream", "meta.llama3-70b"),
        "text_completion"
    );
    assert_eq!(
        operation_name("InvokeModel", "amazon.titan-embed-text-v2:0"),
        "embeddings"
    );
    assert_eq!(
        operation_name("StartAsyncInvoke", "amazon.nova-reel-v1:1"),
        "generate_content"
    );
    assert_eq!(operation_name("ApplyGuardrail", ""), "apply_guardrail");
}

#[test]
fn a_span_without_a_model_is_named_by_its_operation_alone() {
    let mut r = record(Outcome::Ok);
    r.operation = "ApplyGuardrail".into();
    r.model_id = String::new();
    let span = call_span(&r, None);
    assert_eq!(span.name, "apply_guardrail");
    assert_eq!(attr(&span, "gen_ai.request.model"), None);
}

#[test]
fn the_parent_is_read_from_the_w3c_headers() {
    let headers = [
        ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ("tracestate", "vendor=x"),
    ];
    let parent = Parent::from_headers(|n| headers.iter().find(|(k, _)| *k == n).map(|(_, v)| *v));
    assert_eq!(
        parent.traceparent.as_deref(),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    );
    assert_eq!(parent.tracestate.as_deref(), Some("vendor=x"));
    assert_eq!(Parent::from_headers(|_| None), Parent::default());
}
