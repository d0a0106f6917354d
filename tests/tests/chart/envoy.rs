//! The Envoy configuration the chart renders: the gateway bootstrap (with its SDS files) and
//! the Istio patches pass `envoy --mode validate`, and the bootstrap follows the documented
//! contract (loopback admin, filter order, ext_proc settings, re-signing for the regional
//! Bedrock host).

use std::path::Path;
use std::process::Command;

use serde_yaml::Value;
use tally_tests::fixtures::tools;

use crate::render::{
    GatewayFiles, as_refs, documents, envoy_bootstrap, envoy_cluster, first_endpoint, loopback_sets, of_kind, output,
    render, report, strs,
};

/// `envoy --mode validate` on a bootstrap; AWS variables are dummies (signing needs none to validate,
/// but the default credential chain must not try the instance metadata service).
fn envoy_validate(bootstrap: &str, what: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("envoy.yaml");
    std::fs::write(&path, bootstrap).expect("write bootstrap");
    envoy_validate_file(&path, what);
}

fn envoy_validate_file(path: &Path, what: &str) {
    let out = output(
        Command::new(tools::envoy())
            .args(["--mode", "validate", "--log-level", "warn", "-c"])
            .arg(path)
            .env("AWS_ACCESS_KEY_ID", "AKIDVALIDATE")
            .env("AWS_SECRET_ACCESS_KEY", "validate")
            .env("AWS_EC2_METADATA_DISABLED", "true"),
    );
    let all = report(&out);
    let bootstrap = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        out.status.success() && all.contains("OK"),
        "envoy --mode validate rejected {what}:\n{all}\n----- config -----\n{bootstrap}"
    );
}

/// The gateway's bootstrap rendered with `sets`, validated beside the files it reads (the SDS
/// files of the ext_proc client certificate), where the pod mounts them.
fn validate_rendered_gateway(sets: &[&str], what: &str) {
    let files = GatewayFiles::write(&documents(&render(None, sets)));
    envoy_validate_file(&files.bootstrap, what);
}

#[test]
fn rendered_envoy_bootstrap_passes_envoy_validate() {
    validate_rendered_gateway(
        &[],
        "the default bootstrap (TLS to Bedrock, signing on, mTLS to the ext_proc)",
    );
    validate_rendered_gateway(
        &["gateway.region=eu-central-1,gateway.extProc.failOpen=false,gateway.accessLog.enabled=false"],
        "eu-central-1, fail closed",
    );
    validate_rendered_gateway(&["extproc.tls.enabled=false"], "plaintext to the ext_proc");
    for signing in [false, true] {
        let sets = loopback_sets(18080, 19901, 18443, 15051, signing);
        validate_rendered_gateway(&as_refs(&sets), &format!("the loopback bootstrap (signing {signing})"));
    }
}

#[test]
fn rendered_envoy_bootstrap_follows_the_documented_contract() {
    let sets = loopback_sets(18080, 19901, 18443, 15051, true);
    let envoy: Value = serde_yaml::from_str(&envoy_bootstrap(&as_refs(&sets))).expect("envoy.yaml parses");
    let listener = &envoy["static_resources"]["listeners"][0];
    assert_admin_and_listener_are_loopback(&envoy, listener);
    let hcm = &listener["filter_chains"][0]["filters"][0]["typed_config"];
    assert_ext_proc_runs_before_re_signing(hcm);
    let bedrock = &last_item(&hcm["route_config"]["virtual_hosts"][0]["routes"])["route"];
    assert_eq!(
        bedrock["timeout"].as_str(),
        Some("3600s"),
        "calls, streams included, end at Bedrock's own 60-minute limit (the reservation TTL outlives it)"
    );
    assert_eq!(
        bedrock["host_rewrite_literal"].as_str(),
        Some("bedrock-runtime.us-east-1.amazonaws.com")
    );
    assert!(
        envoy_cluster(&envoy, "bedrock")["transport_socket"].is_null(),
        "tls=false means plain HTTP to the loopback upstream"
    );
    let extproc = envoy_cluster(&envoy, "tally_extproc");
    assert!(!extproc["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"]["http2_protocol_options"].is_null(), "gRPC needs HTTP/2");
    assert_tls_upstream_is_the_regional_bedrock_host();
}

/// The last element of a sequence (which must not be empty).
fn last_item(seq: &Value) -> &Value {
    seq.as_sequence().and_then(|s| s.last()).expect("a non-empty sequence")
}

fn assert_admin_and_listener_are_loopback(envoy: &Value, listener: &Value) {
    let sock = &envoy["admin"]["address"]["socket_address"];
    assert_eq!(
        (sock["address"].as_str(), sock["port_value"].as_u64()),
        (Some("127.0.0.1"), Some(19901)),
        "admin is loopback-only"
    );
    assert_eq!(
        listener["address"]["socket_address"]["address"].as_str(),
        Some("127.0.0.1")
    );
    assert_eq!(
        listener["address"]["socket_address"]["port_value"].as_u64(),
        Some(18080)
    );
    assert!(
        listener["per_connection_buffer_limit_bytes"].as_u64() >= Some(32 << 20),
        "buffer limit for BUFFERED bodies"
    );
}

/// The HTTP filter chain: ext_proc (headers only by default, fail open, mode override allowed)
/// first, then the header mutation, the SigV4 re-signing for Bedrock, and the router.
fn assert_ext_proc_runs_before_re_signing(hcm: &Value) {
    let filters: Vec<&str> = hcm["http_filters"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(
        filters,
        [
            "envoy.filters.http.ext_proc",
            "envoy.filters.http.header_mutation",
            "envoy.filters.http.aws_request_signing",
            "envoy.filters.http.router"
        ],
        "ext_proc must run before the gateway re-signs"
    );
    let ext_proc = &hcm["http_filters"][0]["typed_config"];
    let mode = &ext_proc["processing_mode"];
    for (k, v) in [
        ("request_header_mode", "SEND"),
        ("response_header_mode", "SEND"),
        ("request_body_mode", "NONE"),
        ("response_body_mode", "NONE"),
        ("request_trailer_mode", "SKIP"),
        ("response_trailer_mode", "SKIP"),
    ] {
        assert_eq!(mode[k].as_str(), Some(v), "processing_mode.{k}");
    }
    assert_eq!(ext_proc["allow_mode_override"].as_bool(), Some(true));
    assert_eq!(ext_proc["failure_mode_allow"].as_bool(), Some(true));
    assert_eq!(ext_proc["message_timeout"].as_str(), Some("0.500s"));
    assert_eq!(ext_proc["max_message_timeout"].as_str(), Some("5s"));
    assert_eq!(
        strs(&ext_proc["metadata_options"]["receiving_namespaces"]["untyped"]),
        ["tally"]
    );
    assert_eq!(
        strs(&ext_proc["request_attributes"]),
        ["connection.uri_san_peer_certificate", "source.address"]
    );
    let signing = &hcm["http_filters"][2]["typed_config"];
    assert_eq!(signing["service_name"].as_str(), Some("bedrock"));
    assert_eq!(signing["region"].as_str(), Some("us-east-1"));
    assert_eq!(
        signing["host_rewrite"].as_str(),
        Some("bedrock-runtime.us-east-1.amazonaws.com")
    );
    assert_eq!(signing["use_unsigned_payload"].as_bool(), Some(false));
}

/// With TLS, the upstream is Bedrock itself: SNI and certificate name are the regional host.
fn assert_tls_upstream_is_the_regional_bedrock_host() {
    let envoy: Value = serde_yaml::from_str(&envoy_bootstrap(&["gateway.region=ap-northeast-1"])).unwrap();
    let upstream = envoy_cluster(&envoy, "bedrock");
    let host = "bedrock-runtime.ap-northeast-1.amazonaws.com";
    assert_eq!(first_endpoint(upstream)["address"].as_str(), Some(host));
    assert_eq!(first_endpoint(upstream)["port_value"].as_u64(), Some(443));
    let tls = &upstream["transport_socket"]["typed_config"];
    assert_eq!(tls["sni"].as_str(), Some(host));
    assert_eq!(
        tls["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"][0]["matcher"]["exact"]
            .as_str(),
        Some(host)
    );
}

#[test]
fn istio_envoy_filter_patch_is_valid_envoy_configuration() {
    // Istio merges the patches into its own listeners; rebuild that shape around them and let Envoy check it.
    let docs = documents(&render(Some("istio.yaml"), &[]));
    let ef = of_kind(&docs, "EnvoyFilter").next().expect("EnvoyFilter");
    let patches = ef["spec"]["configPatches"].as_sequence().expect("configPatches");
    let filter = serde_json::to_string(&patches[0]["patch"]["value"]).unwrap();
    let vhost_name = patches[1]["match"]["routeConfiguration"]["vhost"]["name"]
        .as_str()
        .unwrap();
    assert_eq!(vhost_name, "bedrock-runtime.eu-west-1.amazonaws.com:80");
    let per_vhost = serde_json::to_string(&patches[1]["patch"]["value"]["typed_per_filter_config"]).unwrap();
    let cluster = "outbound|50051||tally-extproc.tally.svc.cluster.local";
    let bootstrap = format!(
        r#"{{"static_resources": {{
  "listeners": [{{"name": "egress", "address": {{"socket_address": {{"address": "127.0.0.1", "port_value": 18081}}}},
    "filter_chains": [{{"filters": [{{"name": "envoy.filters.network.http_connection_manager", "typed_config": {{
      "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
      "stat_prefix": "egress",
      "http_filters": [{filter}, {{"name": "envoy.filters.http.router", "typed_config": {{"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}}}],
      "route_config": {{"virtual_hosts": [{{"name": "{vhost_name}", "domains": ["bedrock-runtime.eu-west-1.amazonaws.com"],
        "typed_per_filter_config": {per_vhost},
        "routes": [{{"match": {{"prefix": "/"}}, "route": {{"cluster": "{cluster}"}}}}]}}]}}}}}}]}}]}}],
  "clusters": [{{"name": "{cluster}", "type": "STRICT_DNS", "connect_timeout": "1s",
    "typed_extension_protocol_options": {{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {{
      "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions", "explicit_http_config": {{"http2_protocol_options": {{}}}}}}}},
    "load_assignment": {{"cluster_name": "{cluster}", "endpoints": [{{"lb_endpoints": [{{"endpoint": {{"address": {{"socket_address": {{"address": "127.0.0.1", "port_value": 15051}}}}}}}}]}}]}}}}]}}}}"#
    );
    envoy_validate(&bootstrap, "the Istio EnvoyFilter patches");
}
