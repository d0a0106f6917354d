//! gRPC-level integration tests of `tally-extproc`: real `ProcessingRequest`
//! streams (as Envoy sends them) against the service running in-process, with a
//! real redis-server. Expected costs are written out from the catalog prices
//! below, never computed by the code under test.

use std::sync::Arc;
use std::time::Duration;

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue as EsValue, Message};
use base64::Engine;
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    HttpBody, HttpHeaders, ProcessingRequest, ProcessingResponse, processing_request, processing_response,
};
use redis::AsyncCommands;
use serde_json::{Value, json};
use tally_config::compiled::*;
use tally_config::money::{Nanos, NanosPerMillion};
use tally_config::period::Period;
use tally_extproc::app::{Args, StoreKind, run};
use tally_extproc::processor::{FailMode, RequestBody};
use tally_tests::fixtures::redis::{RedisCluster, RedisServer};
use tonic::transport::Channel;

const SONNET_US: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const HAIKU: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";

fn usd(s: &str) -> NanosPerMillion {
    NanosPerMillion::parse_usd(s).unwrap()
}

fn config(team_limit: Option<&str>) -> CompiledConfig {
    let mut c = CompiledConfig::empty();
    c.generation = "test".into();
    c.catalog.entries = vec![
        PriceEntry {
            pattern: SONNET_US.into(),
            regions: vec![],
            prices: Prices {
                input: usd("3.3"),
                output: usd("16.5"),
                cache_read: usd("0.33"),
                cache_write_5m: usd("4.125"),
                cache_write_1h: usd("6.6"),
            },
            max_output_tokens: 64_000,
            source: "test catalog".into(),
        },
        PriceEntry {
            pattern: HAIKU.into(),
            regions: vec![],
            prices: Prices {
                input: usd("0.8"),
                output: usd("4"),
                cache_read: usd("0.08"),
                cache_write_5m: usd("1"),
                cache_write_1h: usd("0"),
            },
            max_output_tokens: 8192,
            source: "test catalog".into(),
        },
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

struct Service {
    client: ExternalProcessorClient<Channel>,
    channel: Channel,
    config_path: std::path::PathBuf,
    admin: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Service {
    async fn start(config: &CompiledConfig, redis: &RedisServer, fail_mode: FailMode) -> Service {
        Self::start_with(config, &redis.url(), false, fail_mode).await
    }

    async fn start_with(config: &CompiledConfig, redis_url: &str, cluster: bool, fail_mode: FailMode) -> Service {
        Self::start_full(config, redis_url, cluster, None, fail_mode, RequestBody::Always).await
    }

    async fn start_full(
        config: &CompiledConfig,
        redis_url: &str,
        cluster: bool,
        ca_file: Option<std::path::PathBuf>,
        fail_mode: FailMode,
        request_body: RequestBody,
    ) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, config.to_json_pretty()).unwrap();
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (grpc_addr, admin_addr) = (grpc.local_addr().unwrap(), admin.local_addr().unwrap());
        let args = Args {
            config: Some(path),
            listen: grpc_addr,
            admin_listen: admin_addr,
            store: StoreKind::Redis,
            redis_url: redis_url.to_string(),
            redis_cluster: cluster,
            redis_ca_file: ca_file,
            redis_password: None,
            fail_mode,
            spool_dir: dir.path().join("spool"),
            spool_max_bytes: 64 << 20,
            default_region: "us-east-1".into(),
            team_header: "x-team-id".into(),
            tenant_header: "x-tenant-id".into(),
            workflow_header: "x-workflow-id".into(),
            reservation_ttl_seconds: 900,
            ledger_max_len: 100_000,
            request_body,
            config_poll_ms: 200,
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(args, grpc, admin, async move {
            let _ = rx.await;
        }));
        let health = format!("http://{admin_addr}/healthz");
        let up = tally_tests::fixtures::process::wait_until(Duration::from_secs(10), || {
            let health = health.clone();
            async move {
                tally_tests::fixtures::admin::get(&health)
                    .await
                    .is_ok_and(|(code, _)| code == 200)
            }
        })
        .await;
        assert!(
            up,
            "tally-extproc did not come up: {:?}",
            if task.is_finished() { Some(task.await) } else { None }
        );
        let channel = Channel::from_shared(format!("http://{grpc_addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Service {
            client: ExternalProcessorClient::new(channel.clone()),
            channel,
            config_path: dir.path().join("config.json"),
            admin: format!("http://{admin_addr}"),
            stop: Some(tx),
            task,
            _dir: dir,
        }
    }

    /// Sends the messages of one exchange, in order, each after the previous answer.
    async fn exchange(&self, msgs: Vec<ProcessingRequest>) -> Vec<ProcessingResponse> {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let mut client = self.client.clone();
        let mut inbound = client
            .process(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let mut out = Vec::new();
        for m in msgs {
            tx.send(m).await.unwrap();
            let resp = inbound.message().await.unwrap().expect("a response per message");
            let immediate = matches!(resp.response, Some(processing_response::Response::ImmediateResponse(_)));
            out.push(resp);
            if immediate {
                break;
            }
        }
        drop(tx);
        // Let the server see the end of the stream (it settles abandoned exchanges then).
        let _ = tokio::time::timeout(Duration::from_secs(2), inbound.message()).await;
        out
    }

    async fn metrics(&self) -> String {
        reqwest_get(&format!("{}/metrics", self.admin)).await
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
    }
}

async fn reqwest_get(url: &str) -> String {
    tally_tests::fixtures::admin::get_ok(url).await
}

fn hv(name: &str, value: &[u8]) -> HeaderValue {
    HeaderValue {
        key: name.into(),
        raw_value: value.to_vec(),
        ..Default::default()
    }
}

fn req_headers(path: &str, extra: &[(&str, &str)], eos: bool) -> ProcessingRequest {
    let mut headers = vec![
        hv(":method", b"POST"),
        hv(":path", path.as_bytes()),
        hv(":authority", b"bedrock-runtime.us-east-1.amazonaws.com"),
        hv("content-type", b"application/json"),
    ];
    headers.extend(extra.iter().map(|(n, v)| hv(n, v.as_bytes())));
    ProcessingRequest {
        request: Some(processing_request::Request::RequestHeaders(HttpHeaders {
            headers: Some(HeaderMap { headers }),
            end_of_stream: eos,
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn req_body(body: &[u8]) -> ProcessingRequest {
    req_body_chunk(body, true)
}

fn resp_headers(status: u16, extra: &[(&str, &str)]) -> ProcessingRequest {
    let mut headers = vec![hv(":status", status.to_string().as_bytes())];
    headers.extend(extra.iter().map(|(n, v)| hv(n, v.as_bytes())));
    ProcessingRequest {
        request: Some(processing_request::Request::ResponseHeaders(HttpHeaders {
            headers: Some(HeaderMap { headers }),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn resp_body(body: &[u8], eos: bool) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(processing_request::Request::ResponseBody(HttpBody {
            body: body.to_vec(),
            end_of_stream: eos,
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Headers set by a response, as `name → value`.
fn set_headers(resp: &ProcessingResponse) -> Vec<(String, String)> {
    use processing_response::Response as R;
    let common = match &resp.response {
        Some(R::RequestHeaders(h) | R::ResponseHeaders(h)) => h.response.as_ref(),
        Some(R::RequestBody(b) | R::ResponseBody(b)) => b.response.as_ref(),
        Some(R::ImmediateResponse(i)) => {
            return i
                .headers
                .iter()
                .flat_map(|m| &m.set_headers)
                .filter_map(|h| h.header.as_ref())
                .map(|h| (h.key.clone(), String::from_utf8_lossy(&h.raw_value).into_owned()))
                .collect();
        }
        _ => None,
    };
    common
        .and_then(|c| c.header_mutation.as_ref())
        .map(|m| {
            m.set_headers
                .iter()
                .filter_map(|h| h.header.as_ref())
                .map(|h| (h.key.clone(), String::from_utf8_lossy(&h.raw_value).into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn converse_path(model: &str) -> String {
    format!("/model/{}/converse", model.replace(':', "%3A"))
}

async fn ledger(redis: &RedisServer, team: &str) -> Vec<Value> {
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

async fn counter(redis: &RedisServer, team: &str, field: &str) -> i64 {
    let mut conn = redis.connection().await;
    let key = format!("tally:{{{team}}}:c:{}:team", jiff::Timestamp::now().strftime("%Y-%m"));
    conn.hget::<_, _, Option<i64>>(key, field).await.unwrap().unwrap_or(0)
}

const CONVERSE_USAGE: &str = r#"{"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}},"stopReason":"end_turn",
 "usage":{"inputTokens":1234,"outputTokens":567,"totalTokens":101669,"cacheReadInputTokens":89012,"cacheWriteInputTokens":11346,
 "cacheDetails":[{"ttl":"5m","inputTokens":3456},{"ttl":"1h","inputTokens":7890}]},"metrics":{"latencyMs":100}}"#;
/// 1234×3.3 + 567×16.5 + 89012×0.33 + 3456×4.125 + 7890×6.6 (USD per 1M) = 0.10913166 USD.
const CONVERSE_COST_NANOS: i64 = 109_131_660;

#[tokio::test]
async fn converse_is_priced_to_the_nano_dollar_settled_and_ledgered() {
    let redis = RedisServer::start(false).await;
    let svc = Service::start(&config(Some("100")), &redis, FailMode::Open).await;
    let body =
        json!({"messages": [{"role": "user", "content": [{"text": "hello"}]}], "inferenceConfig": {"maxTokens": 1000}})
            .to_string();
    let out = svc
        .exchange(vec![
            req_headers(
                &converse_path(SONNET_US),
                &[
                    ("x-team-id", "search"),
                    ("x-workflow-id", "rag"),
                    ("x-tenant-id", "acme"),
                    ("amz-sdk-invocation-id", "inv-1"),
                    ("x-tally-cost-usd", "spoofed"),
                ],
                false,
            ),
            req_body(body.as_bytes()),
            resp_headers(200, &[("content-type", "application/json")]),
            resp_body(CONVERSE_USAGE.as_bytes(), true),
        ])
        .await;
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
    assert_eq!(header(&headers, "x-tally-cost-usd"), Some("0.10913166"));
    assert_eq!(header(&headers, "x-tally-request-id"), Some("inv-1"));
    assert_eq!(header(&headers, "x-tally-budget-remaining-usd"), Some("99.89086834"));

    let records = ledger(&redis, "search").await;
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
    assert_eq!(counter(&redis, "search", "spent").await, CONVERSE_COST_NANOS);
    assert_eq!(counter(&redis, "search", "reserved").await, 0);
    assert_eq!(counter(&redis, "search", "requests").await, 1);
    let metrics = svc.metrics().await;
    assert!(
        metrics.contains(&format!(
            "tally_spend_nanos_total{{team=\"search\",workflow=\"rag\",model=\"{SONNET_US}\"}} {CONVERSE_COST_NANOS}"
        )),
        "{metrics}"
    );
    svc.stop().await;
}

#[tokio::test]
async fn invoke_model_priced_from_token_headers_without_reading_the_body() {
    let redis = RedisServer::start(false).await;
    let svc = Service::start(&config(None), &redis, FailMode::Open).await;
    let path = format!("/model/{}/invoke", HAIKU.replace(':', "%3A"));
    let out = svc
        .exchange(vec![
            req_headers(&path, &[("x-team-id", "search")], false),
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
    assert_eq!(header(&set_headers(&out[2]), "x-tally-cost-usd"), Some("0.0012"));
    assert_eq!(counter(&redis, "search", "spent").await, 1_200_000);
    svc.stop().await;
}

fn es_event(event_type: &str, payload: &[u8]) -> Vec<u8> {
    let msg = Message::new(payload.to_vec())
        .add_header(Header::new(":message-type", EsValue::String("event".into())))
        .add_header(Header::new(
            ":event-type",
            EsValue::String(event_type.to_string().into()),
        ))
        .add_header(Header::new(":content-type", EsValue::String("application/json".into())));
    let mut out = Vec::new();
    write_message_to(&msg, &mut out).unwrap();
    out
}

fn es_chunk(model_json: &str) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(model_json);
    es_event("chunk", format!(r#"{{"bytes":"{b64}","p":"abc"}}"#).as_bytes())
}

/// An Anthropic invoke stream: input 21, cache read 5, cache writes 1 (5m) + 3 (1h), output 9 (cumulative).
fn anthropic_stream() -> Vec<u8> {
    [
        es_chunk(r#"{"type":"message_start","message":{"usage":{"input_tokens":21,"output_tokens":1,"cache_read_input_tokens":5,"cache_creation_input_tokens":4,"cache_creation":{"ephemeral_5m_input_tokens":1,"ephemeral_1h_input_tokens":3}}}}"#),
        es_chunk(r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#),
        es_chunk(r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":4}}"#),
        es_chunk(r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}"#),
    ]
    .concat()
}
/// 21×3.3 + 9×16.5 + 5×0.33 + 1×4.125 + 3×6.6 (USD/1M) = 0.000243375 USD.
const STREAM_COST_NANOS: i64 = 243_375;

#[tokio::test]
async fn invoke_stream_split_at_every_byte_boundary_is_charged_exactly() {
    let redis = RedisServer::start(false).await;
    let svc = Arc::new(Service::start(&config(None), &redis, FailMode::Open).await);
    let stream = anthropic_stream();
    let path = format!("/model/{}/invoke-with-response-stream", SONNET_US.replace(':', "%3A"));
    let splits: Vec<usize> = (0..=stream.len()).collect();
    // Two workers keep this fast on 2 cores; every split is its own call.
    let chunks: Vec<Vec<usize>> = splits.chunks(splits.len().div_ceil(2)).map(|c| c.to_vec()).collect();
    let mut tasks = Vec::new();
    for part in chunks {
        let svc = svc.clone();
        let stream = stream.clone();
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            for split in part {
                let out = svc
                    .exchange(vec![
                        req_headers(
                            &path,
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

#[tokio::test]
async fn concurrent_calls_are_admitted_only_while_the_budget_covers_them() {
    let redis = RedisServer::start(false).await;
    // Worst case of each call: body bytes × 1 (the dearest input class, 5-minute cache writes)
    // + 1000 × 4 (haiku, USD/1M).
    let body = br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":1000,"messages":[]}"#;
    let worst = body.len() as i64 * 1000 + 1000 * 4000; // nano-USD
    let k = 5;
    let limit = Nanos(worst * k + worst / 2);
    let svc = Arc::new(Service::start(&config(Some(&limit.to_string())), &redis, FailMode::Open).await);
    let path = format!("/model/{}/invoke", HAIKU.replace(':', "%3A"));
    let n = 40;
    // Phase 1: every call reserves at once and holds its reservation (no response yet).
    let mut streams = Vec::new();
    let mut admitted = 0;
    let mut refused_messages = Vec::new();
    let mut pending = Vec::new();
    for i in 0..n {
        let svc = svc.clone();
        let path = path.clone();
        pending.push(tokio::spawn(async move {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let mut client = svc.client.clone();
            let mut inbound = client
                .process(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
                .unwrap()
                .into_inner();
            tx.send(req_headers(
                &path,
                &[("x-team-id", "search"), ("amz-sdk-invocation-id", &format!("c-{i}"))],
                false,
            ))
            .await
            .unwrap();
            inbound.message().await.unwrap().unwrap();
            tx.send(req_body(body)).await.unwrap();
            let resp = inbound.message().await.unwrap().unwrap();
            (tx, inbound, resp)
        }));
    }
    for p in pending {
        let (tx, inbound, resp) = p.await.unwrap();
        match &resp.response {
            Some(processing_response::Response::ImmediateResponse(i)) => {
                assert_eq!(i.status.unwrap().code, 400);
                let headers = set_headers(&resp);
                assert_eq!(
                    header(&headers, "x-amzn-errortype"),
                    Some("ServiceQuotaExceededException")
                );
                refused_messages.push(String::from_utf8(i.body.clone()).unwrap());
            }
            _ => {
                admitted += 1;
                streams.push((tx, inbound));
            }
        }
    }
    assert_eq!(admitted, k, "exactly the calls the budget covers are admitted");
    assert!(
        refused_messages[0].contains("team \\\"search\\\"") && refused_messages[0].contains("resets at"),
        "{}",
        refused_messages[0]
    );
    // Phase 2: the admitted calls complete with real usage (500 in, 200 out = 0.0012 USD).
    for (tx, mut inbound) in streams {
        tx.send(resp_headers(
            200,
            &[
                ("x-amzn-bedrock-input-token-count", "500"),
                ("x-amzn-bedrock-output-token-count", "200"),
            ],
        ))
        .await
        .unwrap();
        inbound.message().await.unwrap().unwrap();
        drop(tx);
    }
    tally_tests::fixtures::process::wait_until(Duration::from_secs(5), || async {
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

/// An open exchange: send a message, read its answer, keep the stream.
struct Open {
    tx: tokio::sync::mpsc::Sender<ProcessingRequest>,
    inbound: tonic::Streaming<ProcessingResponse>,
}

impl Open {
    async fn new(svc: &Service) -> Open {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let inbound = svc
            .client
            .clone()
            .process(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        Open { tx, inbound }
    }

    async fn send(&mut self, m: ProcessingRequest) -> ProcessingResponse {
        self.tx.send(m).await.unwrap();
        self.inbound.message().await.unwrap().expect("an answer")
    }
}

const HAIKU_INVOKE_BODY: &[u8] = br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":1000,"messages":[]}"#;
/// 1000 in + 100 out of haiku = 0.0012 USD.
const HAIKU_TOKEN_HEADERS: [(&str, &str); 2] = [
    ("x-amzn-bedrock-input-token-count", "1000"),
    ("x-amzn-bedrock-output-token-count", "100"),
];

/// One InvokeModel of haiku with `content-length`; returns the answer to its request headers.
async fn invoke_with_length(open: &mut Open, id: &str) -> ProcessingResponse {
    let len = HAIKU_INVOKE_BODY.len().to_string();
    let path = format!("/model/{}/invoke", HAIKU.replace(':', "%3A"));
    open.send(req_headers(
        &path,
        &[
            ("x-team-id", "search"),
            ("amz-sdk-invocation-id", id),
            ("content-length", &len),
        ],
        false,
    ))
    .await
}

/// `--request-body when-needed`.
async fn when_needed(config: &CompiledConfig, redis: &RedisServer) -> Service {
    Service::start_full(
        config,
        &redis.url(),
        false,
        None,
        FailMode::Open,
        RequestBody::WhenNeeded,
    )
    .await
}

#[tokio::test]
async fn reserves_from_the_headers_when_the_output_cap_fits_and_reads_the_body_when_not() {
    // Haiku: dearest input class 1 USD/1M (5-minute cache writes), output 4 USD/1M, cap 8192 tokens.
    let bytes = HAIKU_INVOKE_BODY.len() as i64;
    let cap_worst = bytes * 1000 + 8192 * 4000; // nano-USD, from content-length and the cap
    let body_worst = bytes * 1000 + 1000 * 4000; // from max_tokens = 1000 in the body
    const NONE: i32 = 0;
    const BUFFERED: i32 = 2;

    // 1. The cap fits: reserved at the headers, Envoy told not to send the body.
    let redis = RedisServer::start(false).await;
    let svc = when_needed(&config(Some("1")), &redis).await;
    let mut call = Open::new(&svc).await;
    let answer = invoke_with_length(&mut call, "fits").await;
    let mode = answer.mode_override.expect("a complete mode after admission");
    assert_eq!((mode.request_body_mode, mode.response_body_mode), (NONE, NONE));
    assert_eq!(mode.response_header_mode, 1 /* SEND */);
    assert_eq!(counter(&redis, "search", "reserved").await, cap_worst);
    let done = call.send(resp_headers(200, &HAIKU_TOKEN_HEADERS)).await;
    assert_eq!(header(&set_headers(&done), "x-tally-cost-usd"), Some("0.0012"));
    assert_eq!(counter(&redis, "search", "spent").await, 1_200_000);
    assert_eq!(counter(&redis, "search", "reserved").await, 0);
    svc.stop().await;

    // 2. Only the body's bound fits: the tentative reservation holds nothing, counts no
    //    refusal, and the body is asked for; the body's bound is then reserved.
    let redis = RedisServer::start(false).await;
    let limit = Nanos(body_worst + body_worst / 2);
    let svc = when_needed(&config(Some(&limit.to_string())), &redis).await;
    let mut call = Open::new(&svc).await;
    let answer = invoke_with_length(&mut call, "tight").await;
    let mode = answer.mode_override.expect("asks for the body");
    assert_eq!(mode.request_body_mode, BUFFERED);
    assert_eq!(counter(&redis, "search", "reserved").await, 0);
    assert_eq!(counter(&redis, "search", "blocked").await, 0);
    let admitted = call.send(req_body(HAIKU_INVOKE_BODY)).await;
    assert!(
        !matches!(
            admitted.response,
            Some(processing_response::Response::ImmediateResponse(_))
        ),
        "{admitted:?}"
    );
    assert_eq!(counter(&redis, "search", "reserved").await, body_worst);
    call.send(resp_headers(200, &HAIKU_TOKEN_HEADERS)).await;
    assert_eq!(counter(&redis, "search", "spent").await, 1_200_000);
    svc.stop().await;

    // 3. Neither fits: refused once, on the body's bound, and counted once.
    let redis = RedisServer::start(false).await;
    let limit = Nanos(body_worst / 2);
    let svc = when_needed(&config(Some(&limit.to_string())), &redis).await;
    let mut call = Open::new(&svc).await;
    invoke_with_length(&mut call, "over").await;
    let refused = call.send(req_body(HAIKU_INVOKE_BODY)).await;
    let Some(processing_response::Response::ImmediateResponse(r)) = &refused.response else {
        panic!("expected a refusal: {refused:?}");
    };
    let message = String::from_utf8_lossy(&r.body);
    assert!(message.contains(&Nanos(body_worst).to_string()), "{message}");
    assert_eq!(counter(&redis, "search", "blocked").await, 1);
    let records = ledger(&redis, "search").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["outcome"], "blocked");
    svc.stop().await;

    // 4. A stream reads its body even when the cap fits: a cancelled stream is charged its
    //    reservation, which must be the request's own max_tokens bound.
    let redis = RedisServer::start(false).await;
    let svc = when_needed(&config(Some("1")), &redis).await;
    let mut call = Open::new(&svc).await;
    let len = HAIKU_INVOKE_BODY.len().to_string();
    let path = format!("/model/{}/invoke-with-response-stream", HAIKU.replace(':', "%3A"));
    let answer = call
        .send(req_headers(
            &path,
            &[("x-team-id", "search"), ("content-length", &len)],
            false,
        ))
        .await;
    assert_eq!(
        answer.mode_override.expect("asks for the body").request_body_mode,
        BUFFERED
    );
    call.send(req_body(HAIKU_INVOKE_BODY)).await;
    assert_eq!(counter(&redis, "search", "reserved").await, body_worst);
    svc.stop().await;

    // 5. The default, `--request-body always`: the body is read even when the cap would fit.
    let redis = RedisServer::start(false).await;
    let svc = Service::start(&config(Some("1")), &redis, FailMode::Open).await;
    let mut call = Open::new(&svc).await;
    let answer = invoke_with_length(&mut call, "always").await;
    assert_eq!(
        answer.mode_override.expect("asks for the body").request_body_mode,
        BUFFERED
    );
    call.send(req_body(HAIKU_INVOKE_BODY)).await;
    assert_eq!(counter(&redis, "search", "reserved").await, body_worst);
    svc.stop().await;
}

async fn one_converse(svc: &Service, id: &str) -> Vec<ProcessingResponse> {
    svc.exchange(vec![
        req_headers(
            &converse_path(SONNET_US),
            &[("x-team-id", "search"), ("amz-sdk-invocation-id", id)],
            false,
        ),
        req_body(br#"{"messages":[],"inferenceConfig":{"maxTokens":100}}"#),
        resp_headers(200, &[]),
        resp_body(CONVERSE_USAGE.as_bytes(), true),
    ])
    .await
}

#[tokio::test]
async fn redis_outage_in_fail_open_loses_no_completed_charge() {
    let mut redis = RedisServer::start(true).await;
    let svc = Service::start(&config(Some("1000")), &redis, FailMode::Open).await;
    for i in 0..3 {
        assert_eq!(one_converse(&svc, &format!("before-{i}")).await.len(), 4);
    }
    redis.kill();
    for i in 0..4 {
        let out = one_converse(&svc, &format!("during-{i}")).await;
        assert_eq!(out.len(), 4, "fail-open: calls proceed while Redis is down");
        assert_eq!(header(&set_headers(&out[3]), "x-tally-cost-usd"), Some("0.10913166"));
    }
    let metrics = svc.metrics().await;
    assert!(metrics.contains("tally_spool_depth 4"), "{metrics}");
    redis.restart().await;
    let drained = tally_tests::fixtures::process::wait_until(Duration::from_secs(20), || async {
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

#[tokio::test]
async fn redis_outage_in_fail_closed_refuses_with_a_retryable_error() {
    let mut redis = RedisServer::start(false).await;
    let svc = Service::start(&config(Some("1000")), &redis, FailMode::Closed).await;
    redis.kill();
    let out = one_converse(&svc, "closed-1").await;
    match &out.last().unwrap().response {
        Some(processing_response::Response::ImmediateResponse(i)) => {
            assert_eq!(i.status.unwrap().code, 503);
            assert!(String::from_utf8_lossy(&i.body).contains("fail closed"));
        }
        other => panic!("expected a 503, got {other:?}"),
    }
    svc.stop().await;
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
    let svc = Service::start(&cfg, &redis, FailMode::Open).await;
    let out = svc
        .exchange(vec![req_headers(
            "/model/amazon.nova-pro-v1%3A0/converse",
            &[("x-team-id", "search")],
            false,
        )])
        .await;
    match &out[0].response {
        Some(processing_response::Response::ImmediateResponse(i)) => {
            assert_eq!(i.status.unwrap().code, 403);
            assert_eq!(
                header(&set_headers(&out[0]), "x-amzn-errortype"),
                Some("AccessDeniedException")
            );
            assert!(String::from_utf8_lossy(&i.body).contains("amazon.nova-pro-v1:0"));
        }
        other => panic!("expected 403, got {other:?}"),
    }
    // A header claiming "secure" without the workload identity Envoy vouches for.
    let out = svc
        .exchange(vec![req_headers(
            &converse_path(HAIKU),
            &[("x-team-id", "secure")],
            false,
        )])
        .await;
    assert!(
        matches!(&out[0].response, Some(processing_response::Response::ImmediateResponse(i)) if i.status.unwrap().code == 403)
    );
    let records = ledger(&redis, "search").await;
    assert_eq!(records[0]["outcome"], "denied");
    svc.stop().await;
}

#[tokio::test]
async fn malformed_input_never_crashes_and_never_blocks_a_paying_call() {
    let redis = RedisServer::start(false).await;
    let svc = Service::start(&config(Some("10")), &redis, FailMode::Open).await;
    let stream_path = format!("/model/{}/converse-stream", SONNET_US.replace(':', "%3A"));
    let mut huge = Vec::new();
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    huge.extend_from_slice(&0u32.to_be_bytes());
    huge.extend_from_slice(&crc32fast_hash(&huge[..8]).to_be_bytes());
    let mut corrupt = anthropic_stream();
    corrupt[20] ^= 0xff;
    let cases: Vec<(&str, Vec<ProcessingRequest>)> = vec![
        (
            "garbage request body",
            vec![
                req_headers(&converse_path(SONNET_US), &[("x-team-id", "search")], false),
                req_body(b"\xff\xfe{{{not json"),
                resp_headers(200, &[]),
                resp_body(b"also not json \x00", true),
            ],
        ),
        (
            "huge frame length",
            vec![
                req_headers(&stream_path, &[("x-team-id", "search")], false),
                req_body(b"{}"),
                resp_headers(200, &[]),
                resp_body(&huge, false),
                resp_body(b"", true),
            ],
        ),
        (
            "corrupt frame",
            vec![
                req_headers(&stream_path, &[("x-team-id", "search")], false),
                req_body(b"{}"),
                resp_headers(200, &[]),
                resp_body(&corrupt, false),
                resp_body(b"", true),
            ],
        ),
        (
            "unknown model",
            vec![
                req_headers(
                    "/model/anthropic.mystery-model-v9/converse",
                    &[("x-team-id", "search")],
                    false,
                ),
                req_body(b"{}"),
                resp_headers(200, &[]),
                resp_body(CONVERSE_USAGE.as_bytes(), true),
            ],
        ),
        (
            "non-UTF-8 header",
            vec![
                non_utf8_headers(&converse_path(HAIKU)),
                req_body(b"{}"),
                resp_headers(200, &[]),
                resp_body(CONVERSE_USAGE.as_bytes(), true),
            ],
        ),
    ];
    for (name, msgs) in cases {
        let n = msgs.len();
        let out = svc.exchange(msgs).await;
        assert_eq!(out.len(), n, "{name}: every message answered, none refused");
        assert!(
            out.iter()
                .all(|r| !matches!(r.response, Some(processing_response::Response::ImmediateResponse(_)))),
            "{name}"
        );
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
        metrics.contains("tally_unpriced_calls_total{model=\"anthropic.mystery-model-v9\"} 1"),
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

#[tokio::test]
async fn client_disconnect_mid_stream_is_recorded_incomplete() {
    let redis = RedisServer::start(false).await;
    let svc = Service::start(&config(None), &redis, FailMode::Open).await;
    let stream = anthropic_stream();
    let path = format!("/model/{}/invoke-with-response-stream", SONNET_US.replace(':', "%3A"));
    // The stream ends (Envoy resets it) after the message_start chunk: charged what was seen.
    let first_frame_len = u32::from_be_bytes(stream[0..4].try_into().unwrap()) as usize;
    svc.exchange(vec![
        req_headers(
            &path,
            &[("x-team-id", "search"), ("amz-sdk-invocation-id", "cut-1")],
            false,
        ),
        req_body(br#"{"max_tokens":50,"messages":[]}"#),
        resp_headers(200, &[]),
        resp_body(&stream[..first_frame_len], false),
    ])
    .await;
    // Cut before any usage: charged the whole reservation (body bytes × 6.6 + 50 × 16.5, USD/1M).
    svc.exchange(vec![
        req_headers(
            &path,
            &[("x-team-id", "search"), ("amz-sdk-invocation-id", "cut-2")],
            false,
        ),
        req_body(br#"{"max_tokens":50,"messages":[]}"#),
    ])
    .await;
    let ok = tally_tests::fixtures::process::wait_until(Duration::from_secs(5), || async {
        ledger(&redis, "search").await.len() == 2
    })
    .await;
    assert!(ok, "both cut calls recorded");
    let records = ledger(&redis, "search").await;
    let by_id = |id: &str| records.iter().find(|r| r["requestId"] == id).unwrap().clone();
    let seen = by_id("cut-1");
    // input 21 × 3.3 + output 1 × 16.5 + cache read 5 × 0.33 + writes 1 × 4.125 + 3 × 6.6 = 0.000111375 USD
    assert_eq!(
        (seen["outcome"].as_str(), seen["costNanos"].as_i64()),
        (Some("incomplete"), Some(111_375))
    );
    let none = by_id("cut-2");
    let body_len = br#"{"max_tokens":50,"messages":[]}"#.len() as i64;
    assert_eq!(
        (none["outcome"].as_str(), none["costNanos"].as_i64()),
        (Some("incomplete"), Some(body_len * 6_600 + 50 * 16_500))
    );
    assert_eq!(counter(&redis, "search", "reserved").await, 0);
    svc.stop().await;
}

#[tokio::test]
async fn config_is_hot_reloaded_and_an_invalid_file_keeps_the_old_one() {
    let redis = RedisServer::start(false).await;
    let svc = Service::start(&config(None), &redis, FailMode::Open).await;
    // grpc.health.v1 is served next to the processor.
    let mut health = tonic_health::pb::health_client::HealthClient::new(svc.channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "envoy.service.ext_proc.v3.ExternalProcessor".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    assert!(svc.metrics().await.contains("tally_config_info{generation=\"test\"} 1"));

    std::fs::write(&svc.config_path, b"{\"version\": 1, \"teams\": [oops").unwrap();
    let rejected = tally_tests::fixtures::process::wait_until(Duration::from_secs(5), || async {
        svc.metrics()
            .await
            .contains("tally_config_reloads_total{outcome=\"invalid\"} 1")
    })
    .await;
    assert!(rejected, "the invalid file is noticed");
    assert!(
        svc.metrics().await.contains("tally_config_info{generation=\"test\"} 1"),
        "old config kept"
    );
    // Calls still work under the old config.
    assert_eq!(one_converse(&svc, "after-invalid").await.len(), 4);

    let mut next = config(Some("0.000001"));
    next.generation = "v2".into();
    std::fs::write(&svc.config_path, next.to_json_pretty()).unwrap();
    let swapped = tally_tests::fixtures::process::wait_until(Duration::from_secs(5), || async {
        svc.metrics().await.contains("tally_config_info{generation=\"v2\"} 1")
    })
    .await;
    assert!(swapped, "the new config is swapped in");
    // The new, tiny budget now applies.
    let out = one_converse(&svc, "after-v2").await;
    assert!(
        matches!(&out.last().unwrap().response, Some(processing_response::Response::ImmediateResponse(i)) if i.status.unwrap().code == 400)
    );
    svc.stop().await;
}

fn req_body_chunk(body: &[u8], eos: bool) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(processing_request::Request::RequestBody(HttpBody {
            body: body.to_vec(),
            end_of_stream: eos,
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Whatever body mode Envoy is configured with (and whether it honours our
/// overrides), every call is still attributed, priced and recorded.
#[tokio::test]
async fn every_envoy_processing_mode_still_prices_the_call() {
    let redis = RedisServer::start(false).await;
    let svc = Service::start(&config(Some("100")), &redis, FailMode::Open).await;
    let invoke = format!("/model/{}/invoke", HAIKU.replace(':', "%3A"));
    let token_headers = [
        ("x-amzn-bedrock-input-token-count", "1000"),
        ("x-amzn-bedrock-output-token-count", "100"),
    ];
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
            resp_headers(200, &token_headers),
        ])
        .await;
    assert_eq!(header(&set_headers(&out[1]), "x-tally-cost-usd"), Some("0.0012"));
    // STREAMED request body: several chunks, admitted at the last one.
    let body = br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[]}"#;
    let (a, b) = body.split_at(20);
    let out = svc
        .exchange(vec![
            req_headers(
                &invoke,
                &[("x-team-id", "search"), ("amz-sdk-invocation-id", "streamed")],
                false,
            ),
            req_body_chunk(a, false),
            req_body_chunk(b, true),
            resp_headers(200, &token_headers),
        ])
        .await;
    assert_eq!(out.len(), 4);
    assert_eq!(header(&set_headers(&out[3]), "x-tally-cost-usd"), Some("0.0012"));
    // BUFFERED_PARTIAL: a first part without end_of_stream, then the response.
    let out = svc
        .exchange(vec![
            req_headers(
                &invoke,
                &[("x-team-id", "search"), ("amz-sdk-invocation-id", "partial")],
                false,
            ),
            req_body_chunk(a, false),
            resp_headers(200, &token_headers),
        ])
        .await;
    assert_eq!(header(&set_headers(&out[2]), "x-tally-cost-usd"), Some("0.0012"));
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
    assert_eq!(header(&set_headers(&out[4]), "x-tally-cost-usd"), Some("0.10913166"));
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

/// Every script touches one team's keys only (`{team}` hash tag), so it runs on
/// Redis Cluster, whichever node owns the team's slot.
#[tokio::test]
async fn works_on_redis_cluster_with_teams_on_different_slots() {
    let cluster = RedisCluster::start().await;
    let seed = cluster.url();
    let other = cluster
        .team_on_another_node("search", &["ads", "billing", "chat", "docs", "edge", "fraud", "growth"])
        .await;
    let mut cfg = config(Some("100"));
    let mut second = cfg.teams[0].clone();
    second.team = other.into();
    second.source = format!("{other}/{other}");
    second.tenants = vec![];
    cfg.teams.insert(0, second);
    let svc = Service::start_with(&cfg, &seed, true, FailMode::Closed).await;
    for team in ["search", other, "search", other, other] {
        let out = svc
            .exchange(vec![
                req_headers(&converse_path(SONNET_US), &[("x-team-id", team)], false),
                req_body(br#"{"messages":[],"inferenceConfig":{"maxTokens":100}}"#),
                resp_headers(200, &[]),
                resp_body(CONVERSE_USAGE.as_bytes(), true),
            ])
            .await;
        assert_eq!(
            header(&set_headers(&out[3]), "x-tally-cost-usd"),
            Some("0.10913166"),
            "{team}"
        );
    }
    let client = redis::cluster::ClusterClient::new(vec![seed.as_str()]).unwrap();
    let mut conn = client.get_async_connection().await.unwrap();
    let month = jiff::Timestamp::now().strftime("%Y-%m").to_string();
    for (team, n) in [("search", 2), (other, 3)] {
        let spent: i64 = conn
            .hget(format!("tally:{{{team}}}:c:{month}:team"), "spent")
            .await
            .unwrap();
        assert_eq!(spent, n * CONVERSE_COST_NANOS, "{team}");
        let len: usize = conn.xlen(format!("tally:{{{team}}}:ledger")).await.unwrap();
        assert_eq!(len, n as usize);
    }

    svc.stop().await;
}

/// `rediss://`: the same scripts over TLS to a redis-server with a TLS port,
/// its certificate verified against a private CA given with `--redis-ca-file`.
#[tokio::test]
async fn works_over_tls_with_rediss_urls() {
    use tally_tests::fixtures::{process, tools};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tally_tests::kube_apiserver::loopback_ca_and_cert(d, "srv").expect("test certificates");
    let port = process::free_port();
    let mut cmd = std::process::Command::new(tools::redis_server());
    cmd.current_dir(d)
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args([
            "--tls-cert-file",
            "srv.crt",
            "--tls-key-file",
            "srv.key",
            "--tls-ca-cert-file",
            "ca.crt",
            "--tls-auth-clients",
            "no",
        ]);
    let _redis = process::OwnedProcess::spawn("redis-tls", cmd).unwrap();
    let url = format!("rediss://127.0.0.1:{port}/");
    let up = process::wait_until(Duration::from_secs(10), || async {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    assert!(up, "TLS redis-server did not start");
    let ca = d.join("ca.crt");
    let svc = Service::start_full(
        &config(Some("100")),
        &url,
        false,
        Some(ca.clone()),
        FailMode::Closed,
        RequestBody::Always,
    )
    .await;
    let out = one_converse(&svc, "tls-1").await;
    assert_eq!(header(&set_headers(&out[3]), "x-tally-cost-usd"), Some("0.10913166"));
    let certs = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(std::fs::read(&ca).unwrap()),
    };
    let client = redis::Client::build_with_tls(url.as_str(), certs).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let len: usize = conn.xlen("tally:{search}:ledger").await.unwrap();
    assert_eq!(len, 1);
    svc.stop().await;
}
