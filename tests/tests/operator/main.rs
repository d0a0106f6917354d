//! `tally operator` against a real kube-apiserver + etcd (built by `scripts/tools/kube.sh`) with
//! `--authorization-mode=RBAC`, and a real redis-server.
//!
//! The operator authenticates as the chart's ServiceAccount (token from a TokenRequest) bound by
//! the chart's own `operator-rbac.yaml` rendered with `helm template`: a verb missing from the
//! chart fails this test. Everything else (CRDs, objects, counters) is set up as an admin.
//!
//! Needs: `scripts/tools/kube.sh`, `scripts/tools/helm.sh`, `scripts/tools/redis.sh`.
//! Run: `cargo test -p tally-tests --test operator` (one scenario: `… --test operator enforced`).

mod cluster;
mod conflicts;
mod counters;
mod enforced;
mod observe;
mod reconcile;
mod redis_cluster;
mod replica;
mod scale;
mod traffic;
mod usability;
mod watch_namespaces;
mod webhook;

/// The operator's namespace: its ConfigMap, Lease and ServiceAccount live here.
const NS: &str = "tally-system";
/// One US dollar in the counters' unit (nano-dollars).
const USD: i64 = 1_000_000_000;
