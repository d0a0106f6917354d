//! Who may open ext_proc streams, and whose request attributes count.

use std::path::Path;

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    HttpHeaders, ProcessingRequest, ProcessingResponse, processing_request, processing_response,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value};
use tally_tests::fixtures::certs::{Leaf, TestCa, Usage};
use tally_tests::fixtures::extproc::{ExtProc, ExtProcOptions, GrpcSecurity};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::{APP_ID, GATEWAY_ID, config};

/// The certificates of one test: the gateway's CA (which also signs the server), the
/// gateway's client certificate, a client of the same CA with another identity, and a
/// rogue CA's certificate that claims the gateway's identity.
struct Pki {
    _dir: tempfile::TempDir,
    ca: TestCa,
    server: Leaf,
    gateway: Leaf,
    stranger: Leaf,
    impostor: Leaf,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::create(&dir.path().join("ca"), "tally-gateway-ca").expect("CA");
    let rogue = TestCa::create(&dir.path().join("rogue"), "rogue-ca").expect("rogue CA");
    let uri = |id: &str| format!("URI:{id}");
    Pki {
        server: ca.loopback_server("extproc").expect("server cert"),
        gateway: ca
            .issue("gateway", Usage::Client, &[&uri(GATEWAY_ID)])
            .expect("gateway cert"),
        stranger: ca
            .issue(
                "stranger",
                Usage::Client,
                &[&uri("spiffe://cluster.local/ns/apps/sa/other")],
            )
            .expect("stranger cert"),
        impostor: rogue
            .issue("impostor", Usage::Client, &[&uri(GATEWAY_ID)])
            .expect("impostor cert"),
        ca,
        _dir: dir,
    }
}

/// The ext_proc serving TLS with `pki`'s server certificate; `client_ca` requires client
/// certificates, `trusted` lists the ids that may open streams.
async fn tls_extproc(pki: &Pki, client_ca: bool, trusted: &[&str]) -> ExtProc {
    let mut opts = ExtProcOptions::new(config(), None);
    opts.grpc_security = GrpcSecurity::Tls {
        cert: pki.server.cert.clone(),
        key: pki.server.key.clone(),
        client_ca: client_ca.then(|| pki.ca.cert()),
        trusted_ids: trusted.iter().map(|s| s.to_string()).collect(),
    };
    ExtProc::start(opts).await
}

async fn plaintext_extproc(trust_attributes: bool) -> ExtProc {
    let mut opts = ExtProcOptions::new(config(), None);
    opts.grpc_security = GrpcSecurity::Plaintext { trust_attributes };
    ExtProc::start(opts).await
}

fn pem(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A TLS channel to the ext_proc that trusts `ca` and presents `client`, if any.
async fn tls_channel(port: u16, ca: &Path, client: Option<&Leaf>) -> Result<Channel, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pem(ca)))
        .domain_name("localhost");
    if let Some(leaf) = client {
        tls = tls.identity(Identity::from_pem(pem(&leaf.cert), pem(&leaf.key)));
    }
    Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))
}

async fn plaintext_channel(port: u16) -> Result<Channel, String> {
    Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))
}

/// The request headers of a Converse call charged to `team`, with the application's
/// identity in the `connection.uri_san_peer_certificate` attribute when `principal` is set.
fn converse_headers(team: &str, principal: Option<&str>) -> ProcessingRequest {
    let header = |k: &str, v: &str| HeaderValue {
        key: k.into(),
        raw_value: v.as_bytes().to_vec(),
        ..Default::default()
    };
    let headers = vec![
        header(":method", "POST"),
        header(":path", "/model/amazon.nova-micro-v1:0/converse"),
        header(":authority", "bedrock-runtime.us-east-1.amazonaws.com"),
        header("x-team-id", team),
    ];
    let attributes = principal.map(|p| {
        let value = Value {
            kind: Some(value::Kind::StringValue(p.into())),
        };
        let fields = [("connection.uri_san_peer_certificate".to_string(), value)];
        let group = Struct {
            fields: fields.into_iter().collect(),
        };
        ("envoy.filters.http.ext_proc".to_string(), group)
    });
    ProcessingRequest {
        request: Some(processing_request::Request::RequestHeaders(HttpHeaders {
            headers: Some(HeaderMap { headers }),
            ..Default::default()
        })),
        attributes: attributes.into_iter().collect(),
        ..Default::default()
    }
}

/// Opens an ext_proc stream on `channel`, sends `msg` and returns the first answer.
async fn first_answer(channel: Result<Channel, String>, msg: ProcessingRequest) -> Result<ProcessingResponse, String> {
    let mut client = ExternalProcessorClient::new(channel?);
    let mut inbound = client
        .process(tokio_stream::iter([msg]))
        .await
        .map_err(|s| format!("open: {:?} {}", s.code(), s.message()))?
        .into_inner();
    match inbound.message().await {
        Ok(Some(answer)) => Ok(answer),
        Ok(None) => Err("the stream ended without an answer".into()),
        Err(s) => Err(format!("answer: {:?} {}", s.code(), s.message())),
    }
}

/// `Some(message)` when the answer refuses the call, `None` when it lets it continue.
fn refusal(answer: &ProcessingResponse) -> Option<String> {
    match &answer.response {
        Some(processing_response::Response::ImmediateResponse(i)) => {
            Some(String::from_utf8_lossy(&i.body).into_owned())
        }
        _ => None,
    }
}

#[tokio::test]
async fn only_the_gateways_certificate_opens_ext_proc_streams() {
    let pki = pki();
    let ext = tls_extproc(&pki, true, &[GATEWAY_ID]).await;
    let port = ext.grpc_port();
    let ca = pki.ca.cert();
    let call = || converse_headers("search", None);
    let refused = [
        (
            "plaintext HTTP/2",
            first_answer(plaintext_channel(port).await, call()).await,
        ),
        (
            "TLS without a client certificate",
            first_answer(tls_channel(port, &ca, None).await, call()).await,
        ),
        (
            "a rogue CA's certificate naming the gateway",
            first_answer(tls_channel(port, &ca, Some(&pki.impostor)).await, call()).await,
        ),
        (
            "the right CA, another identity",
            first_answer(tls_channel(port, &ca, Some(&pki.stranger)).await, call()).await,
        ),
    ];
    for (client, outcome) in &refused {
        assert!(outcome.is_err(), "{client} opened an ext_proc stream: {outcome:?}");
    }
    let stranger = refused[3].1.as_ref().unwrap_err();
    assert!(stranger.contains("PermissionDenied"), "{stranger}");
    let gateway = first_answer(tls_channel(port, &ca, Some(&pki.gateway)).await, call()).await;
    let answer = gateway.expect("the gateway's certificate opens a stream");
    assert_eq!(refusal(&answer), None, "a plain call of team search continues");
}

#[tokio::test]
async fn the_trusted_gateways_attributes_bind_principals() {
    let pki = pki();
    let ext = tls_extproc(&pki, true, &[GATEWAY_ID]).await;
    let (port, ca) = (ext.grpc_port(), pki.ca.cert());
    let ask = |principal: Option<&'static str>| {
        let ca = ca.clone();
        let gateway = pki.gateway.clone();
        async move {
            let channel = tls_channel(port, &ca, Some(&gateway)).await;
            first_answer(channel, converse_headers("secure", principal))
                .await
                .expect("the gateway opens streams")
        }
    };
    assert_eq!(
        refusal(&ask(Some(APP_ID)).await),
        None,
        "the bound workload may charge team secure"
    );
    let other = refusal(&ask(Some("spiffe://cluster.local/ns/apps/sa/other")).await).expect("refused");
    assert!(other.contains("sa/other") && other.contains("not allowed"), "{other}");
    let none = refusal(&ask(None).await).expect("refused");
    assert!(none.contains("presented none"), "{none}");
}

/// A call of team `secure` claiming to come from [`APP_ID`] over `channel`: the refusal, if any.
async fn claim_app_identity(channel: Result<Channel, String>) -> Option<String> {
    let answer = first_answer(channel, converse_headers("secure", Some(APP_ID))).await;
    refusal(&answer.expect("the stream opens"))
}

#[tokio::test]
async fn forged_principals_from_untrusted_peers_are_ignored() {
    let pki = pki();
    // TLS without client certificates: anyone may connect, nobody is the gateway.
    let server_tls = tls_extproc(&pki, false, &[]).await;
    let refused = claim_app_identity(tls_channel(server_tls.grpc_port(), &pki.ca.cert(), None).await).await;
    let message = refused.expect("a forged principal over server-only TLS is ignored");
    assert!(message.contains("presented none"), "{message}");
    // Plaintext: ignored unless --trust-plaintext-peer-attributes says otherwise.
    let wary = plaintext_extproc(false).await;
    let refused = claim_app_identity(plaintext_channel(wary.grpc_port()).await).await;
    let message = refused.expect("a forged principal over plaintext is ignored");
    assert!(message.contains("presented none"), "{message}");
    let trusting = plaintext_extproc(true).await;
    assert_eq!(
        claim_app_identity(plaintext_channel(trusting.grpc_port()).await).await,
        None,
        "--trust-plaintext-peer-attributes believes the attribute"
    );
}
