//! The ledger and spend API: bearer token, NDJSON pages with a cursor, bounded memory.

use serde_json::Value;
use tally_tests::expect::monthly_counter_key;
use tally_tests::fixtures::extproc::{API_TOKEN, ExtProc, ExtProcOptions};
use tally_tests::fixtures::redis::RedisServer;
use tally_tests::fixtures::{admin, process};

use crate::config;

/// Records seeded into one team's ledger: two and a half full responses.
const SEEDED: usize = 25_000;
/// Bytes of padding per record, so the records weigh ~50 MB together.
const PADDING: usize = 2_000;
/// How much the ext_proc's peak RSS may grow while it streams all of them.
const RSS_GROWTH_BOUND_KIB: u64 = 16 * 1024;

/// A ledger record as the settle script writes it, numbered `i`, padded to ~2 KB.
fn record(i: usize) -> String {
    serde_json::json!({
        "requestId": format!("req-{i:06}"), "chargeId": format!("charge-{i:06}"),
        "time": "2026-12-06T07:00:00Z", "operation": "Converse", "modelId": "x".repeat(PADDING),
        "model": "amazon.nova-micro-v1:0", "region": "us-east-1", "team": "search",
        "inputTokens": 1, "outputTokens": 1, "cacheReadTokens": 0, "cacheWrite5mTokens": 0,
        "cacheWrite1hTokens": 0, "latencyMs": 1, "status": 200, "outcome": "ok",
        "costNanos": 1, "costUsd": "0.000000001", "priceSource": "test",
    })
    .to_string()
}

async fn seed_ledger(redis: &RedisServer, n: usize) {
    let mut conn = redis.connection().await;
    for start in (0..n).step_by(1000) {
        let mut pipe = redis::pipe();
        for i in start..(start + 1000).min(n) {
            pipe.cmd("XADD")
                .arg("tally:{search}:ledger")
                .arg("*")
                .arg("record")
                .arg(record(i))
                .ignore();
        }
        let () = pipe.query_async(&mut conn).await.expect("XADD");
    }
}

/// `VmHWM` (peak resident set) of a process, KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    process::status_kib(pid, "VmHWM").expect("VmHWM in /proc status")
}

async fn api_get(ext: &ExtProc, path: &str) -> (u16, String) {
    admin::get_bearer(&ext.api_url(path), Some(API_TOKEN))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The `next` cursor of an NDJSON ledger response, and its records.
fn split_page(body: &str) -> (Vec<Value>, Option<String>) {
    let mut lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not NDJSON ({e}): {l:.200}")))
        .collect();
    let next = lines
        .last()
        .and_then(|l| l.get("next"))
        .map(|n| n.as_str().expect("a string cursor").to_string());
    if next.is_some() {
        lines.pop();
    }
    (lines, next)
}

#[tokio::test]
async fn the_ledger_needs_the_token_and_streams_every_record_in_bounded_memory() {
    let redis = RedisServer::start(false).await;
    seed_ledger(&redis, SEEDED).await;
    let ext = ExtProc::start(ExtProcOptions::new(config(), Some(redis.url()))).await;
    let url = ext.api_url("/v1/ledger?team=search");
    for token in [None, Some("wrong"), Some("")] {
        let (status, _) = admin::get_bearer(&url, token).await.unwrap();
        assert_eq!(status, 401, "token {token:?}");
    }
    let (status, _) = admin::get(&ext.metrics_url("/v1/ledger?team=search")).await.unwrap();
    assert_eq!(status, 404, "the metrics port serves no ledger");
    // Warm up the code paths and the allocator before the baseline.
    assert_eq!(api_get(&ext, "/v1/ledger?team=search&limit=600").await.0, 200);
    let pid = ext.pid().expect("running");
    let before = peak_rss_kib(pid);
    let (mut seen, mut cursor, mut responses) = (Vec::new(), None::<String>, 0);
    loop {
        let after = cursor.as_deref().map(|c| format!("&after={c}")).unwrap_or_default();
        let (status, body) = api_get(&ext, &format!("/v1/ledger?team=search&limit=100000{after}")).await;
        assert_eq!(status, 200, "{body:.300}");
        let (records, next) = split_page(&body);
        assert!(records.len() <= 10_000, "a response holds at most 10,000 records");
        seen.extend(
            records
                .into_iter()
                .map(|r| r["requestId"].as_str().unwrap().to_string()),
        );
        responses += 1;
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let after = peak_rss_kib(pid);
    let expected: Vec<String> = (0..SEEDED).map(|i| format!("req-{i:06}")).collect();
    assert!(
        seen == expected,
        "every record once, oldest first ({} seen)",
        seen.len()
    );
    eprintln!(
        "ledger: {SEEDED} records of ~{PADDING} B in {responses} responses; ext_proc peak RSS {before} KiB -> {after} KiB (+{} KiB)",
        after - before
    );
    assert!(
        after - before < RSS_GROWTH_BOUND_KIB,
        "peak RSS grew {} KiB streaming ~{} MB",
        after - before,
        SEEDED * PADDING / 1_000_000
    );
}

#[tokio::test]
async fn requests_the_api_cannot_answer_are_refused_with_a_reason() {
    let redis = RedisServer::start(false).await;
    let ext = ExtProc::start(ExtProcOptions::new(config(), Some(redis.url()))).await;
    let (status, body) = api_get(&ext, "/v1/ledger").await;
    assert_eq!((status, body.contains("team=T is required")), (400, true), "{body}");
    let (status, body) = api_get(&ext, "/v1/ledger?team=search&after=1-0%20COUNT%205").await;
    assert_eq!((status, body.contains("invalid ledger cursor")), (400, true), "{body}");
    let (status, body) = api_get(&ext, "/v1/spend?team=nobody").await;
    assert_eq!(status, 404, "{body}");
    // A rotated token applies without a restart.
    std::fs::write(ext.api_token_file(), "rotated-token\n").unwrap();
    let url = ext.api_url("/v1/spend");
    assert_eq!(admin::get_bearer(&url, Some(API_TOKEN)).await.unwrap().0, 401);
    assert_eq!(admin::get_bearer(&url, Some("rotated-token")).await.unwrap().0, 200);
}

#[tokio::test]
async fn spend_reports_the_current_periods_counters() {
    let redis = RedisServer::start(false).await;
    let mut conn = redis.connection().await;
    let key = monthly_counter_key("search", "team");
    let () = redis::cmd("HSET")
        .arg(&key)
        .arg(
            &[
                "spent",
                "1250000000",
                "reserved",
                "250000000",
                "requests",
                "3",
                "blocked",
                "1",
            ][..],
        )
        .query_async(&mut conn)
        .await
        .unwrap();
    let ext = ExtProc::start(ExtProcOptions::new(config(), Some(redis.url()))).await;
    let (status, body) = api_get(&ext, "/v1/spend").await;
    assert_eq!(status, 200, "{body}");
    let spend: Value = serde_json::from_str(&body).unwrap();
    let teams: Vec<&str> = spend["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["team"].as_str().unwrap())
        .collect();
    assert_eq!(teams, ["search", "secure", "unknown"]);
    let search = &spend["teams"][0];
    assert_eq!(search["period"], tally_tests::expect::monthly_utc_key());
    assert_eq!(search["spentUsd"], "1.25");
    assert_eq!(search["reservedUsd"], "0.25");
    assert_eq!(search["requests"], 3);
    assert_eq!(search["blocked"], 1);
    assert_eq!(search["limitUsd"], Value::Null, "no budget, no limit");
}
