//! NetworkPolicies, on by default: which peers reach which port of each component, in every
//! gateway mode. (That their selectors match rendered pods is in `references`; that they are
//! valid, in `lint` and `chart_apiserver`.)

use serde_yaml::{Mapping, Value};

use crate::render::{documents, get, items, name, of_kind, render, strs};
use crate::scenarios::SCENARIOS;

/// The ingress rule of `policy` for the named port, if any.
fn rule<'a>(policy: &'a Value, port: &str) -> Option<&'a Value> {
    items(&policy["spec"]["ingress"]).find(|r| items(&r["ports"]).any(|p| p["port"].as_str() == Some(port)))
}

/// The peers of `policy`'s rule for `port`; a panic when no rule admits anyone to it.
fn peers<'a>(policy: &'a Value, port: &str) -> &'a Value {
    &rule(policy, port).unwrap_or_else(|| panic!("{}: no rule for port {port}", name(policy)))["from"]
}

/// `matchLabels` as a mapping of strings, for comparisons.
fn labels(pairs: &[(&str, &str)]) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(Value::from(*k), Value::from(*v));
    }
    Value::Mapping(m)
}

fn component(c: &str) -> Value {
    labels(&[
        ("app.kubernetes.io/name", "tally"),
        ("app.kubernetes.io/instance", "tally"),
        ("app.kubernetes.io/component", c),
    ])
}

#[test]
fn by_default_each_port_admits_only_its_clients() {
    let docs = documents(&render(None, &[]));
    let extproc = get(&docs, "NetworkPolicy", "tally-extproc");
    let grpc = peers(extproc, "grpc").as_sequence().expect("gRPC peers");
    assert_eq!(grpc.len(), 1, "only the gateway: {grpc:?}");
    assert_eq!(grpc[0]["podSelector"]["matchLabels"], component("gateway"));
    assert!(grpc[0]["namespaceSelector"].is_null(), "the release's own namespace");
    let prometheus = &peers(extproc, "metrics")[0];
    assert_eq!(
        prometheus["podSelector"]["matchLabels"],
        labels(&[("app.kubernetes.io/name", "prometheus")])
    );
    assert!(
        rule(extproc, "api").is_none(),
        "the API admits nobody by default (port-forward only)"
    );

    let operator = get(&docs, "NetworkPolicy", "tally-operator");
    assert_eq!(
        peers(operator, "metrics")[0],
        *prometheus,
        "the operator: scrapers only on its metrics port"
    );
    assert!(
        rule(operator, "webhook").is_some(),
        "and the API server on the webhook port"
    );
    assert_eq!(items(&operator["spec"]["ingress"]).count(), 2);

    let redis = get(&docs, "NetworkPolicy", "tally-redis");
    let clients: Vec<&Value> = items(peers(redis, "redis"))
        .map(|p| &p["podSelector"]["matchLabels"])
        .collect();
    assert_eq!(
        clients,
        [&component("extproc"), &component("operator")],
        "Redis: ext_proc and operator"
    );

    let gateway = get(&docs, "NetworkPolicy", "tally-gateway");
    assert!(
        peers(gateway, "http").is_null(),
        "applications anywhere reach the gateway unless gatewayClients says otherwise"
    );
    for policy in of_kind(&docs, "NetworkPolicy") {
        assert_eq!(strs(&policy["spec"]["policyTypes"]), ["Ingress"], "{}", name(policy));
    }
}

/// The admission webhook's port is the other exception: the kube-apiserver calls it from the
/// control plane, which no pod or namespace selector matches (on managed clusters it is outside
/// the cluster network), so that rule names the port alone.
fn is_webhook_rule(r: &Value) -> bool {
    items(&r["ports"]).all(|p| p["port"] == "webhook")
}

#[test]
fn no_rule_admits_every_source_except_the_gateways_listener() {
    for s in SCENARIOS {
        let docs = s.documents();
        for policy in of_kind(&docs, "NetworkPolicy").filter(|p| name(p) != "tally-gateway") {
            for r in items(&policy["spec"]["ingress"]).filter(|r| !is_webhook_rule(r)) {
                assert!(
                    items(&r["from"]).next().is_some(),
                    "{}: {} has a rule without peers, which admits every source: {r:?}",
                    s.name,
                    name(policy)
                );
            }
        }
    }
}

/// With `values`, the ext_proc's gRPC port admits the pods labelled `pods` in `namespace`.
fn assert_grpc_peer(values: &str, namespace: &str, pods: Value) {
    let docs = documents(&render(Some(values), &[]));
    let peer = &peers(get(&docs, "NetworkPolicy", "tally-extproc"), "grpc")[0];
    let ns = labels(&[("kubernetes.io/metadata.name", namespace)]);
    assert_eq!(peer["namespaceSelector"]["matchLabels"], ns, "{values}");
    assert_eq!(peer["podSelector"]["matchLabels"], pods, "{values}");
}

#[test]
fn extproc_admits_the_proxies_of_each_gateway_mode() {
    assert_grpc_peer("istio.yaml", "istio-system", labels(&[("istio", "egressgateway")]));
    let proxies = labels(&[
        ("app.kubernetes.io/component", "proxy"),
        ("app.kubernetes.io/managed-by", "envoy-gateway"),
    ]);
    assert_grpc_peer("envoy-gateway.yaml", "envoy-gateway-system", proxies);

    // Extra clients join the mode's own; apiClients opens the API port.
    let sets = [
        "networkPolicy.extraExtprocClients[0].podSelector.matchLabels.app=bench",
        "networkPolicy.apiClients[0].podSelector.matchLabels.app=finops",
    ];
    let docs = documents(&render(None, &sets));
    let extproc = get(&docs, "NetworkPolicy", "tally-extproc");
    let grpc = peers(extproc, "grpc");
    assert_eq!(grpc[0]["podSelector"]["matchLabels"], component("gateway"));
    assert_eq!(grpc[1]["podSelector"]["matchLabels"], labels(&[("app", "bench")]));
    assert_eq!(
        peers(extproc, "api")[0]["podSelector"]["matchLabels"],
        labels(&[("app", "finops")])
    );
}
