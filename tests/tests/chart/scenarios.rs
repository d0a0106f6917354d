//! The value sets the chart is rendered with in every per-mode test, and the objects each
//! must (not) render.

use serde_yaml::Value;

use crate::render::{documents, render};

/// A set of values the chart is rendered with, and objects that must (not) be in the result.
pub struct Scenario {
    pub name: &'static str,
    /// A values file under `tests/fixtures/chart`; `None` for the chart's defaults.
    pub values: Option<&'static str>,
    pub present: &'static [&'static str],
    pub absent: &'static [&'static str],
    /// Secrets the values name: the user creates them, the chart must not render them.
    pub user_secrets: &'static [&'static str],
}

impl Scenario {
    /// The chart rendered with this scenario's values, as parsed documents.
    pub fn documents(&self) -> Vec<Value> {
        documents(&render(self.values, &[]))
    }
}

/// The Secrets the chart generates by default: the CA, the two mTLS leaves, the API token and
/// the bundled Redis's password.
const GENERATED_SECRETS: [&str; 5] = [
    "Secret/tally-ca",
    "Secret/tally-extproc-tls",
    "Secret/tally-gateway-client-tls",
    "Secret/tally-api-token",
    "Secret/tally-redis",
];

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "defaults (gateway mode, bundled Redis)",
        values: None,
        present: &[
            "Deployment/tally-gateway",
            "ConfigMap/tally-gateway",
            "Service/tally-gateway",
            "PodDisruptionBudget/tally-gateway",
            "Deployment/tally-extproc",
            "Service/tally-extproc",
            "Service/tally-extproc-headless",
            "PodDisruptionBudget/tally-extproc",
            "Deployment/tally-operator",
            "ServiceAccount/tally-operator",
            "ClusterRole/tally-operator",
            "Role/tally-operator",
            "StatefulSet/tally-redis",
            "ConfigMap/tally-redis",
            "ModelPricing/*",
            "ConfigMap/tally-dashboard",
            "NetworkPolicy/tally-extproc",
            "NetworkPolicy/tally-gateway",
            "NetworkPolicy/tally-operator",
            "NetworkPolicy/tally-redis",
            GENERATED_SECRETS[0],
            GENERATED_SECRETS[1],
            GENERATED_SECRETS[2],
            GENERATED_SECRETS[3],
            GENERATED_SECRETS[4],
        ],
        absent: &[
            "EnvoyFilter/*",
            "EnvoyExtensionPolicy/*",
            "ServiceMonitor/*",
            "HorizontalPodAutoscaler/*",
            "Certificate/*",
            "Issuer/*",
            "Secret/tally-redis-tls",
        ],
        user_secrets: &[],
    },
    Scenario {
        name: "istio egress gateway, external Redis",
        values: Some("istio.yaml"),
        present: &[
            "EnvoyFilter/tally-extproc",
            "DestinationRule/tally-extproc",
            "Deployment/tally-extproc",
            "Deployment/tally-operator",
            "Secret/tally-gateway-client-tls",
            "NetworkPolicy/tally-extproc",
        ],
        absent: &[
            "Deployment/tally-gateway",
            "ConfigMap/tally-gateway",
            "StatefulSet/tally-redis",
            "EnvoyExtensionPolicy/*",
            "NetworkPolicy/tally-gateway",
            "NetworkPolicy/tally-redis",
            "Secret/tally-redis",
        ],
        user_secrets: &["tally-redis"],
    },
    Scenario {
        name: "istio sidecars",
        values: Some("istio-sidecar.yaml"),
        present: &[
            "EnvoyFilter/tally-extproc",
            "DestinationRule/tally-extproc",
            "StatefulSet/tally-redis",
        ],
        absent: &["Deployment/tally-gateway"],
        user_secrets: &[],
    },
    Scenario {
        name: "envoy-gateway",
        values: Some("envoy-gateway.yaml"),
        present: &[
            "EnvoyExtensionPolicy/tally-extproc",
            "BackendTLSPolicy/tally-extproc",
            "ReferenceGrant/*",
            "Deployment/tally-extproc",
        ],
        absent: &["Deployment/tally-gateway", "EnvoyFilter/*"],
        user_secrets: &[],
    },
    Scenario {
        name: "bundled Redis with a password, no volume",
        values: Some("bundled-redis.yaml"),
        present: &["StatefulSet/tally-redis", "Service/tally-redis"],
        absent: &["Secret/tally-redis"],
        user_secrets: &["tally-redis"],
    },
    Scenario {
        name: "bundled Redis over TLS",
        values: Some("redis-tls.yaml"),
        present: &[
            "StatefulSet/tally-redis",
            "Secret/tally-redis-tls",
            "Secret/tally-redis",
        ],
        absent: &["Certificate/*"],
        user_secrets: &[],
    },
    Scenario {
        name: "external Redis (TLS, cluster, ACL user)",
        values: Some("external-redis.yaml"),
        present: &["Deployment/tally-extproc"],
        absent: &[
            "StatefulSet/tally-redis",
            "Service/tally-redis",
            "ConfigMap/tally-redis",
            "Secret/tally-redis",
        ],
        user_secrets: &["tally-redis", "tally-redis-ca"],
    },
    Scenario {
        name: "cert-manager, bundled Redis over TLS",
        values: Some("cert-manager.yaml"),
        present: &[
            "Issuer/tally-selfsigned",
            "Issuer/tally-ca",
            "Certificate/tally-ca",
            "Certificate/tally-extproc-tls",
            "Certificate/tally-gateway-client-tls",
            "Certificate/tally-redis-tls",
            "Secret/tally-api-token",
            "Secret/tally-redis",
        ],
        absent: &[
            "Secret/tally-ca",
            "Secret/tally-extproc-tls",
            "Secret/tally-gateway-client-tls",
            "Secret/tally-redis-tls",
        ],
        user_secrets: &[],
    },
    Scenario {
        name: "plaintext ext_proc, no API, no NetworkPolicies",
        values: Some("plaintext.yaml"),
        present: &["Deployment/tally-extproc", "Secret/tally-redis"],
        absent: &[
            "NetworkPolicy/*",
            "Certificate/*",
            "Secret/tally-ca",
            "Secret/tally-extproc-tls",
            "Secret/tally-gateway-client-tls",
            "Secret/tally-api-token",
        ],
        user_secrets: &[],
    },
    Scenario {
        name: "every optional object",
        values: Some("all-features.yaml"),
        present: &[
            "HorizontalPodAutoscaler/tally-extproc",
            "HorizontalPodAutoscaler/tally-gateway",
            "ServiceMonitor/tally-extproc",
            "ServiceMonitor/tally-operator",
            "ServiceMonitor/tally-gateway",
            "NetworkPolicy/tally-extproc",
            "NetworkPolicy/tally-gateway",
            "NetworkPolicy/tally-operator",
            "NetworkPolicy/tally-redis",
            "Role/tally-operator-teams",
        ],
        absent: &["Secret/tally-redis"],
        user_secrets: &["tally-gateway-aws", "tally-redis"],
    },
];
