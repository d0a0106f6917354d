//! A cost that chargeback can defend: exact (not a binary float), in a named
//! currency, stamped in UTC like the bill, and equal to tokens × the catalog
//! price of the model in its region.

use serde_json::Value;
use tally_config::money::Nanos;
use tally_config::pricing::{self, PriceBook, Usage};
use tally_config::tariff::{self, Units};

use crate::field::Field;
use crate::fix::Fix;
use crate::formats::Sample;
use crate::lookup;
use crate::observation::{Found, Observation};
use crate::report::Finding;

use super::{Context, clock, model, tokens};

pub fn check(sample: &Sample, ctx: &Context) -> (Vec<Finding>, Vec<String>) {
    let carrying: Vec<&Observation> = sample
        .observations
        .iter()
        .filter(|o| o.get(Field::CostUsd).is_some())
        .collect();
    let mut findings: Vec<Finding> = [float(sample, &carrying), currency(&carrying), local_time(sample)]
        .into_iter()
        .flatten()
        .collect();
    let mut notes = vec![];
    if sample.format.is_billing() {
        return (findings, notes);
    }
    match &ctx.book {
        Some(book) => {
            let (mismatch, note) = prices(sample, book, &carrying);
            findings.extend(mismatch);
            notes.extend(note);
        }
        None => notes.push("no catalog: costs were not compared with tokens × price".into()),
    }
    (findings, notes)
}

fn float(sample: &Sample, carrying: &[&Observation]) -> Option<Finding> {
    if sample.format.is_billing() {
        return None; // the bill's own amounts: compare with a tolerance, they are the reference
    }
    let o = carrying.iter().find(|o| {
        let f = o.get(Field::CostUsd).expect("carried");
        sample.profile.float_cost || matches!(&f.value, Value::Number(n) if n.is_f64())
    })?;
    let f = o.get(Field::CostUsd).expect("carried");
    Some(Finding {
        fix: Fix::DecimalCost,
        text: format!(
            "stored as a binary float (record {}: `{}` = {}): sums drift and never reconcile to the cent",
            o.record, f.key, f.value
        ),
    })
}

fn currency(carrying: &[&Observation]) -> Option<Finding> {
    let o = carrying.iter().find(|o| {
        let key = lookup::normalize(&o.get(Field::CostUsd).expect("carried").key);
        o.call.currency.is_none() && !key.contains("usd") && !key.contains("nanos")
    })?;
    Some(Finding {
        fix: Fix::CostCurrency,
        text: format!(
            "no currency: `{}` is a bare number and no field names its currency (record {})",
            o.get(Field::CostUsd).expect("carried").key,
            o.record
        ),
    })
}

fn local_time(sample: &Sample) -> Option<Finding> {
    let local: Vec<(usize, i32)> = sample
        .observations
        .iter()
        .filter_map(|o| Some((o.record, clock::parse(o.call.time.as_deref()?)?.offset_seconds)))
        .filter(|(_, offset)| *offset != 0)
        .collect();
    let (record, offset) = *local.first()?;
    Some(Finding {
        fix: Fix::UtcTimestamps,
        text: format!(
            "local-time day boundaries: {} of {} records are stamped in {} (e.g. record {record}); the bill's days end at UTC midnight",
            local.len(),
            sample.observations.len(),
            clock::offset_label(offset)
        ),
    })
}

/// The recorded cost in nano-USD and how far off rounding alone can put it
/// (`None`: a float, off by a relative error).
fn recorded(o: &Observation, f: &Found) -> Option<(i64, Option<i64>)> {
    if let Some(n) = o.call.cost_nanos {
        return Some((n, Some(0)));
    }
    let text = lookup::text(&f.value);
    if let Ok(n) = Nanos::parse_usd(text.trim()) {
        let digits = text.split_once('.').map_or(0, |(_, d)| d.len()) as u32;
        return Some((n.0, Some((10_i64.pow(9 - digits.min(9)) / 2).max(1))));
    }
    let usd = lookup::as_f64(&f.value)?;
    Some(((usd * 1e9).round() as i64, None))
}

fn usage_of(o: &Observation, sample: &Sample) -> Option<Usage> {
    let write = o.count(Field::CacheWriteTokens).unwrap_or(0);
    let write_1h = o.call.cache_write_1h.unwrap_or(0).min(write);
    Some(Usage {
        input: tokens::exclusive_input(o, sample.profile.convention)?,
        output: o.count(Field::OutputTokens)?,
        cache_read: o.count(Field::CacheReadTokens).unwrap_or(0),
        cache_write_5m: write - write_1h,
        cache_write_1h: write_1h,
    })
}

/// Records whose cost differs from tokens × catalog price, and a note on what could not be checked.
fn prices(sample: &Sample, book: &PriceBook, carrying: &[&Observation]) -> (Option<Finding>, Option<String>) {
    let (mut checked, mut unpriced) = (0, 0);
    let mut wrong: Vec<String> = vec![];
    for o in carrying.iter().filter(|o| o.call.succeeded != Some(false)) {
        let (Some(model_id), Some(usage), Some((cost, tolerance))) = (
            o.call.resolved_model.clone().or_else(|| o.text(Field::ModelId)),
            usage_of(o, sample),
            recorded(o, o.get(Field::CostUsd).expect("carried")),
        ) else {
            continue;
        };
        let region = o
            .text(Field::Region)
            .or_else(|| o.call.endpoint_region.clone())
            .unwrap_or_default();
        let model_id = book.alias(model::model_key(&model_id)).to_string();
        let Some(priced) = book.lookup(&model_id, &region) else {
            unpriced += 1;
            continue;
        };
        // Images, seconds of video and guardrail units are not in the tokens: not checkable here.
        if !priced.entry.units.is_zero() {
            continue;
        }
        checked += 1;
        // Standard-tier prices (a record of the priority tier shows as over the catalog price),
        // long-context prices when the billed input passes the entry's threshold.
        let expected = tariff::cost(priced.entry, None, &usage, &Units::default()).0;
        let tolerance = tolerance.unwrap_or((expected / 10_000).max(2));
        if (cost - expected).abs() > tolerance {
            wrong.push(mismatch(o, cost, expected, &usage, priced.entry, &model_id));
        }
    }
    let note = (unpriced > 0)
        .then(|| format!("{unpriced} record(s) name a model the catalog does not price: their cost was not checked"));
    let finding = wrong.first().map(|example| Finding {
        fix: Fix::CatalogPrices,
        text: format!(
            "does not match tokens × catalog price on {} of {checked} priced records: e.g. {example}",
            wrong.len()
        ),
    });
    (finding, note)
}

fn mismatch(
    o: &Observation,
    cost: i64,
    expected: i64,
    usage: &Usage,
    entry: &tally_config::compiled::PriceEntry,
    model: &str,
) -> String {
    let p = &entry.prices;
    let as_input = Usage {
        input: usage
            .input
            .saturating_add(usage.cache_read)
            .saturating_add(usage.cache_write()),
        cache_read: 0,
        cache_write_5m: 0,
        cache_write_1h: 0,
        ..*usage
    };
    let cause = if usage.cache_read.saturating_add(usage.cache_write()) > 0
        && (pricing::cost(&as_input, p).0 - cost).abs() <= 2
    {
        " — the cache tokens were priced as plain input"
    } else if cost < expected {
        " — under the catalog price (a stale price, a base-model price for a geo profile, or a missing token class)"
    } else {
        " — over the catalog price"
    };
    format!(
        "record {}: recorded ${} for {model}, catalog ${} ({}){cause}",
        o.record,
        Nanos(cost),
        Nanos(expected),
        entry.source.split(':').next().unwrap_or(&entry.source)
    )
}
