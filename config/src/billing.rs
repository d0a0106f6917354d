//! How the AWS bill names Bedrock usage: the usage types of a Cost and Usage Report line
//! (`USE1-Claude4.6Sonnet-input-tokens-priority`, `USW2-MP:USW2_OutputTokenCount-Units`), the
//! billing region codes they start with, and the mapping from a bill's model names to the
//! catalog's price entries (the `billing` block of a `ModelPricing` entry, compiled).
//!
//! Pure parsing and lookups; reading a bill is the chargeback crate's job. The mapping is
//! data, not code: which models bill on which path and under which name changes with AWS and
//! with an account's agreements, so users extend it in their own catalogs.

use serde::{Deserialize, Serialize};

/// The token classes the bill counts separately. The bill has one cache-write class; the
/// ledger's 5-minute and 1-hour writes both count in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenClass {
    Input,
    Output,
    CacheRead,
    CacheWrite,
}

impl TokenClass {
    pub const ALL: [TokenClass; 4] = [Self::Input, Self::Output, Self::CacheRead, Self::CacheWrite];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Output => "output",
            Self::CacheRead => "cache_read",
            Self::CacheWrite => "cache_write",
        }
    }
}

/// Suffixes of a first-party usage type that name the token class, longest first.
const FIRST_PARTY_KINDS: [(&str, TokenClass); 6] = [
    ("-cache-write-input-token-count", TokenClass::CacheWrite),
    ("-cache-read-input-token-count", TokenClass::CacheRead),
    ("-cache-write-input-tokens", TokenClass::CacheWrite),
    ("-cache-read-input-tokens", TokenClass::CacheRead),
    ("-input-tokens", TokenClass::Input),
    ("-output-tokens", TokenClass::Output),
];

/// Marketplace token kinds (`USW2-MP:USW2_<kind>-Units`), longest first.
const MARKETPLACE_KINDS: [(&str, TokenClass); 4] = [
    ("CacheWriteInputTokenCount", TokenClass::CacheWrite),
    ("CacheReadInputTokenCount", TokenClass::CacheRead),
    ("InputTokenCount", TokenClass::Input),
    ("OutputTokenCount", TokenClass::Output),
];

/// Service tiers and inference modes a usage type may carry as a suffix, and the service
/// tier a ledger row names for each.
pub const TIER_SUFFIXES: [&str; 5] = ["priority", "flex", "batch", "latency-optimized", "cross-region-global"];

/// Billing region code → AWS region (the prefix of a usage type: `USE1-…`).
const REGION_CODES: [(&str, &str); 32] = [
    ("USE1", "us-east-1"),
    ("USE2", "us-east-2"),
    ("USW1", "us-west-1"),
    ("USW2", "us-west-2"),
    ("UGW1", "us-gov-west-1"),
    ("UGE1", "us-gov-east-1"),
    ("CAN1", "ca-central-1"),
    ("CAN2", "ca-west-1"),
    ("SAE1", "sa-east-1"),
    ("MXC1", "mx-central-1"),
    ("EUC1", "eu-central-1"),
    ("EUC2", "eu-central-2"),
    ("EUW1", "eu-west-1"),
    ("EUW2", "eu-west-2"),
    ("EUW3", "eu-west-3"),
    ("EUN1", "eu-north-1"),
    ("EUS1", "eu-south-1"),
    ("EUS2", "eu-south-2"),
    ("APN1", "ap-northeast-1"),
    ("APN2", "ap-northeast-2"),
    ("APN3", "ap-northeast-3"),
    ("APS1", "ap-southeast-1"),
    ("APS2", "ap-southeast-2"),
    ("APS3", "ap-south-1"),
    ("APS4", "ap-southeast-3"),
    ("APS5", "ap-south-2"),
    ("APS6", "ap-southeast-4"),
    ("APE1", "ap-east-1"),
    ("MEC1", "me-central-1"),
    ("MES1", "me-south-1"),
    ("AFS1", "af-south-1"),
    ("ILC1", "il-central-1"),
];

/// The AWS region of a billing region code (`USE1` → `us-east-1`).
pub fn region_of_code(code: &str) -> Option<&'static str> {
    REGION_CODES.iter().find(|(c, _)| *c == code).map(|(_, r)| *r)
}

/// The billing region code of an AWS region (`us-east-1` → `USE1`).
pub fn code_of_region(region: &str) -> Option<&'static str> {
    REGION_CODES.iter().find(|(_, r)| *r == region).map(|(c, _)| *c)
}

/// Who billed the usage, and the model name the bill gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    /// `AmazonBedrock`: the usage type names the model (`Claude4.6Sonnet`).
    FirstParty { model: String },
    /// AWS Marketplace: the usage type names only the token kind; the model is the product
    /// name (`product_product_name`, "… (Amazon Bedrock Edition)").
    Marketplace,
}

/// A Bedrock token usage type, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageType {
    /// The billing region code (`USE1`).
    pub region_code: String,
    pub path: Path,
    pub class: TokenClass,
    /// The tier and mode suffixes, sorted and joined by `+`; empty for the standard tier.
    pub tier: String,
}

/// Parses a Bedrock token usage type; `None` for anything else (provisioned throughput hours,
/// images, guardrail units, other services).
pub fn parse_usage_type(usage_type: &str) -> Option<UsageType> {
    let (region_code, rest) = usage_type.split_once('-')?;
    if region_code.is_empty() || !region_code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    if let Some(mp) = rest.strip_prefix("MP:") {
        return parse_marketplace(region_code, mp);
    }
    let mut tiers = vec![];
    let mut rest = strip_tiers(rest, &mut tiers);
    let (model, class) = FIRST_PARTY_KINDS
        .iter()
        .find_map(|(suffix, class)| rest.strip_suffix(suffix).map(|m| (m, *class)))?;
    rest = strip_tiers(model, &mut tiers);
    if rest.is_empty() {
        return None;
    }
    Some(UsageType {
        region_code: region_code.to_string(),
        path: Path::FirstParty {
            model: rest.to_string(),
        },
        class,
        tier: tier_key(tiers),
    })
}

/// `USW2_InputTokenCount-Units` (after `MP:`), with optional tier suffixes.
fn parse_marketplace(region_code: &str, rest: &str) -> Option<UsageType> {
    let mut tiers = vec![];
    let rest = strip_tiers(rest, &mut tiers);
    let rest = rest.strip_suffix("-Units").unwrap_or(rest);
    let kind = rest.rsplit('_').next()?;
    let class = MARKETPLACE_KINDS.iter().find(|(k, _)| *k == kind).map(|(_, c)| *c)?;
    Some(UsageType {
        region_code: region_code.to_string(),
        path: Path::Marketplace,
        class,
        tier: tier_key(tiers),
    })
}

/// `text` without its trailing tier suffixes, which are pushed onto `tiers`.
fn strip_tiers<'a>(mut text: &'a str, tiers: &mut Vec<&'static str>) -> &'a str {
    while let Some((rest, tier)) = TIER_SUFFIXES
        .iter()
        .find_map(|t| text.strip_suffix(t).and_then(|r| r.strip_suffix('-')).map(|r| (r, *t)))
    {
        tiers.push(tier);
        text = rest;
    }
    text
}

/// Tier names sorted and joined by `+` (`""` is the standard tier).
pub fn tier_key(mut tiers: Vec<&str>) -> String {
    tiers.sort_unstable();
    tiers.dedup();
    tiers.join("+")
}

/// The tier key of a ledger row: its service tier (`default`/`standard` count as none) plus
/// `cross-region-global` when the model id is a global cross-region profile.
pub fn ledger_tier(service_tier: Option<&str>, model_id: &str) -> String {
    let mut tiers = vec![];
    if let Some(t) = service_tier.filter(|t| !matches!(*t, "" | "default" | "standard")) {
        tiers.push(t);
    }
    if model_id.starts_with("global.") {
        tiers.push("cross-region-global");
    }
    tier_key(tiers)
}

/// How one catalog entry's model appears on the bill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingName {
    /// The entry's `match` pattern and regions: which price entry this names.
    pub pattern: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// The model part of first-party usage types (`Claude4.6Sonnet`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_type_model: Option<String>,
    /// The Marketplace product name ("Claude 4.6 Sonnet (Amazon Bedrock Edition)").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketplace_product: Option<String>,
}

impl BillingName {
    fn in_region(&self, region: &str) -> bool {
        self.regions.is_empty() || self.regions.iter().any(|r| r == region)
    }

    /// The name cells of the bill and the ledger meet on: the usage-type model, else the
    /// product name.
    pub fn key(&self) -> &str {
        self.usage_type_model
            .as_deref()
            .or(self.marketplace_product.as_deref())
            .unwrap_or(&self.pattern)
    }
}

/// Every entry's billing names, in the catalog's precedence order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Billing {
    pub names: Vec<BillingName>,
}

impl Billing {
    /// The entry named `model` by first-party usage types in `region`.
    pub fn by_usage_type_model(&self, model: &str, region: &str) -> Option<&BillingName> {
        self.names
            .iter()
            .find(|n| n.usage_type_model.as_deref() == Some(model) && n.in_region(region))
    }

    /// The entry of a Marketplace product in `region` (names compared ignoring case and
    /// surrounding space, as AWS has written them both ways).
    pub fn by_marketplace_product(&self, product: &str, region: &str) -> Option<&BillingName> {
        let product = product.trim();
        self.names.iter().find(|n| {
            n.marketplace_product
                .as_deref()
                .is_some_and(|p| p.trim().eq_ignore_ascii_case(product))
                && n.in_region(region)
        })
    }

    /// The billing name of the price entry `(pattern, regions)`.
    pub fn of_entry(&self, pattern: &str, regions: &[String]) -> Option<&BillingName> {
        self.names.iter().find(|n| n.pattern == pattern && n.regions == regions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_party(model: &str, class: TokenClass, tier: &str) -> Option<UsageType> {
        Some(UsageType {
            region_code: "USE1".into(),
            path: Path::FirstParty { model: model.into() },
            class,
            tier: tier.into(),
        })
    }

    #[test]
    fn first_party_usage_types_name_model_class_and_tier() {
        let p = parse_usage_type;
        assert_eq!(
            p("USE1-Claude4.6Sonnet-input-tokens"),
            first_party("Claude4.6Sonnet", TokenClass::Input, "")
        );
        assert_eq!(
            p("USE1-Claude4.6Sonnet-cache-read-input-token-count"),
            first_party("Claude4.6Sonnet", TokenClass::CacheRead, "")
        );
        assert_eq!(
            p("USE1-Claude4.6Sonnet-cache-write-input-token-count-priority"),
            first_party("Claude4.6Sonnet", TokenClass::CacheWrite, "priority")
        );
        assert_eq!(
            p("USE1-Llama3-1-70B-output-tokens-batch"),
            first_party("Llama3-1-70B", TokenClass::Output, "batch")
        );
        assert_eq!(
            p("USE1-Claude4.6Sonnet-cross-region-global-output-tokens-flex"),
            first_party("Claude4.6Sonnet", TokenClass::Output, "cross-region-global+flex")
        );
        assert_eq!(p("USE1-ProvisionedThroughput-hours"), None);
        assert_eq!(p("USE1-input-tokens"), None);
        assert_eq!(p("Requests-Tier1"), None);
    }

    #[test]
    fn marketplace_usage_types_name_only_the_class() {
        let u = parse_usage_type("USW2-MP:USW2_CacheReadInputTokenCount-Units").unwrap();
        assert_eq!(
            (u.region_code.as_str(), &u.path, u.class),
            ("USW2", &Path::Marketplace, TokenClass::CacheRead)
        );
        let u = parse_usage_type("USW2-MP:USW2_OutputTokenCount-Units-latency-optimized").unwrap();
        assert_eq!((u.class, u.tier.as_str()), (TokenClass::Output, "latency-optimized"));
        assert_eq!(parse_usage_type("USW2-MP:USW2_Hours-Units"), None);
    }

    #[test]
    fn region_codes_map_both_ways() {
        assert_eq!(region_of_code("USE1"), Some("us-east-1"));
        assert_eq!(region_of_code("EUC1"), Some("eu-central-1"));
        assert_eq!(region_of_code("APN1"), Some("ap-northeast-1"));
        assert_eq!(region_of_code("XXX9"), None);
        assert_eq!(code_of_region("us-west-2"), Some("USW2"));
        assert!(
            REGION_CODES
                .iter()
                .all(|(c, r)| region_of_code(c) == Some(r) && code_of_region(r) == Some(c))
        );
    }

    #[test]
    fn ledger_tiers_match_the_bill_suffixes() {
        assert_eq!(ledger_tier(None, "anthropic.x"), "");
        assert_eq!(ledger_tier(Some("default"), "us.anthropic.x"), "");
        assert_eq!(
            ledger_tier(Some("flex"), "global.anthropic.x"),
            "cross-region-global+flex"
        );
    }

    #[test]
    fn names_are_found_by_region_and_product() {
        let b = Billing {
            names: vec![
                BillingName {
                    pattern: "a.eu".into(),
                    regions: vec!["eu-west-1".into()],
                    usage_type_model: Some("M".into()),
                    marketplace_product: None,
                },
                BillingName {
                    pattern: "a".into(),
                    regions: vec![],
                    usage_type_model: Some("M".into()),
                    marketplace_product: Some("M (Amazon Bedrock Edition)".into()),
                },
            ],
        };
        assert_eq!(b.by_usage_type_model("M", "eu-west-1").unwrap().pattern, "a.eu");
        assert_eq!(b.by_usage_type_model("M", "us-east-1").unwrap().pattern, "a");
        assert_eq!(
            b.by_marketplace_product(" m (amazon bedrock edition)", "us-west-2")
                .unwrap()
                .pattern,
            "a"
        );
        assert!(b.by_usage_type_model("N", "us-east-1").is_none());
        assert_eq!(b.of_entry("a.eu", &["eu-west-1".into()]).unwrap().key(), "M");
    }
}
