//! One call through the chart's gateway Envoy and the real `tally-extproc` over mTLS, everything
//! from one rendering: Envoy runs the rendered bootstrap (on loopback) with its SDS files and the
//! rendered client certificate; the ext_proc runs with the rendered Deployment's arguments and
//! environment (paths and addresses moved to loopback), the rendered server certificate, API
//! token and bundled-Redis password; Redis is the rendered Valkey (Tally's ACL user).
//!
//! With `failOpen=false` a broken channel would answer 500: the call is priced instead, its
//! ledger record reads back through the API with the rendered token (and not without it), and
//! a proxy presenting another certificate of the chart's CA (the ext_proc's own: not the
//! gateway's identity) is refused.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_yaml::Value;
use tally_tests::bedrock_sim::SimOptions;
use tally_tests::client::{AppClient, Attribution, bedrock_client, user_message};
use tally_tests::fixtures::admin;
use tally_tests::fixtures::process::{OwnedProcess, free_port, path_arg, wait_until};
use tally_tests::fixtures::sim::SimServer;
use tally_tests::fixtures::tools;
use tally_tests::scenarios::{US_HAIKU, default_config};

use crate::gateway::{Gateway, http, wait_until_ready};
use crate::render::{
    GatewayFiles, as_refs, documents, env_var, of_kind, pod_spec, render, secret_data, strs, write_secret_files,
};
use crate::valkey::RenderedValkey;

/// A call whose usage the simulated Bedrock reports (1,200 input and 300 output tokens).
const DIRECTIVE: &str = "Hello over mTLS [[usage in=1200 out=300]]";

/// `tally-extproc` started as the rendered Deployment would start it, on loopback.
struct RenderedExtProc {
    process: OwnedProcess,
    grpc: u16,
    metrics: u16,
    api: u16,
    token: String,
    _dir: tempfile::TempDir,
}

impl RenderedExtProc {
    async fn start(docs: &[Value], redis: &RenderedValkey) -> RenderedExtProc {
        let container = &pod_spec(docs, "Deployment", "tally-extproc")["containers"][0];
        let dir = tempfile::tempdir().expect("temp dir");
        write_secret_files(docs, "tally-extproc-tls", &dir.path().join("tls"));
        std::fs::create_dir_all(dir.path().join("api")).unwrap();
        std::fs::write(
            dir.path().join("api/token"),
            secret_data(docs, "tally-api-token", "token"),
        )
        .unwrap();
        let config = serde_json::to_string_pretty(&default_config()).unwrap();
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        std::fs::create_dir_all(dir.path().join("spool")).unwrap();
        let (grpc, metrics, api) = (free_port(), free_port(), free_port());
        let mut cmd = Command::new(tools::workspace_binary("tally-extproc", "tally-extproc", "extproc"));
        cmd.args(loopback_args(
            &strs(&container["args"]),
            dir.path(),
            [grpc, metrics, api],
        ));
        let url = env_var(container, "TALLY_REDIS_URL")["value"]
            .as_str()
            .expect("TALLY_REDIS_URL");
        let url = url.replace(
            "tally-redis.tally.svc.cluster.local:6379",
            &format!("127.0.0.1:{}", redis.port),
        );
        cmd.env("TALLY_REDIS_URL", url)
            .env("TALLY_REDIS_PASSWORD", &redis.password)
            .env("RUST_LOG", "info");
        let mut process = OwnedProcess::spawn("tally-extproc (rendered)", cmd).expect("start tally-extproc");
        if !admin::wait_ok(&format!("http://127.0.0.1:{metrics}/readyz"), Duration::from_secs(20)).await {
            panic!("{}", process.failure("was not ready within 20 s"));
        }
        let token = String::from_utf8(secret_data(docs, "tally-api-token", "token")).unwrap();
        RenderedExtProc {
            process,
            grpc,
            metrics,
            api,
            token,
            _dir: dir,
        }
    }

    /// `GET path` on the API port, with the bearer token when `authorized`.
    fn api(&self, path: &str, authorized: bool) -> String {
        let auth = if authorized {
            format!("authorization: Bearer {}\r\n", self.token)
        } else {
            String::new()
        };
        let request = format!("GET {path} HTTP/1.1\r\nhost: tally-extproc\r\n{auth}connection: close\r\n\r\n");
        http(self.api, &request).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }
}

/// The rendered arguments with the pod's paths under `dir` and the listeners on loopback ports
/// (gRPC, metrics, API). Every address it moves must be in the rendering.
fn loopback_args(args: &[&str], dir: &Path, [grpc, metrics, api]: [u16; 3]) -> Vec<String> {
    let root = path_arg(dir);
    let listeners = [
        ("0.0.0.0:50051", grpc),
        ("0.0.0.0:9464", metrics),
        ("0.0.0.0:9465", api),
    ];
    for (address, _) in listeners {
        assert!(
            args.contains(&address),
            "the rendered ext_proc does not listen on {address}: {args:?}"
        );
    }
    args.iter()
        .map(|a| match listeners.iter().find(|(address, _)| a == address) {
            Some((_, port)) => format!("127.0.0.1:{port}"),
            None => a
                .replace("/etc/tally/", &format!("{root}/"))
                .replace("/var/lib/tally/spool", &format!("{root}/spool")),
        })
        .collect()
}

/// The chart rendered for loopback: the gateway on `listen`/`admin` forwards to `upstream` and
/// asks the ext_proc on `grpc`, failing closed.
fn loopback_rendering(listen: u16, admin: u16, upstream: u16, grpc: u16) -> Vec<Value> {
    let sets = crate::render::loopback_sets(listen, admin, upstream, grpc, false);
    let mut sets = as_refs(&sets);
    sets.push("gateway.extProc.failOpen=false");
    documents(&render(None, &sets))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_crosses_the_rendered_mtls_channel_and_an_intruding_proxy_does_not() {
    let docs = documents(&render(None, &[]));
    let redis = RenderedValkey::from_docs(&docs).await;
    let extproc = RenderedExtProc::start(&docs, &redis).await;
    let sim = SimServer::start(SimOptions::default()).await;
    let (listen, admin) = (free_port(), free_port());
    // The bootstrap of another (loopback) rendering, with this rendering's certificates.
    let files = GatewayFiles::write(&with_secrets_of(
        &docs,
        loopback_rendering(listen, admin, sim.port(), extproc.grpc),
    ));
    let (_gateway, client, sent) = call_through(files, listen).await;
    sent.unwrap_or_else(|e| panic!("a call over mTLS: {e:?}\n{}", extproc.process.log()));
    let headers = client.responses.last();
    let cost = headers.get("x-tally-cost-usd").cloned().unwrap_or_default();
    assert!(
        !cost.is_empty() && cost != "0",
        "the ext_proc priced the call: {headers:?}"
    );

    let ledger = "/v1/ledger?team=search";
    let found = wait_until(Duration::from_secs(10), || async {
        extproc.api(ledger, true).contains("\"team\":\"search\"")
    })
    .await;
    assert!(
        found,
        "the ledger record reads back with the token:\n{}",
        extproc.api(ledger, true)
    );
    assert!(
        extproc.api(ledger, false).starts_with("HTTP/1.1 401"),
        "and not without it"
    );
    let metrics = admin::get_ok(&format!("http://127.0.0.1:{}/metrics", extproc.metrics)).await;
    assert!(
        metrics.contains("tally_spend_nanos_total{"),
        "metrics stay open on their own port:\n{metrics}"
    );

    assert_intruding_proxy_is_refused(&docs, sim.port(), extproc.grpc).await;
}

/// `rendering` (a gateway ConfigMap) with the Secrets of `docs` (the certificates in use).
fn with_secrets_of(docs: &[Value], mut rendering: Vec<Value>) -> Vec<Value> {
    rendering.retain(|d| d["kind"] != "Secret");
    rendering.extend(of_kind(docs, "Secret").cloned());
    rendering
}

/// A proxy with a certificate of the same CA but another identity (the ext_proc's server
/// certificate) cannot open ext_proc streams: with failOpen=false its call fails.
async fn assert_intruding_proxy_is_refused(docs: &[Value], upstream: u16, grpc: u16) {
    let (listen, admin) = (free_port(), free_port());
    let files = GatewayFiles::write(&with_secrets_of(
        docs,
        loopback_rendering(listen, admin, upstream, grpc),
    ));
    for file in ["tls.crt", "tls.key"] {
        std::fs::write(
            files.client_dir.join(file),
            secret_data(docs, "tally-extproc-tls", file),
        )
        .unwrap();
    }
    let (_intruder, _, sent) = call_through(files, listen).await;
    let (status, error) = sent.expect_err("a certificate that is not the gateway's must not reach the ext_proc");
    assert_eq!(
        status,
        Some(500),
        "failOpen=false: Envoy answers 500 when the ext_proc refuses its stream: {error}"
    );
}

/// Starts Envoy on `files` (its listener on `listen`) and sends one Converse call through it
/// with the AWS SDK; a failure as (HTTP status, error).
async fn call_through(files: GatewayFiles, listen: u16) -> (Gateway, AppClient, Result<(), (Option<u16>, String)>) {
    let gateway = Gateway::run(files);
    wait_until_ready(listen);
    let url = format!("http://127.0.0.1:{listen}");
    let client = bedrock_client(&url, Attribution::new("search", "acme", "rag"), false);
    let call = client
        .sdk
        .converse()
        .model_id(US_HAIKU)
        .messages(user_message(DIRECTIVE));
    let sent = call
        .send()
        .await
        .map(|_| ())
        .map_err(|e| (e.raw_response().map(|r| r.status().as_u16()), format!("{e:?}")));
    (gateway, client, sent)
}
