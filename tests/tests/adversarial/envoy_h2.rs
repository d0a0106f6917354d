//! A raw HTTP/2 client for what the AWS SDKs never send but a hostile client can:
//! request trailers, and bodies of any size. It speaks h2c to the gateway's Envoy.

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{HeaderMap, Request};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// Status, `x-amzn-errortype` and body of a POST of `body` (then `trailers`, if
/// any) to Envoy's listener, with the team header naming `team`.
pub async fn post(
    port: u16,
    path: &str,
    team: &str,
    body: Vec<u8>,
    trailers: Option<HeaderMap>,
) -> (u16, String, String) {
    post_to(
        port,
        "bedrock-runtime.us-east-1.amazonaws.com",
        path,
        team,
        body,
        trailers,
    )
    .await
}

/// [`post`] with `authority` as the request's host (`:authority`).
pub async fn post_to(
    port: u16,
    authority: &str,
    path: &str,
    team: &str,
    body: Vec<u8>,
    trailers: Option<HeaderMap>,
) -> (u16, String, String) {
    send(port, authority, path, &[("x-team-id", team)], body, trailers).await
}

/// [`post`] for team `search` with `headers` besides.
pub async fn post_with(port: u16, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, String, String) {
    let mut all = vec![("x-team-id", "search")];
    all.extend_from_slice(headers);
    send(port, "bedrock-runtime.us-east-1.amazonaws.com", path, &all, body, None).await
}

async fn send(
    port: u16,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    trailers: Option<HeaderMap>,
) -> (u16, String, String) {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.expect("connect to Envoy");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .expect("h2c handshake");
    tokio::spawn(conn);
    let mut frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![Ok(Frame::data(Bytes::from(body)))];
    frames.extend(trailers.map(|t| Ok(Frame::trailers(t))));
    let mut request = Request::post(format!("http://{authority}{path}")).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(StreamBody::new(futures::stream::iter(frames)))
        .expect("a request");
    let response = sender.send_request(request).await.expect("an answer from Envoy");
    let status = response.status().as_u16();
    let error_type = response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (status, error_type, String::from_utf8_lossy(&body).into_owned())
}
