//! LiteLLM proxy `LiteLLM_SpendLogs` rows (its `/spend/logs` API as JSON, or a
//! CSV export of the table): `request_id`, `spend` (a float, USD implied),
//! `prompt_tokens` (OpenAI style: includes cached tokens), `completion_tokens`,
//! `startTime`/`endTime`, `model`, `api_base`, `team_id`, `end_user` (the
//! customer: a tenant), `request_tags`, `status`, and the JSON `metadata` with
//! `additional_usage_values` (cache tokens) and `spend_logs_metadata` (the
//! caller's own key/values).

use serde_json::Value;

use crate::field::Field;
use crate::lookup::{self, leaves, nested_json, pick};
use crate::observation::{CallContext, Found, Observation, RetryKey};

use super::applog;

pub fn observe(records: &[Value]) -> Vec<Observation> {
    super::records_with(records, "request_id", record)
}

fn record(n: usize, r: &Value) -> Observation {
    let meta = nested_json(r, "metadata").unwrap_or(Value::Null);
    let mut o = Observation::new(n);
    o.set(Field::ModelId, pick(r, &["model", "model_group"]));
    let api_base = r.get("api_base").map(lookup::text).unwrap_or_default();
    let endpoint_region = lookup::region_from_host(&api_base);
    o.set(
        Field::Region,
        endpoint_region.clone().map(|g| Found::new("api_base (host)", g.into())),
    );
    o.set(Field::InputTokens, pick(r, &["prompt_tokens"]));
    o.set(Field::OutputTokens, pick(r, &["completion_tokens"]));
    let usage = |k: &str| {
        ["additional_usage_values", "usage_object"].iter().find_map(|p| {
            lookup::get(&meta, &format!("{p}.{k}")).map(|v| Found::new(format!("metadata.{p}.{k}"), v.clone()))
        })
    };
    o.set(Field::CacheReadTokens, usage("cache_read_input_tokens"));
    o.set(Field::CacheWriteTokens, usage("cache_creation_input_tokens"));
    o.set(
        Field::Latency,
        pick(r, &["request_duration_ms"]).or_else(|| duration(r)),
    );
    let custom: Vec<(String, Value)> = lookup::get(&meta, "spend_logs_metadata")
        .map(leaves)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (format!("metadata.spend_logs_metadata.{k}"), v))
        .collect();
    o.set(
        Field::TenantId,
        pick(r, &["end_user"]).or_else(|| applog::by_synonym(&custom, Field::TenantId)),
    );
    o.set(
        Field::WorkflowId,
        applog::by_synonym(&custom, Field::WorkflowId).or_else(|| workflow_tag(r)),
    );
    o.set(
        Field::TeamId,
        pick(r, &["team_id"]).or_else(|| pick(&meta, &["user_api_key_team_alias", "user_api_key_team_id"])),
    );
    o.set(Field::CostUsd, pick(r, &["spend"]));
    o.set(Field::RequestId, pick(r, &["request_id"]));
    let status = r.get("status").map(lookup::text).unwrap_or_default();
    let failed = status == "failure";
    let payload = r.get("messages").map(lookup::text).unwrap_or_default();
    let key = r.get("api_key").map(lookup::text).unwrap_or_default();
    let model = o.text(Field::ModelId).unwrap_or_default();
    o.call = CallContext {
        time: r.get("startTime").map(lookup::text),
        succeeded: Some(!failed),
        failure: failed.then(|| error_class(&meta).unwrap_or_else(|| "failure".into())),
        retry_key: (!lookup::is_blank(&Value::String(payload.clone()))).then(|| RetryKey {
            value: lookup::fingerprint(&[&key, &model, &payload]),
            certain: false,
        }),
        endpoint_region,
        total_tokens: r.get("total_tokens").and_then(lookup::as_u64),
        ..CallContext::default()
    };
    o
}

/// `endTime − startTime` in milliseconds (LiteLLM writes `YYYY-MM-DD HH:MM:SS.fff`, UTC).
fn duration(r: &Value) -> Option<Found> {
    let parse = |k: &str| -> Option<jiff::civil::DateTime> {
        r.get(k)?.as_str()?.replace(' ', "T").trim_end_matches('Z').parse().ok()
    };
    let (start, end) = (parse("startTime")?, parse("endTime")?);
    let ms = start.until(end).ok()?.total(jiff::Unit::Millisecond).ok()?;
    (ms >= 0.0).then(|| Found::new("endTime − startTime", (ms as u64).into()))
}

/// A `workflow:<id>` entry of `request_tags` (a JSON array, or its text in CSV).
fn workflow_tag(r: &Value) -> Option<Found> {
    let tags = match r.get("request_tags")? {
        Value::String(s) => serde_json::from_str::<Value>(s).ok()?,
        other => other.clone(),
    };
    tags.as_array()?.iter().find_map(|t| {
        let t = t.as_str()?;
        let (k, v) = t.split_once(':')?;
        (lookup::normalize(k) == "workflow" && !v.is_empty())
            .then(|| Found::new("request_tags", Value::String(v.to_string())))
    })
}

fn error_class(meta: &Value) -> Option<String> {
    lookup::get(meta, "error_information.error_class")
        .or_else(|| lookup::get(meta, "error_information.error_code"))
        .map(lookup::text)
}
