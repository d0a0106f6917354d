//! The ext_proc's admin surface split in two ports: `metrics` (`/metrics`, probes, scraped by
//! ServiceMonitors) and `api` (`/v1/ledger`, `/v1/spend`, bearer token from a Secret), each
//! with its container port, Service port and flag; the token a generated Secret unless one is named.

use crate::render::{arg, documents, get, items, named, pod_spec, render, strs};

#[test]
fn metrics_and_the_authenticated_api_have_their_own_ports() {
    let docs = documents(&render(None, &["metrics.serviceMonitor.enabled=true"]));
    let pod = pod_spec(&docs, "Deployment", "tally-extproc");
    let c = &pod["containers"][0];
    assert_eq!(arg(c, "--metrics-listen"), Some("0.0.0.0:9464"));
    assert_eq!(arg(c, "--api-listen"), Some("0.0.0.0:9465"));
    assert_eq!(arg(c, "--api-token-file"), Some("/etc/tally/api/token"));
    assert!(
        !strs(&c["args"]).contains(&"--admin-listen"),
        "the hidden alias is not used"
    );
    for (port, number) in [("grpc", 50051), ("metrics", 9464), ("api", 9465)] {
        let container = named(&c["ports"], "name", port).unwrap_or_else(|| panic!("container port {port}"));
        assert_eq!(container["containerPort"].as_u64(), Some(number));
        let service = named(&get(&docs, "Service", "tally-extproc")["spec"]["ports"], "name", port)
            .unwrap_or_else(|| panic!("Service port {port}"));
        assert_eq!(service["port"].as_u64(), Some(number));
    }
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"].as_str(), Some("metrics"), "{probe}");
    }
    let monitor = get(&docs, "ServiceMonitor", "tally-extproc");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"].as_str(), Some("metrics"));

    let volume = named(&pod["volumes"], "name", "config").expect("config volume");
    let token = items(&volume["projected"]["sources"])
        .find(|s| s["secret"]["name"].as_str() == Some("tally-api-token"))
        .expect("the generated token Secret is projected");
    assert_eq!(token["secret"]["items"][0]["key"].as_str(), Some("token"));
    assert_eq!(token["secret"]["items"][0]["path"].as_str(), Some("api/token"));
    let secret = get(&docs, "Secret", "tally-api-token");
    assert!(
        secret["data"]["token"].as_str().is_some_and(|t| t.len() >= 48),
        "a long random token"
    );
}

#[test]
fn a_named_token_secret_replaces_the_generated_one_and_the_api_can_be_off() {
    let docs = documents(&render(None, &["extproc.api.tokenSecret=finops-token"]));
    assert!(crate::render::find(&docs, "Secret", "tally-api-token").is_none());
    let volume = named(
        &pod_spec(&docs, "Deployment", "tally-extproc")["volumes"],
        "name",
        "config",
    )
    .unwrap();
    assert!(
        items(&volume["projected"]["sources"]).any(|s| s["secret"]["name"].as_str() == Some("finops-token")),
        "{volume:?}"
    );

    let off = documents(&render(None, &["extproc.api.enabled=false"]));
    let c = &pod_spec(&off, "Deployment", "tally-extproc")["containers"][0];
    let args = strs(&c["args"]);
    assert!(!args.iter().any(|a| a.starts_with("--api-")), "{args:?}");
    assert!(named(&c["ports"], "name", "api").is_none());
    assert!(named(&get(&off, "Service", "tally-extproc")["spec"]["ports"], "name", "api").is_none());
}
