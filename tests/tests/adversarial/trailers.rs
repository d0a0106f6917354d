//! Item 3: a request with trailers. Envoy then sends the BUFFERED body with
//! `end_of_stream=false` (and the trailers after it, when asked): the call must be
//! admitted on that body or on the trailers, never go upstream unreserved.

use envoy_types::pb::envoy::config::core::v3::HeaderMap;
use envoy_types::pb::envoy::service::ext_proc::v3::{HttpTrailers, ProcessingRequest, processing_request};
use tally_tests::fixtures::extproc::FailMode;
use tally_tests::fixtures::redis::RedisServer;
use tally_tests::scenarios;

use crate::support::*;
use crate::{EXHAUSTED, assert_counters_match_ledger, assert_refused_and_recorded, envoy_h2, exhausted_stack};

const BODY: &[u8] = br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":64000,"messages":[]}"#;
/// `ProcessingMode.request_trailer_mode` SEND.
const SEND: i32 = 1;

fn trailers() -> ProcessingRequest {
    ProcessingRequest {
        request: Some(processing_request::Request::RequestTrailers(HttpTrailers {
            trailers: Some(HeaderMap {
                headers: vec![hv("x-checksum", b"abc")],
            }),
        })),
        ..Default::default()
    }
}

fn invoke_headers() -> ProcessingRequest {
    req_headers(&model_path(SONNET_US, "invoke"), &[("x-team-id", "search")], false)
}

#[tokio::test]
async fn a_body_followed_by_trailers_is_refused_on_an_exhausted_budget() {
    let redis = RedisServer::start(false).await;
    let svc = start(&config(Some(EXHAUSTED)), &redis, FailMode::Open).await;
    let mut call = svc.open().await;
    let asked = call.send(invoke_headers()).await;
    let mode = asked.mode_override.expect("the body is asked for");
    assert_eq!(
        mode.request_trailer_mode, SEND,
        "the trailers are asked for with the body"
    );
    // With trailers Envoy ends the BUFFERED body without end_of_stream.
    let answer = call.send(req_body_chunk(BODY, false)).await;
    assert_eq!(refusal_status(&answer), Some(400), "refused at the body: {answer:?}");
    call.finish().await;
    let records = assert_counters_match_ledger(&redis).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["outcome"], "blocked");
    svc.stop().await;
}

#[tokio::test]
async fn trailers_without_a_body_admit_the_call_before_it_goes_upstream() {
    let redis = RedisServer::start(false).await;
    let svc = start(&config(Some(EXHAUSTED)), &redis, FailMode::Open).await;
    let mut call = svc.open().await;
    call.send(invoke_headers()).await;
    let answer = call.send(trailers()).await;
    assert_eq!(
        refusal_status(&answer),
        Some(400),
        "refused at the trailers: {answer:?}"
    );
    call.finish().await;
    let records = assert_counters_match_ledger(&redis).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["outcome"], "blocked");
    svc.stop().await;
}

/// Through real Envoy: an HTTP/2 request whose body is followed by trailers, against
/// an exhausted budget, is refused before it reaches Bedrock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_trailers_through_envoy_is_refused_on_an_exhausted_budget() {
    let stack = exhausted_stack().await;
    let path = format!("/model/{}/invoke", scenarios::US_HAIKU);
    let mut trailers = hyper::HeaderMap::new();
    trailers.insert("x-checksum", "abc".parse().expect("a header value"));
    let (status, error_type, text) = envoy_h2::post(
        stack.envoy.listen_port(),
        &path,
        "search",
        BODY.to_vec(),
        Some(trailers),
    )
    .await;
    assert_refused_and_recorded(&stack.redis, (status, error_type, text)).await;
}
