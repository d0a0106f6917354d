//! `TeamBudget` (namespaced): who a team is, what it may spend per calendar
//! period, and how it is doing.
//!
//! The spec is written by people; the status by the reconciler, which reads the
//! live counters from Redis. Ids (team, tenant, workflow) end up in Redis hash
//! tags and metric labels, so their character sets are narrow on purpose.
//! Tenant and workflow ids are unique per list: the lists are
//! `x-kubernetes-list-type: map` keyed by `id`, which the API server enforces
//! and server-side apply merges by.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tally_config::money::Nanos;

use super::Usd;
use super::condition::Condition;

/// Regular expression of a team id (also the schema `pattern`); at most 63 characters.
pub const TEAM_ID_PATTERN: &str = r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$";
/// Regular expression of tenant and workflow ids; at most 128 characters.
pub const ID_PATTERN: &str = r"^[A-Za-z0-9]([A-Za-z0-9._:-]*[A-Za-z0-9])?$";
/// Regular expression of a model-id glob: `*` is the only wildcard, and the
/// characters other glob dialects treat specially are refused so nobody writes
/// `claude-3-?-sonnet` expecting it to match.
pub const MODEL_GLOB_PATTERN: &str = r"^[^?\[\]{}\s]+$";
/// Regular expression of an IANA timezone name (`UTC`, `Europe/Berlin`, `Etc/GMT+5`).
pub const TIMEZONE_PATTERN: &str = r"^[A-Za-z0-9_+\-/]+$";

/// Alert thresholds used when `alertThresholds` is not given.
pub const DEFAULT_ALERT_THRESHOLDS: [u8; 3] = [50, 80, 100];

/// Spec of a `TeamBudget`: one team's identity, budget, workflows, tenants and model allowlist.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "tally.dev",
    version = "v1alpha1",
    kind = "TeamBudget",
    plural = "teambudgets",
    singular = "teambudget",
    shortname = "tb",
    category = "tally",
    namespaced,
    status = "TeamBudgetStatus",
    derive = "PartialEq",
    doc = "A team's Bedrock budget: who the team is (its id in the x-team-id header, its tenants and \
           workload identities), what it may spend per calendar period, on which models, and how much it has \
           spent so far. One TeamBudget per team across the cluster.",
    printcolumn = r#"{"name":"Team","type":"string","jsonPath":".spec.team","description":"Team id"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status","description":"Whether this spec is the one in force"}"#,
    printcolumn = r#"{"name":"Enforcement","type":"string","jsonPath":".status.enforcement","description":"Block or Warn, as enforced"}"#,
    printcolumn = r#"{"name":"Period","type":"string","jsonPath":".spec.budget.period","description":"Budget period"}"#,
    printcolumn = r#"{"name":"Spent","type":"string","jsonPath":".status.spentUSD","description":"USD spent this period"}"#,
    printcolumn = r#"{"name":"Limit","type":"string","jsonPath":".status.limitUSD","description":"USD limit per period, as enforced"}"#,
    printcolumn = r#"{"name":"Remaining","type":"string","jsonPath":".status.remainingUSD","description":"USD left this period"}"#,
    printcolumn = r#"{"name":"Util%","type":"string","jsonPath":".status.utilization","description":"Percent of the enforced limit committed"}"#,
    printcolumn = r#"{"name":"Forecast","type":"string","jsonPath":".status.forecastUSD","description":"USD projected at the end of the period at the rate so far"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
// CEL checks what it can cheaply and exactly at apply time, with or without the webhook: the
// money comparisons go through `quantity()` (an exact decimal, unlike `double()`), which parses
// every string the USD pattern admits. The rest (timezones, claims across objects, amounts
// beyond the counters' range) is the compiler's, run by the admission webhook and the reconciler.
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.budget) || ((!has(self.tenants) || self.tenants.all(t, !has(t.limitUSD))) && (!has(self.workflows) || self.workflows.all(w, !has(w.limitUSD))))",
    "message": "tenant and workflow limitUSD need spec.budget: the budget's period is the period they apply to"
}, {
    "rule": "!has(self.budget) || !has(self.workflows) || self.workflows.all(w, !has(w.limitUSD) || quantity(w.limitUSD).compareTo(quantity(self.budget.limitUSD)) <= 0)",
    "message": "a workflow's limitUSD must not exceed the team's spec.budget.limitUSD",
    "fieldPath": ".workflows",
    "reason": "FieldValueInvalid"
}, {
    "rule": "!has(self.budget) || !has(self.tenants) || self.tenants.all(t, !has(t.limitUSD) || quantity(t.limitUSD).compareTo(quantity(self.budget.limitUSD)) <= 0)",
    "message": "a tenant's limitUSD must not exceed the team's spec.budget.limitUSD",
    "fieldPath": ".tenants",
    "reason": "FieldValueInvalid"
}]))]
pub struct TeamBudgetSpec {
    /// The team id: the value of the x-team-id header, and the key of the team's
    /// counters and metrics. Unique across the cluster. Lowercase letters, digits,
    /// '.', '_' and '-', starting and ending with a letter or digit, at most 63
    /// characters. The id `unknown` is the team that unattributed calls are
    /// charged to: give it a budget to limit them.
    #[schemars(length(min = 1, max = 63), regex(pattern = TEAM_ID_PATTERN))]
    pub team: String,

    /// Cost center the team's spend is charged back to (copied into the ledger and exports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub cost_center: Option<String>,

    /// Tenants (customers of the team's product, the x-tenant-id header) that belong to this
    /// team. A call that names only a tenant is charged to the team that lists it; a tenant
    /// may belong to one team only. Each tenant may have its own limit within the team's period.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10000))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["id"]))]
    pub tenants: Vec<Tenant>,

    /// The team's budget. Absent: calls are attributed and priced, never refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,

    /// Workflows (features, pipelines; the x-workflow-id header) of this team, each with
    /// an optional limit within the team's period and an optional narrower model allowlist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["id"]))]
    pub workflows: Vec<Workflow>,

    /// Model ids this team may call, as globs where `*` matches any run of characters
    /// (e.g. `anthropic.claude-*-haiku-*`, `*.amazon.nova-*`). Matched against the model id
    /// as called and without its cross-region prefix (`us.`, `eu.`, `global.` …).
    /// Empty or absent: every model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 2048), regex(pattern = MODEL_GLOB_PATTERN)))]
    pub allowed_models: Vec<String>,

    /// Workload identities allowed to charge this team, e.g.
    /// `spiffe://cluster.local/ns/search/sa/api`. When set, a call whose verified identity is
    /// not listed cannot claim this team. Empty or absent: the attribution headers are trusted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 2048)))]
    pub principals: Vec<String>,
}

/// A tenant of the team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    /// The tenant id (the x-tenant-id header): letters, digits, '.', '_', ':' and '-',
    /// starting and ending with a letter or digit, at most 128 characters.
    #[schemars(length(min = 1, max = 128), regex(pattern = ID_PATTERN))]
    pub id: String,
    /// What this tenant may spend per budget period, in USD as a decimal string
    /// (e.g. "25.00"); at most the team's limit. Needs `spec.budget`. Absent: only the
    /// team's limit applies.
    #[serde(rename = "limitUSD", default, skip_serializing_if = "Option::is_none")]
    pub limit_usd: Option<Usd>,
}

/// How much a team may spend, per which calendar period, and what happens past it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    /// The limit per period in USD as a decimal string with at most 9 decimals (e.g. "250.00").
    #[serde(rename = "limitUSD")]
    pub limit_usd: Usd,
    /// Calendar period the limit applies to: `Daily`, `Weekly` (ISO weeks, Monday first) or
    /// `Monthly`. Spend starts again from zero at the start of each period.
    pub period: BudgetPeriod,
    /// IANA timezone the period's calendar is in, e.g. `Europe/Berlin`: a `Daily` budget
    /// in Berlin resets at local midnight. Defaults to `UTC`.
    #[serde(default = "default_timezone")]
    #[schemars(length(min = 1, max = 64), regex(pattern = TIMEZONE_PATTERN))]
    pub timezone: String,
    /// `Block` refuses a call the remaining budget cannot cover, before it reaches Bedrock;
    /// `Warn` lets it through and records it as over budget. Defaults to `Block`.
    #[serde(default = "default_enforcement")]
    pub enforcement: Enforcement,
    /// Percentages of the limit (1 to 100, strictly ascending) at which the operator
    /// raises a Kubernetes event and sets the ThresholdCrossed condition. Defaults to
    /// [50, 80, 100].
    #[serde(default = "default_alert_thresholds")]
    #[schemars(length(max = 10), inner(range(min = 1, max = 100)))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.isSorted() && self.all(p, self.exists_one(q, q == p))",
        "message": "alertThresholds must be strictly ascending"
    }]))]
    pub alert_thresholds: Vec<u8>,
}

fn default_timezone() -> String {
    "UTC".to_string()
}

fn default_enforcement() -> Enforcement {
    Enforcement::Block
}

fn default_alert_thresholds() -> Vec<u8> {
    DEFAULT_ALERT_THRESHOLDS.to_vec()
}

/// Calendar period of a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum BudgetPeriod {
    Daily,
    Weekly,
    Monthly,
}

/// What happens when the budget cannot cover a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Enforcement {
    Block,
    Warn,
}

/// A workflow of the team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Workflow {
    /// The workflow id (the x-workflow-id header): letters, digits, '.', '_', ':' and '-',
    /// starting and ending with a letter or digit, at most 128 characters.
    #[schemars(length(min = 1, max = 128), regex(pattern = ID_PATTERN))]
    pub id: String,
    /// What this workflow may spend per budget period, in USD as a decimal string; at most
    /// the team's limit. Needs `spec.budget`. Absent: only the team's limit applies.
    #[serde(rename = "limitUSD", default, skip_serializing_if = "Option::is_none")]
    pub limit_usd: Option<Usd>,
    /// Model-id globs this workflow may call, on top of the team's `allowedModels`
    /// (a call must pass both). Empty or absent: the team's allowlist alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 2048), regex(pattern = MODEL_GLOB_PATTERN)))]
    pub allowed_models: Vec<String>,
}

/// Observed state of a `TeamBudget`, written by the operator from the live
/// counters. Amounts are decimal USD strings, never floats.
//
// For the reconciler: format money with `Nanos`'s `Display` and utilization
// with [`utilization_percent`], both integer-only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamBudgetStatus {
    /// Start of the current budget period (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_start: Option<String>,
    /// End of the current budget period, exclusive (RFC 3339): when spend starts again from zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_end: Option<String>,
    /// The limit in force this period (USD, decimal string): the limit of the spec the running
    /// config enforces, which is the previous valid one while a newer spec is rejected.
    #[serde(rename = "limitUSD", default, skip_serializing_if = "Option::is_none")]
    pub limit_usd: Option<String>,
    /// `Block` or `Warn`, as enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<String>,
    /// Content hash of the running config this status describes (the ConfigMap's
    /// `tally.dev/config-hash`); absent while the object is not in the running config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_generation: Option<String>,
    /// USD spent by settled calls this period (decimal string).
    #[serde(rename = "spentUSD", default, skip_serializing_if = "Option::is_none")]
    pub spent_usd: Option<String>,
    /// USD held by calls still in flight (their worst-case cost until they settle).
    #[serde(rename = "reservedUSD", default, skip_serializing_if = "Option::is_none")]
    pub reserved_usd: Option<String>,
    /// USD left this period: limit − spent − reserved. Negative when a `Warn` budget is overspent.
    #[serde(rename = "remainingUSD", default, skip_serializing_if = "Option::is_none")]
    pub remaining_usd: Option<String>,
    /// Percent of the enforced limit committed (spent + reserved) this period, one decimal, e.g. "42.5" (may exceed 100 with `Warn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization: Option<String>,
    /// USD projected at the end of the period if spending goes on at this period's rate so far:
    /// committed (spent + reserved) × period length ÷ time elapsed, the elapsed time in whole
    /// hours (at least one), rounded down to cents.
    #[serde(rename = "forecastUSD", default, skip_serializing_if = "Option::is_none")]
    pub forecast_usd: Option<String>,
    /// When the limit is reached if spending goes on at the rate of `forecastUSD` (RFC 3339);
    /// absent when that is after the period's end, nothing is committed yet, or it is reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exhausts_at: Option<String>,
    /// Calls charged to the team this period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub requests: Option<i64>,
    /// Calls refused this period because a budget could not cover them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub blocked: Option<i64>,
    /// Calls refused this period, by cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusals: Option<Refusals>,
    /// The models the team spent most on this period, most first (at most five).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    pub top_models: Vec<ModelSpend>,
    /// Each workflow's spend this period against its own limit (from the `wf/<id>` counters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["id"]))]
    pub workflows: Vec<ScopeStatus>,
    /// Tenants' spend this period against their own limits: tenants with a limit first, then the
    /// others, by id, at most 100 (a status must stay small); `tenantsNotShown` counts the rest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["id"]))]
    pub tenants: Vec<ScopeStatus>,
    /// Configured tenants left out of `tenants`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub tenants_not_shown: Option<i64>,
    /// Ready (compiled into the running config), BudgetExceeded, ThresholdCrossed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Alerts (Kubernetes events) already raised in the current period, so that each fires
    /// once per period even across operator restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertsRaised>,
}

/// One workflow's or tenant's spend this period. Amounts are decimal USD strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScopeStatus {
    /// The workflow or tenant id.
    pub id: String,
    /// Its own limit in force; absent: only the team's limit applies.
    #[serde(rename = "limitUSD", default, skip_serializing_if = "Option::is_none")]
    pub limit_usd: Option<String>,
    /// USD spent by settled calls.
    #[serde(rename = "spentUSD")]
    pub spent_usd: String,
    /// USD held by calls in flight.
    #[serde(rename = "reservedUSD")]
    pub reserved_usd: String,
    /// Its limit − spent − reserved; absent without a limit of its own.
    #[serde(rename = "remainingUSD", default, skip_serializing_if = "Option::is_none")]
    pub remaining_usd: Option<String>,
    /// Percent of its limit committed, one decimal; absent without a limit of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization: Option<String>,
    /// Calls charged to it.
    #[schemars(range(min = 0))]
    pub requests: i64,
    /// Calls refused because a budget could not cover them.
    #[schemars(range(min = 0))]
    pub blocked: i64,
}

/// Which alerts the operator has raised in one budget period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertsRaised {
    /// Key of the period the alerts belong to (`2026-11`, `2026-W48`, `2026-11-26`).
    pub period: String,
    /// The limit (USD) the thresholds were measured against: a new limit re-arms every alert.
    #[serde(rename = "limitUSD", default, skip_serializing_if = "Option::is_none")]
    pub limit_usd: Option<String>,
    /// Alert thresholds (percent) already announced in that period.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub thresholds: Vec<u8>,
    /// Whether the exhaustion event was already raised in that period.
    #[serde(default)]
    pub exhausted: bool,
    /// Whether the projected-overrun event (the forecast above the limit before the money
    /// runs out) was already raised in that period.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub projected: bool,
}

/// Calls refused this period, by cause.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Refusals {
    /// Refused because a budget (team, workflow or tenant) could not cover the call's worst case.
    #[schemars(range(min = 0))]
    pub budget: i64,
    /// Refused by a model allowlist or a workload-identity rule.
    #[schemars(range(min = 0))]
    pub allowlist: i64,
}

/// One model's spend this period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelSpend {
    /// The catalog model (the ModelPricing entry's `model`).
    pub model: String,
    /// USD spent on it by settled calls (decimal string).
    #[serde(rename = "spentUSD")]
    pub spent_usd: String,
}

/// Percent of `limit` that `spent` is, with one decimal, rounded down, from
/// integers only: `utilization_percent(Nanos(425), Nanos(1000)) == Some("42.5")`.
/// `None` when there is no positive limit; negative spend counts as zero.
pub fn utilization_percent(spent: Nanos, limit: Nanos) -> Option<String> {
    if limit.0 <= 0 {
        return None;
    }
    let tenths = i128::from(spent.0.max(0)) * 1000 / i128::from(limit.0);
    Some(format!("{}.{}", tenths / 10, tenths % 10))
}

impl TeamBudget {
    /// `namespace/name`, how messages and the compiled config name this object.
    pub fn key(&self) -> String {
        format!(
            "{}/{}",
            self.metadata.namespace.as_deref().unwrap_or(""),
            self.metadata.name.as_deref().unwrap_or("")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utilization_is_integer_arithmetic() {
        let u = |s, l| utilization_percent(Nanos(s), Nanos(l));
        assert_eq!(u(425, 1000).as_deref(), Some("42.5"));
        assert_eq!(u(0, 1000).as_deref(), Some("0.0"));
        assert_eq!(u(999, 1000).as_deref(), Some("99.9"));
        assert_eq!(u(1_500, 1000).as_deref(), Some("150.0"));
        assert_eq!(u(-5, 1000).as_deref(), Some("0.0"));
        assert_eq!(u(i64::MAX, 1).as_deref().map(str::len), Some(23));
        assert_eq!(u(5, 0), None);
    }

    #[test]
    fn defaults_apply_when_fields_are_omitted() {
        let spec: TeamBudgetSpec = serde_json::from_value(serde_json::json!({
            "team": "search",
            "budget": {"limitUSD": "100", "period": "Monthly"}
        }))
        .unwrap();
        let budget = spec.budget.unwrap();
        assert_eq!(budget.timezone, "UTC");
        assert_eq!(budget.enforcement, Enforcement::Block);
        assert_eq!(budget.alert_thresholds, vec![50, 80, 100]);
        assert!(spec.tenants.is_empty() && spec.workflows.is_empty() && spec.allowed_models.is_empty());
    }

    #[test]
    fn wire_names_follow_the_api() {
        let spec = TeamBudgetSpec {
            team: "t".into(),
            cost_center: Some("cc".into()),
            tenants: vec![Tenant {
                id: "acme".into(),
                limit_usd: Some("1".into()),
            }],
            budget: None,
            workflows: vec![Workflow {
                id: "rag".into(),
                limit_usd: Some("2".into()),
                allowed_models: vec![],
            }],
            allowed_models: vec!["*".into()],
            principals: vec![],
        };
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["costCenter"], "cc");
        assert_eq!(v["tenants"][0]["limitUSD"], "1");
        assert_eq!(v["workflows"][0]["limitUSD"], "2");
        assert_eq!(v["allowedModels"][0], "*");
        let status = TeamBudgetStatus {
            spent_usd: Some("1.00".into()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            serde_json::json!({"spentUSD": "1.00"})
        );
    }
}
