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

/// The processing mode it asks for at the request headers.
struct Null(ProcessingMode);

/// Request headers and response headers, no bodies: the same phases Tally's fastest calls use.
const HEADERS_ONLY: ProcessingMode = ProcessingMode {
    request_header_mode: HeaderSendMode::Send as i32,
    response_header_mode: HeaderSendMode::Send as i32,
    request_body_mode: BodySendMode::None as i32,
    response_body_mode: BodySendMode::None as i32,
    request_trailer_mode: HeaderSendMode::Skip as i32,
    response_trailer_mode: HeaderSendMode::Skip as i32,
};

/// Both bodies buffered as well (`null-extproc <addr> <workers> bodies`): the four messages
/// Tally's Converse calls take with `--request-body always` — Envoy's cost of the messages
/// themselves, with no decision behind them.
const WITH_BODIES: ProcessingMode = ProcessingMode {
    request_body_mode: BodySendMode::Buffered as i32,
    response_body_mode: BodySendMode::Buffered as i32,
    ..HEADERS_ONLY
};

fn answer(msg: ProcessingRequest, mode: ProcessingMode) -> ProcessingResponse {
    let headers = || HeadersResponse {
        response: Some(CommonResponse::default()),
    };
    let body = || BodyResponse {
        response: Some(CommonResponse::default()),
    };
    let (response, mode_override) = match msg.request {
        Some(Req::RequestHeaders(_)) => (Resp::RequestHeaders(headers()), Some(mode)),
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
        let mode = self.0;
        let answers = request
            .into_inner()
            .take_while(|m| futures::future::ready(m.is_ok()))
            .map(move |m| Ok(answer(m.expect("errors end the stream above"), mode)));
        Ok(Response::new(Box::pin(answers)))
    }
}

fn main() -> anyhow::Result<()> {
    let usage = || anyhow::anyhow!("usage: null-extproc <listen address> <worker threads> [bodies]");
    let mut argv = std::env::args().skip(1);
    let addr: SocketAddr = argv.next().ok_or_else(usage)?.parse()?;
    let workers: usize = argv.next().ok_or_else(usage)?.parse()?;
    let mode = match argv.next().as_deref() {
        None => HEADERS_ONLY,
        Some("bodies") => WITH_BODIES,
        Some(_) => return Err(usage()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async {
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(ExternalProcessorServer::new(Null(mode)))
            .serve(addr)
            .await
    })?;
    Ok(())
}
