//! Every format's fixture (see tests/fixtures/README.md for its known gaps)
//! gets exactly its expected verdict per field and its score; the Parquet
//! exports read the same as the JSON and CSV they were written from.

mod support;

use serde_json::Value;
use support::{Kind, catalog, fixture, verdicts, write_parquet};
use tally_audit::checks;
use tally_audit::detect::Format;
use tally_audit::field::Field;
use tally_audit::fix::Fix;
use tally_audit::formats;
use tally_audit::report::{Report, Score, SetReport, Verdict};

fn audit(names: &[&str]) -> Report {
    let samples: Vec<formats::Sample> = names
        .iter()
        .map(|n| {
            let bytes = std::fs::read(fixture(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
            formats::parse(n, &bytes).unwrap_or_else(|e| panic!("{n}: {e}"))
        })
        .collect();
    checks::audit(&samples, &catalog())
}

/// Audits one fixture alone and checks its format, record count, verdicts (in
/// `Field::ALL` order: model, region, input, output, cache read, cache write,
/// latency, tenant, workflow, team, cost, budget, request id) and score.
fn expect(name: &str, format: Format, records: usize, expected: &str, score: (usize, usize)) -> SetReport {
    let report = audit(&[name]);
    let set = report.sets[0].clone();
    assert_eq!((set.format, set.records), (format, records), "{name}");
    assert_eq!(
        verdicts(&set),
        expected,
        "{name}:\n{}",
        tally_audit::report::table::render(&report)
    );
    assert_eq!(
        set.score,
        Score {
            correct: score.0,
            expected: score.1
        },
        "{name}"
    );
    set
}

fn finding_fixes(set: &SetReport, field: Field) -> Vec<Fix> {
    set.field(field).findings.iter().map(|f| f.fix).collect()
}

#[test]
fn tally_ledger_an_unmapped_profile_a_stale_price_and_no_budgets() {
    let set = expect("ledger.jsonl", Format::TallyLedger, 15, "MPPPPPPPPPMAP", (10, 13));
    assert_eq!(finding_fixes(&set, Field::ModelId), [Fix::ProfileAliases]);
    assert_eq!(finding_fixes(&set, Field::CostUsd), [Fix::CatalogPrices]);
    assert!(
        set.field(Field::CostUsd).findings[0]
            .text
            .contains("on 3 of 11 priced records")
    );
    assert_eq!(set.field(Field::TenantId).notes, ["never sent by team unknown (1)"]);
}

#[test]
fn envoy_default_format_has_no_usage_no_attribution_and_per_attempt_ids() {
    let set = expect("envoy-default.txt", Format::EnvoyText, 10, "PPAAAAPAAAAAM", (3, 13));
    assert_eq!(set.skipped, 1, "the readiness probe is not a call");
    assert_eq!(finding_fixes(&set, Field::RequestId), [Fix::StableRequestId]);
    assert!(
        set.field(Field::RequestId).findings[0]
            .text
            .contains("2 retried call(s)")
    );
}

#[test]
fn envoy_chart_format_lacks_region_tokens_and_tenant() {
    expect("envoy-tally.jsonl", Format::EnvoyJson, 10, "PAAAAAPAPPPAP", (6, 13));
}

#[test]
fn otlp_spans_mix_token_conventions_and_retry_under_new_ids() {
    let set = expect("otel-spans.jsonl", Format::OtlpJson, 6, "PPMPPPPPAAAAM", (7, 13));
    assert_eq!(finding_fixes(&set, Field::InputTokens), [Fix::OneTokenConvention]);
    assert_eq!(finding_fixes(&set, Field::RequestId), [Fix::StableRequestId]);
}

#[test]
fn bedrock_invocation_logs_miss_latency_on_invoke_model_and_profiles() {
    let set = expect(
        "bedrock-invocations.jsonl",
        Format::BedrockInvocationLog,
        10,
        "MPPPPPMPAPAAM",
        (7, 13),
    );
    assert_eq!(finding_fixes(&set, Field::ModelId), [Fix::ProfileAliases]);
    assert!(
        set.field(Field::Latency).findings[0]
            .text
            .contains("missing on 2 of 9 records")
    );
    assert_eq!(finding_fixes(&set, Field::RequestId), [Fix::StableRequestId]);
}

#[test]
fn litellm_spend_logs_per_attempt_ids_float_cost_and_cache_priced_as_input() {
    for (name, format) in [
        ("litellm-spendlogs.json", Format::LiteLlmJson),
        ("litellm-spendlogs.csv", Format::LiteLlmCsv),
    ] {
        let set = expect(name, format, 10, "PPPPPPPPMPMAM", (9, 13));
        assert_eq!(finding_fixes(&set, Field::RequestId), [Fix::StableRequestId], "{name}");
        let cost = finding_fixes(&set, Field::CostUsd);
        assert_eq!(
            cost,
            [Fix::DecimalCost, Fix::CostCurrency, Fix::CatalogPrices],
            "{name}"
        );
        let mismatch = &set.field(Field::CostUsd).findings[2].text;
        assert!(
            mismatch.contains("the cache tokens were priced as plain input"),
            "{mismatch}"
        );
    }
}

#[test]
fn app_logs_local_time_inference_region_lumped_cache_and_a_shared_id() {
    let set = expect("app.jsonl", Format::AppLog, 8, "PMPPMMPPPPMAM", (7, 13));
    assert_eq!(finding_fixes(&set, Field::Region), [Fix::BillingRegion]);
    assert_eq!(finding_fixes(&set, Field::CacheReadTokens), [Fix::SplitCacheTokens]);
    assert_eq!(finding_fixes(&set, Field::CostUsd), [Fix::UtcTimestamps]);
    assert_eq!(finding_fixes(&set, Field::RequestId), [Fix::UniqueRequestId]);
}

#[test]
fn cur_rows_a_shared_principal_and_a_lagging_tag() {
    let set = expect("cur.csv", Format::CurCsv, 18, "PPPPPP-AAMP--", (7, 10));
    assert_eq!(
        finding_fixes(&set, Field::TeamId),
        [Fix::TagPrincipals, Fix::PerTeamIdentity]
    );
    assert!(set.field(Field::TeamId).findings[0].text.contains("tags lagging"));
}

#[test]
fn a_tenant_the_application_logs_but_the_gateway_drops_is_misscoped_there() {
    let report = audit(&["app.jsonl", "envoy-tally.jsonl"]);
    let gateway = report.set("envoy-tally.jsonl").expect("audited");
    let tenant = gateway.field(Field::TenantId);
    assert_eq!(tenant.verdict, Verdict::Misscoped);
    assert_eq!(tenant.fixes, [Fix::ForwardAttribution]);
    assert!(
        tenant.findings[0]
            .text
            .starts_with("present in app.jsonl (8/8 records, `tenant_id`)")
    );
    assert_eq!(
        report.score,
        Score {
            correct: 13,
            expected: 26
        }
    );
}

#[test]
fn work_is_ordered_smallest_first() {
    let report = audit(&["litellm-spendlogs.json", "envoy-default.txt", "cur.csv"]);
    let efforts: Vec<_> = report.work.iter().map(|w| w.effort).collect();
    let mut sorted = efforts.clone();
    sorted.sort();
    assert_eq!(efforts, sorted);
    assert_eq!(report.work.last().map(|w| w.fix), Some(Fix::Gateway));
}

fn tmp_parquet(name: &str, columns: &[(String, Kind)], rows: &[Value]) -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    write_parquet(&path, columns, rows);
    let bytes = std::fs::read(&path).unwrap();
    (dir, bytes)
}

#[test]
fn the_parquet_ledger_export_reads_like_the_json_ledger() {
    let text = std::fs::read_to_string(fixture("ledger.jsonl")).unwrap();
    let rows: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut columns: Vec<(String, Kind)> = vec![];
    for row in &rows {
        for (k, v) in row.as_object().unwrap() {
            let kind = match (k.as_str(), v) {
                ("costUsd", _) => Kind::Usd,
                (_, Value::Bool(_)) => Kind::Bool,
                (_, Value::Number(_)) => Kind::I64,
                _ => Kind::Str,
            };
            if !columns.iter().any(|(c, _)| c == k) {
                columns.push((k.clone(), kind));
            }
        }
    }
    let (_dir, bytes) = tmp_parquet("ledger.parquet", &columns, &rows);
    let sample = formats::parse("ledger.parquet", &bytes).unwrap();
    assert_eq!(sample.format, Format::TallyLedgerParquet);
    let report = checks::audit(&[sample], &catalog());
    assert_eq!(verdicts(&report.sets[0]), "MPPPPPPPPPMAP");
    assert_eq!(
        report.sets[0].field(Field::CostUsd).evidence.example.as_deref(),
        Some("record 1: \"0.013695000\"")
    );
}

#[test]
fn cur_parquet_with_a_map_of_tags_reads_like_the_csv() {
    let table = std::fs::read(fixture("cur.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(table.as_slice());
    let headers: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    let rows: Vec<Value> = reader
        .records()
        .map(|r| {
            Value::Object(
                headers
                    .iter()
                    .cloned()
                    .zip(r.unwrap().iter().map(|v| Value::String(v.into())))
                    .collect(),
            )
        })
        .collect();
    let columns: Vec<(String, Kind)> = headers
        .iter()
        .map(|h| {
            let kind = match h.as_str() {
                "resource_tags" => Kind::Map,
                "line_item_usage_amount" | "line_item_unblended_cost" => Kind::F64,
                h if h.ends_with("_date") => Kind::Millis,
                _ => Kind::Str,
            };
            (h.clone(), kind)
        })
        .collect();
    let (_dir, bytes) = tmp_parquet("cur.parquet", &columns, &rows);
    let sample = formats::parse("cur.parquet", &bytes).unwrap();
    assert_eq!((sample.format, sample.observations.len()), (Format::CurParquet, 18));
    let report = checks::audit(&[sample], &catalog());
    assert_eq!(verdicts(&report.sets[0]), "PPPPPP-AAMP--");
    assert!(
        report.sets[0].field(Field::TeamId).findings[0]
            .text
            .contains("tags lagging")
    );
}
