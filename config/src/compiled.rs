//! The compiled config: the one contract between the control plane and the data plane.
//!
//! The operator (and `tally render`) compile `TeamBudget` and `ModelPricing`
//! objects into a [`CompiledConfig`], serialized as JSON; `tally-extproc` loads
//! it and swaps it atomically. It carries no Kubernetes types: money is already
//! integer nano-USD, globs are already validated, and the catalog is already in
//! precedence order, so the data plane only has to look things up.
//!
//! Compatibility: `version` is the format's major version. Readers refuse any
//! major version but their own; within one, writers may add optional fields
//! and readers ignore fields they do not know (and say so in one log line), so
//! during a rolling upgrade an older ext_proc keeps reading a newer operator's
//! config. Anything that is not an optional addition bumps [`CONFIG_VERSION`].

use serde::{Deserialize, Serialize};

use crate::money::{Nanos, NanosPerMillion};
use crate::period::Period;

/// The version of the format this build reads and writes.
pub const CONFIG_VERSION: u32 = 1;

/// Team id that calls without any attribution are charged to.
pub const UNKNOWN_TEAM: &str = "unknown";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompiledConfig {
    /// Always [`CONFIG_VERSION`].
    pub version: u32,
    /// Content hash of everything below (hex sha256 prefix), set by the compiler.
    #[serde(default)]
    pub generation: String,
    /// Teams, sorted by `team`.
    #[serde(default)]
    pub teams: Vec<TeamConfig>,
    #[serde(default)]
    pub catalog: Catalog,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamConfig {
    /// The team id (`x-team-id`), unique across the cluster.
    pub team: String,
    /// The object it came from, `namespace/name`, for messages and status.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_center: Option<String>,
    /// Tenants that belong to this team, each optionally with its own limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<TenantConfig>,
    /// The team's budget; `None` means attribution only, never blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workflows: Vec<WorkflowConfig>,
    /// Model-id globs this team may call; empty allows every model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_models: Vec<String>,
    /// Workload identities (SPIFFE ids / URI SANs) allowed to charge this team;
    /// empty trusts the attribution headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantConfig {
    pub id: String,
    /// Per-tenant limit within the team's period; `None` = only the team limit applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<Nanos>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetConfig {
    pub limit: Nanos,
    pub period: Period,
    /// IANA timezone the period is computed in (validated by the compiler).
    pub timezone: String,
    pub enforcement: Enforcement,
    /// Percentages (1..=100, ascending) at which the operator raises events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alert_thresholds: Vec<u8>,
}

/// What happens when a budget cannot cover a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Enforcement {
    /// Refuse the call before it reaches Bedrock.
    Block,
    /// Let it through; record that it was over budget.
    Warn,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowConfig {
    pub id: String,
    /// Limit within the team's period; `None` = only the team limit applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<Nanos>,
    /// Further restricts the team's allowlist for this workflow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_models: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Catalog {
    /// Price entries in precedence order: the first match wins.
    #[serde(default)]
    pub entries: Vec<PriceEntry>,
    /// Opaque model ids (application-inference-profile ARNs, …) → a priced model id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<Alias>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceEntry {
    /// Model id or glob (`*` any run of characters) matched against the resolved model id.
    #[serde(rename = "match")]
    pub pattern: String,
    /// Regions this entry applies to; empty = every region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    pub prices: Prices,
    /// Upper bound on output tokens used for the worst-case reservation of a
    /// request that sets no maximum of its own.
    pub max_output_tokens: u32,
    /// The model's context window: bounds the input a request names but does not
    /// carry (media by `s3Location`). `None`: [`DEFAULT_MAX_INPUT_TOKENS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_input_tokens: Option<u32>,
    /// Prices of a call whose billed input exceeds a threshold (every token of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_context: Option<LongContext>,
    /// Prices of service tiers other than the standard one (`priority`, `flex`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<TierPrices>,
    /// Prices per request, image, second of video and guardrail text unit.
    #[serde(default, skip_serializing_if = "UnitPrices::is_zero")]
    pub units: UnitPrices,
    /// Where the price came from: `ModelPricing name (source, effectiveFrom)`.
    pub source: String,
}

/// Input bound of a model whose catalog entry gives no context window: the
/// largest context window of any Bedrock model.
pub const DEFAULT_MAX_INPUT_TOKENS: u32 = 1_000_000;

/// Long-context pricing: once a call's billed input (non-cached + cache reads
/// + cache writes) exceeds `above_input_tokens`, all of its tokens cost `prices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LongContext {
    pub above_input_tokens: u64,
    pub prices: Prices,
}

/// The token prices of one service tier (`X-Amzn-Bedrock-Service-Tier` /
/// Converse `serviceTier`), in place of the standard prices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TierPrices {
    pub tier: String,
    pub prices: Prices,
}

/// Prices of what is not billed per token, nano-USD per unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitPrices {
    /// Per successful call (an async job's submission, a per-call fee).
    #[serde(default, skip_serializing_if = "Nanos::is_zero")]
    pub request: Nanos,
    /// Per generated image (Stability, Titan Image, Nova Canvas).
    #[serde(default, skip_serializing_if = "Nanos::is_zero")]
    pub image: Nanos,
    /// Per second of generated video (Nova Reel, Luma Ray).
    #[serde(default, skip_serializing_if = "Nanos::is_zero")]
    pub second: Nanos,
    /// Per guardrail text unit (up to 1,000 characters) and policy.
    #[serde(default, skip_serializing_if = "Nanos::is_zero")]
    pub text_unit: Nanos,
}

impl UnitPrices {
    pub fn is_zero(&self) -> bool {
        *self == UnitPrices::default()
    }
}

/// Prices of each token class, nano-USD per 1M tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prices {
    pub input: NanosPerMillion,
    pub output: NanosPerMillion,
    #[serde(default)]
    pub cache_read: NanosPerMillion,
    #[serde(default)]
    pub cache_write_5m: NanosPerMillion,
    #[serde(default)]
    pub cache_write_1h: NanosPerMillion,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alias {
    pub id: String,
    pub model: String,
}

/// Why a compiled config file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config is not valid JSON for this format: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("config version {found} is not supported (this build reads version {CONFIG_VERSION})")]
    Version { found: u32 },
    #[error("config is inconsistent: {0}")]
    Invalid(String),
}

impl CompiledConfig {
    pub fn empty() -> Self {
        CompiledConfig {
            version: CONFIG_VERSION,
            generation: String::new(),
            teams: vec![],
            catalog: Catalog::default(),
        }
    }

    /// Parses and checks a config file's bytes; fields this build does not
    /// know (a newer writer's additions) are ignored and logged once.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let (config, unknown) = Self::from_json_reporting_unknown(bytes)?;
        if !unknown.is_empty() {
            tracing::info!(
                version = config.version,
                fields = %unknown.join(", "),
                "config has fields this build does not know (written by a newer operator); ignoring them"
            );
        }
        Ok(config)
    }

    /// [`from_json`](Self::from_json), returning the unknown fields' paths
    /// (`teams[0].forecast`) instead of logging them.
    pub fn from_json_reporting_unknown(bytes: &[u8]) -> Result<(Self, Vec<String>), ConfigError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let v: VersionOnly = serde_json::from_slice(bytes)?;
        if v.version != CONFIG_VERSION {
            return Err(ConfigError::Version { found: v.version });
        }
        let raw: serde_json::Value = serde_json::from_slice(bytes)?;
        let config: CompiledConfig = serde_json::from_value(raw.clone())?;
        config.check()?;
        let known = serde_json::to_value(&config)?;
        let mut unknown = vec![];
        unknown_fields(&raw, &known, "", &mut unknown);
        Ok((config, unknown))
    }

    /// Invariants a hand-edited or corrupted file could break; the compiler never does.
    fn check(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for t in &self.teams {
            if !seen.insert(t.team.as_str()) {
                return Err(ConfigError::Invalid(format!("team {:?} appears twice", t.team)));
            }
            if let Some(b) = &t.budget {
                crate::period::timezone(&b.timezone)
                    .map_err(|e| ConfigError::Invalid(format!("team {:?}: {e}", t.team)))?;
            }
        }
        Ok(())
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serializes")
    }
}
/// Paths of `raw`'s object keys that did not survive a round trip through the
/// known types. Empty values (`null`, `[]`) are not reported: the writer skips
/// those when empty, so their absence says nothing.
fn unknown_fields(raw: &serde_json::Value, known: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    use serde_json::Value;
    match (raw, known) {
        (Value::Object(r), Value::Object(k)) => {
            for (key, value) in r {
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match k.get(key) {
                    Some(kv) => unknown_fields(value, kv, &here, out),
                    None if value.is_null() || value.as_array().is_some_and(Vec::is_empty) => {}
                    None => out.push(here),
                }
            }
        }
        (Value::Array(r), Value::Array(k)) => {
            for (i, (rv, kv)) in r.iter().zip(k).enumerate() {
                unknown_fields(rv, kv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}
