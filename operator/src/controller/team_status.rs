//! The status pass: each `TeamBudget`'s counters read from Redis, its status written where it
//! changed, and the events it raises published once that status is stored. The status itself
//! is decided in [`status`].

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use kube::api::Api;
use kube::{Resource, ResourceExt};
use tally_api::compiler::ObjectRef;
use tally_api::crd::{TeamBudget, TeamBudgetStatus};

use super::args::Settings;
use super::clients::{Clients, apply_status};
use super::counters::CounterReader;
use super::events;
use super::scopes;
use super::status::{self, Enforced, Reading};

/// One team's counters as read: the team's, and its shown workflows' and tenants'.
struct Read {
    reading: Reading,
    scopes: Vec<status::Counters>,
    /// Nano-USD spent per catalog model.
    models: Vec<(String, tally_config::money::Nanos)>,
}

/// The statuses this leadership term wrote, per TeamBudget uid: newer than the watch cache
/// until the update comes back, so two quick passes cannot raise the same event twice.
#[derive(Default)]
pub(super) struct TeamStatuses {
    written: HashMap<String, TeamBudgetStatus>,
    /// Where the next pass starts (an index into the teams, by uid order): a pass stopped
    /// early resumes there, so no team waits behind a stream of config changes.
    next: usize,
}

fn uid(tb: &TeamBudget) -> String {
    tb.metadata.uid.clone().unwrap_or_default()
}

impl TeamStatuses {
    /// At the start of a term: another replica may have written statuses since.
    pub fn forget(&mut self) {
        self.written.clear();
    }

    /// Reads each team's counters, patches its status when it changed, publishes due events.
    /// `enforced` is the last config pass's verdict per object (`ObjectRef` display); an object
    /// it has not seen yet (its config pass failed) keeps its status until the next pass.
    /// Stops after the team in hand once `stop` is set; the next pass starts where it stopped.
    pub async fn pass(
        &mut self,
        settings: &Settings,
        clients: &Clients,
        counters: &mut CounterReader,
        enforced: &HashMap<String, Enforced>,
        teams: &[TeamBudget],
        stop: &AtomicBool,
    ) {
        let started = Instant::now();
        let mut ok = true;
        let now = jiff::Timestamp::now();
        let present: BTreeSet<String> = teams.iter().map(uid).collect();
        self.written.retain(|k, _| present.contains(k));
        let mut order: Vec<&TeamBudget> = teams.iter().collect();
        order.sort_by_cached_key(|tb| uid(tb));
        let start = self.next.min(order.len());
        order.rotate_left(start);
        for (done, cached) in order.into_iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                self.next = (start + done) % teams.len().max(1);
                clients.metrics.observe("status", started.elapsed(), ok);
                return;
            }
            let tb = self.freshest(cached);
            let Some(enforced) = enforced.get(&ObjectRef::team_budget(&tb).to_string()) else {
                continue;
            };
            let scopes = enforced.team.as_ref().map(scopes::shown).unwrap_or_default();
            let (reading, scope_counters, models) =
                counters.read(settings.redis.as_ref(), enforced, &scopes, now).await;
            if reading == Reading::Unavailable {
                ok = false;
            }
            let read = Read {
                reading,
                scopes: scope_counters,
                models,
            };
            ok &= self.update(settings, clients, &tb, enforced, read, now).await;
        }
        self.next = 0;
        clients.metrics.observe("status", started.elapsed(), ok);
    }

    /// `cached` with the status this term wrote, if the watch cache has not caught up with it.
    fn freshest<'a>(&self, cached: &'a TeamBudget) -> Cow<'a, TeamBudget> {
        match self.written.get(&uid(cached)) {
            Some(w) if cached.status.as_ref() != Some(w) => Cow::Owned(TeamBudget {
                status: Some(w.clone()),
                ..cached.clone()
            }),
            _ => Cow::Borrowed(cached),
        }
    }

    /// Writes one team's status and publishes its events; `false` if anything failed.
    async fn update(
        &mut self,
        settings: &Settings,
        clients: &Clients,
        tb: &TeamBudget,
        enforced: &Enforced,
        read: Read,
        now: jiff::Timestamp,
    ) -> bool {
        let (mut desired, events) = status::team_status(tb, enforced, read.reading, now);
        match (&enforced.team, read.reading) {
            (Some(team), Reading::Counters(_)) if desired.period_start.is_some() => {
                scopes::fill(&mut desired, team, &read.scopes);
                desired.top_models = scopes::top_models(read.models);
            }
            (_, Reading::Unavailable) => scopes::keep(&mut desired, tb.status.as_ref()),
            _ => {}
        }
        if status::status_needs_patch(tb.status.as_ref(), &desired) {
            let api: Api<TeamBudget> = Api::namespaced(clients.kube.clone(), &tb.namespace().unwrap_or_default());
            if let Err(error) = apply_status(&api, &tb.name_any(), "TeamBudget", &desired).await {
                tracing::warn!(%error, object = %tb.key(), "status patch failed");
                // Events only after the status recording them is stored: at most once.
                return false;
            }
            self.written.insert(uid(tb), desired);
        }
        let reference = tb.object_ref(&());
        let mut ok = true;
        for e in events {
            ok &= events::emit(clients, &settings.identity, &reference, &e, &tb.key()).await;
        }
        ok
    }
}
