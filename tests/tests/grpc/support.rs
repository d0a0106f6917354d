//! What the gRPC suite shares: its catalog and team, the service as the suite
//! starts it, `ProcessingRequest` builders, readers of the answers, and the
//! Redis records a call leaves.

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    HttpBody, HttpHeaders, ImmediateResponse, ProcessingRequest, ProcessingResponse, processing_request,
    processing_response,
};
use redis::AsyncCommands;
use serde_json::{Value, json};
use tally_config::compiled::*;
use tally_config::money::{Nanos, NanosPerMillion};
use tally_config::period::Period;
use tally_tests::bedrock_sim::frames::padded_chunk_frame;
use tally_tests::expect::{hash_field, monthly_counter_key};
use tally_tests::fixtures::extproc::{ExtProcOptions, FailMode};
use tally_tests::fixtures::extproc_service::ExtProcService;
use tally_tests::fixtures::redis::RedisServer;

pub const SONNET_US: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
pub const HAIKU: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";

fn usd(s: &str) -> NanosPerMillion {
    NanosPerMillion::parse_usd(s).unwrap()
}

fn price_entry(
    pattern: &str,
    [input, output, cache_read, cache_write_5m, cache_write_1h]: [&str; 5],
    cap: u32,
) -> PriceEntry {
    PriceEntry {
        pattern: pattern.into(),
        regions: vec![],
        prices: Prices {
            input: usd(input),
            output: usd(output),
            cache_read: usd(cache_read),
            cache_write_5m: usd(cache_write_5m),
            cache_write_1h: usd(cache_write_1h),
        },
        max_output_tokens: cap,
        source: "test catalog".into(),
        ..PriceEntry::default()
    }
}

/// Sonnet and Haiku priced (USD per 1M), and team `search` (tenant `acme`, workflow `rag`,
/// Anthropic models only) with a monthly blocking budget of `team_limit` USD, if any.
pub fn config(team_limit: Option<&str>) -> CompiledConfig {
    let mut c = CompiledConfig::empty();
    c.generation = "test".into();
    c.catalog.entries = vec![
        price_entry(SONNET_US, ["3.3", "16.5", "0.33", "4.125", "6.6"], 64_000),
        price_entry(HAIKU, ["0.8", "4", "0.08", "1", "0"], 8192),
    ];
    c.teams = vec![TeamConfig {
        team: "search".into(),
        source: "search/search".into(),
        cost_center: None,
        tenants: vec![TenantConfig {
            id: "acme".into(),
            limit: None,
        }],
        budget: team_limit.map(|l| BudgetConfig {
            limit: Nanos::parse_usd(l).unwrap(),
            period: Period::Monthly,
            timezone: "UTC".into(),
            enforcement: Enforcement::Block,
            alert_thresholds: vec![],
        }),
        workflows: vec![WorkflowConfig {
            id: "rag".into(),
            limit: None,
            allowed_models: vec![],
        }],
        allowed_models: vec!["*anthropic.*".into()],
        principals: vec![],
    }];
    c
}

/// Flags every service of the suite runs with: a small spool and ledger, and a config
/// polled fast enough for the reload test.
const SUITE_FLAGS: [&str; 6] = [
    "--spool-max-bytes",
    "67108864",
    "--ledger-max-len",
    "100000",
    "--config-poll-ms",
    "200",
];

/// The service on `config` with the store at `redis_url`, `fail_mode`, and `extra` flags.
pub async fn start_with(
    config: &CompiledConfig,
    redis_url: &str,
    fail_mode: FailMode,
    extra: &[&str],
) -> ExtProcService {
    let mut opts = ExtProcOptions::new(config.clone(), Some(redis_url.to_string()));
    opts.fail_mode = fail_mode;
    opts.extra_args = SUITE_FLAGS.iter().chain(extra).map(|f| f.to_string()).collect();
    ExtProcService::start(&opts).await
}

/// The service on `config` with `redis` as its store.
pub async fn start(config: &CompiledConfig, redis: &RedisServer, fail_mode: FailMode) -> ExtProcService {
    start_with(config, &redis.url(), fail_mode, &[]).await
}

pub fn hv(name: &str, value: &[u8]) -> HeaderValue {
    HeaderValue {
        key: name.into(),
        raw_value: value.to_vec(),
        ..Default::default()
    }
}

/// One message of an ext_proc stream, as Envoy sends it.
fn message(request: processing_request::Request) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(request),
        ..Default::default()
    }
}

fn http_headers(headers: Vec<HeaderValue>, eos: bool) -> HttpHeaders {
    HttpHeaders {
        headers: Some(HeaderMap { headers }),
        end_of_stream: eos,
        ..Default::default()
    }
}

fn http_body(body: &[u8], eos: bool) -> HttpBody {
    HttpBody {
        body: body.to_vec(),
        end_of_stream: eos,
        ..Default::default()
    }
}

pub fn req_headers(path: &str, extra: &[(&str, &str)], eos: bool) -> ProcessingRequest {
    let mut headers = vec![
        hv(":method", b"POST"),
        hv(":path", path.as_bytes()),
        hv(":authority", b"bedrock-runtime.us-east-1.amazonaws.com"),
        hv("content-type", b"application/json"),
    ];
    headers.extend(extra.iter().map(|(n, v)| hv(n, v.as_bytes())));
    let headers = http_headers(headers, eos);
    message(processing_request::Request::RequestHeaders(headers))
}

pub fn req_body_chunk(body: &[u8], eos: bool) -> ProcessingRequest {
    message(processing_request::Request::RequestBody(http_body(body, eos)))
}

pub fn req_body(body: &[u8]) -> ProcessingRequest {
    req_body_chunk(body, true)
}

pub fn resp_headers(status: u16, extra: &[(&str, &str)]) -> ProcessingRequest {
    let mut headers = vec![hv(":status", status.to_string().as_bytes())];
    headers.extend(extra.iter().map(|(n, v)| hv(n, v.as_bytes())));
    let headers = http_headers(headers, false);
    message(processing_request::Request::ResponseHeaders(headers))
}

pub fn resp_body(body: &[u8], eos: bool) -> ProcessingRequest {
    message(processing_request::Request::ResponseBody(http_body(body, eos)))
}

/// The immediate response (a refusal) an answer carries, if it is one.
pub fn immediate(resp: &ProcessingResponse) -> Option<&ImmediateResponse> {
    match &resp.response {
        Some(processing_response::Response::ImmediateResponse(i)) => Some(i),
        _ => None,
    }
}

/// The HTTP status of an immediate response, if the answer is one.
pub fn refusal_status(resp: &ProcessingResponse) -> Option<i32> {
    immediate(resp).map(|i| i.status.unwrap().code)
}

/// Headers set by a response, as `name → value`.
pub fn set_headers(resp: &ProcessingResponse) -> Vec<(String, String)> {
    use processing_response::Response as R;
    let set = match &resp.response {
        Some(R::RequestHeaders(h) | R::ResponseHeaders(h)) => {
            h.response.as_ref().and_then(|c| c.header_mutation.as_ref())
        }
        Some(R::RequestBody(b) | R::ResponseBody(b)) => b.response.as_ref().and_then(|c| c.header_mutation.as_ref()),
        Some(R::ImmediateResponse(i)) => i.headers.as_ref(),
        _ => None,
    };
    set.map(|m| {
        m.set_headers
            .iter()
            .filter_map(|h| h.header.as_ref())
            .map(|h| (h.key.clone(), String::from_utf8_lossy(&h.raw_value).into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// `x-tally-cost-usd` as a response sets it.
pub fn cost_header(resp: &ProcessingResponse) -> Option<String> {
    header(&set_headers(resp), "x-tally-cost-usd").map(str::to_string)
}

/// The path of `operation` (`converse`, `invoke`, …) on `model`, percent-encoded as SDKs send it.
pub fn model_path(model: &str, operation: &str) -> String {
    format!("/model/{}/{operation}", model.replace(':', "%3A"))
}

pub fn converse_path(model: &str) -> String {
    model_path(model, "converse")
}

/// The records of `team`'s ledger stream, oldest first.
pub async fn ledger(redis: &RedisServer, team: &str) -> Vec<Value> {
    let mut conn = redis.connection().await;
    let reply: redis::streams::StreamRangeReply = conn.xrange_all(format!("tally:{{{team}}}:ledger")).await.unwrap();
    reply
        .ids
        .iter()
        .map(|e| match e.map.get("record") {
            Some(redis::Value::BulkString(b)) => serde_json::from_slice(b).unwrap(),
            other => panic!("ledger entry without record: {other:?}"),
        })
        .collect()
}

/// A field of `team`'s monthly team counter.
pub async fn counter(redis: &RedisServer, team: &str, field: &str) -> i64 {
    hash_field(&mut redis.connection().await, &monthly_counter_key(team, "team"), field).await
}

/// 1000 in + 100 out of haiku = 0.0012 USD.
pub const HAIKU_TOKEN_HEADERS: [(&str, &str); 2] = [
    ("x-amzn-bedrock-input-token-count", "1000"),
    ("x-amzn-bedrock-output-token-count", "100"),
];

pub const CONVERSE_USAGE: &str = r#"{"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}},"stopReason":"end_turn",
 "usage":{"inputTokens":1234,"outputTokens":567,"totalTokens":101669,"cacheReadInputTokens":89012,"cacheWriteInputTokens":11346,
 "cacheDetails":[{"ttl":"5m","inputTokens":3456},{"ttl":"1h","inputTokens":7890}]},"metrics":{"latencyMs":100}}"#;
/// 1234×3.3 + 567×16.5 + 89012×0.33 + 3456×4.125 + 7890×6.6 (USD per 1M) = 0.10913166 USD.
pub const CONVERSE_COST_NANOS: i64 = 109_131_660;
pub const CONVERSE_COST_USD: &str = "0.10913166";

/// One whole Converse call: `request` (headers), `body`, a 200 and [`CONVERSE_USAGE`].
pub fn converse_call(request: ProcessingRequest, body: &[u8]) -> Vec<ProcessingRequest> {
    vec![
        request,
        req_body(body),
        resp_headers(200, &[]),
        resp_body(CONVERSE_USAGE.as_bytes(), true),
    ]
}

/// A Converse of Sonnet by `search` with request id `id`, answered with [`CONVERSE_USAGE`].
pub async fn one_converse(svc: &ExtProcService, id: &str) -> Vec<ProcessingResponse> {
    let headers = req_headers(
        &converse_path(SONNET_US),
        &[("x-team-id", "search"), ("amz-sdk-invocation-id", id)],
        false,
    );
    svc.exchange(converse_call(
        headers,
        br#"{"messages":[],"inferenceConfig":{"maxTokens":100}}"#,
    ))
    .await
}

/// An Anthropic invoke stream: input 21, cache read 5, cache writes 1 (5m) + 3 (1h), output 9 (cumulative).
pub fn anthropic_stream() -> Vec<u8> {
    [
        json!({"type":"message_start","message":{"usage":{"input_tokens":21,"output_tokens":1,"cache_read_input_tokens":5,"cache_creation_input_tokens":4,"cache_creation":{"ephemeral_5m_input_tokens":1,"ephemeral_1h_input_tokens":3}}}}),
        json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}),
        json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":4}}),
        json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}),
    ]
    .iter()
    .flat_map(|chunk| padded_chunk_frame(chunk, "abc"))
    .collect()
}
/// 21×3.3 + 9×16.5 + 5×0.33 + 1×4.125 + 3×6.6 (USD/1M) = 0.000243375 USD.
pub const STREAM_COST_NANOS: i64 = 243_375;
