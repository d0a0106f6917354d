//! When something goes away mid-flight: Redis (fail open spools and replays every
//! completed charge, fail closed refuses with a retryable error) and the client
//! (a cut stream is charged what it used, or its whole reservation).

use std::time::Duration;

use redis::AsyncCommands;
use tally_config::keys;
use tally_tests::fixtures::extproc::FailMode;
use tally_tests::fixtures::process::wait_until;
use tally_tests::fixtures::redis::RedisServer;

use crate::support::*;

#[tokio::test]
async fn redis_outage_in_fail_open_loses_no_completed_charge() {
    let mut redis = RedisServer::start(true).await;
    let svc = start(&config(Some("1000")), &redis, FailMode::Open).await;
    for i in 0..3 {
        assert_eq!(one_converse(&svc, &format!("before-{i}")).await.len(), 4);
    }
    redis.kill();
    for i in 0..4 {
        let out = one_converse(&svc, &format!("during-{i}")).await;
        assert_eq!(out.len(), 4, "fail-open: calls proceed while Redis is down");
        assert_eq!(cost_header(&out[3]).as_deref(), Some(CONVERSE_COST_USD));
    }
    let metrics = svc.metrics().await;
    assert!(metrics.contains("tally_spool_depth 4"), "{metrics}");
    redis.restart().await;
    let drained = wait_until(Duration::from_secs(20), || async {
        svc.metrics().await.contains("tally_spool_depth 0")
    })
    .await;
    assert!(drained, "spool replayed after Redis returned");
    for i in 0..2 {
        one_converse(&svc, &format!("after-{i}")).await;
    }
    let records = ledger(&redis, "search").await;
    assert_eq!(records.len(), 9, "every completed call is in the ledger exactly once");
    assert_eq!(counter(&redis, "search", "spent").await, 9 * CONVERSE_COST_NANOS);
    assert_eq!(counter(&redis, "search", "requests").await, 9);
    svc.stop().await;
}

/// A spooled settlement Redis refuses for good (the set its charge id goes to holds a
/// string: WRONGTYPE before the script writes anything) is set aside in the spool's
/// quarantine and counted, and a settlement spooled after it still reaches Redis. Before
/// the quarantine, that one record held back every other one.
#[tokio::test]
async fn a_settlement_redis_refuses_for_good_is_quarantined_and_the_rest_replay() {
    let mut redis = RedisServer::start(true).await;
    let svc = start(&config(Some("1000")), &redis, FailMode::Open).await;
    let now_minute = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / 60;
    let mut conn = redis.connection().await;
    for minute in now_minute - 2..now_minute + 10 {
        let _: () = conn.set(keys::settled("search", minute), "not a set").await.unwrap();
    }
    one_converse(&svc, "poisoned").await;
    let metric = |line: &'static str| {
        let svc = &svc;
        async move { svc.metrics().await.contains(line) }
    };
    let quarantined = wait_until(Duration::from_secs(10), || metric("tally_spool_quarantined_total 1")).await;
    assert!(quarantined, "{}", svc.metrics().await);

    redis.kill();
    let headers = req_headers(
        &converse_path(SONNET_US),
        &[("x-team-id", "another"), ("amz-sdk-invocation-id", "after")],
        false,
    );
    svc.exchange(converse_call(headers, br#"{"messages":[]}"#)).await;
    let spooled = wait_until(Duration::from_secs(10), || metric("tally_spool_depth 1")).await;
    assert!(spooled, "{}", svc.metrics().await);
    redis.restart().await;
    let replayed = wait_until(Duration::from_secs(20), || async {
        ledger(&redis, "unknown").await.len() == 1
    })
    .await;
    let metrics = svc.metrics().await;
    assert!(
        replayed,
        "the settlement behind the poisoned one reached Redis:\n{metrics}"
    );
    for line in [
        "tally_spool_depth 0",
        "tally_spool_replayed_total 1",
        "tally_spool_quarantined_total 1",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    assert!(
        ledger(&redis, "search").await.is_empty(),
        "the poisoned charge is only in quarantine"
    );
    svc.stop().await;
}

#[tokio::test]
async fn redis_outage_in_fail_closed_refuses_with_a_retryable_error() {
    let mut redis = RedisServer::start(false).await;
    let svc = start(&config(Some("1000")), &redis, FailMode::Closed).await;
    redis.kill();
    let out = one_converse(&svc, "closed-1").await;
    let last = out.last().unwrap();
    let Some(i) = immediate(last) else {
        panic!("expected a 503, got {:?}", last.response);
    };
    assert_eq!(i.status.unwrap().code, 503);
    assert!(String::from_utf8_lossy(&i.body).contains("fail closed"));
    svc.stop().await;
}

#[tokio::test]
async fn client_disconnect_mid_stream_is_recorded_incomplete() {
    let redis = RedisServer::start(false).await;
    let svc = start(&config(None), &redis, FailMode::Open).await;
    let stream = anthropic_stream();
    let path = model_path(SONNET_US, "invoke-with-response-stream");
    let body = br#"{"max_tokens":50,"messages":[]}"#;
    let request = |id: &str| req_headers(&path, &[("x-team-id", "search"), ("amz-sdk-invocation-id", id)], false);
    // The stream ends (Envoy resets it) after the message_start chunk: its counts are not
    // a final usage, so it is charged the whole reservation like a cut before any usage.
    let first_frame_len = u32::from_be_bytes(stream[0..4].try_into().unwrap()) as usize;
    svc.exchange(vec![
        request("cut-1"),
        req_body(body),
        resp_headers(200, &[]),
        resp_body(&stream[..first_frame_len], false),
    ])
    .await;
    // Cut before any usage: charged the whole reservation: the body's input bound (64 tokens
    // per request + 4 for each of its object and array) × 3.3 + 50 × 16.5, USD/1M.
    svc.exchange(vec![request("cut-2"), req_body(body)]).await;
    let ok = wait_until(Duration::from_secs(5), || async {
        ledger(&redis, "search").await.len() == 2
    })
    .await;
    assert!(ok, "both cut calls recorded");
    let records = ledger(&redis, "search").await;
    let by_id = |id: &str| records.iter().find(|r| r["requestId"] == id).unwrap().clone();
    let input_bound: i64 = 64 + 2 * 4;
    for id in ["cut-1", "cut-2"] {
        let record = by_id(id);
        assert_eq!(
            (record["outcome"].as_str(), record["costNanos"].as_i64()),
            (Some("incomplete"), Some(input_bound * 3_300 + 50 * 16_500)),
            "{id}"
        );
    }
    assert_eq!(counter(&redis, "search", "reserved").await, 0);
    svc.stop().await;
}
