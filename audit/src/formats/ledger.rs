//! Tally's own ledger: the JSON records of `/v1/ledger` and the Parquet export
//! whose columns carry the same (camelCase) names.

use serde_json::Value;

use crate::field::Field;
use crate::lookup::{self, as_u64, pick};
use crate::observation::{CallContext, Found, Observation};

pub fn observe(records: &[Value]) -> Vec<Observation> {
    super::records_with(records, "requestId", record)
}

fn record(n: usize, r: &Value) -> Observation {
    let mut o = Observation::new(n);
    let resolved = pick(r, &["model"]);
    o.set(Field::ModelId, resolved.clone().or_else(|| pick(r, &["modelId"])));
    for (field, key) in [
        (Field::Region, "region"),
        (Field::InputTokens, "inputTokens"),
        (Field::OutputTokens, "outputTokens"),
        (Field::CacheReadTokens, "cacheReadTokens"),
        (Field::Latency, "latencyMs"),
        (Field::TeamId, "team"),
        (Field::TenantId, "tenant"),
        (Field::WorkflowId, "workflow"),
        (Field::CostUsd, "costUsd"),
        (Field::BudgetRemaining, "teamBudgetRemainingNanos"),
        (Field::RequestId, "requestId"),
    ] {
        o.set(field, pick(r, &[key]));
    }
    let writes: Vec<u64> = ["cacheWrite5mTokens", "cacheWrite1hTokens"]
        .iter()
        .filter_map(|k| r.get(*k).and_then(as_u64))
        .collect();
    if !writes.is_empty() {
        o.set(
            Field::CacheWriteTokens,
            Some(Found::new(
                "cacheWrite5mTokens + cacheWrite1hTokens",
                writes.iter().sum::<u64>().into(),
            )),
        );
    }
    let outcome = r.get("outcome").and_then(Value::as_str).unwrap_or("ok");
    // Only a settled call has a remaining budget next to it.
    if !matches!(outcome, "ok" | "incomplete") {
        o.not_applicable.insert(Field::BudgetRemaining);
    }
    o.call = CallContext {
        time: r.get("time").map(lookup::text),
        succeeded: Some(outcome == "ok"),
        failure: (outcome != "ok").then(|| outcome.to_string()),
        resolved_model: resolved.map(|f| lookup::text(&f.value)),
        endpoint_region: r.get("region").and_then(Value::as_str).map(str::to_string),
        currency: Some("USD".into()),
        cost_nanos: r.get("costNanos").and_then(Value::as_i64),
        cache_write_1h: r.get("cacheWrite1hTokens").and_then(as_u64),
        principal: pick(r, &["principal"]).map(|f| lookup::text(&f.value)),
        ..CallContext::default()
    };
    o
}
