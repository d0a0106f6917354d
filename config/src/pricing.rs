//! Pricing: which catalog entry prices a model, and what a usage costs.
//!
//! Precedence is decided by the compiler (entries arrive in order); this module
//! only finds the first entry matching `(model, region)`, with the geo-profile
//! fallback (`us.X` is priced as `X` only when no entry matches `us.X`), and
//! multiplies. All arithmetic is integer; a request's cost is rounded half-up to
//! the nano-USD once, after summing its token classes.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::compiled::{Catalog, PriceEntry, Prices};
use crate::money::Nanos;

/// Cross-region inference-profile prefixes (`us.anthropic.claude-…`).
pub const GEO_PREFIXES: &[&str] = &["us-gov.", "global.", "apac.", "us.", "eu.", "jp.", "au.", "ca."];

/// Tokens of one call, by price class. `input` is the non-cached input, as in
/// Bedrock's TokenUsage: billed input = input + cache_read + cache writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
}

impl Usage {
    pub fn is_zero(&self) -> bool {
        *self == Usage::default()
    }

    pub fn cache_write(&self) -> u64 {
        self.cache_write_5m.saturating_add(self.cache_write_1h)
    }
}

/// Exact cost of `usage` at `prices`, rounded half-up to the nano-USD.
pub fn cost(usage: &Usage, prices: &Prices) -> Nanos {
    let terms = [
        (usage.input, prices.input.0),
        (usage.output, prices.output.0),
        (usage.cache_read, prices.cache_read.0),
        (usage.cache_write_5m, prices.cache_write_5m.0),
        (usage.cache_write_1h, prices.cache_write_1h.0),
    ];
    // Each product fits a u128; their sum may not at absurd counts and prices: saturate.
    let total = terms
        .iter()
        .map(|(t, p)| u128::from(*t) * u128::from(*p))
        .fold(0u128, u128::saturating_add);
    let nanos = total.saturating_add(500_000) / 1_000_000;
    Nanos(i64::try_from(nanos).unwrap_or(i64::MAX))
}

/// `*` matches any run of characters; everything else is literal.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let tail: Vec<&str> = parts.collect();
    let Some((last, middle)) = tail.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The catalog, indexed for lookups on the request path.
#[derive(Debug, Clone, Default)]
pub struct PriceBook {
    /// Shared, so a call keeps its entry without copying it (a reload drops the book, not the entry).
    entries: Vec<Arc<PriceEntry>>,
    aliases: HashMap<String, String>,
    /// Exact (glob-free) patterns → their entries' positions, ascending.
    exact: HashMap<String, Vec<usize>>,
    /// Positions of the entries whose pattern has a `*`, ascending.
    globs: Vec<usize>,
}

/// A model resolved to its price entry.
#[derive(Debug, Clone, Copy)]
pub struct Priced<'a> {
    pub entry: &'a Arc<PriceEntry>,
    /// The model id the entry matched (after alias and geo fallback).
    pub model: &'a str,
}

impl PriceBook {
    pub fn new(catalog: &Catalog) -> Self {
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut globs = Vec::new();
        for (i, e) in catalog.entries.iter().enumerate() {
            if e.pattern.contains('*') {
                globs.push(i);
            } else {
                exact.entry(e.pattern.clone()).or_default().push(i);
            }
        }
        PriceBook {
            entries: catalog.entries.iter().cloned().map(Arc::new).collect(),
            aliases: catalog
                .aliases
                .iter()
                .map(|a| (a.id.clone(), a.model.clone()))
                .collect(),
            exact,
            globs,
        }
    }

    /// Follows an alias (application-inference-profile ARN → model id), if one is configured.
    pub fn alias<'a>(&'a self, model: &'a str) -> &'a str {
        self.aliases.get(model).map(String::as_str).unwrap_or(model)
    }

    /// The entry that prices `model` in `region`: the first, in precedence
    /// order, that matches it.
    ///
    /// A geo-profile id `us.X` also considers the entries of its base id `X`:
    /// an entry matching `us.X` wins, unless it is a glob that matches `X` as
    /// well (a catch-all such as `*`) and an entry of `X` itself comes before it
    /// — so `us.X` is priced as `X` when nothing is written for `us.X`, and a
    /// catch-all never shadows the base model's price.
    pub fn lookup<'a>(&'a self, model: &'a str, region: &str) -> Option<Priced<'a>> {
        let base = strip_geo_prefix(model);
        let for_model = self.first_match(model, region);
        let for_base = base.and_then(|b| self.first_match(b, region));
        match (for_model, for_base) {
            // A glob matching both ids, ranked after an entry of the base id, loses to it.
            (Some(m), Some(b)) if b < m && base.is_some_and(|x| glob_matches(&self.entries[m].pattern, x)) => {
                Some(Priced {
                    entry: &self.entries[b],
                    model: base.expect("matched"),
                })
            }
            (Some(m), _) => Some(Priced {
                entry: &self.entries[m],
                model,
            }),
            (None, Some(b)) => Some(Priced {
                entry: &self.entries[b],
                model: base.expect("matched"),
            }),
            (None, None) => None,
        }
    }

    /// Position of the first entry (in precedence order) matching `model` in `region`:
    /// a hash lookup for exact patterns, a scan of the (few) globs.
    fn first_match(&self, model: &str, region: &str) -> Option<usize> {
        let in_region = |&i: &usize| {
            let e = &self.entries[i];
            e.regions.is_empty() || e.regions.iter().any(|r| r == region)
        };
        let exact = self
            .exact
            .get(model)
            .and_then(|v| v.iter().copied().find(|i| in_region(i)));
        let glob = self
            .globs
            .iter()
            .copied()
            .take_while(|g| exact.is_none_or(|x| *g < x))
            .find(|g| in_region(g) && glob_matches(&self.entries[*g].pattern, model));
        glob.or(exact)
    }
}

/// `us.anthropic.claude-…` → `anthropic.claude-…`; `None` when there is no geo prefix.
pub fn strip_geo_prefix(model: &str) -> Option<&str> {
    GEO_PREFIXES.iter().find_map(|p| model.strip_prefix(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compiled::Alias;
    use crate::money::NanosPerMillion;

    fn usd(s: &str) -> NanosPerMillion {
        NanosPerMillion::parse_usd(s).unwrap()
    }

    fn prices(i: &str, o: &str, cr: &str, w5: &str, w1: &str) -> Prices {
        Prices {
            input: usd(i),
            output: usd(o),
            cache_read: usd(cr),
            cache_write_5m: usd(w5),
            cache_write_1h: usd(w1),
        }
    }

    fn entry(pattern: &str, regions: &[&str], p: Prices) -> PriceEntry {
        PriceEntry {
            pattern: pattern.into(),
            regions: regions.iter().map(|r| r.to_string()).collect(),
            prices: p,
            max_output_tokens: 8192,
            source: format!("test {pattern}"),
            ..PriceEntry::default()
        }
    }

    #[test]
    fn prices_every_token_class_to_the_nano_dollar() {
        // us.anthropic.claude-sonnet-4-5: 3.3 / 16.5 / 0.33 / 4.125 / 6.6 per 1M.
        let p = prices("3.3", "16.5", "0.33", "4.125", "6.6");
        let one = |u: Usage| cost(&u, &p).0;
        assert_eq!(
            one(Usage {
                input: 1_000,
                ..Default::default()
            }),
            3_300_000
        );
        assert_eq!(
            one(Usage {
                output: 1_000,
                ..Default::default()
            }),
            16_500_000
        );
        assert_eq!(
            one(Usage {
                cache_read: 1_000,
                ..Default::default()
            }),
            330_000
        );
        assert_eq!(
            one(Usage {
                cache_write_5m: 1_000,
                ..Default::default()
            }),
            4_125_000
        );
        assert_eq!(
            one(Usage {
                cache_write_1h: 1_000,
                ..Default::default()
            }),
            6_600_000
        );
        let all = Usage {
            input: 1_234,
            output: 567,
            cache_read: 89_012,
            cache_write_5m: 3_456,
            cache_write_1h: 7_890,
        };
        // 1234*3.3 + 567*16.5 + 89012*0.33 + 3456*4.125 + 7890*6.6 = 4072.2+9355.5+29373.96+14256+52074 µ$ -> nanos
        assert_eq!(one(all), 109_131_660);
    }

    #[test]
    fn rounds_half_up_once_per_call() {
        // 0.000001 USD per 1M tokens = 0.001 nano-USD per token.
        let p = prices("0.000001", "0.000001", "0.000001", "0", "0");
        assert_eq!(
            cost(
                &Usage {
                    input: 499,
                    ..Default::default()
                },
                &p
            ),
            Nanos(0)
        );
        assert_eq!(
            cost(
                &Usage {
                    input: 500,
                    ..Default::default()
                },
                &p
            ),
            Nanos(1)
        );
        // Summed before rounding: 300 + 300 tokens are 0.6 nano together (→ 1), though each alone rounds to 0.
        assert_eq!(
            cost(
                &Usage {
                    input: 300,
                    output: 300,
                    ..Default::default()
                },
                &p
            ),
            Nanos(1)
        );
        // nova-micro cache read, 0.00875 USD/1M = 8.75 nano per token.
        let nova = prices("0.035", "0.14", "0.00875", "0", "0");
        assert_eq!(
            cost(
                &Usage {
                    cache_read: 1,
                    ..Default::default()
                },
                &nova
            ),
            Nanos(9)
        );
        assert_eq!(
            cost(
                &Usage {
                    input: 14,
                    cache_read: 2,
                    ..Default::default()
                },
                &nova
            ),
            Nanos(490 + 18)
        );
    }

    #[test]
    fn globs() {
        assert!(glob_matches("anthropic.*", "anthropic.claude-3-opus"));
        assert!(glob_matches(
            "*claude*haiku*",
            "us.anthropic.claude-3-5-haiku-20241022-v1:0"
        ));
        assert!(glob_matches("exact", "exact"));
        assert!(!glob_matches("exact", "exactly"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("a*b*c", "abc"));
        assert!(!glob_matches("a*b*c", "acb"));
        assert!(!glob_matches("ab*ba", "aba"));
    }

    #[test]
    fn first_matching_entry_wins_with_region_and_geo_fallback() {
        let catalog = Catalog {
            entries: vec![
                entry(
                    "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                    &[],
                    prices("3.3", "16.5", "0.33", "4.125", "6.6"),
                ),
                entry(
                    "anthropic.claude-sonnet-4-5-20250929-v1:0",
                    &["eu-central-2"],
                    prices("9", "9", "0", "0", "0"),
                ),
                entry(
                    "anthropic.claude-sonnet-4-5-20250929-v1:0",
                    &[],
                    prices("3", "15", "0.3", "3.75", "6"),
                ),
                entry("anthropic.*", &[], prices("100", "100", "0", "0", "0")),
            ],
            aliases: vec![Alias {
                id: "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc".into(),
                model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0".into(),
            }],
        };
        let book = PriceBook::new(&catalog);
        let input = |m: &str, r: &str| book.lookup(m, r).map(|p| p.entry.prices.input.0);
        let sonnet = "anthropic.claude-sonnet-4-5-20250929-v1:0";
        assert_eq!(input(&format!("us.{sonnet}"), "us-east-1"), Some(3_300_000_000));
        // No entry for eu./global.: priced as the base model.
        assert_eq!(input(&format!("eu.{sonnet}"), "eu-west-1"), Some(3_000_000_000));
        assert_eq!(
            book.lookup(&format!("global.{sonnet}"), "us-east-1").unwrap().model,
            sonnet
        );
        assert_eq!(input(sonnet, "eu-central-2"), Some(9_000_000_000));
        assert_eq!(input("anthropic.claude-instant-v1", "us-east-1"), Some(100_000_000_000));
        assert_eq!(input("meta.llama3-1-8b-instruct-v1:0", "us-east-1"), None);
        // A catch-all glob does not shadow the fallback to the base model's price.
        let mut with_catch_all = catalog.clone();
        with_catch_all
            .entries
            .insert(0, entry("*", &[], prices("75", "75", "0", "0", "0")));
        let input_in = |c: &Catalog, model: &str| {
            PriceBook::new(c)
                .lookup(model, "eu-west-1")
                .map(|p| p.entry.prices.input.0)
        };
        let eu_sonnet = format!("eu.{sonnet}");
        assert_eq!(input_in(&with_catch_all, &eu_sonnet), Some(75_000_000_000));
        with_catch_all.entries.rotate_left(1); // now last: the base entry wins
        assert_eq!(input_in(&with_catch_all, &eu_sonnet), Some(3_000_000_000));
        assert_eq!(input_in(&with_catch_all, "mystery.model-v1"), Some(75_000_000_000));
        let arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc";
        assert_eq!(input(book.alias(arn), "us-east-1"), Some(3_300_000_000));
        assert_eq!(book.alias("other"), "other");
    }

    /// The lookup rule written as a plain scan, to check the indexed one against.
    fn reference<'a>(entries: &'a [PriceEntry], model: &'a str, region: &str) -> Option<(&'a str, &'a str)> {
        let in_region = |e: &PriceEntry| e.regions.is_empty() || e.regions.iter().any(|r| r == region);
        let base = strip_geo_prefix(model);
        let mut base_entry = None;
        for e in entries.iter().filter(|e| in_region(e)) {
            let matches_base = base.is_some_and(|b| glob_matches(&e.pattern, b));
            if glob_matches(&e.pattern, model) {
                return Some(match (base_entry, matches_base) {
                    (Some(b), true) => (b, base.unwrap()),
                    _ => (e.source.as_str(), model),
                });
            }
            if matches_base && base_entry.is_none() {
                base_entry = Some(e.source.as_str());
            }
        }
        base_entry.map(|b| (b, base.unwrap()))
    }

    proptest::proptest! {
        #[test]
        fn indexed_lookup_agrees_with_a_plain_scan(
            patterns in proptest::collection::vec((0usize..8, proptest::bool::ANY), 0..12),
            model in 0usize..6,
            region in proptest::bool::ANY,
        ) {
            let names = ["a.m", "us.a.m", "a.*", "*", "*.m", "us.*", "b.m", "a.m*"];
            let models = ["a.m", "us.a.m", "eu.a.m", "b.m", "us.b.m", "c.x"];
            let entries: Vec<PriceEntry> = patterns
                .iter()
                .enumerate()
                .map(|(i, (p, regional))| PriceEntry {
                    pattern: names[*p].into(),
                    regions: if *regional { vec!["eu-west-1".into()] } else { vec![] },
                    prices: Prices::default(),
                    max_output_tokens: 1,
                    source: format!("e{i}"),
                    ..PriceEntry::default()
                })
                .collect();
            let book = PriceBook::new(&Catalog { entries: entries.clone(), aliases: vec![] });
            let region = if region { "eu-west-1" } else { "us-east-1" };
            let got = book.lookup(models[model], region).map(|p| (p.entry.source.as_str(), p.model));
            proptest::prop_assert_eq!(got, reference(&entries, models[model], region));
        }
    }
}
