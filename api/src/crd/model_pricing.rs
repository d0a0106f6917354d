//! `ModelPricing` (cluster-scoped): a price catalog for Bedrock models.
//!
//! Several catalogs may coexist (the default one shipped with Tally, a
//! company's negotiated prices, a one-model override); the compiler merges
//! them by `priority`, then by how specific each entry is. Prices are decimal
//! USD strings per one million tokens, converted to integer nano-USD exactly.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Usd;
use super::condition::Condition;
use super::team_budget::MODEL_GLOB_PATTERN;

/// Largest `maxOutputTokens` accepted (the schema's `maximum`).
pub const MAX_OUTPUT_TOKENS: u32 = 10_000_000;

/// Regular expression of an AWS region name (`us-east-1`, `us-gov-west-1`, `eu-central-2`).
pub const REGION_PATTERN: &str = r"^[a-z]{2,}(-[a-z]+)+-[0-9]+$";
/// Regular expression of a calendar date (`YYYY-MM-DD`).
pub const DATE_PATTERN: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$";

/// Spec of a `ModelPricing`: a price catalog with its provenance.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "tally.dev",
    version = "v1alpha1",
    kind = "ModelPricing",
    plural = "modelpricings",
    singular = "modelpricing",
    shortname = "mp",
    category = "tally",
    status = "ModelPricingStatus",
    derive = "PartialEq",
    doc = "A catalog of Bedrock model prices (USD per million tokens of each class) with where they came from \
           and since when. Tally prices every call with the matching entry of the highest-priority catalog.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status","description":"Whether the catalog is in the running config"}"#,
    printcolumn = r#"{"name":"Source","type":"string","jsonPath":".status.source","description":"Where the prices come from, shortened (spec.source has it whole)"}"#,
    printcolumn = r#"{"name":"Models","type":"integer","jsonPath":".status.models","description":"Price entries in use"}"#,
    printcolumn = r#"{"name":"Priority","type":"integer","jsonPath":".spec.priority","description":"Higher wins"}"#,
    printcolumn = r#"{"name":"Effective","type":"string","jsonPath":".spec.effectiveFrom","priority":1,"description":"Date the prices apply from"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ModelPricingSpec {
    /// Where the prices come from, e.g. "AWS Bedrock on-demand pricing page via LiteLLM
    /// model_prices_and_context_window 1.110.2". Recorded with every priced call.
    #[schemars(length(min = 1, max = 512))]
    pub source: String,
    /// Date (YYYY-MM-DD) from which these prices apply.
    #[schemars(regex(pattern = DATE_PATTERN))]
    pub effective_from: String,
    /// Precedence among catalogs: for a model that several catalogs price, the
    /// entry of the highest priority wins; within a priority, the most specific
    /// entry (exact id before glob, then more literal characters, then
    /// region-specific before all-regions). Defaults to 0. A cross-region id
    /// `us.X` is priced by the first entry matching it, else as `X`; a glob
    /// that matches both (such as `*`) loses to an entry of `X` ranked before
    /// it, so a catch-all never shadows the base model's price. To override `X`
    /// and its cross-region ids at once, match them all, e.g.
    /// `*anthropic.claude-sonnet-4-5-20250929-v1:0`.
    #[serde(default)]
    pub priority: i32,
    /// The price entries.
    #[serde(default)]
    #[schemars(length(max = 5000))]
    pub models: Vec<ModelPrice>,
    /// Model ids that are not priced themselves but stand for a priced model, such as
    /// application-inference-profile ARNs (often one per team).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5000))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["id"]))]
    pub aliases: Vec<ModelAlias>,
}

/// The price of one model (or of every model a glob matches).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelPrice {
    /// Bedrock model id or glob (`*` matches any run of characters), e.g.
    /// `anthropic.claude-sonnet-4-5-20250929-v1:0` or `us.anthropic.claude-sonnet-4-5-*`.
    /// A cross-region id such as `us.X` without an entry of its own is priced as `X`.
    #[serde(rename = "match")]
    #[schemars(length(min = 1, max = 2048), regex(pattern = MODEL_GLOB_PATTERN))]
    pub pattern: String,
    /// AWS regions (the region the gateway calls) this entry applies to. Empty or absent:
    /// every region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 32), regex(pattern = REGION_PATTERN)))]
    pub regions: Vec<String>,
    /// The token prices (standard tier, up to any long-context threshold).
    #[serde(flatten)]
    pub prices: TokenPrices,
    /// Largest number of output tokens the model produces in one call; the budget
    /// check reserves this many output tokens for a call that sets no lower maximum.
    #[schemars(range(min = 1, max = MAX_OUTPUT_TOKENS))]
    pub max_output_tokens: u32,
    /// The model's context window in tokens. Bounds the input of a call that names media
    /// it does not carry (`s3Location`), which Tally cannot measure. Absent: 1,000,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_INPUT_TOKENS))]
    pub max_input_tokens: Option<u32>,
    /// Prices of a call whose billed input exceeds `aboveInputTokens`: every token of
    /// such a call costs these (e.g. Claude Sonnet 4 above 200k input tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_context: Option<LongContextPrice>,
    /// Prices of service tiers other than the standard one, by the tier the call asks for
    /// (`X-Amzn-Bedrock-Service-Tier` or Converse `serviceTier`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["tier"]))]
    pub service_tiers: Vec<ServiceTierPrice>,
    /// USD per successful call, decimal string (e.g. an async job's fixed fee).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_request: Option<Usd>,
    /// USD per generated image (image models: Stability, Titan Image, Nova Canvas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_image: Option<Usd>,
    /// USD per second of generated video (StartAsyncInvoke: Nova Reel, Luma Ray).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<Usd>,
    /// USD per guardrail text unit (up to 1,000 characters) per policy that evaluates it
    /// (ApplyGuardrail, priced by an entry matching `guardrail/<id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_text_unit: Option<Usd>,
    /// How the AWS bill (Cost and Usage Report) names this model, for `tally reconcile`.
    /// Absent: the model's usage on the bill is reported as unmapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<ModelBilling>,
}

/// Regular expression of the model part of a first-party Bedrock usage type.
pub const USAGE_TYPE_MODEL_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9._-]*$";

/// The names the AWS bill gives a model (at least one of the two).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelBilling {
    /// The model part of its first-party usage types (`line_item_product_code` AmazonBedrock):
    /// `Claude4.6Sonnet` in `USE1-Claude4.6Sonnet-input-tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = USAGE_TYPE_MODEL_PATTERN))]
    pub usage_type_model: Option<String>,
    /// Its AWS Marketplace product name (`product_product_name`), e.g.
    /// "Claude 4.6 Sonnet (Amazon Bedrock Edition)", for models billed through the Marketplace
    /// (usage types `USW2-MP:USW2_InputTokenCount-Units`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub marketplace_product: Option<String>,
}

/// Largest `maxInputTokens` accepted.
pub const MAX_INPUT_TOKENS: u32 = 100_000_000;

/// Token prices, USD per million tokens of each class (decimal strings).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenPrices {
    /// USD per million (non-cached) input tokens, decimal string.
    pub input_per_million: Usd,
    /// USD per million output tokens, decimal string.
    pub output_per_million: Usd,
    /// USD per million input tokens read from the prompt cache. Absent: 0 (no caching).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_per_million: Option<Usd>,
    /// USD per million input tokens written to the prompt cache with a 5-minute TTL.
    /// Absent: 0 (no caching).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write5m_per_million: Option<Usd>,
    /// USD per million input tokens written to the prompt cache with a 1-hour TTL.
    /// Absent: the 5-minute price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write1h_per_million: Option<Usd>,
}

/// Long-context prices and the input size from which they apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LongContextPrice {
    /// A call whose billed input tokens exceed this is priced with these prices.
    #[schemars(range(min = 1))]
    pub above_input_tokens: u32,
    #[serde(flatten)]
    pub prices: TokenPrices,
}

/// The prices of one service tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceTierPrice {
    /// The tier as the call names it: `priority`, `flex`, `reserved`.
    #[schemars(length(min = 1, max = 32), regex(pattern = r"^[a-z][a-z0-9_-]*$"))]
    pub tier: String,
    #[serde(flatten)]
    pub prices: TokenPrices,
}

/// An id that stands for a priced model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelAlias {
    /// The id as callers send it, matched exactly, e.g.
    /// `arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6`.
    #[schemars(length(min = 1, max = 2048))]
    pub id: String,
    /// The model id it is priced as (may carry a cross-region prefix, e.g.
    /// `us.anthropic.claude-haiku-4-5-20251001-v1:0`). Must not itself be an alias.
    #[schemars(length(min = 1, max = 2048))]
    pub model: String,
}

/// Observed state of a `ModelPricing`, written by the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelPricingStatus {
    /// Price entries of this catalog in the running config (0 when the catalog is invalid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub models: Option<i64>,
    /// `spec.source` cut to its first 40 characters (`…` marks a cut), for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Ready: the catalog compiled into the running config (`False` names the field at fault).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl ModelPricing {
    /// The object's name (cluster-scoped: no namespace).
    pub fn key(&self) -> String {
        self.metadata.name.clone().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_follow_the_api() {
        let m = ModelPrice {
            pattern: "x".into(),
            regions: vec![],
            prices: TokenPrices {
                input_per_million: "1".into(),
                output_per_million: "2".into(),
                cache_read_per_million: Some("0.1".into()),
                cache_write5m_per_million: Some("1.25".into()),
                cache_write1h_per_million: Some("2".into()),
            },
            max_output_tokens: 8192,
            max_input_tokens: None,
            long_context: None,
            service_tiers: vec![],
            per_request: None,
            per_image: None,
            per_second: None,
            per_text_unit: None,
            billing: None,
        };
        let v = serde_json::to_value(&m).unwrap();
        let keys: std::collections::BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            std::collections::BTreeSet::from([
                "cacheReadPerMillion",
                "cacheWrite1hPerMillion",
                "cacheWrite5mPerMillion",
                "inputPerMillion",
                "match",
                "maxOutputTokens",
                "outputPerMillion"
            ])
        );
    }
}
