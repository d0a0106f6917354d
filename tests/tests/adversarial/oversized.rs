//! Item 1: request bodies over tonic's default 4 MiB message limit. Envoy sends
//! them whole when it buffers the body; they must be read and decided on like any
//! other, and a message that cannot be read at all is a failure under the fail mode
//! (closed: refused; open: charged its worst case and recorded), never a free pass.

use std::time::Duration;

use envoy_types::pb::envoy::service::ext_proc::v3::ProcessingResponse;
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use tally_tests::fixtures::extproc::FailMode;
use tally_tests::fixtures::process::wait_until;
use tally_tests::fixtures::redis::RedisServer;
use tally_tests::scenarios;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::support::*;
use crate::{EXHAUSTED, assert_counters_match_ledger, assert_refused_and_recorded, envoy_h2, exhausted_stack};

/// An invoke body padded with whitespace to `len` bytes.
fn padded_body(len: usize) -> Vec<u8> {
    let mut body = br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"messages":[]"#.to_vec();
    body.resize(len - 1, b' ');
    body.push(b'}');
    body
}

/// Headers, then the padded body of `len` bytes; the service's answers.
async fn send_padded(fail_mode: FailMode, len: usize, redis: &RedisServer, limit: &str) -> Vec<ProcessingResponse> {
    let svc = start(&config(Some(limit)), redis, fail_mode).await;
    let length = len.to_string();
    let headers = req_headers(
        &model_path(HAIKU, "invoke"),
        &[("x-team-id", "search"), ("content-length", &length)],
        false,
    );
    let mut call = svc.open().await;
    let mut answers = vec![call.send(headers).await];
    answers.push(call.send(req_body(&padded_body(len))).await);
    call.finish().await;
    svc.stop().await;
    answers
}

#[tokio::test]
async fn a_body_over_4_mib_is_read_and_refused_on_an_exhausted_budget() {
    let redis = RedisServer::start(false).await;
    let answers = send_padded(FailMode::Open, 5 * 1024 * 1024, &redis, EXHAUSTED).await;
    assert_eq!(refusal_status(&answers[1]), Some(400), "{:?}", answers[1].response);
    let records = assert_counters_match_ledger(&redis).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["outcome"], "blocked");
}

#[tokio::test]
async fn an_unreadable_body_is_refused_when_failing_closed() {
    let redis = RedisServer::start(false).await;
    let answers = send_padded(FailMode::Closed, 65 * 1024 * 1024, &redis, "1000").await;
    assert_eq!(refusal_status(&answers[1]), Some(503), "{:?}", answers[1].response);
    let records = assert_counters_match_ledger(&redis).await;
    assert_eq!(records.len(), 1, "the refusal is recorded");
}

#[tokio::test]
async fn an_unreadable_body_is_charged_its_worst_case_when_failing_open() {
    let redis = RedisServer::start(false).await;
    let len = 65 * 1024 * 1024;
    let svc = start(&config(Some("1000")), &redis, FailMode::Open).await;
    let headers = req_headers(
        &model_path(HAIKU, "invoke"),
        &[("x-team-id", "search"), ("content-length", &len.to_string())],
        false,
    );
    // Sent raw: the stream breaks on the unreadable message, so no answer comes.
    let (tx, rx) = mpsc::channel(2);
    let mut inbound = ExternalProcessorClient::new(svc.channel())
        .process(ReceiverStream::new(rx))
        .await
        .expect("open an ext_proc stream")
        .into_inner();
    tx.send(headers).await.expect("send the headers");
    inbound.message().await.expect("an answer to the headers");
    tx.send(req_body(&padded_body(len))).await.expect("send the body");
    let ended = inbound.message().await;
    assert!(
        !matches!(ended, Ok(Some(_))),
        "no answer to an unreadable body: {ended:?}"
    );
    drop(tx);
    let recorded = wait_until(Duration::from_secs(5), || async {
        !ledger(&redis, "search").await.is_empty()
    })
    .await;
    assert!(recorded, "the call is recorded");
    let records = ledger(&redis, "search").await;
    assert_eq!(records[0]["outcome"], "incomplete");
    // Haiku's worst case: every body byte at the dearest input class (1 USD/1M)
    // plus the 8192-token output cap at 4 USD/1M.
    assert_eq!(records[0]["costNanos"].as_i64(), Some(len as i64 * 1000 + 8192 * 4000));
    assert_counters_match_ledger(&redis).await;
    svc.stop().await;
}

/// Every body the chart lets Envoy buffer fits in one message the ext_proc reads,
/// with room for the headers and attributes around it.
#[test]
fn the_charts_largest_buffered_body_fits_the_ext_procs_message_limit() {
    let schema = tally_tests::fixtures::tools::workspace_root().join("charts/tally/values.schema.json");
    let schema: serde_json::Value = serde_json::from_slice(&std::fs::read(&schema).expect("the schema")).unwrap();
    let max = schema["properties"]["gateway"]["properties"]["bufferLimitBytes"]["maximum"]
        .as_u64()
        .expect("bufferLimitBytes has a maximum");
    let headroom = 1024 * 1024;
    assert!(
        max + headroom <= tally_extproc::server::MAX_MESSAGE_BYTES as u64,
        "bufferLimitBytes may reach {max}, over the ext_proc's message limit"
    );
}

/// Through real Envoy, which buffers the 5 MiB body and sends it in one message:
/// against an exhausted budget the call is refused, never forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_4_mib_through_envoy_is_refused_on_an_exhausted_budget() {
    let stack = exhausted_stack().await;
    let path = format!("/model/{}/invoke", scenarios::US_HAIKU);
    let body = padded_body(5 * 1024 * 1024);
    let (status, error_type, text) = envoy_h2::post(stack.envoy.listen_port(), &path, "search", body, None).await;
    assert_refused_and_recorded(&stack.redis, (status, error_type, text)).await;
}
