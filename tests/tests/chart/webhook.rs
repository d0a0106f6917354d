//! The admission webhook's objects (`webhook.enabled`): the Service in front of the operator's
//! `webhook` port, the ValidatingWebhookConfiguration (`failurePolicy: Ignore`, no side effects,
//! v1 reviews, a timeout within 5 s, CREATE/UPDATE of both kinds only, no caBundle of its own),
//! the operator's flags, its NetworkPolicy port and exactly the RBAC the self-managed
//! certificate needs; with cert-manager instead, a Certificate, the CA injection annotation, the
//! mounted Secret, and no Secret or webhook-configuration RBAC. Off by default.

use serde_yaml::Value;

use crate::render::{arg, containers, documents, find, get, items, named, pod_spec, render, selects, strs};

const WEBHOOK: &str = "tally-webhook";

fn rendered(sets: &[&str]) -> Vec<Value> {
    documents(&render(None, sets))
}

/// The rules of a Role or ClusterRole that name `resource`.
fn rules_for<'a>(role: &'a Value, resource: &str) -> Vec<&'a Value> {
    items(&role["rules"])
        .filter(|r| strs(&r["resources"]).contains(&resource))
        .collect()
}

#[test]
fn the_webhook_can_be_turned_off() {
    let docs = rendered(&["webhook.enabled=false"]);
    assert!(find(&docs, "ValidatingWebhookConfiguration", WEBHOOK).is_none());
    assert!(find(&docs, "Service", WEBHOOK).is_none());
    let operator = containers(pod_spec(&docs, "Deployment", "tally-operator"))[0];
    assert_eq!(arg(operator, "--webhook-listen"), None);
}

/// On by default: mistakes are refused at `kubectl apply` time, and with `failurePolicy: Ignore`
/// an operator that is down never blocks an apply.
#[test]
fn the_webhook_renders_a_service_a_configuration_and_its_rbac() {
    let docs = rendered(&[]);
    let config = get(&docs, "ValidatingWebhookConfiguration", WEBHOOK);
    let hook = &config["webhooks"][0];
    assert_eq!(hook["failurePolicy"], "Ignore");
    assert_eq!(hook["sideEffects"], "None");
    assert_eq!(strs(&hook["admissionReviewVersions"]), ["v1"]);
    assert!(hook["timeoutSeconds"].as_u64().is_some_and(|t| (1..=5).contains(&t)));
    assert_eq!(strs(&hook["rules"][0]["operations"]), ["CREATE", "UPDATE"]);
    assert_eq!(strs(&hook["rules"][0]["resources"]), ["teambudgets", "modelpricings"]);
    assert_eq!(
        hook["clientConfig"]["caBundle"],
        Value::Null,
        "the operator owns the caBundle"
    );
    let target = &hook["clientConfig"]["service"];
    assert_eq!(
        (target["name"].as_str(), target["path"].as_str()),
        (Some(WEBHOOK), Some("/validate"))
    );

    // The Service reaches the operator's webhook port.
    let service = get(&docs, "Service", WEBHOOK);
    let port = &service["spec"]["ports"][0];
    assert_eq!(
        (port["port"].as_u64(), port["targetPort"].as_str()),
        (Some(443), Some("webhook"))
    );
    let deployment = get(&docs, "Deployment", "tally-operator");
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let selector = service["spec"]["selector"].as_mapping().expect("a selector");
    assert!(selects(selector, labels), "the Service selects the operator's pods");
    let operator = containers(pod_spec(&docs, "Deployment", "tally-operator"))[0];
    assert_eq!(arg(operator, "--webhook-listen"), Some("0.0.0.0:9443"));
    assert_eq!(arg(operator, "--webhook-configuration-name"), Some(WEBHOOK));
    assert_eq!(arg(operator, "--webhook-service-name"), Some(WEBHOOK));
    assert_eq!(arg(operator, "--webhook-cert-dir"), None);
    assert!(named(&operator["ports"], "name", "webhook").is_some());
    let policy = get(&docs, "NetworkPolicy", "tally-operator");
    let admitted = items(&policy["spec"]["ingress"]).flat_map(|r| items(&r["ports"]));
    assert!(admitted.map(|p| &p["port"]).any(|p| p == "webhook"), "{policy:?}");

    // Self-managed certificate: its Secret and the configuration's caBundle, by name.
    let cluster_role = get(&docs, "ClusterRole", "tally-operator");
    let vwc = rules_for(cluster_role, "validatingwebhookconfigurations");
    assert_eq!(vwc.len(), 1);
    assert_eq!(strs(&vwc[0]["resourceNames"]), [WEBHOOK]);
    assert_eq!(strs(&vwc[0]["verbs"]), ["get", "update"]);
    let role = get(&docs, "Role", "tally-operator");
    let secrets = rules_for(role, "secrets");
    let named_rule = secrets.iter().find(|r| !strs(&r["resourceNames"]).is_empty());
    assert_eq!(
        strs(&named_rule.expect("a named Secret rule")["resourceNames"]),
        ["tally-webhook-tls"]
    );
    assert!(secrets.iter().any(|r| strs(&r["verbs"]) == ["create"]));
}

#[test]
fn with_cert_manager_the_certificate_and_ca_are_cert_managers() {
    let docs = rendered(&["webhook.enabled=true", "webhook.certManager.enabled=true"]);
    let cert = get(&docs, "Certificate", "tally-webhook-tls");
    assert_eq!(
        strs(&cert["spec"]["dnsNames"]),
        ["tally-webhook.tally.svc", "tally-webhook.tally.svc.cluster.local"]
    );
    let config = get(&docs, "ValidatingWebhookConfiguration", WEBHOOK);
    assert_eq!(
        config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        "tally/tally-webhook-tls"
    );
    let pod = pod_spec(&docs, "Deployment", "tally-operator");
    let operator = containers(pod)[0];
    assert_eq!(arg(operator, "--webhook-cert-dir"), Some("/etc/tally-webhook"));
    let volume = named(&pod["volumes"], "name", "webhook-tls").expect("the certificate's volume");
    assert_eq!(volume["secret"]["secretName"], "tally-webhook-tls");
    assert!(rules_for(get(&docs, "Role", "tally-operator"), "secrets").is_empty());
    assert!(
        rules_for(
            get(&docs, "ClusterRole", "tally-operator"),
            "validatingwebhookconfigurations"
        )
        .is_empty()
    );
}
