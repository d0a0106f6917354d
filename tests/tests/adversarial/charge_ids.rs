//! Item 2: client ids are attribution, not keys. A zero-cost call (CountTokens)
//! that reuses a priced call's `amz-sdk-invocation-id` and attempt, settled while
//! the priced call still runs, must neither release its reservation nor mark its
//! charge done: each exchange is charged under its own id and leaves its own record.

use tally_tests::fixtures::extproc::FailMode;
use tally_tests::fixtures::redis::RedisServer;

use crate::assert_counters_match_ledger;
use crate::support::*;

/// The client ids both calls send.
const SHARED: [(&str, &str); 3] = [
    ("x-team-id", "search"),
    ("amz-sdk-invocation-id", "shared-id"),
    ("amz-sdk-request", "attempt=1; max=3"),
];

#[tokio::test]
async fn a_count_tokens_call_reusing_a_priced_calls_ids_leaves_its_charge_intact() {
    let redis = RedisServer::start(false).await;
    let svc = start(&config(Some("100")), &redis, FailMode::Closed).await;
    // The priced call: admitted, its reservation held while it runs.
    let mut priced = svc.open().await;
    priced
        .send(req_headers(&converse_path(SONNET_US), &SHARED, false))
        .await;
    let admitted = priced
        .send(req_body(br#"{"messages":[],"inferenceConfig":{"maxTokens":100}}"#))
        .await;
    assert!(immediate(&admitted).is_none(), "the priced call is admitted");
    assert!(
        counter(&redis, "search", "reserved").await > 0,
        "its worst case is held"
    );
    // The free call under the same client ids, settled meanwhile.
    svc.exchange(vec![
        req_headers(&model_path(SONNET_US, "count-tokens"), &SHARED, false),
        req_body(br#"{"input":{"converse":{"messages":[]}}}"#),
        resp_headers(200, &[]),
        resp_body(br#"{"inputTokens":5}"#, true),
    ])
    .await;
    assert!(
        counter(&redis, "search", "reserved").await > 0,
        "the hold survives the free call"
    );
    // The priced call ends and is charged in full.
    priced.send(resp_headers(200, &[])).await;
    priced.send(resp_body(CONVERSE_USAGE.as_bytes(), true)).await;
    priced.finish().await;
    assert_eq!(counter(&redis, "search", "spent").await, CONVERSE_COST_NANOS);
    let records = assert_counters_match_ledger(&redis).await;
    assert_eq!(records.len(), 2, "one record per exchange: {records:#?}");
    assert!(records.iter().all(|r| r["requestId"] == "shared-id"), "{records:#?}");
    assert_ne!(records[0]["chargeId"], records[1]["chargeId"]);
    svc.stop().await;
}
