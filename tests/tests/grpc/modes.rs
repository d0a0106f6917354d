//! Whatever Envoy sends — any body processing mode, honoured overrides or not,
//! and input no SDK would produce — every call is answered, priced and recorded,
//! and nothing malformed refuses a paying call.

use envoy_types::pb::envoy::service::ext_proc::v3::{ProcessingRequest, processing_request};
use tally_tests::fixtures::extproc::FailMode;
use tally_tests::fixtures::redis::RedisServer;

use crate::support::*;

/// Whatever body mode Envoy is configured with (and whether it honours our
/// overrides), every call is still attributed, priced and recorded.
#[tokio::test]
async fn every_envoy_processing_mode_still_prices_the_call() {
    let redis = RedisServer::start(false).await;
    let svc = start(&config(Some("100")), &redis, FailMode::Open).await;
    let invoke = model_path(HAIKU, "invoke");
    let request = |id: &str| {
        req_headers(
            &invoke,
            &[("x-team-id", "search"), ("amz-sdk-invocation-id", id)],
            false,
        )
    };
    // Body mode NONE and overrides not honoured: no body message ever arrives.
    let out = svc
        .exchange(vec![
            req_headers(
                &invoke,
                &[
                    ("x-team-id", "search"),
                    ("content-length", "500"),
                    ("amz-sdk-invocation-id", "none"),
                ],
                false,
            ),
            resp_headers(200, &HAIKU_TOKEN_HEADERS),
        ])
        .await;
    assert_eq!(cost_header(&out[1]).as_deref(), Some("0.0012"));
    // STREAMED request body: several chunks, admitted at the last one.
    let body = br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[]}"#;
    let (a, b) = body.split_at(20);
    let out = svc
        .exchange(vec![
            request("streamed"),
            req_body_chunk(a, false),
            req_body_chunk(b, true),
            resp_headers(200, &HAIKU_TOKEN_HEADERS),
        ])
        .await;
    assert_eq!(out.len(), 4);
    assert_eq!(cost_header(&out[3]).as_deref(), Some("0.0012"));
    // BUFFERED_PARTIAL: a first part without end_of_stream, then the response.
    let out = svc
        .exchange(vec![
            request("partial"),
            req_body_chunk(a, false),
            resp_headers(200, &HAIKU_TOKEN_HEADERS),
        ])
        .await;
    assert_eq!(cost_header(&out[2]).as_deref(), Some("0.0012"));
    // JSON response body streamed in pieces instead of buffered.
    let out = svc
        .exchange(vec![
            req_headers(
                &converse_path(SONNET_US),
                &[("x-team-id", "search"), ("amz-sdk-invocation-id", "json-pieces")],
                false,
            ),
            req_body(br#"{"messages":[]}"#),
            resp_headers(200, &[]),
            resp_body(&CONVERSE_USAGE.as_bytes()[..100], false),
            resp_body(&CONVERSE_USAGE.as_bytes()[100..], true),
        ])
        .await;
    assert_eq!(cost_header(&out[4]).as_deref(), Some(CONVERSE_COST_USD));
    let records = ledger(&redis, "search").await;
    assert_eq!(records.len(), 4);
    assert!(records.iter().all(|r| r["outcome"] == "ok"), "{records:?}");
    assert_eq!(
        counter(&redis, "search", "spent").await,
        3 * 1_200_000 + CONVERSE_COST_NANOS
    );
    assert_eq!(counter(&redis, "search", "reserved").await, 0);
    svc.stop().await;
}

#[tokio::test]
async fn malformed_input_never_crashes_and_never_blocks_a_paying_call() {
    let redis = RedisServer::start(false).await;
    let svc = start(&config(Some("10")), &redis, FailMode::Open).await;
    for (name, msgs) in malformed_calls() {
        let n = msgs.len();
        let out = svc.exchange(msgs).await;
        assert_eq!(out.len(), n, "{name}: every message answered, none refused");
        assert!(out.iter().all(|r| immediate(r).is_none()), "{name}");
    }
    let records = ledger(&redis, "search").await;
    let unknown = ledger(&redis, "unknown").await;
    assert_eq!(records.len() + unknown.len(), 5);
    let mystery = records
        .iter()
        .find(|r| r["modelId"] == "anthropic.mystery-model-v9")
        .expect("unknown model recorded");
    assert_eq!(
        (mystery["unpriced"].as_bool(), mystery["costNanos"].as_i64()),
        (Some(true), Some(0))
    );
    let metrics = svc.metrics().await;
    assert!(
        // Unpriced ids fold into `other` (issue #12 item 11); the ledger keeps the id.
        metrics.contains("tally_unpriced_calls_total{model=\"other\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("tally_stream_decode_errors_total 2"), "{metrics}");
    // A header that is not a configured team is charged to `unknown`, with the claim kept.
    assert_eq!(
        unknown[0]["claimedTeam"].as_str().map(|s| s.starts_with("search")),
        Some(true)
    );
    svc.stop().await;
}

/// Calls carrying what no SDK sends, each with its name.
fn malformed_calls() -> Vec<(&'static str, Vec<ProcessingRequest>)> {
    let search = |path: &str| req_headers(path, &[("x-team-id", "search")], false);
    let stream_path = model_path(SONNET_US, "converse-stream");
    let streamed = |frames: &[u8]| {
        vec![
            search(&stream_path),
            req_body(b"{}"),
            resp_headers(200, &[]),
            resp_body(frames, false),
            resp_body(b"", true),
        ]
    };
    let mut huge = Vec::new();
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    huge.extend_from_slice(&0u32.to_be_bytes());
    huge.extend_from_slice(&crc32fast_hash(&huge[..8]).to_be_bytes());
    let mut corrupt = anthropic_stream();
    corrupt[20] ^= 0xff;
    vec![
        (
            "garbage request body",
            vec![
                search(&converse_path(SONNET_US)),
                req_body(b"\xff\xfe{{{not json"),
                resp_headers(200, &[]),
                resp_body(b"also not json \x00", true),
            ],
        ),
        ("huge frame length", streamed(&huge)),
        ("corrupt frame", streamed(&corrupt)),
        (
            "unknown model",
            converse_call(search("/model/anthropic.mystery-model-v9/converse"), b"{}"),
        ),
        (
            "non-UTF-8 header",
            converse_call(non_utf8_headers(&converse_path(HAIKU)), b"{}"),
        ),
    ]
}

fn non_utf8_headers(path: &str) -> ProcessingRequest {
    let mut r = req_headers(path, &[("x-tenant-id", "\u{1}")], false);
    if let Some(processing_request::Request::RequestHeaders(h)) = &mut r.request {
        h.headers
            .as_mut()
            .unwrap()
            .headers
            .push(hv("x-team-id", b"search\xff\xfe"));
    }
    r
}

fn crc32fast_hash(b: &[u8]) -> u32 {
    // The prelude CRC is what makes a huge length look plausible to a naive decoder.
    let mut h = crc32fast::Hasher::new();
    h.update(b);
    h.finalize()
}
