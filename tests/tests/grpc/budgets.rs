//! Admission: a call is reserved against its budgets before it goes upstream and
//! refused when they cannot cover it, on the tightest bound the request allows;
//! models outside an allowlist and identities Envoy does not vouch for are denied.

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::service::ext_proc::v3::ProcessingResponse;
use tally_config::compiled::TeamConfig;
use tally_config::money::Nanos;
use tally_tests::fixtures::extproc::FailMode;
use tally_tests::fixtures::extproc_service::{ExtProcService, OpenExchange};
use tally_tests::fixtures::process::wait_until;
use tally_tests::fixtures::redis::RedisServer;

use crate::support::*;

const HAIKU_INVOKE_BODY: &[u8] = br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":1000,"messages":[]}"#;
/// Haiku: input 0.8 USD/1M, dearest input class 1 USD/1M (5-minute cache writes), output
/// 4 USD/1M, cap 8192 tokens.
const BODY_BYTES: i64 = HAIKU_INVOKE_BODY.len() as i64;
/// Worst case from `content-length` (every byte a token at the dearest input price) and the
/// model's output cap, nano-USD.
const CAP_WORST: i64 = BODY_BYTES * 1000 + 8192 * 4000;
/// The body's input bound: 64 tokens per request, 4 for its object and its array, and the 18
/// bytes of "bedrock-2023-05-31".
const BODY_INPUT_TOKENS: i64 = 64 + 2 * 4 + 18;
/// Worst case from the body: its input bound at the input price and `max_tokens` = 1000, nano-USD.
const BODY_WORST: i64 = BODY_INPUT_TOKENS * 800 + 1000 * 4000;
/// `ProcessingMode` body modes.
const NONE: i32 = 0;
const BUFFERED: i32 = 2;

#[tokio::test]
async fn concurrent_calls_are_admitted_only_while_the_budget_covers_them() {
    let redis = RedisServer::start(false).await;
    // Worst case of each call: the body's input bound × 0.8 + 1000 × 4 (haiku, USD/1M) = BODY_WORST.
    let k = 5;
    let limit = Nanos(BODY_WORST * k + BODY_WORST / 2);
    let svc = Arc::new(start(&config(Some(&limit.to_string())), &redis, FailMode::Open).await);
    let n = 40;
    // Phase 1: every call reserves at once and holds its reservation (no response yet).
    let (admitted, refused_messages) = hold_reservations(&svc, n).await;
    assert_eq!(
        admitted.len() as i64,
        k,
        "exactly the calls the budget covers are admitted"
    );
    assert!(
        refused_messages[0].contains("team \\\"search\\\"") && refused_messages[0].contains("resets at"),
        "{}",
        refused_messages[0]
    );
    // Phase 2: the admitted calls complete with real usage (500 in, 200 out = 0.0012 USD).
    for mut call in admitted {
        call.send(resp_headers(
            200,
            &[
                ("x-amzn-bedrock-input-token-count", "500"),
                ("x-amzn-bedrock-output-token-count", "200"),
            ],
        ))
        .await;
    }
    wait_until(Duration::from_secs(5), || async {
        counter(&redis, "search", "requests").await == k
    })
    .await;
    let spent = counter(&redis, "search", "spent").await;
    assert_eq!(spent, k * 1_200_000);
    assert!(spent <= limit.0);
    assert_eq!(counter(&redis, "search", "reserved").await, 0);
    let records = ledger(&redis, "search").await;
    let ledger_sum: i64 = records.iter().map(|r| r["costNanos"].as_i64().unwrap()).sum();
    assert_eq!(ledger_sum, spent, "counters equal the sum of ledger records");
    assert_eq!(
        records.iter().filter(|r| r["outcome"] == "blocked").count(),
        (n - k) as usize
    );
    assert_eq!(counter(&redis, "search", "blocked").await, n - k);
}

/// Sends the headers and body of `n` Haiku invokes at once and keeps the admitted
/// calls open (holding their reservations); the messages of the refused ones.
async fn hold_reservations(svc: &Arc<ExtProcService>, n: i64) -> (Vec<OpenExchange>, Vec<String>) {
    let pending: Vec<_> = (0..n)
        .map(|i| {
            let svc = svc.clone();
            tokio::spawn(async move {
                let mut call = svc.open().await;
                call.send(req_headers(
                    &model_path(HAIKU, "invoke"),
                    &[("x-team-id", "search"), ("amz-sdk-invocation-id", &format!("c-{i}"))],
                    false,
                ))
                .await;
                let resp = call.send(req_body(HAIKU_INVOKE_BODY)).await;
                (call, resp)
            })
        })
        .collect();
    let (mut admitted, mut refused) = (Vec::new(), Vec::new());
    for p in pending {
        let (call, resp) = p.await.unwrap();
        match immediate(&resp) {
            Some(i) => {
                assert_eq!(i.status.unwrap().code, 400);
                assert_eq!(
                    header(&set_headers(&resp), "x-amzn-errortype"),
                    Some("ServiceQuotaExceededException")
                );
                refused.push(String::from_utf8(i.body.clone()).unwrap());
            }
            None => admitted.push(call),
        }
    }
    (admitted, refused)
}

/// One InvokeModel of haiku with `content-length`; returns the answer to its request headers.
async fn invoke_with_length(call: &mut OpenExchange, id: &str) -> ProcessingResponse {
    let len = HAIKU_INVOKE_BODY.len().to_string();
    call.send(req_headers(
        &model_path(HAIKU, "invoke"),
        &[
            ("x-team-id", "search"),
            ("amz-sdk-invocation-id", id),
            ("content-length", &len),
        ],
        false,
    ))
    .await
}

/// `--request-body when-needed`, with `search`'s budget at `team_limit` USD.
async fn when_needed(team_limit: &str, redis: &RedisServer) -> ExtProcService {
    start_with(
        &config(Some(team_limit)),
        &redis.url(),
        FailMode::Open,
        &["--request-body", "when-needed"],
    )
    .await
}

#[tokio::test]
async fn reserves_from_the_headers_when_the_output_cap_fits_and_reads_the_body_when_not() {
    the_cap_fits_so_the_headers_reserve().await;
    only_the_body_bound_fits_so_the_body_is_read().await;
    neither_fits_so_the_body_bound_refuses_once().await;
    a_stream_reads_its_body_even_when_the_cap_fits().await;
    by_default_the_body_is_read_even_when_the_cap_fits().await;
}

/// Reserved at the headers, Envoy told not to send the body.
async fn the_cap_fits_so_the_headers_reserve() {
    let redis = RedisServer::start(false).await;
    let svc = when_needed("1", &redis).await;
    let mut call = svc.open().await;
    let answer = invoke_with_length(&mut call, "fits").await;
    let mode = answer.mode_override.expect("a complete mode after admission");
    assert_eq!((mode.request_body_mode, mode.response_body_mode), (NONE, NONE));
    assert_eq!(mode.response_header_mode, 1 /* SEND */);
    assert_eq!(counter(&redis, "search", "reserved").await, CAP_WORST);
    let done = call.send(resp_headers(200, &HAIKU_TOKEN_HEADERS)).await;
    assert_eq!(cost_header(&done).as_deref(), Some("0.0012"));
    assert_eq!(counter(&redis, "search", "spent").await, 1_200_000);
    assert_eq!(counter(&redis, "search", "reserved").await, 0);
    svc.stop().await;
}

/// The tentative reservation holds nothing, counts no refusal, and the body is asked
/// for; the body's bound is then reserved.
async fn only_the_body_bound_fits_so_the_body_is_read() {
    let redis = RedisServer::start(false).await;
    let limit = Nanos(BODY_WORST + BODY_WORST / 2);
    let svc = when_needed(&limit.to_string(), &redis).await;
    let mut call = svc.open().await;
    let answer = invoke_with_length(&mut call, "tight").await;
    let mode = answer.mode_override.expect("asks for the body");
    assert_eq!(mode.request_body_mode, BUFFERED);
    assert_eq!(counter(&redis, "search", "reserved").await, 0);
    assert_eq!(counter(&redis, "search", "blocked").await, 0);
    let admitted = call.send(req_body(HAIKU_INVOKE_BODY)).await;
    assert!(immediate(&admitted).is_none(), "{admitted:?}");
    assert_eq!(counter(&redis, "search", "reserved").await, BODY_WORST);
    call.send(resp_headers(200, &HAIKU_TOKEN_HEADERS)).await;
    assert_eq!(counter(&redis, "search", "spent").await, 1_200_000);
    svc.stop().await;
}

/// Refused once, on the body's bound, and counted once.
async fn neither_fits_so_the_body_bound_refuses_once() {
    let redis = RedisServer::start(false).await;
    let limit = Nanos(BODY_WORST / 2);
    let svc = when_needed(&limit.to_string(), &redis).await;
    let mut call = svc.open().await;
    invoke_with_length(&mut call, "over").await;
    let refused = call.send(req_body(HAIKU_INVOKE_BODY)).await;
    let Some(r) = immediate(&refused) else {
        panic!("expected a refusal: {refused:?}");
    };
    let message = String::from_utf8_lossy(&r.body);
    assert!(message.contains(&Nanos(BODY_WORST).to_string()), "{message}");
    assert_eq!(counter(&redis, "search", "blocked").await, 1);
    let records = ledger(&redis, "search").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["outcome"], "blocked");
    svc.stop().await;
}

/// A cancelled stream is charged its reservation, which must be the request's own
/// max_tokens bound: a stream's body is read even when the cap fits.
async fn a_stream_reads_its_body_even_when_the_cap_fits() {
    let redis = RedisServer::start(false).await;
    let svc = when_needed("1", &redis).await;
    let mut call = svc.open().await;
    let len = HAIKU_INVOKE_BODY.len().to_string();
    let answer = call
        .send(req_headers(
            &model_path(HAIKU, "invoke-with-response-stream"),
            &[("x-team-id", "search"), ("content-length", &len)],
            false,
        ))
        .await;
    assert_body_read_and_bound_reserved(&redis, &mut call, answer).await;
    svc.stop().await;
}

/// The default, `--request-body always`: the body is read even when the cap would fit.
async fn by_default_the_body_is_read_even_when_the_cap_fits() {
    let redis = RedisServer::start(false).await;
    let svc = start(&config(Some("1")), &redis, FailMode::Open).await;
    let mut call = svc.open().await;
    let answer = invoke_with_length(&mut call, "always").await;
    assert_body_read_and_bound_reserved(&redis, &mut call, answer).await;
    svc.stop().await;
}

/// `answer` (to the request headers) asks for the body, and the body's bound is reserved.
async fn assert_body_read_and_bound_reserved(redis: &RedisServer, call: &mut OpenExchange, answer: ProcessingResponse) {
    assert_eq!(
        answer.mode_override.expect("asks for the body").request_body_mode,
        BUFFERED
    );
    call.send(req_body(HAIKU_INVOKE_BODY)).await;
    assert_eq!(counter(redis, "search", "reserved").await, BODY_WORST);
}

#[tokio::test]
async fn disallowed_models_and_foreign_identities_are_denied() {
    let redis = RedisServer::start(false).await;
    let mut cfg = config(None);
    cfg.teams.push(TeamConfig {
        team: "secure".into(),
        source: "secure/secure".into(),
        cost_center: None,
        tenants: vec![],
        budget: None,
        workflows: vec![],
        allowed_models: vec![],
        principals: vec!["spiffe://cluster.local/ns/secure/sa/app".into()],
    });
    let svc = start(&cfg, &redis, FailMode::Open).await;
    let out = svc
        .exchange(vec![req_headers(
            "/model/amazon.nova-pro-v1%3A0/converse",
            &[("x-team-id", "search")],
            false,
        )])
        .await;
    let Some(i) = immediate(&out[0]) else {
        panic!("expected 403, got {:?}", out[0].response);
    };
    assert_eq!(i.status.unwrap().code, 403);
    assert_eq!(
        header(&set_headers(&out[0]), "x-amzn-errortype"),
        Some("AccessDeniedException")
    );
    assert!(String::from_utf8_lossy(&i.body).contains("amazon.nova-pro-v1:0"));
    // A header claiming "secure" without the workload identity Envoy vouches for.
    let out = svc
        .exchange(vec![req_headers(
            &converse_path(HAIKU),
            &[("x-team-id", "secure")],
            false,
        )])
        .await;
    assert_eq!(refusal_status(&out[0]), Some(403));
    let records = ledger(&redis, "search").await;
    assert_eq!(records[0]["outcome"], "denied");
    svc.stop().await;
}
