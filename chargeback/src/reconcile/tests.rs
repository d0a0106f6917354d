//! A known ledger and a bill built from it with injected differences: each is found, in
//! tokens and dollars, and the split invoice adds up to the bill exactly.

use jiff::Timestamp;
use tally_config::billing::{Billing, BillingName, TokenClass};
use tally_config::compiled::{Catalog, PriceEntry, Prices, TierPrices};
use tally_config::money::{Nanos, NanosPerMillion};

use super::compare::{Cause, Tolerance};
use super::usage::{LedgerUsage, Namer};
use super::*;
use crate::cur::{Bill, BillCell, CellKey, Tally};
use crate::ledger::Row;

const SONNET: &str = "anthropic.claude-sonnet-4-6";
const HAIKU: &str = "anthropic.claude-haiku-4-5";

fn per_million(usd: &str) -> NanosPerMillion {
    NanosPerMillion::parse_usd(usd).unwrap()
}

fn prices(i: &str, o: &str, cr: &str, cw: &str) -> Prices {
    Prices {
        input: per_million(i),
        output: per_million(o),
        cache_read: per_million(cr),
        cache_write_5m: per_million(cw),
        cache_write_1h: per_million(cw),
    }
}

fn catalog() -> (Catalog, Billing) {
    let entry = |pattern: &str, p: Prices| PriceEntry {
        pattern: pattern.into(),
        prices: p,
        max_output_tokens: 8192,
        ..PriceEntry::default()
    };
    let mut sonnet = entry(SONNET, prices("3", "15", "0.3", "3.75"));
    sonnet.tiers = vec![TierPrices {
        tier: "priority".into(),
        prices: prices("6", "30", "0.6", "7.5"),
    }];
    let catalog = Catalog {
        entries: vec![sonnet, entry(HAIKU, prices("1", "5", "0.1", "1.25"))],
        aliases: vec![],
    };
    let name = |pattern: &str, utm: Option<&str>, mp: Option<&str>| BillingName {
        pattern: pattern.into(),
        regions: vec![],
        usage_type_model: utm.map(Into::into),
        marketplace_product: mp.map(Into::into),
    };
    let billing = Billing {
        names: vec![
            name(SONNET, Some("Claude4.6Sonnet"), None),
            name(HAIKU, None, Some("Claude Haiku 4.5 (Amazon Bedrock Edition)")),
        ],
    };
    (catalog, billing)
}

/// One ledger call.
struct Call {
    day: u8,
    team: &'static str,
    model: &'static str,
    region: &'static str,
    tokens: [u64; 4],
    outcome: &'static str,
}

fn call(day: u8, team: &'static str, model: &'static str, region: &'static str, tokens: [u64; 4]) -> Call {
    Call {
        day,
        team,
        model,
        region,
        tokens,
        outcome: "ok",
    }
}

fn time(day: u8) -> Timestamp {
    format!("2026-11-{day:02}T10:00:00Z").parse().unwrap()
}

fn ledger(calls: &[Call], catalog: &Catalog, billing: &Billing) -> LedgerUsage {
    let namer = Namer::new(catalog, billing);
    let mut usage = LedgerUsage::default();
    for c in calls {
        let row = Row {
            time: time(c.day),
            stream_id: "1-0",
            request_id: "r",
            charge_id: "c",
            team: c.team,
            tenant: Some("acme"),
            workflow: None,
            operation: "Converse",
            model_id: c.model,
            model: c.model,
            region: c.region,
            service_tier: None,
            input_tokens: c.tokens[0],
            output_tokens: c.tokens[1],
            cache_read_tokens: c.tokens[2],
            cache_write_5m_tokens: c.tokens[3] / 2,
            cache_write_1h_tokens: c.tokens[3] - c.tokens[3] / 2,
            units: Default::default(),
            status: 200,
            outcome: c.outcome,
            cost_nanos: 1000,
            unpriced: false,
            price_source: "test",
        };
        usage.add(&row, &namer);
    }
    usage
}

/// The bill AWS would send for `calls` at the catalog's prices (`price_factor` percent of them
/// from `drift_day` on), one line per cell.
fn bill_of(calls: &[Call], catalog: &Catalog, billing: &Billing, drift_from: u8, drift_percent: u64) -> Bill {
    let prices = price::PriceList::new(catalog, billing);
    let namer = Namer::new(catalog, billing);
    let mut bill = Bill::default();
    for c in calls {
        let model = namer.name(c.model, c.model, c.region);
        for (i, class) in TokenClass::ALL.iter().enumerate() {
            if c.tokens[i] == 0 {
                continue;
            }
            let key = CellKey {
                day: time(c.day).to_zoned(jiff::tz::TimeZone::UTC).date(),
                region: c.region.into(),
                model: model.clone(),
                class: *class,
                tier: String::new(),
            };
            let cell = bill.cells.entry(key).or_default();
            cell.tokens += c.tokens[i];
            cell.lines = 1;
        }
    }
    for (key, cell) in &mut bill.cells {
        let p = prices.price(&key.model, &key.region, &key.tier, key.class).unwrap();
        let factor = if key.day.day() >= drift_from as i8 {
            drift_percent
        } else {
            100
        };
        cell.cost = price::cost_of(cell.tokens, NanosPerMillion(p.0 * factor / 100));
        cell.net_cost = cell.cost;
    }
    bill
}

/// November reconciled against the test catalog.
fn run(bill: Bill, usage: &LedgerUsage, tolerance: Tolerance) -> Reconciliation {
    let (catalog, billing) = catalog();
    reconcile(
        "2026-11",
        bill,
        usage,
        CatalogRef {
            catalog: &catalog,
            billing: &billing,
        },
        tolerance,
    )
}

fn sum_billed(r: &Reconciliation) -> Nanos {
    r.shares.iter().fold(Nanos::ZERO, |a, s| a.saturating_add(s.billed))
}

fn the_month() -> Vec<Call> {
    let mut calls = vec![];
    for day in 1..=30 {
        calls.push(call(
            day,
            "search",
            SONNET,
            "us-east-1",
            [120_000, 30_000, 50_000, 4_000],
        ));
        calls.push(call(day, "support", SONNET, "us-east-1", [60_001, 9_999, 0, 0]));
        calls.push(call(day, "support", HAIKU, "us-west-2", [333_333, 77_777, 0, 0]));
    }
    calls
}

#[test]
fn a_bill_made_from_the_ledger_matches_and_splits_to_the_nano() {
    let (catalog, billing) = catalog();
    let calls = the_month();
    let usage = ledger(&calls, &catalog, &billing);
    let bill = bill_of(&calls, &catalog, &billing, 99, 100);
    let total = bill.usage_cost();
    let r = run(bill, &usage, Tolerance(5_000_000));
    assert!(
        r.findings.is_empty() && r.drifts.is_empty(),
        "{:?} {:?}",
        r.findings,
        r.drifts
    );
    assert_eq!(r.totals.bill_tokens, r.totals.matched_tokens);
    assert_eq!(r.totals.bill_cost, r.totals.ledger_cost);
    assert!(!r.exceeded);
    assert_eq!(sum_billed(&r), total);
    let unattributed = r.shares.last().unwrap();
    assert_eq!(
        (unattributed.team.as_str(), unattributed.billed),
        ("unattributed", Nanos::ZERO)
    );
}

/// The month's ledger, and a bill for it with injected differences: a cut stream billed in full
/// (day 7), traffic in eu-west-1 that bypassed the gateway (days 10..12) and next to gateway
/// traffic in us-east-1 (day 20), Haiku (the Marketplace path) at 110 % from day 16, a credit
/// and tax.
fn injected() -> (LedgerUsage, Bill) {
    let (catalog, billing) = catalog();
    let mut ledger_calls = the_month();
    ledger_calls.push(Call {
        outcome: "incomplete",
        ..call(7, "search", SONNET, "us-east-1", [5_000, 1_000, 0, 0])
    });
    let mut bill_calls = the_month();
    bill_calls.push(call(7, "search", SONNET, "us-east-1", [5_000, 4_000, 0, 0]));
    for day in 10..=12 {
        bill_calls.push(call(day, "?", SONNET, "eu-west-1", [1_000_000, 200_000, 0, 0]));
    }
    bill_calls.push(call(20, "?", SONNET, "us-east-1", [700_000, 100_000, 0, 0]));
    let usage = ledger(&ledger_calls, &catalog, &billing);
    let mut bill = bill_of(&bill_calls, &catalog, &billing, 16, 100);
    let haiku = bill_of(&bill_calls, &catalog, &billing, 16, 110);
    bill.cells
        .extend(haiku.cells.into_iter().filter(|(k, _)| k.region == "us-west-2"));
    let tally = |cost| Tally {
        lines: 1,
        cost: Nanos(cost),
    };
    bill.excluded.insert("Credit".into(), tally(-100_000_000_000));
    bill.excluded.insert("Tax".into(), tally(7_000_000_000));
    (usage, bill)
}

#[test]
fn injected_differences_are_each_found_with_their_cause() {
    let (usage, bill) = injected();
    let total = bill.usage_cost();
    let r = run(bill, &usage, Tolerance(5_000_000));
    let of = |cause: Cause, region: &str| {
        r.findings
            .iter()
            .find(|f| f.cause == cause && f.region == region)
            .cloned()
    };

    let cut = of(Cause::CutStream, "us-east-1").expect("cut stream found");
    assert_eq!((cut.tokens, cut.days, cut.first_day.day()), ([0, 3_000, 0, 0], 1, 7));
    assert_eq!(cut.dollars, Nanos(45_000_000)); // 3,000 output tokens at 15 USD/1M
    let region = of(Cause::RegionNotSeen, "eu-west-1").expect("unseen region found");
    assert_eq!((region.tokens, region.days), ([3_000_000, 600_000, 0, 0], 3));
    assert_eq!(region.dollars, Nanos(9_000_000_000 + 9_000_000_000));
    let bypass = of(Cause::Bypass, "us-east-1").expect("bypass found");
    assert_eq!((bypass.tokens, bypass.first_day.day()), ([700_000, 100_000, 0, 0], 20));
    assert_eq!(bypass.dollars, Nanos(2_100_000_000 + 1_500_000_000));

    let drift: Vec<_> = r
        .drifts
        .iter()
        .map(|d| (d.model.as_str(), d.class, d.from_day.day(), d.days))
        .collect();
    let haiku = "Claude Haiku 4.5 (Amazon Bedrock Edition)";
    assert_eq!(
        drift,
        [(haiku, TokenClass::Input, 16, 15), (haiku, TokenClass::Output, 16, 15)]
    );
    assert_eq!(r.drifts[0].catalog_price, per_million("1"));
    assert_eq!(r.drifts[0].billed_price, Some(per_million("1.1")));
    // 15 days of 333,333 input tokens at +0.1 USD/1M.
    assert_eq!(r.drifts[0].dollars, Nanos(15 * 33_333_300));

    assert_eq!(r.totals.unexplained, Nanos::ZERO, "{:?}", r.findings);
    assert!(!r.exceeded);
    assert_eq!(
        sum_billed(&r),
        total,
        "the split invoice adds up to the bill's usage cost"
    );
    let unattributed = r.shares.iter().find(|s| s.team == "unattributed").unwrap();
    assert_eq!(
        unattributed.billed,
        Nanos(3 * (3_000_000_000 + 3_000_000_000)),
        "eu-west-1 had no ledger user"
    );
}

#[test]
fn unexplained_differences_beyond_the_tolerance_fail() {
    let (catalog, billing) = catalog();
    let calls = the_month();
    let usage = ledger(&calls, &catalog, &billing);
    let mut bill = bill_of(&calls, &catalog, &billing, 99, 100);
    // The bill lacks some of the ledger's input on a billed day: nothing explains that.
    let key = bill
        .cells
        .keys()
        .find(|k| k.class == TokenClass::Input && k.region == "us-east-1")
        .unwrap()
        .clone();
    let cell: &mut BillCell = bill.cells.get_mut(&key).unwrap();
    cell.tokens -= 10_000;
    cell.cost = Nanos(cell.cost.0 - 30_000_000);
    let r = run(bill.clone(), &usage, Tolerance(5_000_000));
    assert_eq!(r.totals.unexplained, Nanos(30_000_000));
    let tiny = r.unexplained_ppb();
    assert!(tiny > 0 && tiny < 5_000_000 && !r.exceeded, "{tiny}");
    let strict = run(bill, &usage, Tolerance(tiny as u64 - 1));
    assert!(strict.exceeded);
    assert_eq!(strict.findings[0].cause, Cause::Unexplained);
}

#[test]
fn ledger_days_the_bill_has_not_reached_are_not_billed_yet() {
    let (catalog, billing) = catalog();
    let calls = the_month();
    let usage = ledger(&calls, &catalog, &billing);
    let early: Vec<Call> = the_month().into_iter().filter(|c| c.day <= 28).collect();
    let bill = bill_of(&early, &catalog, &billing, 99, 100);
    let r = run(bill, &usage, Tolerance(5_000_000));
    assert!(
        r.findings
            .iter()
            .all(|f| f.cause == Cause::NotBilledYet && f.first_day.day() == 29)
    );
    assert!(!r.findings.is_empty() && !r.exceeded);
}

#[test]
fn largest_remainder_adds_up_exactly() {
    use super::allocate::split;
    assert_eq!(split(10, &[1, 1, 1]), [4, 3, 3]);
    assert_eq!(split(-10, &[1, 1, 1]), [-4, -3, -3]);
    assert_eq!(split(100, &[0, 5, 0]), [0, 100, 0]);
    assert_eq!(split(7, &[0, 0]), [0, 0]);
    assert_eq!(split(2, &[1, 1, 1]), [1, 1, 0]);
    let weights = [333_333u64, 1, 77_777, 999_999_999, 5];
    for total in [0i64, 1, 999, 123_456_789_012, i64::MAX / 4] {
        let parts = split(total, &weights);
        assert_eq!(parts.iter().sum::<i64>(), total);
        assert!(parts.iter().zip(&weights).all(|(p, w)| *w > 0 || *p == 0));
    }
}

#[test]
fn tolerance_reads_percent_or_fraction() {
    assert_eq!(parse_tolerance("0.5%").unwrap(), Tolerance(5_000_000));
    assert_eq!(parse_tolerance("0.005").unwrap(), Tolerance(5_000_000));
    assert_eq!(parse_tolerance("0%").unwrap(), Tolerance(0));
    for bad in ["-1%", "abc", "200%", "1.5"] {
        assert!(parse_tolerance(bad).is_err(), "{bad}");
    }
    assert_eq!(render::percent(5_000_000), "0.50%");
}

#[test]
fn days_count_from_the_epoch() {
    let d: jiff::civil::Date = "2026-11-07".parse().unwrap();
    assert_eq!(usage_day(day_number(d)), d);
    assert_eq!(day_number("1970-01-02".parse().unwrap()), 1);
}

#[test]
fn cross_region_and_unnamed_models_get_their_billing_names() {
    let (mut catalog, billing) = catalog();
    catalog.entries.push(PriceEntry {
        pattern: format!("apac.{SONNET}"),
        prices: prices("3.3", "16.5", "0.33", "4.125"),
        ..PriceEntry::default()
    });
    catalog.entries.push(PriceEntry {
        pattern: "vendor.unnamed".into(),
        ..PriceEntry::default()
    });
    let namer = Namer::new(&catalog, &billing);
    assert_eq!(
        namer.name(&format!("apac.{SONNET}"), "x", "ap-southeast-1"),
        "Claude4.6Sonnet"
    );
    assert_eq!(namer.name(&format!("us.{SONNET}"), "x", "us-east-1"), "Claude4.6Sonnet");
    assert_eq!(namer.name("", "vendor.unnamed", "us-east-1"), "unmapped:vendor.unnamed");
    assert_eq!(
        namer.name(HAIKU, HAIKU, "us-east-1"),
        "Claude Haiku 4.5 (Amazon Bedrock Edition)"
    );
}
