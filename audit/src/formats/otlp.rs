//! OpenTelemetry spans in OTLP JSON, one `ExportTraceServiceRequest` per line
//! as the Collector's file exporter writes them, read with the GenAI semantic
//! conventions (`gen_ai.request.model`, `gen_ai.usage.*`). Only spans that
//! describe a model call are kept.

use serde_json::{Map, Value};

use crate::field::Field;
use crate::lookup::{self, pick};
use crate::observation::{CallContext, Found, Observation, RetryKey};

use super::applog;

pub fn observe(records: &[Value]) -> Vec<Observation> {
    let mut out = vec![];
    for request in records {
        for rs in array(request, "resourceSpans") {
            let resource = attributes(rs.get("resource").unwrap_or(&Value::Null));
            for ss in array(rs, "scopeSpans") {
                for span in array(ss, "spans") {
                    let mut attrs = resource.clone();
                    attrs.extend(attributes(span));
                    if is_model_call(&attrs) {
                        out.push(span_observation(out.len() + 1, span, &attrs));
                    }
                }
            }
        }
    }
    out
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// `[{key, value: {stringValue|intValue|doubleValue|boolValue|arrayValue}}]` as a flat map.
fn attributes(owner: &Value) -> Map<String, Value> {
    array(owner, "attributes")
        .iter()
        .filter_map(|kv| Some((kv.get("key")?.as_str()?.to_string(), any_value(kv.get("value")?))))
        .collect()
}

fn any_value(v: &Value) -> Value {
    let Some((key, value)) = v.as_object().and_then(|o| o.iter().next()) else {
        return Value::Null;
    };
    match key.as_str() {
        // OTLP JSON writes 64-bit integers as strings.
        "intValue" => lookup::as_u64(value).map_or_else(|| value.clone(), Value::from),
        "arrayValue" => Value::Array(array(value, "values").iter().map(any_value).collect()),
        _ => value.clone(),
    }
}

fn is_model_call(attrs: &Map<String, Value>) -> bool {
    attrs.contains_key("gen_ai.request.model")
        || attrs.get("rpc.service").and_then(Value::as_str) == Some("BedrockRuntime")
}

/// GenAI usage attributes, current names first, then the older ones still emitted.
const USAGE: [(Field, [&str; 2]); 4] = [
    (
        Field::InputTokens,
        ["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"],
    ),
    (
        Field::OutputTokens,
        ["gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"],
    ),
    (
        Field::CacheReadTokens,
        [
            "gen_ai.usage.cache_read.input_tokens",
            "gen_ai.usage.cache_read_input_tokens",
        ],
    ),
    (
        Field::CacheWriteTokens,
        [
            "gen_ai.usage.cache_creation.input_tokens",
            "gen_ai.usage.cache_creation_input_tokens",
        ],
    ),
];

fn span_observation(n: usize, span: &Value, attrs: &Map<String, Value>) -> Observation {
    let a = Value::Object(attrs.clone());
    let get = |keys: &[&str]| keys.iter().find_map(|k| attr(attrs, k));
    let mut o = Observation::new(n);
    o.set(Field::ModelId, get(&["gen_ai.request.model", "gen_ai.response.model"]));
    o.set(Field::Region, get(&["cloud.region", "aws.region"]));
    for (field, keys) in USAGE {
        o.set(field, get(&keys));
    }
    let nanos = |k: &str| span.get(k).and_then(lookup::as_u64);
    o.set(Field::Latency, latency(span));
    custom_attributes(&mut o, attrs);
    o.set(Field::RequestId, get(&["aws.request_id", "gen_ai.response.id"]));
    let failed = span.get("status").and_then(|s| s.get("code")).and_then(lookup::as_u64) == Some(2)
        || span.get("status").and_then(|s| s.get("code")).and_then(Value::as_str) == Some("STATUS_CODE_ERROR");
    let parent = span.get("parentSpanId").map(lookup::text).unwrap_or_default();
    let trace = span.get("traceId").map(lookup::text).unwrap_or_default();
    // Sibling spans calling one model under one parent: a failed one followed
    // soon by another is an attempt and its retry (a failed span has no usage to compare).
    let retry = (!parent.is_empty()).then(|| RetryKey {
        value: lookup::fingerprint(&[&trace, &parent, &o.text(Field::ModelId).unwrap_or_default()]),
        certain: false,
    });
    let host = pick(&a, &["server.address"]).map(|f| lookup::text(&f.value));
    o.call = CallContext {
        time: nanos("startTimeUnixNano")
            .and_then(|t| jiff::Timestamp::from_nanosecond(i128::from(t)).ok())
            .map(|t| t.to_string()),
        succeeded: Some(!failed),
        failure: failed.then(|| {
            attrs
                .get("error.type")
                .map(lookup::text)
                .unwrap_or_else(|| "error".into())
        }),
        retry_key: retry,
        endpoint_region: host.as_deref().and_then(lookup::region_from_host),
        total_tokens: attr(attrs, "gen_ai.usage.total_tokens").and_then(|f| lookup::as_u64(&f.value)),
        ..CallContext::default()
    };
    o
}

fn latency(span: &Value) -> Option<Found> {
    let nanos = |k: &str| span.get(k).and_then(lookup::as_u64);
    let ms = nanos("endTimeUnixNano")?.saturating_sub(nanos("startTimeUnixNano")?) / 1_000_000;
    Some(Found::new("endTimeUnixNano − startTimeUnixNano", ms.into()))
}

/// There are no standard attributes for attribution or cost: find the application's own.
fn custom_attributes(o: &mut Observation, attrs: &Map<String, Value>) {
    let custom: Vec<(String, Value)> = attrs
        .iter()
        .filter(|(k, _)| !k.starts_with("gen_ai.") && !k.starts_with("service."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for field in [
        Field::TenantId,
        Field::WorkflowId,
        Field::TeamId,
        Field::CostUsd,
        Field::BudgetRemaining,
    ] {
        o.set(field, applog::by_synonym(&custom, field));
    }
}

fn attr(attrs: &Map<String, Value>, key: &str) -> Option<Found> {
    attrs
        .get(key)
        .filter(|v| !lookup::is_blank(v))
        .map(|v| Found::new(key, v.clone()))
}
