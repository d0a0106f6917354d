//! Compiled configs for the end-to-end scenarios: a small price catalog and teams.
//!
//! The catalog repeats a few rows of bedrock-wire.md's price table; tests
//! compute expected costs from their own literals, never from this module or
//! from the code under test.

use tally_config::compiled::{
    Alias, BudgetConfig, CONFIG_VERSION, Catalog, CompiledConfig, Enforcement, PriceEntry, Prices, TeamConfig,
    TenantConfig, UnitPrices, WorkflowConfig,
};
use tally_config::money::{Nanos, NanosPerMillion};
use tally_config::period::Period;

pub const HAIKU: &str = "anthropic.claude-haiku-4-5-20251001-v1:0";
pub const US_HAIKU: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";
pub const OPUS: &str = "anthropic.claude-opus-4-5-20251101-v1:0";
pub const NOVA_LITE: &str = "amazon.nova-lite-v1:0";
pub const LLAMA_8B: &str = "meta.llama3-1-8b-instruct-v1:0";
/// A video model priced per second of video (StartAsyncInvoke): 0.08 USD per second.
pub const NOVA_REEL: &str = "amazon.nova-reel-v1:1";
/// Guardrails, priced per text unit and policy: 0.00015 USD.
pub const GUARDRAILS: &str = "guardrail/*";
/// An application inference profile, aliased to [`US_HAIKU`] in the catalog.
pub const APP_PROFILE_ARN: &str = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/tally-e2e";
/// Output tokens reserved per call before the usage is known.
pub const MAX_OUTPUT_TOKENS: u32 = 1024;

fn usd(s: &str) -> NanosPerMillion {
    NanosPerMillion::parse_usd(s).expect("valid price")
}

fn entry(pattern: &str, [i, o, cr, w5, w1]: [&str; 5]) -> PriceEntry {
    PriceEntry {
        pattern: pattern.to_string(),
        regions: vec![],
        prices: Prices {
            input: usd(i),
            output: usd(o),
            cache_read: usd(cr),
            cache_write_5m: usd(w5),
            cache_write_1h: usd(w1),
        },
        max_output_tokens: MAX_OUTPUT_TOKENS,
        source: "e2e (LiteLLM 1.110.2 on-demand)".to_string(),
        ..PriceEntry::default()
    }
}

/// An entry that prices one unit (no tokens) at `usd`.
fn per_unit(pattern: &str, set: fn(&mut UnitPrices, Nanos), usd: &str) -> PriceEntry {
    let mut units = UnitPrices::default();
    set(&mut units, Nanos::parse_usd(usd).expect("valid price"));
    PriceEntry {
        units,
        ..entry(pattern, ["0", "0", "0", "0", "0"])
    }
}

/// Prices (USD per 1M: input, output, cache read, cache write 5m, cache write 1h).
pub fn catalog() -> Catalog {
    Catalog {
        entries: vec![
            entry(US_HAIKU, ["1.1", "5.5", "0.11", "1.375", "2.2"]),
            entry(HAIKU, ["1", "5", "0.1", "1.25", "2"]),
            entry(OPUS, ["5", "25", "0.5", "6.25", "10"]),
            entry(NOVA_LITE, ["0.06", "0.24", "0.015", "0", "0"]),
            entry(LLAMA_8B, ["0.22", "0.22", "0", "0", "0"]),
            per_unit(NOVA_REEL, |u, p| u.second = p, "0.08"),
            per_unit(GUARDRAILS, |u, p| u.text_unit = p, "0.00015"),
        ],
        aliases: vec![Alias {
            id: APP_PROFILE_ARN.to_string(),
            model: US_HAIKU.to_string(),
        }],
    }
}

/// A team with a monthly UTC budget of `limit_usd` (blocking), tenants and workflows by id.
pub fn team(name: &str, limit_usd: &str, tenants: &[&str], workflows: &[&str]) -> TeamConfig {
    TeamConfig {
        team: name.to_string(),
        source: format!("e2e/{name}"),
        cost_center: None,
        tenants: tenants
            .iter()
            .map(|t| TenantConfig {
                id: t.to_string(),
                limit: None,
            })
            .collect(),
        budget: Some(BudgetConfig {
            limit: Nanos::parse_usd(limit_usd).expect("valid limit"),
            period: Period::Monthly,
            timezone: "UTC".to_string(),
            enforcement: Enforcement::Block,
            alert_thresholds: vec![],
        }),
        workflows: workflows
            .iter()
            .map(|w| WorkflowConfig {
                id: w.to_string(),
                limit: None,
                allowed_models: vec![],
            })
            .collect(),
        allowed_models: vec![],
        principals: vec![],
    }
}

/// The config the ext_proc gets: `teams` (sorted) and [`catalog`].
pub fn config(mut teams: Vec<TeamConfig>) -> CompiledConfig {
    teams.sort_by(|a, b| a.team.cmp(&b.team));
    CompiledConfig {
        version: CONFIG_VERSION,
        generation: "e2e".to_string(),
        teams,
        catalog: catalog(),
    }
}

/// The default e2e config: `search` ($100, tenants acme/globex, workflow rag) and
/// `ads` ($100, only `amazon.nova-*` allowed).
pub fn default_config() -> CompiledConfig {
    let mut ads = team("ads", "100", &[], &["banners"]);
    ads.allowed_models = vec!["amazon.nova-*".to_string()];
    config(vec![team("search", "100", &["acme", "globex"], &["rag"]), ads])
}

/// Compiles TeamBudget and ModelPricing manifests (files or directories) with
/// the operator's compiler, as the operator would; panics listing every problem.
pub fn compile_manifests(paths: &[std::path::PathBuf]) -> CompiledConfig {
    let manifests = tally_api::manifest::load(paths, "default");
    assert!(
        manifests.problems.is_empty(),
        "manifest problems in {paths:?}:\n{}",
        manifests
            .problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    tally_api::compiler::compile(&manifests.teams, &manifests.pricings).unwrap_or_else(|errors| {
        panic!(
            "compile errors:\n{}",
            errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
        )
    })
}
