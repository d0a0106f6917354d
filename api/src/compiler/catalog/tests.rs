//! Catalog precedence, price conversion, aliases and the errors that drop a catalog.

use super::super::test_objects::{alias, price, pricing};
use super::super::{compile, compile_lenient};
use super::*;
use tally_config::pricing::PriceBook;

const SONNET: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";

fn patterns(catalog: &Catalog) -> Vec<String> {
    catalog
        .entries
        .iter()
        .map(|e| {
            if e.regions.is_empty() {
                e.pattern.clone()
            } else {
                format!("{}@{}", e.pattern, e.regions.join(","))
            }
        })
        .collect()
}

fn input_price(book: &PriceBook, model: &str, region: &str) -> Option<u64> {
    book.lookup(book.alias(model), region).map(|p| p.entry.prices.input.0)
}

#[test]
fn exact_beats_glob_and_longer_globs_beat_shorter() {
    let p = pricing(
        "default",
        0,
        vec![
            price("*", "100"),
            price("anthropic.*", "50"),
            price("anthropic.claude-*", "20"),
            price(SONNET, "3"),
        ],
        vec![],
    );
    let config = compile(&[], &[p]).unwrap();
    assert_eq!(
        patterns(&config.catalog),
        [SONNET, "anthropic.claude-*", "anthropic.*", "*"]
    );
    let book = PriceBook::new(&config.catalog);
    assert_eq!(input_price(&book, SONNET, "us-east-1"), Some(3_000_000_000));
    assert_eq!(
        input_price(&book, "anthropic.claude-3-opus-20240229-v1:0", "us-east-1"),
        Some(20_000_000_000)
    );
    assert_eq!(input_price(&book, "anthropic.other", "us-east-1"), Some(50_000_000_000));
    assert_eq!(input_price(&book, "meta.llama", "us-east-1"), Some(100_000_000_000));
}

#[test]
fn region_specific_beats_all_regions() {
    let mut regional = price(SONNET, "4");
    regional.regions = vec!["eu-central-2".into()];
    let config = compile(
        &[],
        &[pricing("default", 0, vec![price(SONNET, "3"), regional], vec![])],
    )
    .unwrap();
    assert_eq!(
        patterns(&config.catalog),
        [format!("{SONNET}@eu-central-2"), SONNET.to_string()]
    );
    let book = PriceBook::new(&config.catalog);
    assert_eq!(input_price(&book, SONNET, "eu-central-2"), Some(4_000_000_000));
    assert_eq!(input_price(&book, SONNET, "us-east-1"), Some(3_000_000_000));
}

#[test]
fn priority_beats_specificity() {
    let default = pricing("default", 0, vec![price(SONNET, "3")], vec![]);
    let negotiated = pricing("negotiated", 10, vec![price("anthropic.*", "2.5")], vec![]);
    let config = compile(&[], &[default, negotiated]).unwrap();
    assert_eq!(patterns(&config.catalog), ["anthropic.*", SONNET]);
    let book = PriceBook::new(&config.catalog);
    assert_eq!(input_price(&book, SONNET, "us-east-1"), Some(2_500_000_000));
    assert!(
        book.lookup(SONNET, "us-east-1")
            .unwrap()
            .entry
            .source
            .starts_with("negotiated: ")
    );
}

#[test]
fn equal_precedence_falls_back_to_catalog_name_then_position() {
    let b = pricing("b", 0, vec![price("x", "2")], vec![]);
    let a = pricing("a", 0, vec![price("x", "1")], vec![]);
    let config = compile(&[], &[b, a]).unwrap();
    let sources: Vec<&str> = config.catalog.entries.iter().map(|e| &e.source[..1]).collect();
    assert_eq!(sources, ["a", "b"]);
}

#[test]
fn geo_prefixed_ids_fall_back_to_the_base_entry_only_without_their_own() {
    let p = pricing(
        "default",
        0,
        vec![
            price(SONNET, "3"),
            price(&format!("us.{SONNET}"), "3.3"),
            price(&format!("global.{SONNET}"), "3"),
        ],
        vec![],
    );
    let config = compile(&[], &[p]).unwrap();
    // The longer (prefixed) exact ids come first; the order does not change which matches.
    assert_eq!(config.catalog.entries[0].pattern, format!("global.{SONNET}"));
    let book = PriceBook::new(&config.catalog);
    assert_eq!(
        input_price(&book, &format!("us.{SONNET}"), "us-east-1"),
        Some(3_300_000_000)
    );
    assert_eq!(
        input_price(&book, &format!("global.{SONNET}"), "us-east-1"),
        Some(3_000_000_000)
    );
    // No eu. entry: priced as the base model.
    let eu = format!("eu.{SONNET}");
    let priced = book.lookup(&eu, "eu-west-1").unwrap();
    assert_eq!(priced.model, SONNET);
    assert_eq!(priced.entry.prices.input.0, 3_000_000_000);
}

#[test]
fn an_override_of_a_base_id_leaves_listed_cross_region_ids_alone_unless_it_matches_them() {
    let default = pricing(
        "default",
        0,
        vec![price(SONNET, "3"), price(&format!("us.{SONNET}"), "3.3")],
        vec![],
    );
    let us = format!("us.{SONNET}");
    // Overriding only the base id: `us.X` still has its own (default) entry.
    let base_only = pricing("negotiated", 10, vec![price(SONNET, "2")], vec![]);
    let book = PriceBook::new(&compile(&[], &[default.clone(), base_only]).unwrap().catalog);
    assert_eq!(input_price(&book, SONNET, "us-east-1"), Some(2_000_000_000));
    assert_eq!(input_price(&book, &us, "us-east-1"), Some(3_300_000_000));
    // A leading `*` overrides the base id and every cross-region id at once.
    let all = pricing("negotiated", 10, vec![price(&format!("*{SONNET}"), "2")], vec![]);
    let book = PriceBook::new(&compile(&[], &[default, all]).unwrap().catalog);
    assert_eq!(input_price(&book, SONNET, "us-east-1"), Some(2_000_000_000));
    assert_eq!(input_price(&book, &us, "us-east-1"), Some(2_000_000_000));
}

#[test]
fn every_price_class_converts_to_exact_nanos() {
    let mut m = price(SONNET, "3.3");
    m.prices.output_per_million = "16.5".into();
    m.prices.cache_read_per_million = Some("0.33".into());
    m.prices.cache_write5m_per_million = Some("4.125".into());
    m.prices.cache_write1h_per_million = Some("6.6".into());
    let mut micro = price("amazon.nova-micro-v1:0", "0.035");
    micro.prices.output_per_million = "0.14".into();
    micro.prices.cache_read_per_million = Some("0.00875".into());
    let config = compile(&[], &[pricing("p", 0, vec![m, micro], vec![])]).unwrap();
    // Every price class of the first entry whose pattern starts with `prefix`, in nanos.
    let classes = |prefix: &str| {
        let p = &config
            .catalog
            .entries
            .iter()
            .find(|e| e.pattern.starts_with(prefix))
            .unwrap()
            .prices;
        [p.input, p.output, p.cache_read, p.cache_write_5m, p.cache_write_1h].map(|p| p.0)
    };
    assert_eq!(
        classes(SONNET),
        [3_300_000_000, 16_500_000_000, 330_000_000, 4_125_000_000, 6_600_000_000]
    );
    assert_eq!(classes("amazon"), [35_000_000, 140_000_000, 8_750_000, 0, 0]);
}

#[test]
fn a_missing_one_hour_price_is_the_five_minute_price() {
    let mut m = price("x", "1");
    m.prices.cache_write5m_per_million = Some("1.25".into());
    let config = compile(&[], &[pricing("p", 0, vec![m], vec![])]).unwrap();
    assert_eq!(config.catalog.entries[0].prices.cache_write_1h.0, 1_250_000_000);
}

#[test]
fn entries_name_their_source() {
    let config = compile(&[], &[pricing("bedrock-on-demand", 0, vec![price("x", "1")], vec![])]).unwrap();
    assert_eq!(config.catalog.entries[0].source, "bedrock-on-demand: test (2025-11-20)");
    assert_eq!(config.catalog.entries[0].max_output_tokens, 4096);
}

#[test]
fn aliases_resolve_application_inference_profiles() {
    let arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3";
    let p = pricing(
        "default",
        0,
        vec![price(SONNET, "3"), price(&format!("us.{SONNET}"), "3.3")],
        vec![alias(arn, &format!("us.{SONNET}"))],
    );
    let config = compile(&[], &[p]).unwrap();
    assert_eq!(
        config.catalog.aliases,
        vec![Alias {
            id: arn.into(),
            model: format!("us.{SONNET}")
        }]
    );
    let book = PriceBook::new(&config.catalog);
    assert_eq!(input_price(&book, arn, "us-east-1"), Some(3_300_000_000));
}

#[test]
fn alias_conflicts_across_catalogs() {
    let a = pricing("a", 0, vec![], vec![alias("p", "m1")]);
    let b = pricing("b", 0, vec![], vec![alias("p", "m2")]);
    let high = pricing("high", 5, vec![], vec![alias("p", "m3")]);
    // Higher priority wins silently.
    let config = compile(&[], &[a.clone(), high]).unwrap();
    assert_eq!(
        config.catalog.aliases,
        vec![Alias {
            id: "p".into(),
            model: "m3".into()
        }]
    );
    // Equal priority, different models: the later catalog (by name) is refused, naming the other.
    let compiled = compile_lenient(&[], &[b, a.clone()]);
    assert_eq!(
        compiled.config.catalog.aliases,
        vec![Alias {
            id: "p".into(),
            model: "m1".into()
        }]
    );
    assert_eq!(compiled.errors.len(), 1);
    assert_eq!(
        compiled.errors[0].to_string(),
        "ModelPricing b: spec.aliases[0].model: alias \"p\" is already mapped to \"m1\" by ModelPricing a, \
         which has the same priority; give one catalog a higher priority or map the alias once"
    );
    // The same mapping twice is fine.
    assert!(compile(&[], &[a.clone(), pricing("c", 0, vec![], vec![alias("p", "m1")])]).is_ok());
    // Chains across catalogs are refused.
    let chain = pricing("z", 0, vec![], vec![alias("q", "p")]);
    let errors = compile(&[], &[a, chain]).unwrap_err();
    assert_eq!(errors[0].field, "spec.aliases[0].model");
    assert!(
        errors[0].message.contains("is itself an alias (in ModelPricing a)"),
        "{}",
        errors[0]
    );
}

#[test]
fn every_catalog_error_is_reported_and_drops_the_catalog() {
    let mut bad_region = price("y", "1");
    bad_region.regions = vec!["us-east-1".into(), "Frankfurt".into()];
    let mut bad_prices = price("z", "1,5");
    bad_prices.prices.output_per_million = "-1".into();
    bad_prices.prices.cache_read_per_million = Some("0.1234567891".into());
    bad_prices.prices.cache_write5m_per_million = Some("x".into());
    bad_prices.prices.cache_write1h_per_million = Some("1e3".into());
    bad_prices.max_output_tokens = 0;
    let mut p = pricing(
        "bad",
        0,
        vec![
            price("anthropic.claude-?", "1"),
            bad_region,
            bad_prices,
            price("x", "1"),
            price("x", "2"),
        ],
        vec![alias("a", "b*"), alias("a", "m"), alias("c", "a")],
    );
    p.spec.source = " ".into();
    p.spec.effective_from = "2025-02-30".into();
    let good = pricing("good", 0, vec![price("x", "1")], vec![]);
    let compiled = compile_lenient(&[], &[p, good]);
    let fields: Vec<&str> = compiled.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.source",
            "spec.effectiveFrom",
            "spec.models[0].match",
            "spec.models[1].regions[1]",
            "spec.models[2].inputPerMillion",
            "spec.models[2].outputPerMillion",
            "spec.models[2].cacheReadPerMillion",
            "spec.models[2].cacheWrite5mPerMillion",
            "spec.models[2].cacheWrite1hPerMillion",
            "spec.models[2].maxOutputTokens",
            "spec.models[4].match",
            "spec.aliases[0].model",
            "spec.aliases[1].id",
            "spec.aliases[2].model",
        ]
    );
    assert!(
        compiled
            .errors
            .iter()
            .all(|e| e.object.to_string() == "ModelPricing bad")
    );
    assert_eq!(compiled.entries_per_catalog, BTreeMap::from([("good".to_string(), 1)]));
    assert_eq!(compiled.config.catalog.entries.len(), 1);
}

#[test]
fn long_context_tiers_and_unit_prices_convert_and_name_their_bad_fields() {
    use crate::crd::{LongContextPrice, ServiceTierPrice, TokenPrices};
    let tokens = |input: &str, output: &str| TokenPrices {
        input_per_million: input.into(),
        output_per_million: output.into(),
        cache_read_per_million: None,
        cache_write5m_per_million: Some("7.5".into()),
        cache_write1h_per_million: None,
    };
    let mut sonnet = price(SONNET, "3");
    sonnet.max_input_tokens = Some(200_000);
    sonnet.long_context = Some(LongContextPrice {
        above_input_tokens: 200_000,
        prices: tokens("6", "22.5"),
    });
    sonnet.service_tiers = vec![ServiceTierPrice {
        tier: "priority".into(),
        prices: tokens("5.25", "26.25"),
    }];
    let mut reel = price("amazon.nova-reel-v1:1", "0");
    reel.per_second = Some("0.08".into());
    reel.per_request = Some("0.001".into());
    let config = compile(&[], &[pricing("p", 0, vec![sonnet, reel], vec![])]).unwrap();
    let entry = |p: &str| config.catalog.entries.iter().find(|e| e.pattern == p).unwrap();
    let s = entry(SONNET);
    assert_eq!(s.max_input_tokens, Some(200_000));
    let lc = s.long_context.unwrap();
    assert_eq!((lc.above_input_tokens, lc.prices.input.0), (200_000, 6_000_000_000));
    // a tier's missing 1-hour price is its 5-minute one, as for the entry itself
    assert_eq!(s.tiers[0].tier, "priority");
    assert_eq!(s.tiers[0].prices.cache_write_1h.0, 7_500_000_000);
    let r = entry("amazon.nova-reel-v1:1");
    assert_eq!((r.units.second.0, r.units.request.0), (80_000_000, 1_000_000));

    let mut bad = price("x", "1");
    bad.max_input_tokens = Some(0);
    bad.long_context = Some(LongContextPrice {
        above_input_tokens: 0,
        prices: tokens("x", "1"),
    });
    bad.service_tiers = vec![ServiceTierPrice {
        tier: "default".into(),
        prices: tokens("1", "-2"),
    }];
    bad.per_image = Some("0.0000000001".into());
    let compiled = compile_lenient(&[], &[pricing("bad", 0, vec![bad], vec![])]);
    let fields: Vec<&str> = compiled.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.models[0].maxInputTokens",
            "spec.models[0].longContext.aboveInputTokens",
            "spec.models[0].longContext.inputPerMillion",
            "spec.models[0].serviceTiers[0].tier",
            "spec.models[0].serviceTiers[0].outputPerMillion",
            "spec.models[0].perImage",
        ]
    );
}
