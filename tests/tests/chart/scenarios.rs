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
}

impl Scenario {
    /// The chart rendered with this scenario's values, as parsed documents.
    pub fn documents(&self) -> Vec<Value> {
        documents(&render(self.values, &[]))
    }
}

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
            "ModelPricing/*",
            "ConfigMap/tally-dashboard",
        ],
        absent: &[
            "EnvoyFilter/*",
            "EnvoyExtensionPolicy/*",
            "NetworkPolicy/*",
            "ServiceMonitor/*",
            "HorizontalPodAutoscaler/*",
            "Secret/*",
        ],
    },
    Scenario {
        name: "istio egress gateway, external Redis",
        values: Some("istio.yaml"),
        present: &[
            "EnvoyFilter/tally-extproc",
            "Deployment/tally-extproc",
            "Deployment/tally-operator",
        ],
        absent: &[
            "Deployment/tally-gateway",
            "ConfigMap/tally-gateway",
            "StatefulSet/tally-redis",
            "EnvoyExtensionPolicy/*",
        ],
    },
    Scenario {
        name: "istio sidecars",
        values: Some("istio-sidecar.yaml"),
        present: &["EnvoyFilter/tally-extproc", "StatefulSet/tally-redis"],
        absent: &["Deployment/tally-gateway"],
    },
    Scenario {
        name: "envoy-gateway",
        values: Some("envoy-gateway.yaml"),
        present: &[
            "EnvoyExtensionPolicy/tally-extproc",
            "ReferenceGrant/*",
            "Deployment/tally-extproc",
        ],
        absent: &["Deployment/tally-gateway", "EnvoyFilter/*"],
    },
    Scenario {
        name: "bundled Redis with a password, no volume",
        values: Some("bundled-redis.yaml"),
        present: &["StatefulSet/tally-redis", "Service/tally-redis"],
        absent: &["Secret/*"],
    },
    Scenario {
        name: "external Redis (TLS, cluster, ACL user)",
        values: Some("external-redis.yaml"),
        present: &["Deployment/tally-extproc"],
        absent: &["StatefulSet/tally-redis", "Service/tally-redis"],
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
        absent: &["Secret/*"],
    },
];
