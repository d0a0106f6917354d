//! AWS SDK → Envoy → tally-extproc → Redis → `tally ledger-export` → versitygw (S3), read
//! back with pyarrow: exactly one row per call, equal to its Redis ledger record, with the
//! exporter SIGKILLed mid-run and the streams capped at 10 entries.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use tally_tests::client::Attribution;
use tally_tests::expect::usd_to_nanos;
use tally_tests::fixtures::s3::S3Server;
use tally_tests::fixtures::stack::{Stack, StackOptions};
use tally_tests::scenarios::{HAIKU, default_config};

use crate::support::{ExporterProcess, group, metric, read_back, stream, wait_caught_up};

const CAP: usize = 10;
const DIRECTIVE: &str = "Summarise [[usage in=1200 out=300 cr=40 cw5m=5 cw1h=1]]";

/// One call through the gateway, then a reading of the stream: every entry is seen at least
/// once before trimming can reach it (a settle trims only acknowledged entries beyond the newest `CAP`).
async fn call(stack: &Stack, seen: &mut BTreeMap<String, Value>) {
    let client = stack.client(Attribution::new("search", "acme", "rag"));
    client.converse(HAIKU, DIRECTIVE).await.expect("the call succeeds");
    let id = client.request_id();
    let mut redis = stack.redis.connection().await;
    for _ in 0..100 {
        let now = stream(&mut redis, "search").await;
        let settled = now.values().any(|r| r["requestId"] == id.as_str());
        seen.extend(now);
        if settled {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("call {id} never reached the ledger stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_is_in_s3_exactly_once_across_an_exporter_crash_with_streams_capped_low() {
    let mut s3 = S3Server::start("finops").await;
    let mut opts = StackOptions::new(default_config());
    opts.extproc_args = vec!["--ledger-max-len".into(), CAP.to_string()];
    let stack = Stack::start(opts).await;
    let mut redis = stack.redis.connection().await;
    let mut seen = BTreeMap::new();

    // The first call creates the stream; the exporter then finds it and creates its group.
    call(&stack, &mut seen).await;
    let mut exporter = ExporterProcess::start(&stack.redis.url(), "s3://finops/tally/prod", 4, s3.env());
    for _ in 0..200 {
        if group(&mut redis, "search").await.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(group(&mut redis, "search").await.is_some(), "{}", exporter.log());
    for _ in 0..14 {
        call(&stack, &mut seen).await;
    }
    wait_caught_up(&mut redis, "search", &exporter).await;
    // Killed while calls flow (wherever it is: reading, writing, between a write and its ack).
    for _ in 0..3 {
        call(&stack, &mut seen).await;
    }
    exporter.kill();
    // While it is down the backlog passes the cap (10) but stays under the guard (2 × 10).
    for _ in 0..11 {
        call(&stack, &mut seen).await;
    }
    let backlog = stream(&mut redis, "search").await.len();
    assert!(backlog > CAP, "unexported entries are kept past the cap: {backlog}");
    exporter.restart();
    exporter.metrics().await;
    for _ in 0..6 {
        call(&stack, &mut seen).await;
    }
    wait_caught_up(&mut redis, "search", &exporter).await;
    let n = 35;
    assert_eq!(seen.len(), n, "every call left one ledger entry");
    let left = stream(&mut redis, "search").await.len();
    assert!(left < n, "the stream was trimmed (cap {CAP}): {left} of {n} left");

    let back = read_back(&mut s3, "finops", "tally/prod");
    assert_eq!(back.rows.len(), n, "files: {:?}\n{}", back.files, exporter.log());
    let ids: BTreeSet<&str> = back.rows.iter().filter_map(|r| r["stream_id"].as_str()).collect();
    assert_eq!(ids.len(), n, "no record written twice");
    for row in &back.rows {
        let id = row["stream_id"].as_str().expect("stream_id");
        assert_row_is_record(row, &seen[id]);
    }
    assert_files_and_schema(&back);
    let text = exporter.metrics().await;
    assert!(metric(&text, "tally_ledger_export_files_total") >= 1.0, "{text}");
    assert_eq!(metric(&text, "tally_ledger_export_dropped_records"), 0.0, "{text}");
    assert_eq!(metric(&text, "tally_ledger_export_failures_total"), 0.0, "{text}");
}

/// Every column of `row` (pyarrow's reading) equals the field of the Redis record it came from.
fn assert_row_is_record(row: &Value, record: &Value) {
    let opt = |k: &str| record.get(k).cloned().unwrap_or(Value::Null);
    let unit = |k: &str| {
        record
            .get("units")
            .map_or(Value::Null, |u| u.get(k).cloned().unwrap_or(json!(0)))
    };
    let nanos = record["costNanos"].as_i64().expect("costNanos");
    let expected = json!({
        "request_id": record["requestId"], "charge_id": record["chargeId"], "team": record["team"],
        "tenant": opt("tenant"), "workflow": opt("workflow"), "claimed_team": opt("claimedTeam"),
        "principal": opt("principal"), "client": opt("client"), "operation": record["operation"],
        "model_id": record["modelId"], "model": record["model"], "region": record["region"],
        "service_tier": opt("serviceTier"), "input_tokens": record["inputTokens"],
        "output_tokens": record["outputTokens"], "cache_read_tokens": record["cacheReadTokens"],
        "cache_write_5m_tokens": record["cacheWrite5mTokens"],
        "cache_write_1h_tokens": record["cacheWrite1hTokens"], "latency_ms": record["latencyMs"],
        "status": record["status"], "outcome": record["outcome"], "cost_nanos": nanos,
        "cost_usd_nanos": usd_to_nanos(record["costUsd"].as_str().expect("costUsd")),
        "team_budget_remaining_nanos": opt("teamBudgetRemainingNanos"),
        "price_source": record["priceSource"], "unpriced": record.get("unpriced").cloned().unwrap_or(json!(false)),
        "over_budget": record.get("overBudget").cloned().unwrap_or(json!([])), "note": opt("note"),
        "time_us": micros(record["time"].as_str().expect("time")),
        "unit_requests": unit("requests"), "unit_images": unit("images"),
        "unit_video_seconds": unit("seconds"), "unit_guardrail_text_units": unit("textUnits"),
    });
    let mut actual = expected.as_object().expect("object").clone();
    for (k, v) in actual.iter_mut() {
        *v = row.get(k.as_str()).cloned().unwrap_or(Value::Null);
    }
    actual.insert(
        "cost_usd_nanos".into(),
        json!(usd_to_nanos(row["cost_usd"].as_str().unwrap())),
    );
    actual.insert("time_us".into(), json!(micros(row["time"].as_str().expect("time"))));
    assert_eq!(Value::Object(actual), expected, "row {row:#}");
    let scale = row["cost_usd"]
        .as_str()
        .and_then(|s| s.split_once('.'))
        .map(|(_, f)| f.len());
    assert_eq!(scale, Some(9), "DECIMAL(18,9): {row:#}");
    let day = jiff::Timestamp::from_microsecond(micros(row["time"].as_str().unwrap()))
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC);
    assert_eq!(
        (row["year"].as_i64(), row["month"].as_i64(), row["day"].as_i64()),
        (
            Some(day.year().into()),
            Some(day.month().into()),
            Some(day.day().into())
        ),
        "the Hive partition is the record's UTC day"
    );
}

fn micros(time: &str) -> i64 {
    time.parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("{time:?}: {e}"))
        .as_microsecond()
}

fn assert_files_and_schema(back: &crate::support::ReadBack) {
    assert_eq!(back.versions, ["1"], "every file carries the schema version");
    for f in &back.files {
        let name = f.rsplit('/').next().unwrap();
        assert!(
            f.starts_with("finops/tally/prod/ledger/year=") && f.contains("/month=") && f.contains("/day="),
            "{f}"
        );
        assert!(name.ends_with(".parquet") && name.contains("h-search-"), "{f}");
    }
    assert_eq!(back.types["cost_usd"], "decimal128(18, 9)");
    assert_eq!(back.types["time"], "timestamp[us, tz=UTC]");
    assert_eq!(back.types["cost_nanos"], "int64");
}
