//! Every reference between the rendered objects resolves, in every mode: ServiceAccounts,
//! ConfigMaps, Secrets and volumes, Service and policy selectors and peers, HPA targets, RBAC
//! bindings, and the ext_proc Service named by each integration (gateway Envoy, Istio, Envoy
//! Gateway).

use std::collections::BTreeSet;

use serde_yaml::Value;

use crate::render::{
    NAMESPACE, arg, containers, envoy_cluster, find, first_endpoint, get, id, items, kind, name, named, of_kind,
    pod_spec, pods, selects, strs,
};
use crate::scenarios::{SCENARIOS, Scenario};

/// (workload id, pod spec, pod labels), as [`pods`] returns them.
type Pods<'a> = [(String, &'a Value, &'a Value)];

#[test]
fn references_between_rendered_objects_resolve() {
    for s in SCENARIOS {
        let docs = s.documents();
        let pods = pods(&docs);
        let config_map = operator_config_map(s.name, &docs);
        assert_pods_use_rendered_objects(s.name, &docs, &pods, config_map);
        assert_secrets_are_rendered_issued_or_the_users(s, &docs);
        assert_extproc_mounts_the_operator_config(s.name, &docs, config_map);
        assert_services_select_pods_with_their_target_ports(s.name, &docs, &pods);
        assert_selectors_and_scale_targets_resolve(s.name, &docs, &pods);
        assert_network_policy_peers_resolve(s.name, &docs, &pods);
        assert_bindings_resolve(s.name, &docs);
        // The integration points name the ext_proc Service that exists.
        assert_gateway_envoy_reaches_the_extproc_service(s.name, &docs);
        assert_istio_filter_reaches_the_extproc_service(s.name, &docs);
        assert_envoy_gateway_policy_reaches_the_extproc_service(s.name, &docs);
    }
}

/// The ConfigMap the operator writes the compiled config to (from its arguments).
fn operator_config_map<'a>(scenario: &str, docs: &'a [Value]) -> &'a str {
    let operator = &pod_spec(docs, "Deployment", "tally-operator")["containers"][0];
    let config_map = arg(operator, "--config-map-name").expect("operator --config-map-name");
    assert_eq!(arg(operator, "--config-map-namespace"), Some(NAMESPACE), "{scenario}");
    assert_eq!(
        strs(&operator["args"]).first(),
        Some(&"operator"),
        "{scenario}: operator subcommand"
    );
    config_map
}

/// Pods use rendered ServiceAccounts and ConfigMaps, except the operator's own ConfigMap,
/// which the chart must not render.
fn assert_pods_use_rendered_objects(scenario: &str, docs: &[Value], pods: &Pods<'_>, config_map: &str) {
    for (workload, pod, _) in pods {
        if let Some(sa) = pod["serviceAccountName"].as_str() {
            assert!(
                find(docs, "ServiceAccount", sa).is_some(),
                "{scenario}: {workload} uses ServiceAccount {sa}, not rendered"
            );
        }
        let projected = items(&pod["volumes"]).flat_map(|v| items(&v["projected"]["sources"]));
        for v in items(&pod["volumes"]).chain(projected) {
            if let Some(cm) = v["configMap"]["name"].as_str() {
                // The compiled config (its manifest and shards) is written by the operator, never by
                // Helm (an upgrade would reset it).
                let operators = cm == config_map || cm.starts_with(&format!("{config_map}-shard-"));
                assert!(
                    find(docs, "ConfigMap", cm).is_some() || operators,
                    "{scenario}: {workload} mounts ConfigMap {cm}, not rendered"
                );
            }
        }
    }
    assert!(
        find(docs, "ConfigMap", config_map).is_none(),
        "{scenario}: the chart must not render the operator's ConfigMap {config_map}"
    );
}

/// The ext_proc reads the operator's ConfigMap through a directory mount (updates propagate; a
/// subPath would freeze it), and its spool dir is a volume.
fn assert_extproc_mounts_the_operator_config(scenario: &str, docs: &[Value], config_map: &str) {
    let extproc = pod_spec(docs, "Deployment", "tally-extproc");
    let c = &extproc["containers"][0];
    assert_eq!(arg(c, "--config"), Some("/etc/tally/config.json"), "{scenario}");
    let mount = named(&c["volumeMounts"], "mountPath", "/etc/tally").expect("config mount");
    assert!(
        mount["subPath"].is_null(),
        "{scenario}: the config must not be mounted with subPath"
    );
    let vol = items(&extproc["volumes"])
        .find(|v| v["name"] == mount["name"])
        .expect("config volume");
    // One projected volume: the ConfigMap beside the certificate and the API token.
    let source = items(&vol["projected"]["sources"])
        .find(|s| !s["configMap"].is_null())
        .expect("the config volume projects a ConfigMap");
    assert_eq!(
        source["configMap"]["name"].as_str(),
        Some(config_map),
        "{scenario}: ext_proc and operator disagree on the ConfigMap"
    );
    let spool = arg(c, "--spool-dir").expect("--spool-dir");
    assert!(
        named(&c["volumeMounts"], "mountPath", spool).is_some(),
        "{scenario}: the spool dir is not a volume"
    );
}

/// Every Secret a pod, a DestinationRule or a BackendTLSPolicy uses is rendered by the chart,
/// issued by a rendered cert-manager Certificate, or one the values name (the user's), in the
/// namespace of its user.
fn assert_secrets_are_rendered_issued_or_the_users(s: &Scenario, docs: &[Value]) {
    let available: BTreeSet<(&str, &str)> = of_kind(docs, "Secret")
        .map(|d| (namespace(d), name(d)))
        .chain(
            of_kind(docs, "Certificate").map(|c| (namespace(c), c["spec"]["secretName"].as_str().unwrap_or_default())),
        )
        .collect();
    for (user, ns, secret) in secret_references(docs) {
        assert!(
            available.contains(&(ns, secret)) || s.user_secrets.contains(&secret),
            "{}: {user} uses Secret {ns}/{secret}, which is neither rendered, issued nor named in values",
            s.name
        );
    }
}

/// (user, namespace, Secret name) of every Secret reference in the rendered objects.
fn secret_references(docs: &[Value]) -> Vec<(String, &str, &str)> {
    let mut refs = Vec::new();
    for d in docs.iter().filter(|d| !d["spec"]["template"]["spec"].is_null()) {
        let pod = &d["spec"]["template"]["spec"];
        let named = items(&pod["volumes"]).filter_map(|v| v["secret"]["secretName"].as_str());
        let projected = items(&pod["volumes"])
            .flat_map(|v| items(&v["projected"]["sources"]))
            .filter_map(|src| src["secret"]["name"].as_str());
        let env = containers(pod)
            .into_iter()
            .flat_map(|c| items(&c["env"]))
            .filter_map(|e| e["valueFrom"]["secretKeyRef"]["name"].as_str());
        refs.extend(named.chain(projected).chain(env).map(|n| (id(d), namespace(d), n)));
    }
    for dr in of_kind(docs, "DestinationRule") {
        let credential = dr["spec"]["trafficPolicy"]["tls"]["credentialName"].as_str();
        refs.extend(credential.map(|n| (id(dr), namespace(dr), n)));
    }
    for policy in of_kind(docs, "BackendTLSPolicy") {
        let cas = items(&policy["spec"]["validation"]["caCertificateRefs"]).filter_map(|r| r["name"].as_str());
        refs.extend(cas.map(|n| (id(policy), namespace(policy), n)));
    }
    refs
}

fn namespace(doc: &Value) -> &str {
    doc["metadata"]["namespace"].as_str().unwrap_or(NAMESPACE)
}

/// NetworkPolicy peers in the release's namespace (a podSelector without namespaceSelector)
/// select a rendered pod: a typo in a label would silently cut a component off.
fn assert_network_policy_peers_resolve(scenario: &str, docs: &[Value], pods: &Pods<'_>) {
    for policy in of_kind(docs, "NetworkPolicy") {
        let peers = items(&policy["spec"]["ingress"]).flat_map(|rule| items(&rule["from"]));
        for peer in peers.filter(|p| p["namespaceSelector"].is_null()) {
            let Some(sel) = peer["podSelector"]["matchLabels"].as_mapping() else {
                continue;
            };
            assert!(
                pods.iter().any(|(_, _, labels)| selects(sel, labels)),
                "{scenario}: {} admits pods {sel:?}, none of which is rendered",
                id(policy)
            );
        }
    }
}

/// Every Service selects a pod template that has the named target ports.
fn assert_services_select_pods_with_their_target_ports(scenario: &str, docs: &[Value], pods: &Pods<'_>) {
    for svc in of_kind(docs, "Service") {
        let selector = svc["spec"]["selector"].as_mapping().expect("selector");
        let (_, pod, _) = pods
            .iter()
            .find(|(_, _, labels)| selects(selector, labels))
            .unwrap_or_else(|| panic!("{scenario}: {} selects no rendered pod", id(svc)));
        let port_names: BTreeSet<&str> = containers(pod)
            .iter()
            .flat_map(|c| items(&c["ports"]))
            .filter_map(|p| p["name"].as_str())
            .collect();
        for p in items(&svc["spec"]["ports"]) {
            let target = p["targetPort"].as_str().expect("named targetPort");
            assert!(
                port_names.contains(target),
                "{scenario}: {} targets port {target}, not on the pod",
                id(svc)
            );
        }
    }
}

/// PodDisruptionBudgets and NetworkPolicies select a pod; an HPA's target leaves replicas to it.
fn assert_selectors_and_scale_targets_resolve(scenario: &str, docs: &[Value], pods: &Pods<'_>) {
    for d in docs
        .iter()
        .filter(|d| matches!(kind(d), "PodDisruptionBudget" | "NetworkPolicy"))
    {
        let key = if kind(d) == "NetworkPolicy" {
            "podSelector"
        } else {
            "selector"
        };
        let sel = d["spec"][key]["matchLabels"].as_mapping().expect("matchLabels");
        assert!(
            pods.iter().any(|(_, _, labels)| selects(sel, labels)),
            "{scenario}: {} selects no pod",
            id(d)
        );
    }
    for hpa in of_kind(docs, "HorizontalPodAutoscaler") {
        let target = hpa["spec"]["scaleTargetRef"]["name"].as_str().unwrap_or_default();
        let dep = get(docs, "Deployment", target);
        assert!(
            dep["spec"]["replicas"].is_null(),
            "{scenario}: {target} sets replicas while an HPA scales it"
        );
    }
}

/// Every (Cluster)RoleBinding binds a rendered role to rendered ServiceAccounts.
fn assert_bindings_resolve(scenario: &str, docs: &[Value]) {
    for binding in docs
        .iter()
        .filter(|d| matches!(kind(d), "RoleBinding" | "ClusterRoleBinding"))
    {
        let role_kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
        let role = binding["roleRef"]["name"].as_str().unwrap_or_default();
        assert!(
            find(docs, role_kind, role).is_some(),
            "{scenario}: {} binds missing {role_kind}/{role}",
            id(binding)
        );
        for subject in items(&binding["subjects"]) {
            let sa = subject["name"].as_str().unwrap_or_default();
            assert!(
                find(docs, "ServiceAccount", sa).is_some(),
                "{scenario}: {} binds missing ServiceAccount {sa}",
                id(binding)
            );
        }
    }
}

/// Gateway mode: Envoy's ext_proc cluster is the headless ext_proc Service.
fn assert_gateway_envoy_reaches_the_extproc_service(scenario: &str, docs: &[Value]) {
    let Some(cm) = find(docs, "ConfigMap", "tally-gateway") else {
        return;
    };
    let envoy: Value =
        serde_yaml::from_str(cm["data"]["envoy.yaml"].as_str().expect("envoy.yaml")).expect("envoy.yaml parses");
    let addr = first_endpoint(envoy_cluster(&envoy, "tally_extproc"));
    assert_eq!(
        addr["address"].as_str(),
        Some("tally-extproc-headless.tally.svc.cluster.local"),
        "{scenario}"
    );
    assert_eq!(addr["port_value"].as_u64(), Some(50051), "{scenario}");
    assert_eq!(
        get(docs, "Service", "tally-extproc-headless")["spec"]["clusterIP"].as_str(),
        Some("None"),
        "{scenario}"
    );
}

/// Istio mode: the EnvoyFilter's gRPC cluster is the ext_proc Service's, on a port named grpc.
fn assert_istio_filter_reaches_the_extproc_service(scenario: &str, docs: &[Value]) {
    let Some(ef) = of_kind(docs, "EnvoyFilter").next() else {
        return;
    };
    let cluster =
        ef["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"]
            .as_str();
    assert_eq!(
        cluster,
        Some("outbound|50051||tally-extproc.tally.svc.cluster.local"),
        "{scenario}"
    );
    let svc = get(docs, "Service", "tally-extproc");
    assert_eq!(
        svc["spec"]["ports"][0]["name"].as_str(),
        Some("grpc"),
        "{scenario}: Istio needs the port named grpc for HTTP/2"
    );
}

/// Envoy Gateway mode: the policy's backend is a rendered Service; across namespaces, through
/// a ReferenceGrant from the policy's namespace.
fn assert_envoy_gateway_policy_reaches_the_extproc_service(scenario: &str, docs: &[Value]) {
    let Some(policy) = of_kind(docs, "EnvoyExtensionPolicy").next() else {
        return;
    };
    let backend = &policy["spec"]["extProc"][0]["backendRefs"][0];
    assert!(
        find(docs, "Service", backend["name"].as_str().unwrap_or_default()).is_some(),
        "{scenario}: policy backend"
    );
    let policy_ns = policy["metadata"]["namespace"].as_str().unwrap_or_default();
    if policy_ns != NAMESPACE {
        assert_eq!(
            backend["namespace"].as_str(),
            Some(NAMESPACE),
            "{scenario}: cross-namespace backendRef"
        );
        let grant = of_kind(docs, "ReferenceGrant").next().expect("ReferenceGrant");
        assert_eq!(
            grant["spec"]["from"][0]["namespace"].as_str(),
            Some(policy_ns),
            "{scenario}"
        );
    }
}
