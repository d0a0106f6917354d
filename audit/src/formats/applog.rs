//! Generic JSON application logs: every leaf of a record, matched by key name
//! (`tenant_id`, `tenantId`, `ctx.tenant` …) against each field's synonyms.
//! Also the fallback for custom attributes in other formats.

use serde_json::Value;

use crate::field::Field;
use crate::lookup::{self, by_name, leaves};
use crate::observation::{CallContext, Found, Observation, RetryKey};

/// Normalized key names (see [`lookup::normalize`]) that carry each field, best first.
pub fn synonyms(field: Field) -> &'static [&'static str] {
    match field {
        Field::ModelId => &["modelid", "model", "modelname", "llmmodel", "requestmodel"],
        Field::Region => &["region", "awsregion", "cloudregion", "bedrockregion", "inferenceregion"],
        Field::InputTokens => &["inputtokens", "prompttokens", "inputtokencount", "tokensin"],
        Field::OutputTokens => &["outputtokens", "completiontokens", "outputtokencount", "tokensout"],
        Field::CacheReadTokens => &[
            "cachereadinputtokens",
            "cachereadtokens",
            "cachereadinputtokencount",
            "cachedtokens",
            "cachetokens",
        ],
        Field::CacheWriteTokens => &[
            "cachewriteinputtokens",
            "cachecreationinputtokens",
            "cachewritetokens",
            "cachewriteinputtokencount",
            "cachedtokens",
            "cachetokens",
        ],
        Field::Latency => &[
            "latencyms",
            "latency",
            "durationms",
            "elapsedms",
            "responsetimems",
            "duration",
        ],
        Field::TenantId => &["tenantid", "tenant", "customerid", "customer", "tenantname"],
        Field::WorkflowId => &["workflowid", "workflow", "feature", "usecase", "pipeline"],
        Field::TeamId => &["teamid", "team", "teamname", "owningteam"],
        Field::CostUsd => &["costusd", "cost", "costinusd", "spend", "totalcost", "usd"],
        Field::BudgetRemaining => &[
            "budgetremaining",
            "teambudgetremaining",
            "remainingbudget",
            "budgetremainingusd",
            "budgetremainingnanos",
        ],
        Field::RequestId => &[
            "amzsdkinvocationid",
            "invocationid",
            "requestid",
            "reqid",
            "xrequestid",
            "correlationid",
        ],
    }
}

/// The best leaf carrying `field` among `leaves`.
pub fn by_synonym(leaves: &[(String, Value)], field: Field) -> Option<Found> {
    by_name(leaves, synonyms(field))
}

pub fn observe(records: &[Value]) -> Vec<Observation> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| record(i + 1, r))
        .filter(|o| o.get(Field::ModelId).is_some() || o.get(Field::InputTokens).is_some())
        .collect()
}

fn record(n: usize, r: &Value) -> Observation {
    let all = leaves(r);
    let mut o = Observation::new(n);
    for field in crate::field::Field::ALL {
        o.set(field, by_synonym(&all, field));
    }
    let name = |names: &[&str]| by_name(&all, names).map(|f| lookup::text(&f.value));
    let status = name(&["status", "statuscode", "outcome", "result"]).unwrap_or_default();
    let failed = name(&["error", "errorcode", "exception"]).is_some()
        || status.starts_with('4')
        || status.starts_with('5')
        || ["error", "failure", "failed"].contains(&status.to_ascii_lowercase().as_str());
    let endpoint = name(&["endpoint", "endpointurl", "host", "url", "apibase"]);
    let invocation = name(&["amzsdkinvocationid", "invocationid"]);
    o.call = CallContext {
        time: name(&["timestamp", "time", "ts", "datetime", "starttime"]),
        succeeded: Some(!failed),
        failure: failed.then(|| status.clone()),
        retry_key: invocation.map(|value| RetryKey { value, certain: true }),
        endpoint_region: endpoint.as_deref().and_then(lookup::region_from_host),
        inference_region: name(&["inferenceregion"]),
        total_tokens: by_name(&all, &["totaltokens"]).and_then(|f| lookup::as_u64(&f.value)),
        currency: name(&["currency", "currencycode"]),
        ..CallContext::default()
    };
    o
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn finds_fields_by_synonym_at_any_depth() {
        let r = json!({
            "ts": "2026-05-04T10:00:00Z",
            "ctx": {"tenantId": "acme", "feature": "summarize"},
            "llm": {"model_id": "amazon.nova-lite-v1:0", "usage": {"prompt_tokens": 10, "completion_tokens": 2}},
            "endpoint": "https://bedrock-runtime.eu-west-1.amazonaws.com"
        });
        let o = &observe(&[r])[0];
        assert_eq!(o.text(Field::TenantId).as_deref(), Some("acme"));
        assert_eq!(o.get(Field::WorkflowId).unwrap().key, "ctx.feature");
        assert_eq!(o.count(Field::InputTokens), Some(10));
        assert_eq!(o.call.endpoint_region.as_deref(), Some("eu-west-1"));
        assert!(o.get(Field::TeamId).is_none());
    }
}
