//! `tally reconcile` end to end: a month of ledger records written by the exporter's own
//! Parquet writer (`tally_export::schema`, laid out by `tally_export::layout`), the CUR 2.0
//! export AWS would send for them (`tally_tests::cur`) with injected differences — traffic in
//! a region that bypassed the gateway, a cut stream billed in full, a price change from the
//! 16th, a Marketplace-billed model, credits, a discount, tax and another service — read from
//! a local directory as CSV and from a real S3 server (versitygw) as Parquet. Each difference
//! is found in tokens and dollars, the split invoice adds up to the bill's usage cost exactly,
//! and the exit code follows the tolerance.

use std::path::Path;
use std::process::{Command, Output};

use jiff::civil::Date;
use serde_json::Value;
use tally_config::ledger::LedgerRecord;
use tally_config::money::Nanos;
use tally_export::entry::{Entry, StreamId};
use tally_tests::cur::{self, Bill, Model};
use tally_tests::fixtures::s3::S3Server;
use tally_tests::tools;

const SONNET: &str = "anthropic.claude-sonnet-4-6";
const HAIKU: &str = "anthropic.claude-haiku-4-5-20251001-v1:0";

/// How the bill names and prices the two models (the shipped catalog's names and prices):
/// Sonnet first-party, Haiku through the Marketplace.
fn models() -> Vec<Model> {
    vec![
        Model {
            id: SONNET,
            usage_type_model: Some("Claude4.6Sonnet"),
            marketplace_product: None,
            prices: ["3", "15", "0.3", "3.75"],
        },
        Model {
            id: HAIKU,
            usage_type_model: None,
            marketplace_product: Some("Claude 4.5 Haiku (Amazon Bedrock Edition)"),
            prices: ["1", "5", "0.1", "1.25"],
        },
    ]
}

fn day(n: i8) -> Date {
    Date::new(2026, 11, n).expect("a November day")
}

/// One ledger call.
struct Call {
    day: i8,
    team: &'static str,
    tenant: Option<&'static str>,
    workflow: &'static str,
    model: &'static str,
    region: &'static str,
    tokens: [u64; 4],
    outcome: &'static str,
}

/// The month's calls: three teams, two models, two regions, every day.
fn month() -> Vec<Call> {
    let mut calls = vec![];
    for d in 1..=30i8 {
        let n = u64::try_from(d).expect("a day");
        let call = |team, tenant, workflow, model, region, tokens| Call {
            day: d,
            team,
            tenant,
            workflow,
            model,
            region,
            tokens,
            outcome: "ok",
        };
        calls.push(call(
            "search",
            Some("acme"),
            "rag",
            SONNET,
            "us-east-1",
            [90_000 + n, 20_000, 40_000, 5_000],
        ));
        calls.push(call(
            "search",
            Some("globex"),
            "rag",
            SONNET,
            "us-east-1",
            [30_000, 7_000 + n, 0, 0],
        ));
        calls.push(call(
            "support",
            None,
            "triage",
            HAIKU,
            "us-west-2",
            [250_000 + 7 * n, 41_000, 0, 0],
        ));
        calls.push(call(
            "ads",
            None,
            "banners",
            SONNET,
            "us-west-2",
            [12_345, 3_210 + n, 1_000, 0],
        ));
    }
    calls
}

fn record(i: usize, c: &Call) -> LedgerRecord {
    let json = serde_json::json!({
        "requestId": format!("req-{i}"), "chargeId": format!("req-{i}/1"),
        "time": format!("{}T{:02}:15:00Z", day(c.day), i % 24),
        "operation": "Converse", "modelId": format!("us.{}", c.model), "model": c.model,
        "region": c.region, "team": c.team, "tenant": c.tenant, "workflow": c.workflow,
        "inputTokens": c.tokens[0], "outputTokens": c.tokens[1], "cacheReadTokens": c.tokens[2],
        "cacheWrite5mTokens": c.tokens[3], "cacheWrite1hTokens": 0, "latencyMs": 900, "status": 200,
        "outcome": c.outcome, "costNanos": 1_000_000, "costUsd": "0.001", "priceSource": "test",
    });
    serde_json::from_value(json).expect("a ledger record")
}

/// Writes the calls as the exporter does (per team, per UTC hour) under `dir`.
fn export_ledger(dir: &Path, calls: &[Call]) {
    for team in ["search", "support", "ads"] {
        let entries = calls
            .iter()
            .enumerate()
            .filter(|(_, c)| c.team == team)
            .map(|(i, c)| Entry {
                id: StreamId {
                    ms: 1_800_000_000_000 + i as u64,
                    seq: 0,
                },
                record: record(i, c),
            })
            .collect();
        for file in tally_export::layout::plan("", team, entries) {
            let path = dir.join(&file.key);
            std::fs::create_dir_all(path.parent().expect("a folder")).expect("mkdir");
            std::fs::write(path, tally_export::schema::to_parquet(&file.entries).expect("parquet")).expect("write");
        }
    }
}

/// The cut stream: the ledger counted 300 output tokens before the client went away; AWS
/// billed the 2,300 Bedrock generated.
fn cut_stream() -> (Call, [u64; 4]) {
    let call = Call {
        day: 9,
        team: "search",
        tenant: Some("acme"),
        workflow: "rag",
        model: SONNET,
        region: "us-east-1",
        tokens: [4_000, 300, 0, 0],
        outcome: "incomplete",
    };
    (call, [4_000, 2_300, 0, 0])
}

/// The ledger and the bill AWS sends for it, with the injected differences.
fn scenario() -> (Vec<Call>, Bill) {
    let mut calls = month();
    let mut bill = Bill::default();
    for c in &calls {
        bill.usage(day(c.day), c.region, c.model, c.tokens);
    }
    let (cut, billed) = cut_stream();
    bill.usage(day(cut.day), cut.region, cut.model, billed);
    calls.push(cut);
    // Bypass: a script calling Bedrock directly in eu-west-1 on the 12th to the 14th.
    for d in 12..=14 {
        bill.usage(day(d), "eu-west-1", SONNET, [2_000_000, 500_000, 0, 0]);
    }
    // AWS raised Sonnet's output price by 20 % from the 16th; the catalog still says 15.
    bill.price_change(SONNET, 1, day(16), 120);
    bill.other(
        "Credit",
        "AmazonBedrock",
        "USE1-Claude4.6Sonnet-input-tokens",
        Nanos(-50_000_000_000),
    );
    bill.other(
        "EdpDiscount",
        "AmazonBedrock",
        "USE1-Claude4.6Sonnet-input-tokens",
        Nanos(-3_210_000_000),
    );
    bill.other("Tax", "AmazonBedrock", "", Nanos(8_123_456_789));
    bill.other("Usage", "AmazonEC2", "USE1-BoxUsage:m5.large", Nanos(70_080_000_000));
    (calls, bill)
}

fn tally() -> Command {
    tools::workspace_binary("tally", "tally-operator", "chargeback");
    Command::new(tools::workspace_binary("tally", "tally-operator", "operator"))
}

fn reconcile(ledger: &str, cur: &str, extra: &[&str], env: &[(&'static str, String)]) -> Output {
    let mut args = vec!["reconcile", "--ledger", ledger, "--cur", cur, "--period", "2026-11"];
    args.extend(extra);
    tally()
        .args(&args)
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .output()
        .expect("run tally reconcile")
}

/// The JSON of a run that must succeed.
fn json_of(out: &Output) -> Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tally reconcile failed: {stderr}");
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn usd(v: &Value) -> Nanos {
    Nanos::parse_usd(v.as_str().expect("a USD string").trim_start_matches('-'))
        .map(|n| {
            if v.as_str().is_some_and(|s| s.starts_with('-')) {
                Nanos(-n.0)
            } else {
                n
            }
        })
        .expect("a decimal")
}

fn finding<'a>(r: &'a Value, cause: &str, region: &str) -> &'a Value {
    let all = r["findings"].as_array().expect("findings");
    all.iter()
        .find(|f| f["cause"] == cause && f["region"] == region)
        .unwrap_or_else(|| panic!("no {cause} in {region}: {all:#?}"))
}

/// What the bill and the injected differences must show, in tokens and dollars.
fn assert_found(r: &Value, bill_usage: Nanos) {
    let cut = finding(r, "cut_stream", "us-east-1");
    assert_eq!(
        (cut["model"].as_str(), cut["firstDay"].as_str()),
        (Some("Claude4.6Sonnet"), Some("2026-11-09"))
    );
    assert_eq!(
        (cut["tokens"]["output"].as_str(), cut["tokens"]["input"].as_str()),
        (Some("2000"), Some("0"))
    );
    assert_eq!(usd(&cut["usd"]), Nanos(30_000_000), "2,000 output tokens at 15 USD/1M");
    let bypass = finding(r, "region_not_seen", "eu-west-1");
    assert_eq!(
        (bypass["days"].as_u64(), bypass["tokens"]["input"].as_str()),
        (Some(3), Some("6000000"))
    );
    assert_eq!(usd(&bypass["usd"]), Nanos(3 * (6_000_000_000 + 7_500_000_000)));
    let drifts = r["drifts"].as_array().expect("drifts");
    let sonnet_output: Vec<(&str, &str, &str, &str)> = drifts
        .iter()
        .map(|d| {
            let s = |k: &str| d[k].as_str().unwrap_or_default();
            (s("region"), s("class"), s("fromDay"), s("billedUsdPerMillion"))
        })
        .collect();
    assert_eq!(
        sonnet_output,
        [
            ("us-east-1", "output", "2026-11-16", "18.00"),
            ("us-west-2", "output", "2026-11-16", "18.00")
        ],
        "the price change, from its day, at the billed price"
    );
    assert_eq!(drifts[0]["catalogUsdPerMillion"], "15.00");
    let excluded = &r["excluded"];
    assert_eq!(usd(&excluded["Credit"]["usd"]), Nanos(-50_000_000_000));
    assert_eq!(usd(&excluded["EdpDiscount"]["usd"]), Nanos(-3_210_000_000));
    assert_eq!(usd(&excluded["Tax"]["usd"]), Nanos(8_123_456_789));
    assert!(
        r["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .all(|f| f["explained"] == true),
        "{r:#}"
    );
    assert_eq!(r["totals"]["unexplainedUsd"], "0.00");
    assert_eq!(r["exceeded"], false);
    let split = r["split"].as_array().expect("split");
    let total = split
        .iter()
        .map(|s| usd(&s["billedUsd"]))
        .fold(Nanos::ZERO, Nanos::saturating_add);
    assert_eq!(
        total, bill_usage,
        "the split invoice adds up to the bill's Bedrock usage to the nano-USD"
    );
    let unattributed = split
        .iter()
        .find(|s| s["team"] == "unattributed")
        .expect("an unattributed row");
    assert_eq!(
        usd(&unattributed["billedUsd"]),
        Nanos(3 * (6_000_000_000 + 7_500_000_000))
    );
    let teams: Vec<&str> = split.iter().filter_map(|s| s["team"].as_str()).collect();
    assert_eq!(teams, ["ads", "search", "search", "support", "unattributed"]);
}

#[tokio::test]
async fn reconcile_finds_each_injected_difference_locally_as_csv_and_on_s3_as_parquet() {
    let (calls, bill) = scenario();
    let models = models();
    let dir = tempfile::tempdir().expect("temp dir");
    let ledger = dir.path().join("ledger-dest");
    export_ledger(&ledger, &calls);
    let csv = dir.path().join("cur/BILLING_PERIOD=2026-11/bedrock-00001.csv");
    std::fs::create_dir_all(csv.parent().expect("a folder")).expect("mkdir");
    std::fs::write(&csv, cur::to_csv(&bill.lines(&models))).expect("write the CUR");
    let bill_usage = bill.usage_cost(&models);

    let local = json_of(&reconcile(
        path(&ledger),
        path(&dir.path().join("cur")),
        &["--format", "json"],
        &[],
    ));
    assert_found(&local, bill_usage);

    let mut s3 = S3Server::start("finops").await;
    let parquet = dir.path().join("bedrock-00001.snappy.parquet");
    let out = Command::new(tools::python())
        .args(["-c", cur::CSV_TO_PARQUET, path(&csv), path(&parquet)])
        .output()
        .expect("run pyarrow");
    assert!(
        out.status.success(),
        "pyarrow: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    s3.python(
        UPLOAD,
        &[
            "finops",
            path(&ledger),
            "prod/tally",
            path(&parquet),
            "cur/data/BILLING_PERIOD=2026-11",
        ],
    );
    let remote = json_of(&reconcile(
        "s3://finops/prod/tally",
        "s3://finops/cur/data",
        &["--format", "json"],
        &s3.env(),
    ));
    assert_eq!(
        remote, local,
        "the same reconciliation from S3 and Parquet as from a directory and CSV"
    );
}

/// Uploads a directory tree under a prefix and one file into a folder: argv `[bucket, dir,
/// prefix, file, folder]` after the server's.
const UPLOAD: &str = r#"
import os, sys, boto3
endpoint, key, secret, bucket, root, prefix, file, folder = sys.argv[1:9]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1")
for here, _, names in os.walk(root):
    for name in names:
        local = os.path.join(here, name)
        s3.upload_file(local, bucket, prefix + "/" + os.path.relpath(local, root))
s3.upload_file(file, bucket, folder + "/" + os.path.basename(file))
"#;

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

#[test]
fn an_unexplained_difference_beyond_the_tolerance_fails_the_command() {
    let models = models();
    let calls = month();
    let mut bill = Bill::default();
    // The bill lacks a third of support's Haiku input on the 20th: nothing explains that.
    for c in &calls {
        let mut tokens = c.tokens;
        if c.day == 20 && c.model == HAIKU {
            tokens[0] -= tokens[0] / 3;
        }
        bill.usage(day(c.day), c.region, c.model, tokens);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let ledger = dir.path().join("ledger");
    export_ledger(&ledger, &calls);
    let csv = dir.path().join("cur.csv");
    std::fs::write(&csv, cur::to_csv(&bill.lines(&models))).expect("write the CUR");

    let lenient = json_of(&reconcile(
        path(&ledger),
        path(&csv),
        &["--format", "json", "--tolerance", "1%"],
        &[],
    ));
    let unexplained = finding(&lenient, "unexplained", "us-west-2");
    assert_eq!(unexplained["tokens"]["input"].as_str(), Some("-83380"));
    assert_eq!(usd(&lenient["totals"]["unexplainedUsd"]), Nanos(83_380_000));
    let strict = reconcile(path(&ledger), path(&csv), &["--tolerance", "0.01%"], &[]);
    let stderr = String::from_utf8_lossy(&strict.stderr);
    assert_eq!(strict.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("above --tolerance 0.01%"), "{stderr}");
    assert!(String::from_utf8_lossy(&strict.stdout).contains("EXCEEDED"));
}
