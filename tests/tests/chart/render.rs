//! The suite's view of the chart: `helm template` runs, the rendered YAML parsed into
//! documents, and readers for the parts of those documents the tests look at (pods,
//! containers, arguments, Envoy clusters). No assertions about the chart live here.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use tally_tests::fixtures::tools;

pub const RELEASE: &str = "tally";
pub const NAMESPACE: &str = "tally";

/// A values file under `tests/fixtures/chart`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/chart")
        .join(name)
}

pub fn chart_dir() -> PathBuf {
    tools::workspace_root().join("charts/tally")
}

pub fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// stdout followed by stderr, for tools that report on either.
pub fn report(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// `helm template` with a values file from the fixtures and `--set` flags.
pub fn try_render(values: Option<&str>, sets: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(tools::helm());
    cmd.args(["template", RELEASE])
        .arg(chart_dir())
        .args(["--namespace", NAMESPACE]);
    if let Some(file) = values {
        cmd.arg("--values").arg(fixture(file));
    }
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = output(&mut cmd);
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

pub fn render(values: Option<&str>, sets: &[&str]) -> String {
    try_render(values, sets)
        .unwrap_or_else(|e| panic!("helm template (values {values:?}, --set {sets:?}) failed:\n{e}"))
}

pub fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{yaml}")))
        .filter(|v| !v.is_null())
        .collect()
}

pub fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

pub fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or_default()
}

pub fn id(doc: &Value) -> String {
    format!("{}/{}", kind(doc), name(doc))
}

pub fn find<'a>(docs: &'a [Value], kind_: &str, name_: &str) -> Option<&'a Value> {
    docs.iter().find(|d| kind(d) == kind_ && name(d) == name_)
}

pub fn get<'a>(docs: &'a [Value], kind_: &str, name_: &str) -> &'a Value {
    find(docs, kind_, name_).unwrap_or_else(|| panic!("{kind_}/{name_} is not rendered"))
}

/// The documents of one kind.
pub fn of_kind<'a>(docs: &'a [Value], kind_: &'a str) -> impl Iterator<Item = &'a Value> {
    docs.iter().filter(move |d| kind(d) == kind_)
}

/// The elements of a sequence; none when `v` is absent or not a sequence.
pub fn items(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_sequence().into_iter().flatten()
}

pub fn strs(v: &Value) -> Vec<&str> {
    items(v).filter_map(Value::as_str).collect()
}

/// The pod template spec of a workload.
pub fn pod_spec<'a>(docs: &'a [Value], kind_: &str, name_: &str) -> &'a Value {
    &get(docs, kind_, name_)["spec"]["template"]["spec"]
}

/// The pod templates: (workload id, pod spec, pod labels).
pub fn pods(docs: &[Value]) -> Vec<(String, &Value, &Value)> {
    docs.iter()
        .filter(|d| matches!(kind(d), "Deployment" | "StatefulSet" | "DaemonSet" | "Job"))
        .map(|d| {
            (
                id(d),
                &d["spec"]["template"]["spec"],
                &d["spec"]["template"]["metadata"]["labels"],
            )
        })
        .collect()
}

/// Whether pod `labels` match every entry of a label `selector`.
pub fn selects(selector: &Mapping, labels: &Value) -> bool {
    selector
        .iter()
        .all(|(k, v)| &labels[k.as_str().unwrap_or_default()] == v)
}

pub fn containers(pod: &Value) -> Vec<&Value> {
    ["initContainers", "containers"]
        .iter()
        .flat_map(|k| items(&pod[*k]))
        .collect()
}

/// The value following `flag` in a container's args.
pub fn arg<'a>(container: &'a Value, flag: &str) -> Option<&'a str> {
    let args = strs(&container["args"]);
    args.iter()
        .position(|a| *a == flag)
        .and_then(|i| args.get(i + 1).copied())
}

/// A container's env entry `var`, or null.
pub fn env_var<'a>(container: &'a Value, var: &str) -> &'a Value {
    items(&container["env"])
        .find(|e| e["name"].as_str() == Some(var))
        .unwrap_or(&Value::Null)
}

/// The element of a sequence whose `key` is `value`.
pub fn named<'a>(seq: &'a Value, key: &str, value: &str) -> Option<&'a Value> {
    items(seq).find(|e| e[key].as_str() == Some(value))
}

/// The Envoy bootstrap in the gateway ConfigMap, rendered with `sets`.
pub fn envoy_bootstrap(sets: &[&str]) -> String {
    let mut cmd = Command::new(tools::helm());
    cmd.args(["template", RELEASE])
        .arg(chart_dir())
        .args(["--show-only", "templates/gateway-configmap.yaml"]);
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = output(&mut cmd);
    assert!(
        out.status.success(),
        "rendering the gateway ConfigMap failed:\n{}",
        text(&out.stderr)
    );
    let docs = documents(&text(&out.stdout));
    assert_eq!(docs.len(), 1, "expected one ConfigMap");
    docs[0]["data"]["envoy.yaml"]
        .as_str()
        .expect("data.envoy.yaml")
        .to_string()
}

/// Decoded `key` of the rendered Secret `name`.
pub fn secret_data(docs: &[Value], name_: &str, key: &str) -> Vec<u8> {
    let encoded = get(docs, "Secret", name_)["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("Secret {name_} has no {key}"));
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64 Secret data")
}

/// The gateway pod's files from one rendering, as the loopback tests run them: every key of the
/// gateway ConfigMap (envoy.yaml and, with mTLS, its SDS files) and the client certificate Secret,
/// written under a temp dir, with the pod's mount paths (`/etc/envoy`,
/// `/etc/tally/extproc-client`) moved there.
pub struct GatewayFiles {
    pub bootstrap: PathBuf,
    /// Where the client certificate Secret's files are (`/etc/tally/extproc-client` in the pod).
    pub client_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl GatewayFiles {
    pub fn write(docs: &[Value]) -> GatewayFiles {
        let dir = tempfile::tempdir().expect("temp dir");
        let (config, client) = (dir.path().join("envoy"), dir.path().join("extproc-client"));
        let moved = |text: &str| {
            text.replace("/etc/envoy/", &format!("{}/", config.display()))
                .replace("/etc/tally/extproc-client", &client.display().to_string())
        };
        std::fs::create_dir_all(&config).expect("config dir");
        let cm = get(docs, "ConfigMap", "tally-gateway");
        for (key, value) in cm["data"].as_mapping().expect("ConfigMap data") {
            let (key, value) = (key.as_str().expect("key"), value.as_str().expect("text"));
            std::fs::write(config.join(key), moved(value)).expect("write gateway file");
        }
        if find(docs, "Secret", "tally-gateway-client-tls").is_some() {
            write_secret_files(docs, "tally-gateway-client-tls", &client);
        }
        GatewayFiles {
            bootstrap: config.join("envoy.yaml"),
            client_dir: client,
            _dir: dir,
        }
    }
}

/// Writes the files of a rendered `kubernetes.io/tls` Secret (tls.crt, tls.key, ca.crt) into `dir`.
pub fn write_secret_files(docs: &[Value], secret: &str, dir: &Path) {
    std::fs::create_dir_all(dir).expect("secret dir");
    for file in ["tls.crt", "tls.key", "ca.crt"] {
        std::fs::write(dir.join(file), secret_data(docs, secret, file)).expect("write secret file");
    }
}

/// The loopback rendering the end-to-end tests use (the documented contract).
pub fn loopback_sets(listen: u16, admin: u16, upstream: u16, extproc: u16, signing: bool) -> Vec<String> {
    vec![format!(
        "gateway.listenAddress=127.0.0.1,gateway.listenPort={listen},gateway.adminPort={admin},gateway.upstream.host=127.0.0.1,\
         gateway.upstream.port={upstream},gateway.upstream.tls=false,gateway.extProc.host=127.0.0.1,gateway.extProc.port={extproc},\
         gateway.signing.enabled={signing}"
    )]
}

pub fn as_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The static cluster `name` of a parsed Envoy bootstrap.
pub fn envoy_cluster<'a>(envoy: &'a Value, name_: &str) -> &'a Value {
    named(&envoy["static_resources"]["clusters"], "name", name_).unwrap_or_else(|| panic!("no Envoy cluster {name_}"))
}

/// The `socket_address` of a cluster's first endpoint.
pub fn first_endpoint(cluster: &Value) -> &Value {
    &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
}
