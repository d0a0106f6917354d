//! `ModelPricing`s → one [`Catalog`] whose entries are in precedence order,
//! because the data plane takes the first entry that matches.
//!
//! Precedence, first to last:
//! 1. `priority`, higher first: a catalog of negotiated prices overrides the default one;
//! 2. specificity: an exact id before a glob, then more literal (non-`*`)
//!    characters before fewer, then region-specific before all-regions;
//! 3. catalog name, then the entry's position in its catalog (so ties are stable).
//!
//! Cross-region ids need no entries of their own: `PriceBook::lookup` prices
//! `us.X` with the first entry matching it, and as `X` when none does (or when
//! the first is a catch-all glob ranked after an entry of `X`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use tally_config::compiled::{Alias, Catalog, LongContext, PriceEntry, Prices, TierPrices, UnitPrices};
use tally_config::money::{Nanos, NanosPerMillion};

use super::syntax::{check_date, check_model_glob, check_region};
use super::{CompileError, ObjectRef, Problems};
use crate::crd::model_pricing::{MAX_INPUT_TOKENS, MAX_OUTPUT_TOKENS};
use crate::crd::{ModelAlias, ModelPrice, ModelPricing, TokenPrices, Usd};

/// One valid `ModelPricing`, converted.
#[derive(Debug, Clone)]
pub struct CatalogPart {
    pub object: ObjectRef,
    pub name: String,
    pub priority: i32,
    /// Entries in the catalog's own order.
    pub entries: Vec<PriceEntry>,
    /// Aliases in the catalog's own order (indexes match `spec.aliases`).
    pub aliases: Vec<Alias>,
}

/// How specific an entry is; smaller sorts first (wins).
pub fn specificity(pattern: &str, regions: &[String]) -> (bool, Reverse<usize>, bool) {
    let is_glob = pattern.contains('*');
    let literal = pattern.chars().filter(|c| *c != '*').count();
    (is_glob, Reverse(literal), regions.is_empty())
}

/// Merges the valid catalogs; returns the catalog, the number of entries each
/// included `ModelPricing` contributed, and the errors of the ones left out.
pub(super) fn compile_catalogs(pricings: &[ModelPricing]) -> (Catalog, BTreeMap<String, usize>, Vec<CompileError>) {
    let mut errors = vec![];
    let mut parts = vec![];
    for mp in pricings {
        match compile_pricing(mp) {
            Ok(part) => parts.push(part),
            Err(e) => errors.extend(e),
        }
    }
    parts.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.name.cmp(&b.name)));

    let mut owners = AliasOwners::default();
    let mut accepted: Vec<CatalogPart> = vec![];
    for part in parts {
        let conflicts = owners.conflicts(&part);
        if !conflicts.is_empty() {
            errors.extend(conflicts);
            continue;
        }
        owners.claim(&part);
        accepted.push(part);
    }
    let (catalog, entries_per_catalog) = merge(accepted, owners);
    (catalog, entries_per_catalog, errors)
}

/// The alias ids claimed so far, in precedence order of the catalogs: id → (model, priority
/// of the catalog, the catalog). The higher-priority catalog wins an id; two catalogs of equal
/// priority that map one id to different models is an error on the later one.
#[derive(Default)]
struct AliasOwners(HashMap<String, (String, i32, ObjectRef)>);

impl AliasOwners {
    /// Why `part`'s aliases cannot join the ones claimed so far.
    fn conflicts(&self, part: &CatalogPart) -> Vec<CompileError> {
        let mut p = Problems::new(part.object.clone());
        for (i, alias) in part.aliases.iter().enumerate() {
            if let Some((model, priority, owner)) = self.0.get(&alias.id)
                && *priority == part.priority
                && *model != alias.model
            {
                p.push(
                    format!("spec.aliases[{i}].model"),
                    format!(
                        "alias {:?} is already mapped to {model:?} by {owner}, which has the same priority; \
                         give one catalog a higher priority or map the alias once",
                        alias.id
                    ),
                );
            }
            if let Some((_, _, owner)) = self.0.get(&alias.model) {
                p.push(
                    format!("spec.aliases[{i}].model"),
                    format!(
                        "{:?} is itself an alias (in {owner}); an alias must name a priced model",
                        alias.model
                    ),
                );
            }
            if let Some((_, (_, _, owner))) = self.0.iter().find(|(_, (model, _, _))| *model == alias.id) {
                p.push(
                    format!("spec.aliases[{i}].id"),
                    format!(
                        "{:?} is the model of an alias in {owner}; aliases are followed only once",
                        alias.id
                    ),
                );
            }
        }
        p.errors
    }

    /// Claims `part`'s alias ids not claimed before.
    fn claim(&mut self, part: &CatalogPart) {
        for alias in &part.aliases {
            self.0
                .entry(alias.id.clone())
                .or_insert_with(|| (alias.model.clone(), part.priority, part.object.clone()));
        }
    }
}

/// One catalog of the accepted parts' entries in precedence order and the claimed aliases,
/// and how many entries each part contributed.
fn merge(accepted: Vec<CatalogPart>, owners: AliasOwners) -> (Catalog, BTreeMap<String, usize>) {
    let mut ranked: Vec<(_, PriceEntry)> = vec![];
    let mut entries_per_catalog = BTreeMap::new();
    for part in accepted {
        entries_per_catalog.insert(part.name.clone(), part.entries.len());
        for (index, entry) in part.entries.into_iter().enumerate() {
            let key = (
                Reverse(part.priority),
                specificity(&entry.pattern, &entry.regions),
                part.name.clone(),
                index,
            );
            ranked.push((key, entry));
        }
    }
    ranked.sort_by(|a, b| a.0.cmp(&b.0));

    let mut aliases: Vec<Alias> = owners
        .0
        .into_iter()
        .map(|(id, (model, _, _))| Alias { id, model })
        .collect();
    aliases.sort_by(|a, b| a.id.cmp(&b.id));
    let catalog = Catalog {
        entries: ranked.into_iter().map(|(_, e)| e).collect(),
        aliases,
    };
    (catalog, entries_per_catalog)
}

/// Checks one `ModelPricing` on its own and converts it, or returns all its errors.
pub fn compile_pricing(mp: &ModelPricing) -> Result<CatalogPart, Vec<CompileError>> {
    let object = ObjectRef::model_pricing(mp);
    let mut p = Problems::new(object.clone());
    let name = mp.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        p.push("metadata.name", "must be set");
    }
    let spec = &mp.spec;
    if spec.source.trim().is_empty() {
        p.push("spec.source", "must say where the prices come from");
    }
    p.check("spec.effectiveFrom", check_date(&spec.effective_from));
    let source = format!("{name}: {} ({})", spec.source, spec.effective_from);

    let mut entries = Vec::with_capacity(spec.models.len());
    let mut seen: HashMap<(&str, Vec<String>), usize> = HashMap::new();
    for (i, m) in spec.models.iter().enumerate() {
        entries.extend(price_entry(i, m, &source, &mut seen, &mut p));
    }
    let aliases = own_aliases(&spec.aliases, &mut p);
    if !p.errors.is_empty() {
        return Err(p.errors);
    }
    Ok(CatalogPart {
        object,
        name,
        priority: spec.priority,
        entries,
        aliases,
    })
}

/// `spec.models[i]` checked (against the entries before it in `seen`) and converted when its
/// prices parse.
fn price_entry<'a>(
    i: usize,
    m: &'a ModelPrice,
    source: &str,
    seen: &mut HashMap<(&'a str, Vec<String>), usize>,
    p: &mut Problems,
) -> Option<PriceEntry> {
    let field = format!("spec.models[{i}]");
    p.check(format!("{field}.match"), check_model_glob(&m.pattern));
    for (j, region) in m.regions.iter().enumerate() {
        p.check(format!("{field}.regions[{j}]"), check_region(region));
    }
    let mut regions: Vec<String> = m.regions.clone();
    regions.sort();
    regions.dedup();
    if let Some(j) = seen.insert((m.pattern.as_str(), regions.clone()), i) {
        p.push(
            format!("{field}.match"),
            format!(
                "{:?} with the same regions is already priced by spec.models[{j}]; this entry would never be used",
                m.pattern
            ),
        );
    }
    let prices = token_prices(&field, &m.prices, p);
    if !(1..=MAX_OUTPUT_TOKENS).contains(&m.max_output_tokens) {
        p.push(
            format!("{field}.maxOutputTokens"),
            format!("{} is not from 1 to {MAX_OUTPUT_TOKENS}", m.max_output_tokens),
        );
    }
    if m.max_input_tokens.is_some_and(|t| !(1..=MAX_INPUT_TOKENS).contains(&t)) {
        p.push(
            format!("{field}.maxInputTokens"),
            format!("is not from 1 to {MAX_INPUT_TOKENS}"),
        );
    }
    let long_context = m.long_context.as_ref().map(|lc| {
        let at = format!("{field}.longContext");
        if lc.above_input_tokens == 0 {
            p.push(format!("{at}.aboveInputTokens"), "must be at least 1");
        }
        (lc.above_input_tokens, token_prices(&at, &lc.prices, p))
    });
    let mut tiers = Vec::with_capacity(m.service_tiers.len());
    for (j, t) in m.service_tiers.iter().enumerate() {
        let at = format!("{field}.serviceTiers[{j}]");
        if t.tier == "default" || t.tier == "standard" {
            p.push(format!("{at}.tier"), "the standard tier's prices are the entry's own");
        }
        tiers.push((t.tier.clone(), token_prices(&at, &t.prices, p)));
    }
    let units = unit_prices(&field, m, p);
    super::billing::check(&field, m.billing.as_ref(), p);
    Some(PriceEntry {
        pattern: m.pattern.clone(),
        regions,
        prices: prices?,
        max_output_tokens: m.max_output_tokens,
        max_input_tokens: m.max_input_tokens,
        long_context: match long_context {
            Some((above, prices)) => Some(LongContext {
                above_input_tokens: u64::from(above),
                prices: prices?,
            }),
            None => None,
        },
        tiers: tiers
            .into_iter()
            .map(|(tier, prices)| prices.map(|prices| TierPrices { tier, prices }))
            .collect::<Option<_>>()?,
        units: units?,
        source: source.to_string(),
    })
}

/// Token prices checked (each bad one names its field under `field`) and converted.
fn token_prices(field: &str, t: &TokenPrices, p: &mut Problems) -> Option<Prices> {
    let mut price = |name: &str, value: Option<&Usd>| -> Option<NanosPerMillion> {
        let value = value?;
        NanosPerMillion::parse_usd(value.as_str())
            .map_err(|e| p.push(format!("{field}.{name}"), e.to_string()))
            .ok()
    };
    let input = price("inputPerMillion", Some(&t.input_per_million));
    let output = price("outputPerMillion", Some(&t.output_per_million));
    let cache_read = price("cacheReadPerMillion", t.cache_read_per_million.as_ref());
    let cache_write_5m = price("cacheWrite5mPerMillion", t.cache_write5m_per_million.as_ref()).unwrap_or_default();
    let cache_write_1h = price("cacheWrite1hPerMillion", t.cache_write1h_per_million.as_ref());
    Some(Prices {
        input: input?,
        output: output?,
        cache_read: cache_read.unwrap_or_default(),
        cache_write_5m,
        // A catalog that knows no 1-hour price charges 1-hour writes like 5-minute ones.
        cache_write_1h: cache_write_1h.unwrap_or(cache_write_5m),
    })
}

/// The per-unit prices of an entry, checked and converted.
fn unit_prices(field: &str, m: &ModelPrice, p: &mut Problems) -> Option<UnitPrices> {
    let mut ok = true;
    let mut price = |name: &str, value: Option<&Usd>| -> Nanos {
        value.map_or(Nanos::ZERO, |v| {
            Nanos::parse_usd(v.as_str()).unwrap_or_else(|e| {
                p.push(format!("{field}.{name}"), e.to_string());
                ok = false;
                Nanos::ZERO
            })
        })
    };
    let units = UnitPrices {
        request: price("perRequest", m.per_request.as_ref()),
        image: price("perImage", m.per_image.as_ref()),
        second: price("perSecond", m.per_second.as_ref()),
        text_unit: price("perTextUnit", m.per_text_unit.as_ref()),
    };
    ok.then_some(units)
}

/// `spec.aliases` checked on their own (ids, models, no chains within the catalog) and converted.
fn own_aliases(spec: &[ModelAlias], p: &mut Problems) -> Vec<Alias> {
    let mut aliases = Vec::with_capacity(spec.len());
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, a) in spec.iter().enumerate() {
        let field = format!("spec.aliases[{i}]");
        if a.id.is_empty() || a.id.chars().any(char::is_whitespace) {
            p.push(
                format!("{field}.id"),
                format!("{:?} is not a model id (empty or with whitespace)", a.id),
            );
        }
        if let Some(j) = seen.insert(&a.id, i) {
            p.push(
                format!("{field}.id"),
                format!("duplicate alias id {:?} (also spec.aliases[{j}])", a.id),
            );
        }
        if a.model.is_empty() || a.model.contains('*') || a.model.chars().any(char::is_whitespace) {
            p.push(
                format!("{field}.model"),
                format!("{:?} is not a model id (empty, a glob or with whitespace)", a.model),
            );
        }
        aliases.push(Alias {
            id: a.id.clone(),
            model: a.model.clone(),
        });
    }
    for (i, a) in spec.iter().enumerate() {
        if let Some(j) = spec.iter().position(|b| b.id == a.model) {
            p.push(
                format!("spec.aliases[{i}].model"),
                format!(
                    "{:?} is itself an alias (spec.aliases[{j}]); an alias must name a priced model",
                    a.model
                ),
            );
        }
    }
    aliases
}

#[cfg(test)]
mod tests;
