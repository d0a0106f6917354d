//! A real Envoy started from the rendered gateway bootstrap: it answers the readiness probe and
//! forwards a call, re-signed with the gateway's identity for the Bedrock host, to a loopback
//! upstream that records what it received.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_yaml::Value;
use sha2::{Digest, Sha256};
use tally_tests::fixtures::process::{OwnedProcess, free_port};
use tally_tests::fixtures::tools;

use crate::render::{GatewayFiles, as_refs, documents, loopback_sets, render};

/// The path of the call sent through the gateway; the upstream must see it unchanged.
const CONVERSE_PATH: &str = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse";

#[test]
fn gateway_re_signs_calls_for_the_bedrock_host_and_serves_probes() {
    let upstream = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let upstream_port = upstream.local_addr().unwrap().port();
    let captured = capture_one_request(upstream);
    let (listen, admin, extproc) = (free_port(), free_port(), free_port());
    // No ext_proc listens on `extproc`: with the default failOpen=true the call must still pass.
    let sets = loopback_sets(listen, admin, upstream_port, extproc, true);
    let _gateway = Gateway::start(&documents(&render(None, &as_refs(&sets))));

    let ready = wait_until_ready(listen);
    assert!(
        ready.contains("LIVE"),
        "the readiness probe reaches the admin /ready: {ready}"
    );

    let body = r#"{"messages":[{"role":"user","content":[{"text":"hello"}]}]}"#;
    let response = http(listen, &client_signed_call(body)).expect("call through the gateway");
    assert!(response.starts_with("HTTP/1.1 200"), "the call failed: {response}");
    assert!(
        response.contains(r#""outputTokens":1"#),
        "the answer is forwarded unchanged: {response}"
    );

    let (head, received) = captured
        .recv_timeout(Duration::from_secs(5))
        .expect("the upstream got the call");
    assert!(
        head.starts_with(&format!("POST {CONVERSE_PATH} HTTP/1.1")),
        "path kept as sent: {head}"
    );
    assert_eq!(received, body.as_bytes());
    assert_re_signed_by_the_gateway(&head, body);
}

/// Envoy running the rendered bootstrap (with its SDS files and client certificate), killed on
/// drop (its log printed if the test fails).
pub struct Gateway {
    _envoy: OwnedProcess,
    _files: GatewayFiles,
}

impl Gateway {
    /// The gateway of one rendering (`docs`), on the loopback addresses its values name.
    pub fn start(docs: &[Value]) -> Gateway {
        Gateway::run(GatewayFiles::write(docs))
    }

    /// Envoy on files already written (and possibly altered by the test).
    pub fn run(files: GatewayFiles) -> Gateway {
        let mut cmd = Command::new(tools::envoy());
        cmd.args(["--disable-hot-restart", "--log-level", "warn", "-c"])
            .arg(&files.bootstrap)
            .env("AWS_ACCESS_KEY_ID", "AKIDGATEWAY")
            .env("AWS_SECRET_ACCESS_KEY", "gateway-secret")
            .env_remove("AWS_SESSION_TOKEN")
            // Keep the credential chain off the network: only loopback traffic in tests.
            .env("AWS_EC2_METADATA_DISABLED", "true");
        Gateway {
            _envoy: OwnedProcess::spawn("envoy", cmd).expect("start envoy"),
            _files: files,
        }
    }
}

/// Polls `GET /ready` on the listener port until it answers 200; returns that response.
pub fn wait_until_ready(listen: u16) -> String {
    let probe = "GET /ready HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n\r\n";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match http(listen, probe) {
            Ok(r) if r.starts_with("HTTP/1.1 200") => return r,
            _ if Instant::now() > deadline => {
                panic!("envoy did not answer /ready on the listener port {listen} within 20s")
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A Converse call as a client signed it for itself, with a session token and an old date the
/// gateway must not pass on.
fn client_signed_call(body: &str) -> String {
    format!(
        "POST {CONVERSE_PATH} HTTP/1.1\r\nhost: tally-gateway.tally\r\n\
         content-type: application/json\r\nx-team-id: team-a\r\n\
         authorization: AWS4-HMAC-SHA256 Credential=AKIDCLIENT/20200101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=00\r\n\
         x-amz-date: 20200101T000000Z\r\nx-amz-security-token: client-session-token\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The upstream saw the Bedrock host and a fresh SigV4 signature by the gateway's identity
/// over the payload, without the client's session token; other headers pass through.
fn assert_re_signed_by_the_gateway(head: &str, body: &str) {
    let header = |name: &str| -> Option<String> {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    assert_eq!(
        header("host").as_deref(),
        Some("bedrock-runtime.us-east-1.amazonaws.com"),
        "{head}"
    );
    let authorization = header("authorization").unwrap_or_default();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDGATEWAY/"),
        "re-signed with the gateway's identity: {head}"
    );
    assert!(
        authorization.contains("/us-east-1/bedrock/aws4_request"),
        "{authorization}"
    );
    assert!(
        authorization.contains("SignedHeaders=") && authorization.contains("host"),
        "{authorization}"
    );
    assert_eq!(
        header("x-amz-security-token"),
        None,
        "the client's session token must not survive re-signing: {head}"
    );
    assert_ne!(header("x-amz-date").as_deref(), Some("20200101T000000Z"), "{head}");
    assert_eq!(
        header("x-amz-content-sha256"),
        Some(hex::encode(Sha256::digest(body.as_bytes()))),
        "the payload is signed: {head}"
    );
    assert_eq!(header("x-team-id").as_deref(), Some("team-a"), "{head}");
}

/// A one-shot HTTP/1.1 upstream on 127.0.0.1 that records the request head and body.
fn capture_one_request(listener: TcpListener) -> mpsc::Receiver<(String, Vec<u8>)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let len = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
            })
            .unwrap_or(0);
        let mut body = vec![0; len];
        let _ = reader.read_exact(&mut body);
        let answer = r#"{"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}},"usage":{"inputTokens":3,"outputTokens":1}}"#;
        let mut stream = reader.into_inner();
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        );
        let _ = tx.send((head, body));
    });
    rx
}
/// One HTTP/1.1 exchange with `connection: close`; returns the whole response.
pub fn http(port: u16, request: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}
