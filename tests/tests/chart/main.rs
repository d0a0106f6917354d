//! The Helm chart `charts/tally`, checked with the real tools:
//! - `helm lint --strict` and the values schema (bad values fail with a message naming them);
//! - `helm template` for every mode (defaults, istio, envoy-gateway, bundled and external
//!   Redis, every optional object) validated by `kubernetes-validate --strict` against the
//!   chart's oldest supported Kubernetes and a current one;
//! - the rendered Envoy bootstrap, by `envoy --mode validate` and by a real Envoy forwarding a
//!   call (re-signed for the Bedrock host) to a loopback upstream;
//! - the copies of the CRDs and of the price catalog inside the chart;
//! - security defaults on every pod, no secret in any ConfigMap, and every reference between
//!   the rendered objects (ServiceAccounts, Services, ConfigMaps, Secrets, Envoy clusters) resolving;
//! - NetworkPolicies (on by default) admitting only each port's clients, in every mode;
//! - the mTLS wiring (chart CA, cert-manager, Istio, Envoy Gateway) and the metrics/API split,
//!   and one call from a real Envoy to the real `tally-extproc` over the rendered mTLS channel;
//! - the bundled Valkey's lock-down, on a real `redis-server` started with the rendered config;
//! - the ext_proc spool's volume: an emptyDir by default, a claim per pod (StatefulSet) with
//!   `extproc.spool.persistence`, dry-run on a real kube-apiserver;
//! - the admission webhook's objects and RBAC, self-managed or with cert-manager.
//!
//! Tools come from `$TALLY_CACHE/bin` (`scripts/tools/helm.sh`, `scripts/tools/python.sh`).
//! Run: `cargo test -p tally-tests --test chart`.

mod api;
mod copies;
mod envoy;
mod gateway;
mod lint;
mod mtls;
mod netpol;
mod redis;
mod references;
mod region;
mod render;
mod scenarios;
mod schema;
mod security;
mod sizing;
mod spool;
mod tls;
mod tracing;
mod valkey;
mod webhook;
