//! Publishing the events the status decisions raise ([`EventToEmit`]) as `events.k8s.io/v1`
//! Events. Each alert is raised once (the status records it), so there is nothing to aggregate
//! into a series: kube's `Recorder` would merge two thresholds' events into one, as its key
//! ignores the note, and only `create` is needed.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};

use super::clients::{Clients, FIELD_MANAGER};
use super::status::EventToEmit;

/// Publishes `e` about `regarding` (`object` names it in logs), counting and logging it;
/// `false` if the API server refused it. `reporter` is this replica's identity.
pub(super) async fn emit(
    clients: &Clients,
    reporter: &str,
    regarding: &ObjectReference,
    e: &EventToEmit,
    object: &str,
) -> bool {
    match create(clients, reporter, regarding, e).await {
        Ok(()) => {
            clients.metrics.events.inc();
            tracing::info!(%object, reason = %e.reason, note = %e.note, "event");
            true
        }
        Err(error) => {
            tracing::warn!(%error, %object, reason = %e.reason, "could not publish event");
            false
        }
    }
}

/// Creates one Event about `regarding`, in its namespace.
async fn create(
    clients: &Clients,
    reporter: &str,
    regarding: &ObjectReference,
    e: &EventToEmit,
) -> Result<(), kube::Error> {
    let now = jiff::Timestamp::now();
    let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".into());
    let event = KubeEvent {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{:x}",
                regarding.name.as_deref().unwrap_or("tally"),
                now.as_nanosecond()
            )),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        event_time: Some(MicroTime(now)),
        type_: Some(if e.warning { "Warning" } else { "Normal" }.into()),
        reason: Some(e.reason.clone()),
        note: Some(e.note.clone()),
        action: Some(e.action.into()),
        regarding: Some(regarding.clone()),
        reporting_controller: Some(format!("tally.dev/{FIELD_MANAGER}")),
        reporting_instance: Some(reporter.to_string()),
        ..Default::default()
    };
    let api: Api<KubeEvent> = Api::namespaced(clients.kube.clone(), &namespace);
    api.create(&PostParams::default(), &event).await.map(|_| ())
}
