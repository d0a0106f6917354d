//! The instrumentation work an audit can recommend, with its size, so that the
//! report can list it smallest first.

use serde::Serialize;

/// One piece of instrumentation work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fix {
    StableRequestId,
    UniqueRequestId,
    DecimalCost,
    CostCurrency,
    UtcTimestamps,
    ProfileAliases,
    BillingRegion,
    SplitCacheTokens,
    OneTokenConvention,
    CatalogPrices,
    LogUsage,
    AttributionHeaders,
    ForwardAttribution,
    TagPrincipals,
    PerTeamIdentity,
    Gateway,
}

/// How big a piece of work is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effort {
    /// A setting or a one-line change in one place.
    Config,
    /// A small code change in the service or the log pipeline.
    Small,
    /// A change in every calling service.
    PerService,
    /// A new component in the path of every call.
    Rollout,
}

impl Effort {
    pub fn label(self) -> &'static str {
        match self {
            Effort::Config => "config",
            Effort::Small => "small",
            Effort::PerService => "per service",
            Effort::Rollout => "rollout",
        }
    }
}

impl Fix {
    pub fn effort(self) -> Effort {
        match self {
            Fix::StableRequestId
            | Fix::DecimalCost
            | Fix::CostCurrency
            | Fix::UtcTimestamps
            | Fix::ProfileAliases
            | Fix::BillingRegion => Effort::Config,
            Fix::SplitCacheTokens
            | Fix::OneTokenConvention
            | Fix::CatalogPrices
            | Fix::LogUsage
            | Fix::UniqueRequestId
            | Fix::ForwardAttribution
            | Fix::TagPrincipals => Effort::Small,
            Fix::AttributionHeaders | Fix::PerTeamIdentity => Effort::PerService,
            Fix::Gateway => Effort::Rollout,
        }
    }

    /// What to do, in one sentence a platform engineer can act on.
    pub fn text(self) -> &'static str {
        match self {
            Fix::StableRequestId => {
                "Record the SDK's `amz-sdk-invocation-id` (the same on every retry of a call) as the request id, not an id minted per attempt"
            }
            Fix::UniqueRequestId => {
                "Give every Bedrock call its own request id; keep the inbound request or trace id in a separate parent field"
            }
            Fix::DecimalCost => {
                "Record cost as integer nano-USD or a decimal string, never a binary float: float sums drift and do not reconcile"
            }
            Fix::CostCurrency => "Name the currency of every cost (`cost_usd`, or a currency field next to it)",
            Fix::UtcTimestamps => {
                "Stamp records in UTC: the AWS bill cuts days at UTC midnight, local-time days never reconcile"
            }
            Fix::ProfileAliases => {
                "Map every application-inference-profile ARN to the model it routes to (ModelPricing `aliases`), so calls are priced and reported by model"
            }
            Fix::BillingRegion => {
                "Record the region of the endpoint called as the billing region; keep a cross-region profile's `inferenceRegion` in a field of its own"
            }
            Fix::SplitCacheTokens => {
                "Log cache-read and cache-write tokens as separate counts (`cacheReadInputTokens`, `cacheWriteInputTokens`): they are priced 0.1× and 1.25–2× input"
            }
            Fix::OneTokenConvention => {
                "Count input tokens one way everywhere (Bedrock's `inputTokens` excludes cached tokens; OpenTelemetry's `gen_ai.usage.input_tokens` includes them)"
            }
            Fix::CatalogPrices => {
                "Price calls from one maintained catalog with every token class (cache reads, 5-minute and 1-hour writes, geo profiles); `tally render` checks one"
            }
            Fix::LogUsage => {
                "Log the model id, region, token usage and latency of every call from the Bedrock response (Converse `usage` and `metrics`)"
            }
            Fix::AttributionHeaders => {
                "Send `x-team-id`, `x-tenant-id` and `x-workflow-id` with every Bedrock call (one line per SDK client: a header interceptor)"
            }
            Fix::ForwardAttribution => {
                "Forward the attribution the application already knows into this source (gateway headers, log fields): it is dropped on the way"
            }
            Fix::TagPrincipals => {
                "Tag the IAM principals that call Bedrock with team / tenant / workflow and activate the tags for cost allocation (not retroactive: do it before the month starts)"
            }
            Fix::PerTeamIdentity => {
                "Stop one shared IAM role from standing for every team: use a role or STS session tags per team, or attribute at a gateway"
            }
            Fix::Gateway => {
                "Route Bedrock calls through a gateway that prices every call in real time and tracks team budgets (Tally: `helm install`, then ModelPricing and TeamBudgets)"
            }
        }
    }
}
