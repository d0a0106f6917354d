//! The `ModelPricing` statuses the config pass writes: `Ready` (or why not), the number of
//! models each object contributes, and a Warning Event `InvalidSpec` when one becomes invalid.

use std::collections::{BTreeSet, HashMap};

use kube::api::Api;
use kube::{Resource, ResourceExt};
use tally_api::compiler::{Compiled, ObjectRef};
use tally_api::crd::condition::set_condition;
use tally_api::crd::{ModelPricing, ModelPricingStatus};

use super::clients::{Clients, apply_status};
use super::events;
use super::status::{self, EventToEmit, Readiness};

/// The statuses this leadership term wrote, per ModelPricing uid: newer than the watch cache
/// until the update comes back, so two quick passes cannot raise the same event twice.
#[derive(Default)]
pub(super) struct PricingStatuses {
    written: HashMap<String, ModelPricingStatus>,
}

impl PricingStatuses {
    /// At the start of a term: another replica may have written statuses since.
    pub fn forget(&mut self) {
        self.written.clear();
    }

    /// Writes each object's status where it changed and publishes its events; stops at the
    /// first failed write. Returns how many objects are invalid. `reporter` is this replica's
    /// identity.
    pub async fn write(
        &mut self,
        clients: &Clients,
        reporter: &str,
        pricings: &[ModelPricing],
        compiled: &Compiled,
    ) -> Result<i64, kube::Error> {
        let now = jiff::Timestamp::now().to_string();
        let present: BTreeSet<String> = pricings.iter().filter_map(|p| p.metadata.uid.clone()).collect();
        self.written.retain(|k, _| present.contains(k));
        let mut invalid = 0;
        for mp in pricings {
            let readiness = status::readiness(compiled, &ObjectRef::model_pricing(mp), false);
            if readiness != Readiness::Ready {
                invalid += 1;
            }
            let models = compiled.entries_per_catalog.get(&mp.name_any()).copied().unwrap_or(0);
            let (desired, event) = self.desired(mp, &readiness, models, &now);
            let name = mp.name_any();
            if let Some(desired) = desired {
                let api: Api<ModelPricing> = Api::all(clients.kube.clone());
                apply_status(&api, &name, "ModelPricing", &desired).await?;
                self.written
                    .insert(mp.metadata.uid.clone().unwrap_or_default(), desired);
            }
            if let Some(e) = event {
                events::emit(clients, reporter, &mp.object_ref(&()), &e, &name).await;
            }
        }
        Ok(invalid)
    }

    /// The status to write (`None`: unchanged) and the event to raise, against the status this
    /// term wrote last or else the cached one.
    fn desired(
        &self,
        mp: &ModelPricing,
        readiness: &Readiness,
        models: usize,
        now: &str,
    ) -> (Option<ModelPricingStatus>, Option<EventToEmit>) {
        let uid = mp.metadata.uid.clone().unwrap_or_default();
        let prev = self
            .written
            .get(&uid)
            .or(mp.status.as_ref())
            .cloned()
            .unwrap_or_default();
        let mut desired = ModelPricingStatus {
            models: Some(models as i64),
            source: Some(short_source(&mp.spec.source)),
            conditions: prev.conditions.clone(),
            observed_generation: mp.metadata.generation,
        };
        let ready = status::ready_condition(readiness, mp.metadata.generation, now);
        let event = status::invalid_event(&prev.conditions, &ready);
        set_condition(&mut desired.conditions, ready);
        ((prev != desired).then_some(desired), event)
    }
}

/// Characters of `spec.source` shown in `kubectl get modelpricings`.
const SHORT_SOURCE_CHARS: usize = 40;

/// `source` cut to [`SHORT_SOURCE_CHARS`] characters, ending in `…` when cut.
fn short_source(source: &str) -> String {
    let source = source.trim();
    match source.char_indices().nth(SHORT_SOURCE_CHARS) {
        None => source.to_string(),
        Some((end, _)) => format!("{}…", source[..end].trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_source_is_cut_at_a_character_boundary() {
        assert_eq!(short_source(" AWS list "), "AWS list");
        let long = "LiteLLM model_prices_and_context_window 1.110.2 — AWS Bedrock on-demand";
        let short = short_source(long);
        assert_eq!(short, "LiteLLM model_prices_and_context_window…");
        assert_eq!(short.chars().count(), SHORT_SOURCE_CHARS);
        assert_eq!(short_source(&"é".repeat(50)).chars().count(), SHORT_SOURCE_CHARS + 1);
    }
}
