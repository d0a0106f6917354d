//! `null-extproc`: the cheapest ext_proc that can still meter and enforce — it
//! sees each call's request and response headers and answers at once, with no
//! decision, store or pricing. The benchmark runs Envoy with it as the floor of
//! the ext_proc mechanism itself, so Tally's own share of the added latency and
//! CPU can be told apart from Envoy's cost of calling out at all.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::pin::Pin;

use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::ProcessingMode;
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::{BodySendMode, HeaderSendMode};
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::{
    ExternalProcessor, ExternalProcessorServer,
};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    BodyResponse, CommonResponse, HeadersResponse, ProcessingRequest, ProcessingResponse, TrailersResponse,
    processing_request::Request as Req, processing_response::Response as Resp,
};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

struct Null;

/// Request headers and response headers, no bodies: the same phases Tally's fastest calls use.
const HEADERS_ONLY: ProcessingMode = ProcessingMode {
    request_header_mode: HeaderSendMode::Send as i32,
    response_header_mode: HeaderSendMode::Send as i32,
    request_body_mode: BodySendMode::None as i32,
    response_body_mode: BodySendMode::None as i32,
    request_trailer_mode: HeaderSendMode::Skip as i32,
    response_trailer_mode: HeaderSendMode::Skip as i32,
};

fn answer(msg: ProcessingRequest) -> ProcessingResponse {
    let headers = || HeadersResponse {
        response: Some(CommonResponse::default()),
    };
    let body = || BodyResponse {
        response: Some(CommonResponse::default()),
    };
    let (response, mode_override) = match msg.request {
        Some(Req::RequestHeaders(_)) => (Resp::RequestHeaders(headers()), Some(HEADERS_ONLY)),
        Some(Req::ResponseHeaders(_)) => (Resp::ResponseHeaders(headers()), None),
        Some(Req::RequestBody(_)) => (Resp::RequestBody(body()), None),
        Some(Req::ResponseBody(_)) => (Resp::ResponseBody(body()), None),
        Some(Req::RequestTrailers(_)) => (Resp::RequestTrailers(TrailersResponse::default()), None),
        Some(Req::ResponseTrailers(_)) | None => (Resp::ResponseTrailers(TrailersResponse::default()), None),
    };
    ProcessingResponse {
        response: Some(response),
        mode_override,
        ..Default::default()
    }
}

type Answers = Pin<Box<dyn Stream<Item = Result<ProcessingResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalProcessor for Null {
    type ProcessStream = Answers;

    async fn process(&self, request: Request<Streaming<ProcessingRequest>>) -> Result<Response<Answers>, Status> {
        // Envoy ends every stream with a reset: an inbound error is the end, not a failure.
        let answers = request
            .into_inner()
            .take_while(|m| futures::future::ready(m.is_ok()))
            .map(|m| Ok(answer(m.expect("errors end the stream above"))));
        Ok(Response::new(Box::pin(answers)))
    }
}

fn main() -> anyhow::Result<()> {
    let usage = || anyhow::anyhow!("usage: null-extproc <listen address> <worker threads>");
    let mut argv = std::env::args().skip(1);
    let addr: SocketAddr = argv.next().ok_or_else(usage)?.parse()?;
    let workers: usize = argv.next().ok_or_else(usage)?.parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async {
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(ExternalProcessorServer::new(Null))
            .serve(addr)
            .await
    })?;
    Ok(())
}
