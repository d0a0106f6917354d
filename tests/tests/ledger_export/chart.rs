//! The chart's `ledgerExport`: off by default, and when a destination is set, a Deployment that
//! runs `tally ledger-export` against the chart's Redis with the object-store credentials, one
//! replica at a time, admitted to Redis by the NetworkPolicy; a destination that is not an
//! object-store URL is refused by the values schema. Rendered with the real `helm`, checked
//! against Kubernetes schemas with `kubernetes-validate --strict`.

use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;
use tally_tests::fixtures::tools;

const EXPORTER: &str = "tally-ledger-export";

fn helm_template(sets: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(tools::helm());
    cmd.args(["template", "tally"])
        .arg(tools::workspace_root().join("charts/tally"))
        .args(["--namespace", "tally"]);
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = cmd.output().expect("run helm");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

#[test]
fn no_exporter_is_rendered_without_a_destination() {
    let docs = documents(&helm_template(&[]).unwrap());
    assert!(find(&docs, "Deployment", EXPORTER).is_none());
    assert!(find(&docs, "NetworkPolicy", EXPORTER).is_none());
}

#[test]
fn a_destination_renders_one_exporter_with_redis_and_object_store_access() {
    let yaml = helm_template(&[
        "ledgerExport.destination=s3://finops/tally/prod",
        "ledgerExport.credentialsSecret=s3-keys",
        "ledgerExport.serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/x",
    ])
    .unwrap();
    let docs = documents(&yaml);
    let deploy = find(&docs, "Deployment", EXPORTER).expect("the exporter's Deployment");
    assert_eq!(deploy["spec"]["replicas"].as_u64(), Some(1));
    assert_eq!(
        deploy["spec"]["strategy"]["type"].as_str(),
        Some("Recreate"),
        "never two at once"
    );
    let pod = &deploy["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let args = strs(&c["args"]);
    assert_eq!(args[..3], ["ledger-export", "--destination", "s3://finops/tally/prod"]);
    assert!(
        c["image"].as_str().unwrap().contains("tally-operator"),
        "the `tally` binary's image"
    );
    assert_eq!(c["envFrom"][0]["secretRef"]["name"].as_str(), Some("s3-keys"));
    let env: Vec<&str> = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(
        env.contains(&"TALLY_REDIS_URL") && env.contains(&"TALLY_REDIS_PASSWORD"),
        "{env:?}"
    );
    let sa = find(&docs, "ServiceAccount", EXPORTER).expect("its ServiceAccount");
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].as_str(),
        Some("arn:aws:iam::1:role/x")
    );
    assert_eq!(pod["serviceAccountName"].as_str(), Some(EXPORTER));
    let redis_policy = find(&docs, "NetworkPolicy", "tally-redis").expect("Redis's NetworkPolicy");
    let admitted = format!("{:?}", redis_policy["spec"]["ingress"]);
    assert!(
        admitted.contains("ledger-export"),
        "the exporter may reach Redis: {admitted}"
    );
    let own: Vec<&Value> = docs
        .iter()
        .filter(|d| d["metadata"]["name"].as_str().is_some_and(|n| n.starts_with(EXPORTER)))
        .collect();
    assert_eq!(own.len(), 4, "ServiceAccount, Deployment, Service, NetworkPolicy");
    validate(&own);
}

#[test]
fn a_destination_that_is_not_an_object_store_url_is_refused() {
    let error = helm_template(&["ledgerExport.destination=ftp://files/ledger"]).unwrap_err();
    assert!(error.contains("ledgerExport/destination"), "{error}");
}

/// `kubernetes-validate --strict` passes for each of `docs`, against the newest schemas it ships.
fn validate(docs: &[&Value]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    let yaml: Vec<String> = docs.iter().map(|d| serde_yaml::to_string(d).unwrap()).collect();
    std::fs::write(&file, yaml.join("---\n")).unwrap();
    let out = Command::new(tools::cached_tool("kubernetes-validate", "python.sh"))
        .args(["--strict", "--kubernetes-version", "1.34"])
        .arg(&file)
        .output()
        .expect("run kubernetes-validate");
    let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    for d in docs {
        let kind = d["kind"].as_str().unwrap().to_lowercase();
        let passed = format!(
            "passed for resource {kind}/{} ",
            d["metadata"]["name"].as_str().unwrap()
        );
        assert!(report.contains(&passed), "{kind} not validated:\n{report}");
    }
}
