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

#[cfg(test)]
mod tests {
    use tally_config::ledger::{LedgerRecord, Outcome};

    use super::*;

    /// The reader follows the record type: a renamed field fails here, not in a report.
    #[test]
    fn reads_every_field_of_a_serialized_ledger_record() {
        let record = LedgerRecord {
            request_id: "r-1".into(),
            charge_id: "r-1/1".into(),
            time: "2026-05-04T09:00:00Z".into(),
            operation: "Converse".into(),
            model_id: "us.amazon.nova-micro-v1:0".into(),
            model: "amazon.nova-micro-v1:0".into(),
            region: "us-east-1".into(),
            team: "search".into(),
            tenant: Some("acme".into()),
            workflow: Some("rag".into()),
            claimed_team: None,
            principal: Some("spiffe://cluster.local/ns/search/sa/rag".into()),
            client: Some("app/rag".into()),
            input_tokens: 10,
            output_tokens: 2,
            cache_read_tokens: 0,
            cache_write5m_tokens: 3,
            cache_write1h_tokens: 4,
            units: None,
            latency_ms: 120,
            status: 200,
            outcome: Outcome::Ok,
            cost_nanos: 1234,
            cost_usd: "0.000001234".into(),
            team_budget_remaining_nanos: Some(5),
            price_source: "test".into(),
            unpriced: false,
            over_budget: vec![],
            service_tier: None,
            note: None,
        };
        let o = &observe(&[serde_json::to_value(&record).unwrap()])[0];
        let missing: Vec<Field> = Field::ALL.into_iter().filter(|f| o.get(*f).is_none()).collect();
        assert!(missing.is_empty(), "{missing:?}");
        assert_eq!(o.count(Field::CacheWriteTokens), Some(7));
        assert_eq!((o.call.cost_nanos, o.call.cache_write_1h), (Some(1234), Some(4)));
        assert_eq!(o.call.resolved_model.as_deref(), Some("amazon.nova-micro-v1:0"));
        assert_eq!(
            o.call.principal.as_deref(),
            Some("spiffe://cluster.local/ns/search/sa/rag")
        );
    }
}
