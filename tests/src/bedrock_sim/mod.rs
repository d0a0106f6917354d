//! A simulated Bedrock Runtime: the only simulated part of the end-to-end tests.
//!
//! Serves `InvokeModel`, `InvokeModelWithResponseStream`, `Converse`,
//! `ConverseStream` and `CountTokens` over HTTP/1.1 and h2c, with bodies in the
//! Anthropic, Nova and Llama formats ([`wire`]), the observed
//! `X-Amzn-Bedrock-*-Token-Count` headers (switchable off), real event-stream
//! framing ([`frames`]), Bedrock-shaped errors, a configurable latency and, optionally, a
//! SigV4 check of every request ([`sigv4`]) so gateway signing is verified.
//!
//! What a call returns is a pure function of its request ([`scenario`]), so
//! tests know the exact usage, and so the exact cost, in advance.
//! `GET /__sim/stats` returns [`StatsSnapshot`] as JSON.
//!
//! It must not grow Tally logic: it knows nothing of teams, prices or budgets.

pub mod frames;
pub mod scenario;
pub mod sigv4;
pub mod wire;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use scenario::{Scenario, SimUsage, error_status};
use sigv4::SigV4Verifier;
use wire::Family;

/// How the simulator behaves for every request.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Send `X-Amzn-Bedrock-*-Token-Count` headers on `InvokeModel` responses.
    pub token_headers: bool,
    /// Wait this long before answering (also reported as the invocation latency).
    pub latency: Duration,
    /// Refuse requests whose SigV4 signature is not from this identity.
    pub verify_sigv4: Option<SigV4Verifier>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            token_headers: true,
            latency: Duration::ZERO,
            verify_sigv4: None,
        }
    }
}

/// The Bedrock operations the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Operation {
    InvokeModel,
    InvokeModelWithResponseStream,
    Converse,
    ConverseStream,
    CountTokens,
    /// `POST /async-invoke`: answers the job's ARN (the model id is in the body).
    StartAsyncInvoke,
    /// `POST /guardrail/{id}/version/{v}/apply`: two policies evaluate the text.
    ApplyGuardrail,
}

impl Operation {
    fn from_suffix(s: &str) -> Option<Operation> {
        Some(match s {
            "invoke" => Operation::InvokeModel,
            "invoke-with-response-stream" => Operation::InvokeModelWithResponseStream,
            "converse" => Operation::Converse,
            "converse-stream" => Operation::ConverseStream,
            "count-tokens" => Operation::CountTokens,
            _ => return None,
        })
    }
}

/// One request as the simulator received it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceivedRequest {
    pub operation: Operation,
    /// Percent-decoded model id from the path.
    pub model_id: String,
    /// Header names lowercased; values that are not UTF-8 are dropped.
    pub headers: BTreeMap<String, String>,
}

/// Counters since start, for tests.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    /// Requests per operation (including refused and errored ones).
    pub requests: BTreeMap<String, u64>,
    pub signatures_verified: u64,
    pub signatures_failed: u64,
    /// Streams whose last event was sent.
    pub streams_completed: u64,
    /// The last [`MAX_RECORDED`] requests, oldest first.
    pub received: Vec<ReceivedRequest>,
}

impl StatsSnapshot {
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }
}

/// How many received requests the stats keep.
pub const MAX_RECORDED: usize = 1000;

/// The simulator: options plus its counters. Cheap to share.
#[derive(Debug, Default)]
pub struct BedrockSim {
    opts: SimOptions,
    stats: Mutex<StatsSnapshot>,
}

type Body = BoxBody<Bytes, Infallible>;

/// Serves `listener` until `shutdown` resolves (then drops every open connection).
pub async fn serve(listener: TcpListener, opts: SimOptions, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
    Arc::new(BedrockSim::new(opts)).serve(listener, shutdown).await
}

impl BedrockSim {
    pub fn new(opts: SimOptions) -> Self {
        BedrockSim {
            opts,
            stats: Mutex::default(),
        }
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.lock().expect("stats lock").clone()
    }

    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => accepted?,
            };
            let sim = self.clone();
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let sim = sim.clone();
                    async move { Ok::<_, Infallible>(sim.handle(req).await) }
                });
                // Errors here are clients going away mid-response: expected in tests.
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
            while connections.try_join_next().is_some() {}
        }
        connections.abort_all();
        Ok(())
    }

    async fn handle(self: Arc<Self>, req: http::Request<Incoming>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        if parts.method == Method::GET && parts.uri.path() == "/__sim/stats" {
            return json_response(
                StatusCode::OK,
                &serde_json::to_value(self.stats()).expect("stats serialize"),
                HeaderMap::new(),
            );
        }
        let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
            return error_response("ValidationException", "could not read the request body");
        };
        let Some((model_id, operation)) = route(&parts.method, parts.uri.path()) else {
            return error_response(
                "UnknownOperationException",
                &format!("no such operation: {} {}", parts.method, parts.uri.path()),
            );
        };
        self.record(operation, &model_id, &parts.headers);
        if let Some(refusal) = self.signature_refusal(&parts, &body) {
            return refusal;
        }
        let Ok(json) = serde_json::from_slice::<Value>(&body) else {
            return error_response("ValidationException", "request body is not JSON");
        };
        let scenario = Scenario::from_body(&json);
        if !self.opts.latency.is_zero() {
            tokio::time::sleep(self.opts.latency).await;
        }
        if let Some(code) = &scenario.error {
            return error_response(code, &format!("simulated {code} for {model_id}"));
        }
        self.respond(operation, &model_id, &json, &scenario)
    }

    /// With `verify_sigv4`: counts the verdict, and answers a bad signature as Bedrock does.
    fn signature_refusal(&self, parts: &http::request::Parts, body: &[u8]) -> Option<Response<Body>> {
        let verdict = self.opts.verify_sigv4.as_ref()?.verify(parts, body);
        let mut stats = self.stats.lock().expect("stats lock");
        match verdict {
            Ok(()) => {
                stats.signatures_verified += 1;
                None
            }
            Err(e) => {
                stats.signatures_failed += 1;
                Some(error_response(e.code(), &e.message()))
            }
        }
    }

    /// The successful answer of `operation`, shaped by the request's scenario.
    fn respond(
        self: Arc<Self>,
        operation: Operation,
        model_id: &str,
        json: &Value,
        scenario: &Scenario,
    ) -> Response<Body> {
        let latency_ms = self.opts.latency.as_millis() as u64;
        let u = &scenario.usage;
        let pieces = wire::pieces(scenario.chunks);
        let family = || Family::of_model(model_id).or_else(|| Family::of_body(json));
        match operation {
            Operation::InvokeModel => {
                let Some(family) = family() else {
                    return unknown_family(model_id);
                };
                json_response(
                    StatusCode::OK,
                    &wire::invoke_body(family, model_id, u, &pieces.concat()),
                    self.token_headers(u, latency_ms),
                )
            }
            Operation::InvokeModelWithResponseStream => {
                let Some(family) = family() else {
                    return unknown_family(model_id);
                };
                let chunks = wire::invoke_stream_chunks(family, model_id, u, &pieces, latency_ms);
                let stream = chunks.iter().map(frames::chunk_frame).collect();
                self.stream_response(stream, scenario)
            }
            Operation::Converse => json_response(
                StatusCode::OK,
                &wire::converse_body(u, &pieces.concat(), latency_ms),
                HeaderMap::new(),
            ),
            Operation::ConverseStream => {
                let events = wire::converse_stream_events(u, &pieces, latency_ms);
                let stream = events.iter().map(|(t, p)| frames::event_frame(t, p)).collect();
                self.stream_response(stream, scenario)
            }
            Operation::CountTokens => json_response(StatusCode::OK, &json!({"inputTokens": u.input}), HeaderMap::new()),
            Operation::StartAsyncInvoke => json_response(
                StatusCode::OK,
                &json!({"invocationArn": format!("arn:aws:bedrock:us-east-1:123456789012:async-invoke/{}", request_id())}),
                HeaderMap::new(),
            ),
            Operation::ApplyGuardrail => json_response(StatusCode::OK, &wire::guardrail_body(json), HeaderMap::new()),
        }
    }

    /// `X-Amzn-Bedrock-*` headers of an `InvokeModel` answer (none when switched off).
    fn token_headers(&self, u: &SimUsage, latency_ms: u64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if self.opts.token_headers {
            let mut put = |name: &'static str, v: u64| {
                headers.insert(name, v.into());
            };
            put("x-amzn-bedrock-input-token-count", u.input);
            put("x-amzn-bedrock-output-token-count", u.output);
            put("x-amzn-bedrock-cache-read-input-token-count", u.cache_read);
            put("x-amzn-bedrock-cache-write-input-token-count", u.cache_write());
            put("x-amzn-bedrock-invocation-latency", latency_ms);
        }
        headers
    }

    fn record(&self, operation: Operation, model_id: &str, headers: &HeaderMap) {
        let mut stats = self.stats.lock().expect("stats lock");
        *stats.requests.entry(format!("{operation:?}")).or_default() += 1;
        if stats.received.len() >= MAX_RECORDED {
            stats.received.remove(0);
        }
        stats.received.push(ReceivedRequest {
            operation,
            model_id: model_id.to_string(),
            headers: headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect(),
        });
    }

    /// An event-stream response: one body chunk per frame, the scenario's delay
    /// before every frame after the first, broken off by its `stream-error` if any.
    fn stream_response(self: Arc<Self>, mut events: Vec<Bytes>, scenario: &Scenario) -> Response<Body> {
        if let Some(code) = &scenario.stream_error {
            events.truncate(1 + scenario.chunks as usize);
            events.push(frames::exception_frame(code, &format!("simulated {code} mid-stream")));
        }
        let count = events.len();
        let delay = Duration::from_millis(scenario.chunk_delay_ms);
        let stream = futures::stream::iter(events.into_iter().enumerate()).then(move |(i, frame)| {
            let sim = self.clone();
            async move {
                if i > 0 && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if i + 1 == count {
                    sim.stats.lock().expect("stats lock").streams_completed += 1;
                }
                Ok::<_, Infallible>(Frame::data(frame))
            }
        });
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/vnd.amazon.eventstream")
            .header("x-amzn-bedrock-content-type", "application/json")
            .header("x-amzn-requestid", request_id())
            .body(BoxBody::new(StreamBody::new(stream)))
            .expect("valid response")
    }
}

/// `(decoded model id, operation)` of a Bedrock Runtime path.
pub fn route(method: &Method, path: &str) -> Option<(String, Operation)> {
    if method != Method::POST {
        return None;
    }
    if path == "/async-invoke" {
        return Some((String::new(), Operation::StartAsyncInvoke));
    }
    if let Some(rest) = path.strip_prefix("/guardrail/").and_then(|r| r.strip_suffix("/apply")) {
        let (id, _version) = rest.split_once("/version/")?;
        return Some((id.to_string(), Operation::ApplyGuardrail));
    }
    let rest = path.strip_prefix("/model/")?;
    let (encoded, suffix) = rest.rsplit_once('/')?;
    let operation = Operation::from_suffix(suffix)?;
    let model_id = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .ok()?
        .into_owned();
    Some((model_id, operation))
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn json_response(status: StatusCode, body: &Value, extra: HeaderMap) -> Response<Body> {
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-amzn-requestid", request_id())
        .body(BoxBody::new(Full::new(Bytes::from(body.to_string()))))
        .expect("valid response");
    response.headers_mut().extend(extra);
    response
}

/// A Bedrock error: status per code, `x-amzn-ErrorType`, JSON `{"message"}`.
pub fn error_response(code: &str, message: &str) -> Response<Body> {
    let status = StatusCode::from_u16(error_status(code)).expect("valid status");
    let mut response = json_response(status, &json!({ "message": message }), HeaderMap::new());
    response
        .headers_mut()
        .insert("x-amzn-errortype", code.parse().expect("error code is a header value"));
    response
}

fn unknown_family(model_id: &str) -> Response<Body> {
    error_response(
        "ValidationException",
        &format!("The provided model identifier is invalid (simulator: no body format for {model_id})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_percent_encoded_ids() {
        let (id, op) = route(
            &Method::POST,
            "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/converse-stream",
        )
        .unwrap();
        assert_eq!(
            (id.as_str(), op),
            ("us.anthropic.claude-haiku-4-5-20251001-v1:0", Operation::ConverseStream)
        );
        let arn = "arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aapplication-inference-profile%2Fabc";
        let (id, op) = route(&Method::POST, &format!("/model/{arn}/invoke")).unwrap();
        assert_eq!(
            (id.as_str(), op),
            (
                "arn:aws:bedrock:us-east-1:1:application-inference-profile/abc",
                Operation::InvokeModel
            )
        );
        assert!(route(&Method::GET, "/model/x/invoke").is_none());
        assert!(route(&Method::POST, "/model/x/unknown").is_none());
    }
}
