//! Every call is priced from its usage to the nano-dollar, settled and ledgered:
//! usage in a JSON body, in Bedrock's token-count headers, in an event stream
//! split anywhere.

use std::sync::Arc;

use envoy_types::pb::envoy::service::ext_proc::v3::{ProcessingResponse, processing_response};
use serde_json::json;
use tally_tests::fixtures::extproc::FailMode;
use tally_tests::fixtures::extproc_service::ExtProcService;
use tally_tests::fixtures::redis::RedisServer;

use crate::support::*;

#[tokio::test]
async fn converse_is_priced_to_the_nano_dollar_settled_and_ledgered() {
    let redis = RedisServer::start(false).await;
    let svc = start(&config(Some("100")), &redis, FailMode::Open).await;
    let body =
        json!({"messages": [{"role": "user", "content": [{"text": "hello"}]}], "inferenceConfig": {"maxTokens": 1000}})
            .to_string();
    let request = req_headers(
        &converse_path(SONNET_US),
        &[
            ("x-team-id", "search"),
            ("x-workflow-id", "rag"),
            ("x-tenant-id", "acme"),
            ("amz-sdk-invocation-id", "inv-1"),
            ("x-tally-cost-usd", "spoofed"),
        ],
        false,
    );
    let out = svc.exchange(converse_call(request, body.as_bytes())).await;
    assert_answers(&out);
    assert_converse_recorded(&redis, &svc).await;
    svc.stop().await;
}

/// What the service answered to the four messages of the Converse call.
fn assert_answers(out: &[ProcessingResponse]) {
    assert_eq!(out.len(), 4);
    // The client's x-tally-* header is stripped before the call goes upstream.
    let first = match &out[0].response {
        Some(processing_response::Response::RequestHeaders(h)) => h.response.clone().unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(
        first
            .header_mutation
            .unwrap()
            .remove_headers
            .contains(&"x-tally-cost-usd".to_string())
    );
    // Usage is in the body: the response headers are held (BUFFERED) and the cost goes on the body reply.
    let mode = out[2].mode_override.expect("a mode override on response headers");
    assert_eq!(mode.response_body_mode, 2 /* BUFFERED */);
    let headers = set_headers(&out[3]);
    assert_eq!(header(&headers, "x-tally-cost-usd"), Some(CONVERSE_COST_USD));
    assert_eq!(header(&headers, "x-tally-request-id"), Some("inv-1"));
    assert_eq!(header(&headers, "x-tally-budget-remaining-usd"), Some("99.89086834"));
    assert_eq!(header(&headers, "x-tally-budget-scope"), Some("team"));
}

/// The ledger record, the counters and the spend metric of the Converse call.
async fn assert_converse_recorded(redis: &RedisServer, svc: &ExtProcService) {
    let records = ledger(redis, "search").await;
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r["costNanos"], CONVERSE_COST_NANOS);
    assert_eq!(
        (r["team"].as_str(), r["tenant"].as_str(), r["workflow"].as_str()),
        (Some("search"), Some("acme"), Some("rag"))
    );
    assert_eq!(
        (
            r["inputTokens"].as_u64(),
            r["cacheWrite5mTokens"].as_u64(),
            r["cacheWrite1hTokens"].as_u64()
        ),
        (Some(1234), Some(3456), Some(7890))
    );
    assert_eq!(r["operation"], "Converse");
    assert_eq!(r["modelId"], SONNET_US);
    assert_eq!(r["outcome"], "ok");
    assert_eq!(r["requestId"], "inv-1");
    assert_eq!(r["teamBudgetRemainingNanos"], 100_000_000_000i64 - CONVERSE_COST_NANOS);
    assert_eq!(counter(redis, "search", "spent").await, CONVERSE_COST_NANOS);
    assert_eq!(counter(redis, "search", "reserved").await, 0);
    assert_eq!(counter(redis, "search", "requests").await, 1);
    let metrics = svc.metrics().await;
    assert!(
        metrics.contains(&format!(
            "tally_spend_nanos_total{{team=\"search\",tenant=\"acme\",workflow=\"rag\",model=\"{SONNET_US}\"}} {CONVERSE_COST_NANOS}"
        )),
        "{metrics}"
    );
}

#[tokio::test]
async fn invoke_model_priced_from_token_headers_without_reading_the_body() {
    let redis = RedisServer::start(false).await;
    let svc = start(&config(None), &redis, FailMode::Open).await;
    let out = svc
        .exchange(vec![
            req_headers(&model_path(HAIKU, "invoke"), &[("x-team-id", "search")], false),
            req_body(br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[]}"#),
            resp_headers(
                200,
                &[
                    ("x-amzn-bedrock-input-token-count", "1000"),
                    ("x-amzn-bedrock-output-token-count", "100"),
                    ("x-amzn-bedrock-cache-read-input-token-count", "0"),
                    ("x-amzn-bedrock-cache-write-input-token-count", "0"),
                ],
            ),
        ])
        .await;
    // 1000 × 0.8 + 100 × 4 = 0.0012 USD, decided on the headers: no body mode requested.
    assert!(out[2].mode_override.is_none());
    assert_eq!(cost_header(&out[2]).as_deref(), Some("0.0012"));
    assert_eq!(counter(&redis, "search", "spent").await, 1_200_000);
    svc.stop().await;
}

#[tokio::test]
async fn invoke_stream_split_at_every_byte_boundary_is_charged_exactly() {
    let redis = RedisServer::start(false).await;
    let svc = Arc::new(start(&config(None), &redis, FailMode::Open).await);
    let stream = anthropic_stream();
    let splits: Vec<usize> = (0..=stream.len()).collect();
    // Two workers keep this fast on 2 cores; every split is its own call.
    let mut tasks = Vec::new();
    for part in splits.chunks(splits.len().div_ceil(2)) {
        let (svc, stream, part) = (svc.clone(), stream.clone(), part.to_vec());
        tasks.push(tokio::spawn(async move {
            for split in part {
                stream_split_at(&svc, &stream, split).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let records = ledger(&redis, "search").await;
    assert_eq!(records.len(), stream.len() + 1);
    for r in &records {
        assert_eq!(
            (r["costNanos"].as_i64(), r["outcome"].as_str()),
            (Some(STREAM_COST_NANOS), Some("ok")),
            "{r}"
        );
        assert_eq!(r["operation"], "InvokeModelWithResponseStream");
    }
    assert_eq!(
        counter(&redis, "search", "spent").await,
        STREAM_COST_NANOS * (stream.len() as i64 + 1)
    );
    assert_eq!(counter(&redis, "search", "reserved").await, 0);
}

/// One streamed invoke whose response body arrives in two pieces cut at byte `split`.
async fn stream_split_at(svc: &ExtProcService, stream: &[u8], split: usize) {
    let out = svc
        .exchange(vec![
            req_headers(
                &model_path(SONNET_US, "invoke-with-response-stream"),
                &[
                    ("x-team-id", "search"),
                    ("amz-sdk-invocation-id", &format!("split-{split}")),
                ],
                false,
            ),
            req_body(br#"{"max_tokens":50,"messages":[]}"#),
            resp_headers(200, &[("content-type", "application/vnd.amazon.eventstream")]),
            resp_body(&stream[..split], false),
            resp_body(&stream[split..], false),
            resp_body(b"", true),
        ])
        .await;
    assert_eq!(
        out[2].mode_override.expect("streamed mode").response_body_mode,
        1 /* STREAMED */
    );
}
