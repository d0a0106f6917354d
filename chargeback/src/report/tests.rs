//! The report's arithmetic on hand-made rows and a three-model catalog.

use jiff::Timestamp;
use tally_config::compiled::{BudgetConfig, Catalog, CompiledConfig, Enforcement, PriceEntry, Prices, TeamConfig};
use tally_config::money::{Nanos, NanosPerMillion};
use tally_config::period::Period as BudgetPeriod;
use tally_config::tariff::Units;

use super::aggregate::Aggregator;
use super::routing::{Routing, Tier};
use super::statement::{self, Options};
use super::*;
use crate::ledger::{Row, ScanStats};
use crate::period::Period;

const USD: i64 = 1_000_000_000;

fn entry(model: &str, input_usd: u64, output_usd: u64) -> PriceEntry {
    PriceEntry {
        pattern: model.into(),
        prices: Prices {
            input: NanosPerMillion(input_usd * USD as u64),
            output: NanosPerMillion(output_usd * USD as u64),
            ..Prices::default()
        },
        max_output_tokens: 4096,
        source: "test".into(),
        ..PriceEntry::default()
    }
}

fn team(name: &str, cost_center: Option<&str>, budget_usd: Option<i64>, allowed: &[&str]) -> TeamConfig {
    TeamConfig {
        team: name.into(),
        source: format!("default/{name}"),
        cost_center: cost_center.map(String::from),
        tenants: vec![],
        budget: budget_usd.map(|usd| BudgetConfig {
            limit: Nanos(usd * USD),
            period: BudgetPeriod::Monthly,
            timezone: "UTC".into(),
            enforcement: Enforcement::Block,
            alert_thresholds: vec![],
        }),
        workflows: vec![],
        allowed_models: allowed.iter().map(|s| s.to_string()).collect(),
        principals: vec![],
    }
}

fn config() -> CompiledConfig {
    CompiledConfig {
        version: 1,
        generation: String::new(),
        teams: vec![
            team("search", Some("cc-eng"), Some(5), &["m.opus", "m.haiku"]),
            team("ads", None, None, &[]),
        ],
        catalog: Catalog {
            entries: vec![
                entry("m.opus", 15, 75),
                entry("m.sonnet", 3, 15),
                entry("m.haiku", 1, 5),
                entry("*", 0, 0),
            ],
            aliases: vec![],
        },
    }
}

/// A priced call: `tokens` input and `tokens` output tokens on `model`, costing `cost` nano-USD.
fn row<'a>(team: &'a str, model: &'a str, workflow: Option<&'a str>, time: &str, tokens: u64, cost: i64) -> Row<'a> {
    Row {
        time: time.parse().unwrap(),
        stream_id: "1-0",
        request_id: "r",
        charge_id: "r/1",
        team,
        tenant: None,
        workflow,
        operation: "Converse",
        model_id: model,
        model,
        region: "us-east-1",
        service_tier: None,
        input_tokens: tokens,
        output_tokens: tokens,
        cache_read_tokens: 0,
        cache_write_5m_tokens: 0,
        cache_write_1h_tokens: 0,
        units: Units::default(),
        status: 200,
        outcome: if cost > 0 { "ok" } else { "blocked" },
        cost_nanos: cost,
        unpriced: false,
        price_source: "test",
    }
}

fn statement(rows: &[Row<'_>], by: &[Dim], now: &str) -> Report {
    let period = Period::parse("2026-11", "UTC").unwrap();
    let config = config();
    let mut agg = Aggregator::new(&period, Routing::new(&config));
    for r in rows {
        agg.add(r);
    }
    let now: Timestamp = now.parse().unwrap();
    let scanned = ScanStats {
        files: 1,
        rows: rows.len() as u64,
        bytes: 0,
    };
    statement::build(
        &agg,
        &Options {
            period: &period,
            by,
            now,
        },
        scanned,
    )
}

/// 1000 in + 1000 out on opus: 0.015 + 0.075 USD; on haiku: 0.001 + 0.005.
const OPUS_1K: i64 = 90_000_000;
const HAIKU_1K: i64 = 6_000_000;

fn calls() -> Vec<Row<'static>> {
    vec![
        row("search", "m.opus", Some("rank"), "2026-11-02T10:00:00Z", 1000, OPUS_1K),
        row(
            "search",
            "m.opus",
            Some("summarize"),
            "2026-11-03T10:00:00Z",
            2000,
            2 * OPUS_1K,
        ),
        row(
            "search",
            "m.haiku",
            Some("rank"),
            "2026-11-03T11:00:00Z",
            1000,
            HAIKU_1K,
        ),
        row("search", "m.opus", Some("rank"), "2026-11-03T12:00:00Z", 1000, 0),
        row("ads", "m.sonnet", None, "2026-11-04T10:00:00Z", 1000, 18_000_000),
        row("unknown", "m.sonnet", None, "2026-11-04T11:00:00Z", 1000, 18_000_000),
    ]
}

#[test]
fn totals_are_the_exact_sums_and_shares_name_the_unattributed() {
    let r = statement(&calls(), &[Dim::Team], "2026-12-05T00:00:00Z");
    let cost: i64 = calls().iter().map(|c| c.cost_nanos).sum();
    assert_eq!(r.total.cost, Money(i128::from(cost)));
    assert_eq!(r.total.cost.to_string(), "0.312");
    assert_eq!((r.total.calls, r.total.refused), (6, 1));
    assert_eq!(r.total.tokens.input, 7000);
    let keys: Vec<&str> = r.groups.iter().map(|l| l.key[0].as_str()).collect();
    assert_eq!(keys, ["search", "ads", "unknown"], "by cost, descending");
    assert_eq!(r.groups[0].cost.to_string(), "0.276");
    // 0.276 / 0.312 = 88.46…%, floored to a basis point.
    assert_eq!(r.groups[0].share, Share(8846));
    assert_eq!(
        (r.unattributed.calls, r.unattributed.cost.to_string()),
        (1, "0.018".into())
    );
    assert_eq!(r.unattributed.share.to_string(), "5.76%");
    let summed: u32 = r.groups.iter().map(|l| l.share.0).sum();
    assert!(
        summed <= 10_000 && summed >= 10_000 - r.groups.len() as u32,
        "floored shares: {summed}"
    );
}

#[test]
fn cost_centers_come_from_the_team_budgets_and_teams_without_one_are_none() {
    let r = statement(&calls(), &[Dim::CostCenter, Dim::Workflow], "2026-12-05T00:00:00Z");
    let find = |cc: &str, wf: &str| r.groups.iter().find(|l| l.key == [cc, wf]).map(|l| l.cost.to_string());
    assert_eq!(find("cc-eng", "rank").as_deref(), Some("0.096"));
    assert_eq!(find("cc-eng", "summarize").as_deref(), Some("0.18"));
    assert_eq!(
        find("(none)", "(none)").as_deref(),
        Some("0.036"),
        "ads and unknown have neither"
    );
    assert_eq!(r.by, ["cost_center", "workflow"]);
}

#[test]
fn model_mix_and_savings_if_routed_price_the_same_calls_on_the_cheapest_allowed_model() {
    let r = statement(&calls(), &[Dim::Team], "2026-12-05T00:00:00Z");
    let search = r.teams.iter().find(|t| t.team == "search").unwrap();
    let premium = search.mix.iter().find(|m| m.tier == Tier::Premium).unwrap();
    assert_eq!((premium.calls, premium.calls_share.to_string()), (3, "75.00%".into()));
    assert_eq!(premium.cost.to_string(), "0.27");
    // 0.27 / 0.276 = 97.82…%
    assert_eq!(premium.cost_share, Share(9782));
    assert_eq!(search.dearest_tier, Some(Tier::Premium));
    let top: Vec<(&str, String)> = search
        .top_workflows
        .iter()
        .map(|w| (w.workflow.as_str(), w.cost.to_string()))
        .collect();
    assert_eq!(top, [("summarize", "0.18".into()), ("rank", "0.09".into())]);
    // Allowed: opus and haiku. The opus calls (1k, 2k tokens) on haiku: 0.006 + 0.012; the
    // haiku call stays 0.006; the refused call costs nothing either way.
    assert_eq!(search.cheapest_model.as_deref(), Some("m.haiku"));
    assert_eq!(search.routed.to_string(), "0.024");
    assert_eq!(search.savings.to_string(), "0.252");
    let ads = r.teams.iter().find(|t| t.team == "ads").unwrap();
    assert_eq!(
        ads.cheapest_model.as_deref(),
        Some("m.haiku"),
        "no allowlist: the whole catalog, text models only"
    );
    assert_eq!(ads.savings.to_string(), "0.012");
    let unknown = r.teams.iter().find(|t| t.team == "unknown").unwrap();
    assert_eq!((unknown.cheapest_model.as_deref(), unknown.savings), (None, Money(0)));
}

#[test]
fn tiers_are_output_price_bands() {
    let t = |usd: u64| Tier::of(NanosPerMillion(usd * USD as u64));
    assert_eq!(
        [t(75), t(20), t(15), t(6), t(5), t(0)],
        [
            Tier::Premium,
            Tier::Premium,
            Tier::Standard,
            Tier::Standard,
            Tier::Economy,
            Tier::Economy
        ]
    );
    let config = config();
    let routing = Routing::new(&config);
    assert_eq!(routing.tier("m.opus", "us-east-1"), Tier::Premium);
    assert_eq!(
        routing.tier("not.in.catalog", "us-east-1"),
        Tier::Economy,
        "the catch-all prices it at zero"
    );
}

#[test]
fn the_burn_rate_projects_the_period_and_dates_the_budget() {
    // Ten days of November gone: 0.276 spent by search → 0.828 at month end, 5 USD budget never reached.
    let r = statement(&calls(), &[Dim::Team], "2026-11-11T00:00:00Z");
    let search = r.teams.iter().find(|t| t.team == "search").unwrap();
    assert_eq!(search.projected.to_string(), "0.82");
    assert_eq!(search.budget.map(|b| b.to_string()).as_deref(), Some("5.00"));
    assert_eq!(search.exhausts_at, None);
    assert_eq!(search.daily.len(), 30);
    assert_eq!(search.daily[1].to_string(), "0.09");
    assert_eq!(search.daily[2].to_string(), "0.186");
    // 3 USD by the 11th: 5 USD is reached after 16⅔ days, on the 17th.
    let heavy = vec![row("search", "m.opus", None, "2026-11-05T00:00:00Z", 1000, 3 * USD)];
    let r = statement(&heavy, &[Dim::Team], "2026-11-11T00:00:00Z");
    assert_eq!(r.teams[0].projected.to_string(), "9.00");
    assert_eq!(r.teams[0].exhausts_at.as_deref(), Some("2026-11-17"));
    // Once the month is over the forecast is what was spent.
    let r = statement(&heavy, &[Dim::Team], "2027-01-01T00:00:00Z");
    assert_eq!(
        (r.teams[0].projected.to_string(), r.teams[0].exhausts_at.clone()),
        ("3.00".into(), None)
    );
}

#[test]
fn money_and_shares_render_exactly() {
    assert_eq!(Money(1).to_string(), "0.000000001");
    assert_eq!(Money(12_500_000_000).to_string(), "12.50");
    assert_eq!(Money(-1_500_000_000).to_string(), "-1.50");
    assert_eq!(Money(i128::from(i64::MAX) + 1).to_string(), "9223372036.854775808");
    assert_eq!(serde_json::to_string(&Money(1_000_000)).unwrap(), "\"0.001\"");
    assert_eq!(Share::of(1, 3).to_string(), "33.33%");
    assert_eq!(Share::of(5, 0), Share(0));
    assert_eq!(serde_json::to_string(&Share(5)).unwrap(), "\"0.05\"");
}

#[test]
fn the_formats_carry_the_same_figures() {
    let r = statement(&calls(), &[Dim::Team, Dim::Model], "2026-12-05T00:00:00Z");
    let table = text::table(&r);
    assert!(
        table.contains("TOTAL") && table.contains("0.312") && table.contains("5.76%"),
        "{table}"
    );
    let csv = text::csv(&r);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "team,model,calls,refused,input_tokens,output_tokens,cache_read_tokens,cache_write_5m_tokens,cache_write_1h_tokens,cost_usd,share"
        )
    );
    assert_eq!(lines.next(), Some("search,m.opus,3,1,4000,4000,0,0,0,0.27,86.53%"));
    let json: serde_json::Value = serde_json::from_str(&text::json(&r)).unwrap();
    assert_eq!(json["total"]["cost_usd"], "0.312");
    assert_eq!(json["teams"][0]["savings_usd"], "0.252");
    assert_eq!(json["unattributed"]["share"], "5.76");
    let md = text::markdown(&r);
    assert!(
        md.starts_with("# Bedrock chargeback, 2026-11") && md.contains("| search | m.opus | 3 |"),
        "{md}"
    );
    let page = html::page(&r);
    assert!(
        page.contains("<svg")
            && page.contains(html::TEAM_COLOURS[0])
            && page.contains(html::tier_colour(Tier::Premium))
    );
    assert!(!page.contains("<script"), "no script");
    let svg_ns = page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count();
    assert_eq!(
        page.matches("http").count(),
        svg_ns,
        "no external asset, only the SVG namespace"
    );
}

#[test]
fn per_request_counts_are_routed_and_image_calls_keep_their_cost() {
    let mut counted = row("ads", "m.opus", None, "2026-11-02T10:00:00Z", 1000, OPUS_1K);
    counted.units.requests = 1;
    let mut image = row("ads", "m.opus", None, "2026-11-02T11:00:00Z", 1000, OPUS_1K);
    image.units.images = 2;
    let r = statement(&[counted, image], &[Dim::Team], "2026-12-05T00:00:00Z");
    assert_eq!(r.teams[0].routed, Money(i128::from(HAIKU_1K + OPUS_1K)));
}
