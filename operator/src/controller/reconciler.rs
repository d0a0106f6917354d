//! What the leader does: watch, and on each trigger run the config pass (compile, publish the
//! ConfigMap, `Ready` on every object) and then the status pass (counters → team statuses and
//! events). The [`Reconciler`] keeps the three kinds of state apart: the [`Settings`] it was
//! started with, the [`Clients`] it talks through, and what it remembers between passes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tally_api::compiler::{self, Compiled, ObjectRef};
use tally_api::crd::{ModelPricing, TeamBudget};
use tally_config::compiled::CompiledConfig;

use super::args::Settings;
use super::clients::Clients;
use super::config_map::TooLarge;
use super::counters::CounterReader;
use super::failures::{Repeats, describe};
use super::pricing_status::PricingStatuses;
use super::publish;
use super::status::{Enforced, Readiness};
use super::team_status::TeamStatuses;
use super::trigger::Trigger;
use super::watch::Watches;

/// What the passes remember between them.
#[derive(Default)]
struct Memo {
    /// What the running config enforces for each TeamBudget (`ObjectRef` display), from the
    /// last config pass.
    enforced: HashMap<String, Enforced>,
    teams: TeamStatuses,
    pricings: PricingStatuses,
    /// The config pass's last failure: logged once while it repeats.
    failures: Repeats,
    /// What the ConfigMaps hold, so a pass reads the shards only after they changed.
    published: publish::Cache,
    /// The last config too large to publish: logged once.
    too_large: Repeats,
}

/// The reconcile passes of one replica.
pub(super) struct Reconciler {
    settings: Settings,
    clients: Clients,
    counters: CounterReader,
    memo: Memo,
}

impl Reconciler {
    pub fn new(settings: Settings, clients: Clients) -> Self {
        Reconciler {
            settings,
            clients,
            counters: CounterReader::default(),
            memo: Memo::default(),
        }
    }

    /// Reconciles while this replica leads; returns only if every watch stream ends.
    pub async fn lead(&mut self) {
        self.memo.teams.forget();
        self.memo.pricings.forget();
        let (watches, streams) = Watches::start(&self.clients.kube, &self.settings.watch_namespaces);
        let mut trigger = Trigger::new(streams, self.settings.status_interval);
        while trigger.due().await {
            let teams = watches.teams();
            self.config_pass(&teams, &watches.pricings()).await;
            // With 10,000 teams a status pass takes minutes (a config change touches every
            // status): a change arriving meanwhile stops it after the team in hand, so the next
            // config pass publishes within seconds; the status pass resumes where it stopped.
            let stop = AtomicBool::new(false);
            let pass = self.memo.teams.pass(
                &self.settings,
                &self.clients,
                &mut self.counters,
                &self.memo.enforced,
                &teams,
                &stop,
            );
            tokio::pin!(pass);
            tokio::select! {
                () = &mut pass => continue,
                more = trigger.changed() => if more { stop.store(true, Ordering::Relaxed) },
            }
            pass.await;
        }
    }

    /// Compile everything, publish the ConfigMap if its content changed, set `Ready` on each object.
    async fn config_pass(&mut self, teams: &[TeamBudget], pricings: &[ModelPricing]) {
        let started = Instant::now();
        let ok = match self.reconcile_config(teams, pricings).await {
            Ok(()) => {
                self.memo.failures.clear();
                true
            }
            Err(error) => {
                let error = describe(&error);
                if self.memo.failures.is_new(&error) {
                    tracing::warn!(%error, "config reconcile failed; retrying on the next change or tick");
                }
                false
            }
        };
        self.clients.metrics.observe("config", started.elapsed(), ok);
    }

    async fn reconcile_config(&mut self, teams: &[TeamBudget], pricings: &[ModelPricing]) -> Result<(), kube::Error> {
        let compiled = compiler::compile_lenient(teams, pricings);
        let published = publish::publish(
            &self.settings,
            &self.clients,
            teams,
            &compiled,
            &mut self.memo.published,
        )
        .await?;
        let mut invalid_teams = self.record_enforced(teams, &compiled, &published.in_force);
        match &published.too_large {
            Some(too_large) => invalid_teams += self.not_published(teams, &compiled, too_large),
            None => self.memo.too_large.clear(),
        }
        let invalid_pricings = self
            .memo
            .pricings
            .write(&self.clients, &self.settings.identity, pricings, &compiled)
            .await?;
        self.clients
            .metrics
            .invalid_objects
            .set(invalid_teams + invalid_pricings);
        Ok(())
    }

    /// Marks every valid team the running config does not serve as compiled `ConfigTooLarge`;
    /// returns how many (the Ready=False condition raises each one's Warning event).
    fn not_published(&mut self, teams: &[TeamBudget], compiled: &Compiled, too_large: &TooLarge) -> i64 {
        if self.memo.too_large.is_new(&too_large.to_string()) {
            tracing::error!(%too_large, "compiled config not published");
        }
        let mut count = 0;
        for tb in teams {
            let key = ObjectRef::team_budget(tb).to_string();
            let Some(enforced) = self.memo.enforced.get_mut(&key) else {
                continue;
            };
            let wanted = compiled.config.teams.iter().find(|t| t.source == tb.key());
            if enforced.readiness != Readiness::Ready || wanted.is_none() || wanted == enforced.team.as_ref() {
                continue;
            }
            enforced.readiness = Readiness::NotPublished {
                reason: "ConfigTooLarge",
                message: too_large.to_string(),
            };
            count += 1;
        }
        count
    }

    /// Remembers what is enforced for each team, for the status pass; returns how many are invalid.
    fn record_enforced(&mut self, teams: &[TeamBudget], compiled: &Compiled, published: &CompiledConfig) -> i64 {
        self.memo.enforced.clear();
        let mut invalid = 0;
        for tb in teams {
            let enforced = Enforced::of(compiled, published, tb);
            if enforced.readiness != Readiness::Ready {
                invalid += 1;
            }
            self.memo
                .enforced
                .insert(ObjectRef::team_budget(tb).to_string(), enforced);
        }
        invalid
    }
}
