//! Unit tests of the FOCUS rows: the exact split of a charge, the aggregation, the product
//! rules (PricingQuantity × ListUnitPrice = ListCost) and both files.

use std::collections::HashMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use tally_config::compiled::{Catalog, LongContext, PriceEntry, Prices, UnitPrices};
use tally_config::money::{Nanos, NanosPerMillion};
use tally_config::pricing::{PriceBook, Usage};
use tally_config::tariff::{self, Units};

use super::columns::{self, Cell, SCALE};
use super::columns::{datetime, decimal};
use super::lines::{self, Class};
use super::output;
use super::{Builder, Context, FocusVersion, Grain};
use crate::ledger::Row;

fn usd(s: &str) -> NanosPerMillion {
    NanosPerMillion::parse_usd(s).unwrap()
}

fn sonnet() -> PriceEntry {
    PriceEntry {
        pattern: "anthropic.claude-sonnet-4-5*".into(),
        prices: Prices {
            input: usd("3"),
            output: usd("15"),
            cache_read: usd("0.3"),
            cache_write_5m: usd("3.75"),
            cache_write_1h: usd("6"),
        },
        long_context: Some(LongContext {
            above_input_tokens: 200_000,
            prices: Prices {
                input: usd("6"),
                output: usd("22.5"),
                ..Prices::default()
            },
        }),
        max_output_tokens: 8192,
        source: "test".into(),
        ..PriceEntry::default()
    }
}

fn canvas() -> PriceEntry {
    PriceEntry {
        pattern: "amazon.nova-canvas*".into(),
        units: UnitPrices {
            image: Nanos(40_000_000),
            ..UnitPrices::default()
        },
        source: "test".into(),
        ..PriceEntry::default()
    }
}

fn book() -> PriceBook {
    PriceBook::new(&Catalog {
        entries: vec![sonnet(), canvas()],
        aliases: vec![],
    })
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A Sonnet call priced by the catalog, as the ext_proc would have charged it.
fn call<'a>(time: &str, team: &'a str, usage: Usage) -> Row<'a> {
    let cost = tariff::cost(&sonnet(), None, &usage, &Units::default());
    Row {
        time: at(time),
        stream_id: "1-0",
        request_id: "req",
        charge_id: "chg",
        team,
        tenant: Some("acme"),
        workflow: Some("rag"),
        operation: "Converse",
        model_id: "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        model: "anthropic.claude-sonnet-4-5-20250929-v1:0",
        region: "us-east-1",
        service_tier: None,
        input_tokens: usage.input,
        output_tokens: usage.output,
        cache_read_tokens: usage.cache_read,
        cache_write_5m_tokens: usage.cache_write_5m,
        cache_write_1h_tokens: usage.cache_write_1h,
        units: Units::default(),
        status: 200,
        outcome: "ok",
        cost_nanos: cost.0,
        unpriced: false,
        price_source: "test",
    }
}

fn tokens(r: &Row<'_>) -> u64 {
    r.input_tokens + r.output_tokens + r.cache_read_tokens + r.cache_write_5m_tokens + r.cache_write_1h_tokens
}

fn usage(input: u64, output: u64, cache_read: u64, w5: u64, w1: u64) -> Usage {
    Usage {
        input,
        output,
        cache_read,
        cache_write_5m: w5,
        cache_write_1h: w1,
    }
}

#[test]
fn a_charge_splits_into_its_classes_exactly() {
    let c = call("2026-11-03T10:00:00Z", "search", usage(1234, 567, 89, 10, 7));
    let mut out = Vec::new();
    lines::split(&c, Some(&sonnet()), &mut out);
    let classes: Vec<Class> = out.iter().map(|l| l.class).collect();
    assert_eq!(
        classes,
        [
            Class::Input,
            Class::Output,
            Class::CacheRead,
            Class::CacheWrite5m,
            Class::CacheWrite1h
        ]
    );
    assert_eq!(out.iter().map(|l| l.billed_nanos).sum::<i64>(), c.cost_nanos);
    // 1234 input tokens at 3 USD/1M: 3.702 mUSD exactly, at 10^-15.
    assert_eq!(out[0].list, 1234 * 3_000_000_000);
    assert_eq!(out[0].billed_nanos, 3_702_000);
    // Each part is its list cost rounded to the nano-USD (here no class needs rounding).
    for l in &out {
        assert!(
            (i128::from(l.billed_nanos) * 1_000_000 - l.list).abs() < 1_000_000,
            "{l:?}"
        );
    }
}

#[test]
fn a_charge_the_catalog_no_longer_explains_still_adds_up() {
    let mut c = call("2026-11-03T10:00:00Z", "search", usage(1, 1, 1, 0, 0));
    c.cost_nanos = 1_000_000_007; // a price that changed since: the parts still sum exactly
    let mut out = Vec::new();
    lines::split(&c, Some(&sonnet()), &mut out);
    assert_eq!(out.iter().map(|l| l.billed_nanos).sum::<i64>(), 1_000_000_007);
    assert!(
        out[1].billed_nanos > out[0].billed_nanos,
        "weighted by list price: {out:?}"
    );
}

#[test]
fn a_refused_call_keeps_one_empty_input_line() {
    let mut c = call("2026-11-03T10:00:00Z", "search", Usage::default());
    c.outcome = "blocked";
    let mut out = Vec::new();
    lines::split(&c, Some(&sonnet()), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].class, out[0].quantity, out[0].billed_nanos),
        (Class::Input, 0, 0)
    );
    assert_eq!(out[0].unit_price, 3 * SCALE, "the list price is still named");
}

#[test]
fn long_context_and_units_are_priced_as_the_tariff_does() {
    let c = call("2026-11-03T10:00:00Z", "search", usage(250_000, 1000, 0, 0, 0));
    let mut out = Vec::new();
    lines::split(&c, Some(&sonnet()), &mut out);
    assert!(out.iter().all(|l| l.long_context));
    assert_eq!(out[0].unit_price, 6 * SCALE);
    let image = Row {
        model_id: "amazon.nova-canvas-v1:0",
        model: "amazon.nova-canvas-v1:0",
        units: Units {
            images: 3,
            ..Units::default()
        },
        cost_nanos: 120_000_000,
        ..call("2026-11-03T10:00:00Z", "search", Usage::default())
    };
    lines::split(&image, Some(&canvas()), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].class, out[0].quantity, out[0].billed_nanos),
        (Class::Images, 3, 120_000_000)
    );
    assert_eq!(out[0].list, 120_000_000 * 1_000_000);
}

fn dataset(calls: &[Row<'_>], tz: TimeZone, grain: Grain) -> super::Dataset {
    let book = book();
    let centers = HashMap::from([("search".to_string(), "CC-42".to_string())]);
    let ctx = Context {
        catalog: &book,
        cost_centers: &centers,
        tz,
        grain,
        billing_account: "123456789012".into(),
    };
    let mut b = Builder::new(&ctx);
    calls.iter().for_each(|c| b.add(c));
    b.finish()
}

fn cell(set: &super::Dataset, row: usize, name: &str) -> String {
    let col = columns::COLUMNS.iter().find(|c| c.name == name).unwrap();
    match (col.value)(&set.rows[row], set) {
        Cell::Null => String::new(),
        Cell::Str(s) => s.into_owned(),
        Cell::Dec(v) => decimal(v, 15),
        Cell::Time(t) => datetime(t),
        Cell::Int(v) => v.to_string(),
    }
}

fn sample() -> Vec<Row<'static>> {
    let mut refused = call("2026-11-03T12:00:00Z", "search", Usage::default());
    refused.outcome = "blocked";
    vec![
        call("2026-11-03T10:00:00Z", "search", usage(1001, 333, 7, 0, 0)),
        call("2026-11-03T11:00:00Z", "search", usage(999, 1, 0, 5, 0)),
        refused,
        call("2026-11-04T00:30:00Z", "search", usage(10, 10, 0, 0, 0)),
        call("2026-11-03T10:00:00Z", "support", usage(3, 3, 3, 3, 3)),
    ]
}

#[test]
fn rows_group_by_day_and_class_and_add_up_to_the_ledger() {
    let calls = sample();
    let set = dataset(&calls, TimeZone::UTC, Grain::Day);
    let billed: i128 = set.rows.iter().map(|r| r.billed_nanos).sum();
    assert_eq!(billed, calls.iter().map(|c| i128::from(c.cost_nanos)).sum::<i128>());
    let quantity: u128 = set.rows.iter().map(|r| r.quantity).sum();
    let ledger: u64 = calls.iter().map(tokens).sum();
    assert_eq!(quantity, u128::from(ledger));
    let first = &set.rows[0];
    assert_eq!(
        (
            first.team.as_str(),
            first.class,
            first.quantity,
            first.calls,
            first.refused_calls
        ),
        ("search", Class::Input, 2000, 3, 1)
    );
    assert_eq!(cell(&set, 0, "ChargePeriodStart"), "2026-11-03T00:00:00Z");
    assert_eq!(cell(&set, 0, "ChargePeriodEnd"), "2026-11-04T00:00:00Z");
    assert_eq!(cell(&set, 0, "BillingPeriodStart"), "2026-11-01T00:00:00Z");
    assert_eq!(cell(&set, 0, "BillingPeriodEnd"), "2026-12-01T00:00:00Z");
    assert_eq!(cell(&set, 0, "PricingQuantity"), "0.002");
    assert_eq!(cell(&set, 0, "ListUnitPrice"), "3.0");
    assert_eq!(cell(&set, 0, "ListCost"), "0.006");
    assert_eq!(
        cell(&set, 0, "SkuId"),
        "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0/input-tokens"
    );
    assert_eq!(
        cell(&set, 0, "SkuPriceId"),
        "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0/input-tokens/standard/3.0"
    );
    assert_eq!(cell(&set, 0, "PublisherName"), "Anthropic");
    assert_eq!(cell(&set, 0, "RegionName"), "US East (N. Virginia)");
    let tags: serde_json::Value = serde_json::from_str(&cell(&set, 0, "Tags")).unwrap();
    assert_eq!(
        tags,
        serde_json::json!({"tally:team": "search", "tally:tenant": "acme", "tally:workflow": "rag", "tally:cost-center": "CC-42"})
    );
    assert_eq!(
        set.rows.iter().filter(|r| r.team == "support").count(),
        5,
        "one row per token class used"
    );
}

#[test]
fn pricing_quantity_times_list_unit_price_is_list_cost_exactly() {
    let set = dataset(&sample(), TimeZone::UTC, Grain::Day);
    for (i, r) in set.rows.iter().enumerate() {
        let Cell::Dec(q) = (columns::COLUMNS
            .iter()
            .find(|c| c.name == "PricingQuantity")
            .unwrap()
            .value)(r, &set)
        else {
            panic!("PricingQuantity of row {i}")
        };
        assert_eq!(q * r.unit_price / SCALE, r.list, "row {i}");
        assert_eq!((q * r.unit_price) % SCALE, 0, "row {i}: the product is exact at 10^-15");
        assert_eq!(cell(&set, i, "ContractedCost"), cell(&set, i, "ListCost"));
        assert_eq!(cell(&set, i, "BilledCost"), cell(&set, i, "EffectiveCost"));
    }
}

#[test]
fn days_follow_the_zone_and_hours_the_clock() {
    let berlin = TimeZone::get("Europe/Berlin").unwrap();
    let set = dataset(&sample(), berlin.clone(), Grain::Day);
    // 2026-11-04T00:30Z is 01:30 in Berlin on the 4th; 2026-11-03T10:00Z is the 3rd, from 23:00Z.
    assert_eq!(cell(&set, 0, "ChargePeriodStart"), "2026-11-02T23:00:00Z");
    assert_eq!(cell(&set, 0, "BillingPeriodStart"), "2026-10-31T23:00:00Z");
    let hours = dataset(&sample(), TimeZone::UTC, Grain::Hour);
    assert_eq!(cell(&hours, 0, "ChargePeriodStart"), "2026-11-03T10:00:00Z");
    assert_eq!(cell(&hours, 0, "ChargePeriodEnd"), "2026-11-03T11:00:00Z");
    let kolkata = TimeZone::get("Asia/Kolkata").unwrap();
    let (start, end) = super::dataset::period_of(at("2026-11-03T10:00:00Z"), &kolkata, Grain::Hour);
    assert_eq!(
        (datetime(start), datetime(end)),
        ("2026-11-03T09:30:00Z".into(), "2026-11-03T10:30:00Z".into())
    );
}

#[test]
fn an_unpriced_model_is_named_and_charged_zero() {
    let c = Row {
        model_id: "acme.mystery-v1",
        model: "",
        unpriced: true,
        cost_nanos: 0,
        ..call("2026-11-03T10:00:00Z", "search", usage(5, 5, 0, 0, 0))
    };
    let set = dataset(&[c], TimeZone::UTC, Grain::Day);
    assert_eq!(set.rows.len(), 2);
    assert_eq!(
        cell(&set, 0, "SkuPriceId"),
        "bedrock/acme.mystery-v1/input-tokens/standard/unpriced"
    );
    assert_eq!(cell(&set, 0, "ListUnitPrice"), "0.0");
    assert_eq!(cell(&set, 0, "x_UnpricedCalls"), "1");
    assert_eq!(cell(&set, 0, "PublisherName"), "Amazon Web Services");
}

#[test]
fn decimals_are_exact_and_always_have_a_fraction() {
    assert_eq!(decimal(0, 15), "0.0");
    assert_eq!(decimal(3 * SCALE, 15), "3.0");
    assert_eq!(decimal(1, 15), "0.000000000000001");
    assert_eq!(decimal(-15 * SCALE / 10, 15), "-1.5");
    assert_eq!(decimal(1_234_567_890_123_456_789, 15), "1234.567890123456789");
}

#[test]
fn each_version_has_its_columns_in_the_spec_order() {
    let v10: Vec<&str> = columns::of(FocusVersion::V1_0)
        .filter(|c| !c.name.starts_with("x_"))
        .map(|c| c.name)
        .collect();
    let v12: Vec<&str> = columns::of(FocusVersion::V1_2)
        .filter(|c| !c.name.starts_with("x_"))
        .map(|c| c.name)
        .collect();
    assert_eq!((v10.len(), v12.len()), (43, 57));
    assert!(!v10.contains(&"ServiceSubcategory") && v12.contains(&"ServiceSubcategory"));
    let set = dataset(&sample(), TimeZone::UTC, Grain::Day);
    let csv = String::from_utf8(output::csv_bytes(&set, FocusVersion::V1_0).unwrap()).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(
        header.starts_with("AvailabilityZone,BilledCost,BillingAccountId,"),
        "{header}"
    );
    assert!(
        header.ends_with(",x_Calls,x_RefusedCalls,x_UnpricedCalls,x_CostNanos"),
        "{header}"
    );
    assert_eq!(csv.lines().count(), set.rows.len() + 1);
}

#[test]
fn the_parquet_file_reads_back_with_its_version_and_exact_sums() {
    use arrow_array::{Array, Decimal128Array};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let set = dataset(&sample(), TimeZone::UTC, Grain::Day);
    let bytes = output::parquet_bytes(&set, FocusVersion::V1_2).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap();
    let meta = reader.metadata().file_metadata().key_value_metadata().cloned().unwrap();
    assert!(
        meta.iter()
            .any(|kv| kv.key == output::VERSION_KEY && kv.value.as_deref() == Some("1.2"))
    );
    let mut billed = 0i128;
    let mut rows = 0;
    for batch in reader.build().unwrap() {
        let batch = batch.unwrap();
        rows += batch.num_rows();
        let col = batch
            .column_by_name("BilledCost")
            .unwrap()
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .unwrap();
        billed += (0..col.len()).map(|i| col.value(i)).sum::<i128>();
    }
    assert_eq!(rows, set.rows.len());
    assert_eq!(
        billed / 1_000_000,
        set.rows.iter().map(|r| r.billed_nanos).sum::<i128>()
    );
}
