//! The per-request ledger record: what FinOps reads for chargeback.

use serde::{Deserialize, Serialize};

use crate::tariff::Units;

/// How a call ended, for the ledger and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Completed; charged its real usage.
    Ok,
    /// Refused before Bedrock: a budget could not cover the worst case.
    Blocked,
    /// Refused before Bedrock: model allowlist or workload identity.
    Denied,
    /// Bedrock (or the path to it) answered with an error; charged nothing.
    UpstreamError,
    /// The response ended before its usage arrived (client disconnect, cut stream).
    Incomplete,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Blocked => "blocked",
            Outcome::Denied => "denied",
            Outcome::UpstreamError => "upstream_error",
            Outcome::Incomplete => "incomplete",
        }
    }
}

/// One finished call. Token counts are by price class; `inputTokens` is the non-cached input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerRecord {
    /// The client's id for the call (`amz-sdk-invocation-id` / `x-request-id`), stable across its retries.
    pub request_id: String,
    /// This attempt's charge id: what settlement is idempotent on.
    pub charge_id: String,
    /// RFC 3339, when the request arrived.
    pub time: String,
    pub operation: String,
    /// The model id as the client sent it (decoded).
    pub model_id: String,
    /// The model id the price was found for; empty when unpriced.
    pub model: String,
    pub region: String,
    pub team: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// A team header naming no configured team (the call is charged to `unknown`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_team: Option<String>,
    /// The caller's workload identity (peer certificate URI SAN), when Envoy vouches for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The calling service's SDK app id from `user-agent` (`app/<id>`), when it sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write5m_tokens: u64,
    pub cache_write1h_tokens: u64,
    /// What the call was billed for besides tokens (images, seconds of video,
    /// guardrail text units, the request itself), when its catalog entry prices units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<Units>,
    pub latency_ms: u64,
    /// HTTP status returned to the client (0 when the client went away first).
    pub status: u16,
    pub outcome: Outcome,
    pub cost_nanos: i64,
    pub cost_usd: String,
    /// Team budget left (limit − spent − reserved) right after this call was
    /// settled, in nano-USD; absent for teams without a budget. Filled in by the
    /// store, atomically with the settlement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_budget_remaining_nanos: Option<i64>,
    /// Catalog entry that priced the call; empty when the model is not in any catalog.
    pub price_source: String,
    /// True when no catalog priced the model: recorded at zero cost and flagged.
    #[serde(default)]
    pub unpriced: bool,
    /// Budgets this call went over while they only warn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub over_budget: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// Why the call was refused or how usage was determined, when not plain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}
