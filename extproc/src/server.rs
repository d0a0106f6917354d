//! The gRPC `envoy.service.ext_proc.v3.ExternalProcessor` service: one task
//! per Envoy stream, feeding [`Exchange`] and converting its replies to
//! protobuf — the only place that knows the wire types. Each stream is first
//! admitted by the [`PeerGate`] from the TLS peer's certificate, which also
//! decides whether the stream's request attributes are believed.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::ProcessingMode;
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::{BodySendMode, HeaderSendMode};
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::ExternalProcessor;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    BodyResponse, CommonResponse, HeaderMutation, HeadersResponse, ImmediateResponse, ProcessingRequest,
    ProcessingResponse, TrailersResponse, processing_request, processing_response,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::{Struct, Value, value};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};

use crate::exchange::{BodyMode, Exchange, Headers, Mode, Reply, Shared};
use crate::peer::{PeerGate, Trust};

/// Dynamic metadata namespace the ext_proc writes (Envoy's access log reads `%DYN_META(tally:team)%`).
pub const METADATA_NAMESPACE: &str = "tally";

/// The request attribute that names the application's workload identity: the URI SAN of the
/// client certificate the application presented to the gateway's Envoy.
pub const PRINCIPAL_ATTRIBUTE: &str = "connection.uri_san_peer_certificate";

/// The largest ext_proc message read: above the largest body Envoy may buffer
/// (the chart's `gateway.bufferLimitBytes`, at most 60 MiB by its schema) plus
/// headers and attributes. tonic's default, 4 MiB, would make larger bodies
/// fail to decode.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

pub struct Processor {
    shared: Arc<Shared>,
    peers: Arc<PeerGate>,
}

impl Processor {
    pub fn new(shared: Arc<Shared>, peers: Arc<PeerGate>) -> Self {
        Processor { shared, peers }
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<ProcessingResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalProcessor for Processor {
    type ProcessStream = ResponseStream;

    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        let trust = self.peers.admit(request.peer_certs().as_deref().map(Vec::as_slice))?;
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(8);
        let shared = self.shared.clone();
        self.shared.exchanges.spawn(async move {
            let mut exchange = Exchange::new(shared);
            loop {
                let msg = match inbound.message().await {
                    Ok(Some(m)) => m,
                    // Envoy ends every stream with a reset (CANCEL) after the last message,
                    // or when the client is gone: the end of the exchange, not a failure.
                    Ok(None) => break,
                    Err(status) if status.code() == Code::Cancelled => break,
                    // A message that could not be read (over the size limit, a broken
                    // transport) is a failure under the fail mode, never a free pass.
                    Err(status) => {
                        if let Some(reply) = exchange.stream_failed(&status.to_string()).await {
                            // A refusal is an ImmediateResponse, valid in any phase.
                            let _ = tx.send(Ok(to_proto(reply, body_response))).await;
                        }
                        break;
                    }
                };
                let Some(resp) = handle(&mut exchange, msg, trust).await else {
                    continue;
                };
                if tx.send(Ok(resp)).await.is_err() {
                    break;
                }
            }
            exchange.abandon().await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

async fn handle(ex: &mut Exchange, msg: ProcessingRequest, trust: Trust) -> Option<ProcessingResponse> {
    use processing_request::Request as Req;
    use processing_response::Response as Resp;
    let (reply, wrap): (Reply, fn(CommonResponse) -> Resp) = match msg.request? {
        Req::RequestHeaders(h) => {
            let headers = headers(h.headers.as_ref());
            let principals = match trust {
                Trust::Attributes => peer_principals(&msg.attributes),
                Trust::Nothing => Vec::new(),
            };
            (ex.request_headers(&headers, h.end_of_stream, principals).await, |c| {
                Resp::RequestHeaders(HeadersResponse { response: Some(c) })
            })
        }
        Req::RequestBody(b) => (ex.request_body(&b.body, b.end_of_stream).await, body_response),
        Req::ResponseHeaders(h) => {
            let headers = headers(h.headers.as_ref());
            (ex.response_headers(&headers, h.end_of_stream).await, |c| {
                Resp::ResponseHeaders(HeadersResponse { response: Some(c) })
            })
        }
        Req::ResponseBody(b) => (ex.response_body(&b.body, b.end_of_stream).await, |c| {
            Resp::ResponseBody(BodyResponse { response: Some(c) })
        }),
        // Asked for whenever the body is read: a call still unadmitted is admitted here.
        Req::RequestTrailers(_) => (ex.request_trailers().await, |c| {
            Resp::RequestTrailers(TrailersResponse {
                header_mutation: c.header_mutation,
            })
        }),
        Req::ResponseTrailers(_) => {
            return Some(ProcessingResponse {
                response: Some(Resp::ResponseTrailers(TrailersResponse::default())),
                ..Default::default()
            });
        }
    };
    Some(to_proto(reply, wrap))
}

fn body_response(c: CommonResponse) -> processing_response::Response {
    processing_response::Response::RequestBody(BodyResponse { response: Some(c) })
}

/// Headers as `(lowercase name, value)`; Envoy sends `raw_value` bytes (non-UTF-8 is replaced, never fatal).
fn headers(map: Option<&HeaderMap>) -> Headers {
    let list = map
        .map(|m| {
            m.headers
                .iter()
                .map(|h| {
                    let v = if h.raw_value.is_empty() {
                        h.value.clone()
                    } else {
                        String::from_utf8_lossy(&h.raw_value).into_owned()
                    };
                    (h.key.to_ascii_lowercase(), v)
                })
                .collect()
        })
        .unwrap_or_default();
    Headers(list)
}

/// The application's URI SANs, from [`PRINCIPAL_ATTRIBUTE`] (Envoy groups attributes under
/// the ext_proc filter's name; any group is read). Only called for a trusted peer.
fn peer_principals(attributes: &HashMap<String, Struct>) -> Vec<String> {
    let mut out = Vec::new();
    for s in attributes.values() {
        if let Some(v) = s.fields.get(PRINCIPAL_ATTRIBUTE) {
            match &v.kind {
                Some(value::Kind::StringValue(s)) if !s.is_empty() => out.push(s.clone()),
                Some(value::Kind::ListValue(l)) => {
                    for item in &l.values {
                        if let Some(value::Kind::StringValue(s)) = &item.kind {
                            out.push(s.clone());
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn header(name: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_string(),
            raw_value: value.as_bytes().to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn body_mode(m: BodyMode) -> i32 {
    match m {
        BodyMode::None => BodySendMode::None as i32,
        BodyMode::Buffered => BodySendMode::Buffered as i32,
        BodyMode::Streamed => BodySendMode::Streamed as i32,
    }
}

fn mode(m: Mode) -> ProcessingMode {
    ProcessingMode {
        request_header_mode: HeaderSendMode::Send as i32,
        response_header_mode: if m.response_headers {
            HeaderSendMode::Send
        } else {
            HeaderSendMode::Skip
        } as i32,
        request_body_mode: body_mode(m.request_body),
        response_body_mode: body_mode(m.response_body),
        // With the body read, its trailers are asked for too: the last chance to admit.
        request_trailer_mode: if m.request_body == BodyMode::None {
            HeaderSendMode::Skip
        } else {
            HeaderSendMode::Send
        } as i32,
        response_trailer_mode: HeaderSendMode::Skip as i32,
    }
}

fn metadata(fields: Vec<(&'static str, String)>) -> Option<Struct> {
    if fields.is_empty() {
        return None;
    }
    let inner = Struct {
        fields: fields
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Value {
                        kind: Some(value::Kind::StringValue(v)),
                    },
                )
            })
            .collect(),
    };
    Some(Struct {
        fields: [(
            METADATA_NAMESPACE.to_string(),
            Value {
                kind: Some(value::Kind::StructValue(inner)),
            },
        )]
        .into_iter()
        .collect(),
    })
}

fn to_proto(reply: Reply, wrap: fn(CommonResponse) -> processing_response::Response) -> ProcessingResponse {
    match reply {
        Reply::Continue {
            set_headers,
            remove_headers,
            mode: m,
            metadata: md,
        } => {
            let header_mutation = (!set_headers.is_empty() || !remove_headers.is_empty()).then(|| HeaderMutation {
                set_headers: set_headers.iter().map(|(n, v)| header(n, v)).collect(),
                remove_headers,
            });
            ProcessingResponse {
                response: Some(wrap(CommonResponse {
                    header_mutation,
                    ..Default::default()
                })),
                mode_override: m.map(mode),
                dynamic_metadata: metadata(md),
                ..Default::default()
            }
        }
        Reply::Respond {
            status,
            error_type,
            message,
            headers,
            metadata: md,
        } => {
            let mut set = vec![
                header("x-amzn-errortype", error_type),
                header("content-type", "application/json"),
            ];
            set.extend(headers.iter().map(|(n, v)| header(n, v)));
            let body = serde_json::json!({ "message": message }).to_string().into_bytes();
            ProcessingResponse {
                response: Some(processing_response::Response::ImmediateResponse(ImmediateResponse {
                    status: Some(HttpStatus {
                        code: i32::from(status),
                    }),
                    headers: Some(HeaderMutation {
                        set_headers: set,
                        remove_headers: vec![],
                    }),
                    body,
                    details: format!("tally_{}", error_type),
                    ..Default::default()
                })),
                dynamic_metadata: metadata(md),
                ..Default::default()
            }
        }
    }
}
