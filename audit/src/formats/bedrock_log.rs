//! Amazon Bedrock model invocation logs (`schemaType: ModelInvocationLog`), as
//! CloudWatch Logs events or S3 objects: `modelId`, `region`, `requestId`,
//! `input.inputTokenCount` (non-cached input), `input.cacheRead/WriteInputTokenCount`,
//! `output.outputTokenCount`, `inferenceRegion`, and the caller's
//! `requestMetadata` (Converse `requestMetadata` / `X-Amzn-Bedrock-Request-Metadata`).

use serde_json::Value;

use crate::field::Field;
use crate::lookup::{self, leaves, pick};
use crate::observation::{CallContext, Observation, RetryKey};

use super::applog;

pub fn observe(records: &[Value]) -> Vec<Observation> {
    super::records_with(records, "modelId", record)
}

fn record(n: usize, r: &Value) -> Observation {
    let mut o = Observation::new(n);
    o.set(Field::ModelId, pick(r, &["modelId"]));
    o.set(Field::Region, pick(r, &["region"]));
    o.set(Field::InputTokens, pick(r, &["input.inputTokenCount"]));
    o.set(Field::OutputTokens, pick(r, &["output.outputTokenCount"]));
    o.set(Field::CacheReadTokens, pick(r, &["input.cacheReadInputTokenCount"]));
    o.set(Field::CacheWriteTokens, pick(r, &["input.cacheWriteInputTokenCount"]));
    // Converse responses carry their latency; InvokeModel bodies are the model's own JSON.
    o.set(Field::Latency, pick(r, &["output.outputBodyJson.metrics.latencyMs"]));
    let metadata = r.get("requestMetadata").map(leaves).unwrap_or_default();
    let metadata: Vec<(String, Value)> = metadata
        .into_iter()
        .map(|(k, v)| (format!("requestMetadata.{k}"), v))
        .collect();
    for field in [Field::TenantId, Field::WorkflowId, Field::TeamId, Field::CostUsd] {
        o.set(field, applog::by_synonym(&metadata, field));
    }
    o.set(Field::RequestId, pick(r, &["requestId"]));
    let error = pick(r, &["errorCode"]).map(|f| lookup::text(&f.value));
    let body = r
        .get("input")
        .and_then(|i| i.get("inputBodyJson"))
        .map(Value::to_string)
        .unwrap_or_default();
    let identity = r
        .get("identity")
        .and_then(|i| i.get("arn"))
        .map(lookup::text)
        .unwrap_or_default();
    let model = o.text(Field::ModelId).unwrap_or_default();
    o.call = CallContext {
        time: r.get("timestamp").map(lookup::text),
        succeeded: Some(error.is_none()),
        failure: error,
        // The same caller sending the same body to the same model: attempts of one call.
        retry_key: (!body.is_empty()).then(|| RetryKey {
            value: lookup::fingerprint(&[&identity, &model, &body]),
            certain: false,
        }),
        endpoint_region: r.get("region").and_then(Value::as_str).map(str::to_string),
        inference_region: r.get("inferenceRegion").and_then(Value::as_str).map(str::to_string),
        principal: (!identity.is_empty()).then_some(identity),
        ..CallContext::default()
    };
    o
}
