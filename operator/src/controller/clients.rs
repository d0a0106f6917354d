//! The connections every pass writes through, and how it writes: server-side apply patches
//! under one field manager, of the ConfigMap and of the custom resources' `status` subresource
//! (never their spec).

use std::sync::Arc;

use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource};
use tally_api::crd::API_VERSION;

use super::telemetry::Metrics;

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "tally-operator";

/// Handles shared by the passes; cheap to clone.
#[derive(Clone)]
pub(super) struct Clients {
    pub kube: Client,
    pub metrics: Arc<Metrics>,
}

/// Server-side apply as the operator, taking over fields another manager set.
pub(super) fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Server-side apply of `status` on the status subresource.
pub(super) async fn apply_status<K, S>(api: &Api<K>, name: &str, kind: &str, status: &S) -> Result<(), kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize,
{
    let patch = serde_json::json!({ "apiVersion": API_VERSION, "kind": kind, "status": status });
    api.patch_status(name, &apply_params(), &Patch::Apply(&patch))
        .await
        .map(|_| ())
}
