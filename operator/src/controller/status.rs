//! What a `TeamBudget`'s status should say, and which events to raise: pure functions over the
//! spec, the previous status, the live counters and the clock. No Kubernetes or Redis calls.
//!
//! Utilization is committed money, `(spent + reserved) / limit`, so a burst of in-flight calls
//! already shows; thresholds and exhaustion are decided with integer arithmetic only.
//! "Once per threshold per period and limit" is remembered in `status.alerts` (keyed by the period
//! key and the limit), not in memory, so a restarted or newly elected operator does not repeat
//! events, and a changed limit re-arms them.
//!
//! Everything budget-related is measured against what the running config **enforces** for the
//! object ([`Enforced`]), never against the spec as written: while a newer spec is rejected the
//! previous valid one stays in force, and an object not in the running config has no budget.

use jiff::Timestamp;
use tally_config::compiled::{BudgetConfig, Enforcement, TeamConfig};
use tally_config::money::Nanos;
use tally_config::period::{self, Period};

use tally_api::compiler::{Compiled, ObjectRef};
use tally_api::crd::condition::{Condition, ConditionStatus, set_condition, types};
use tally_api::crd::team_budget::{AlertsRaised, Refusals, utilization_percent};
use tally_api::crd::{TeamBudget, TeamBudgetStatus};

/// One team's counters for the current period (the `team` scope hash in Redis), as the ext_proc's store reads them.
pub use tally_store::Counters;

/// What the controller could learn about a team's spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// The counters of the current period (all zero when the hash does not exist yet).
    Counters(Counters),
    /// The operator runs without Redis: spend is unknown, the status shows config only.
    NoStore,
    /// Redis did not answer: keep the previous spend figures rather than blank them.
    Unavailable,
}

/// Whether the object compiled into the running config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// The message names the field at fault; `kept_last_good` says whether the team is still
    /// served with its previous config.
    Invalid {
        message: String,
        kept_last_good: bool,
    },
    /// Valid, but the compiled config could not be published (`ConfigTooLarge`): the message says
    /// why; the running config keeps the object's previous version, if it had one.
    NotPublished {
        reason: &'static str,
        message: String,
    },
}

/// What the running config does with one `TeamBudget`, as the config pass left it.
#[derive(Debug, Clone, PartialEq)]
pub struct Enforced {
    pub readiness: Readiness,
    /// The team as the published config serves it (for an invalid object, its last good
    /// version); `None` when the object is not in the running config.
    pub team: Option<TeamConfig>,
    /// Content hash of the published config.
    pub config_generation: String,
}

impl Enforced {
    /// The config pass's verdict on `tb` against the `published` config.
    pub fn of(compiled: &Compiled, published: &tally_config::compiled::CompiledConfig, tb: &TeamBudget) -> Self {
        let key = tb.key();
        let team = published.teams.iter().find(|t| t.source == key).cloned();
        Enforced {
            readiness: readiness(compiled, &ObjectRef::team_budget(tb), team.is_some()),
            team,
            config_generation: published.generation.clone(),
        }
    }

    /// The team id and budget whose counters measure the object, if it has a budget in force.
    pub fn budget(&self) -> Option<(&str, &BudgetConfig)> {
        let team = self.team.as_ref()?;
        Some((&team.team, team.budget.as_ref()?))
    }
}

/// An event to publish about the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventToEmit {
    pub warning: bool,
    /// CamelCase reason (`ThresholdCrossed`, `BudgetExhausted`, `ProjectedOverrun`, `InvalidSpec`).
    pub reason: String,
    pub note: String,
    /// What the operator was doing (`Compile`, `ReadCounters`).
    pub action: &'static str,
}

/// A Warning event when an object has just become invalid, or its problems changed. Raised
/// once: the `Ready` condition that records it is stored before events are published, and the
/// next pass compares against it.
pub fn invalid_event(prev: &[Condition], ready: &Condition) -> Option<EventToEmit> {
    if ready.status != ConditionStatus::False {
        return None;
    }
    let before = prev.iter().find(|c| c.type_ == types::READY);
    if before.is_some_and(|b| b.status == ready.status && b.message == ready.message) {
        return None;
    }
    Some(EventToEmit {
        warning: true,
        reason: ready.reason.clone(),
        note: ready.message.clone(),
        action: "Compile",
    })
}

/// The `Ready` condition for an object.
pub fn ready_condition(readiness: &Readiness, generation: Option<i64>, now: &str) -> Condition {
    match readiness {
        Readiness::Ready => Condition::new(
            types::READY,
            ConditionStatus::True,
            "Compiled",
            "compiled into the running config",
            now,
            generation,
        ),
        Readiness::Invalid {
            message,
            kept_last_good,
        } => {
            let served = if *kept_last_good {
                "the previous valid version stays in effect"
            } else {
                "the object is not in the running config"
            };
            Condition::new(
                types::READY,
                ConditionStatus::False,
                "InvalidSpec",
                format!("{message}; {served}"),
                now,
                generation,
            )
        }
        Readiness::NotPublished { reason, message } => Condition::new(
            types::READY,
            ConditionStatus::False,
            reason,
            message.clone(),
            now,
            generation,
        ),
    }
}

/// Ready, or Invalid with every error of the object, one `field: message` each.
pub fn readiness(compiled: &Compiled, object: &ObjectRef, kept_last_good: bool) -> Readiness {
    let errors: Vec<String> = compiled
        .errors_of(object)
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    if errors.is_empty() {
        Readiness::Ready
    } else {
        Readiness::Invalid {
            message: errors.join("; "),
            kept_last_good,
        }
    }
}

/// The status a `TeamBudget` should have, and the events to raise on the way there.
pub fn team_status(
    tb: &TeamBudget,
    enforced: &Enforced,
    reading: Reading,
    now: Timestamp,
) -> (TeamBudgetStatus, Vec<EventToEmit>) {
    let (status, mut events) = spend_status(tb, enforced, reading, now);
    let prev = tb.status.as_ref().map_or(&[][..], |s| &s.conditions[..]);
    let ready = status.conditions.iter().find(|c| c.type_ == types::READY);
    if let Some(e) = ready.and_then(|r| invalid_event(prev, r)) {
        events.insert(0, e);
    }
    (status, events)
}

/// [`team_status`] but for the `InvalidSpec` event.
fn spend_status(
    tb: &TeamBudget,
    enforced: &Enforced,
    reading: Reading,
    now: Timestamp,
) -> (TeamBudgetStatus, Vec<EventToEmit>) {
    let prev = tb.status.clone().unwrap_or_default();
    let generation = tb.metadata.generation;
    let now_s = now.to_string();
    let mut status = TeamBudgetStatus {
        observed_generation: generation,
        conditions: prev.conditions.clone(),
        ..Default::default()
    };
    set_condition(
        &mut status.conditions,
        ready_condition(&enforced.readiness, generation, &now_s),
    );
    if enforced.team.is_some() {
        status.config_generation = Some(enforced.config_generation.clone());
    }
    let Some((team, budget, window)) = budget_window(enforced, now) else {
        // No budget in force: nothing to measure against.
        status.conditions.retain(|c| c.type_ == types::READY);
        return (status, vec![]);
    };
    let limit = budget.limit;
    status.limit_usd = Some(limit.to_string());
    status.enforcement = Some(format!("{:?}", budget.enforcement));
    status.period_start = Some(window.start.to_string());
    status.period_end = Some(window.end.to_string());

    let counters = match reading {
        Reading::Counters(c) => c,
        Reading::NoStore => {
            let unknown = |t: &str| {
                Condition::new(
                    t,
                    ConditionStatus::Unknown,
                    "NoCounterStore",
                    "the operator runs without --redis-url",
                    &now_s,
                    generation,
                )
            };
            set_condition(&mut status.conditions, unknown(types::BUDGET_EXCEEDED));
            set_condition(&mut status.conditions, unknown(types::THRESHOLD_CROSSED));
            status.alerts = prev.alerts;
            return (status, vec![]);
        }
        Reading::Unavailable => {
            keep_last_known(&mut status, prev);
            return (status, vec![]);
        }
    };
    let spend = Spend::new(budget, limit, counters, &window, now);
    spend.fill(&mut status);
    status.forecast_usd = Some(spend.forecast.to_string());
    status.exhausts_at = period::exhaustion(spend.committed, limit, &window, now).map(|t| t.to_string());
    set_condition(&mut status.conditions, spend.exceeded(&now_s, generation));
    set_condition(&mut status.conditions, spend.threshold(&now_s, generation));
    let (alerts, events) = spend.alerts(team, prev.alerts, &window.key);
    status.alerts = Some(alerts);
    (status, events)
}

/// Redis did not answer: keep what was last known, but only for the same period.
fn keep_last_known(status: &mut TeamBudgetStatus, prev: TeamBudgetStatus) {
    if prev.period_start == status.period_start {
        status.spent_usd = prev.spent_usd;
        status.reserved_usd = prev.reserved_usd;
        status.remaining_usd = prev.remaining_usd;
        status.utilization = prev.utilization;
        status.forecast_usd = prev.forecast_usd;
        status.exhausts_at = prev.exhausts_at;
        status.requests = prev.requests;
        status.blocked = prev.blocked;
        status.refusals = prev.refusals;
    }
    status.alerts = prev.alerts;
}

/// A team's spend in the current period, measured against its budget.
struct Spend<'a> {
    budget: &'a BudgetConfig,
    limit: Nanos,
    counters: Counters,
    /// Spent plus reserved: what utilization, thresholds and exhaustion are decided on.
    committed: Nanos,
    /// Committed spend projected at the period's end at the rate so far.
    forecast: Nanos,
    remaining: Nanos,
    /// The alert thresholds reached, in the budget's order.
    crossed: Vec<u8>,
    /// When the period ends, as the messages say it.
    ends: String,
}

impl<'a> Spend<'a> {
    fn new(
        budget: &'a BudgetConfig,
        limit: Nanos,
        counters: Counters,
        window: &period::Window,
        now: Timestamp,
    ) -> Self {
        let committed = counters.spent.saturating_add(counters.reserved);
        let crossed = budget
            .alert_thresholds
            .iter()
            .copied()
            .filter(|t| reached(committed, limit, *t))
            .collect();
        Spend {
            budget,
            limit,
            counters,
            committed,
            forecast: period::forecast(committed, window, now),
            remaining: limit.saturating_sub(committed),
            crossed,
            ends: window.end.to_string(),
        }
    }

    fn exhausted(&self) -> bool {
        self.committed >= self.limit
    }

    /// The spend fields of the status.
    fn fill(&self, status: &mut TeamBudgetStatus) {
        status.spent_usd = Some(self.counters.spent.to_string());
        status.reserved_usd = Some(self.counters.reserved.to_string());
        status.remaining_usd = Some(self.remaining.to_string());
        status.utilization = utilization_percent(self.committed, self.limit);
        status.requests = Some(i64::try_from(self.counters.requests).unwrap_or(i64::MAX));
        status.blocked = Some(i64::try_from(self.counters.blocked).unwrap_or(i64::MAX));
        status.refusals = Some(Refusals {
            budget: i64::try_from(self.counters.blocked).unwrap_or(i64::MAX),
            allowlist: i64::try_from(self.counters.denied).unwrap_or(i64::MAX),
        });
    }

    /// The `BudgetExceeded` condition.
    fn exceeded(&self, now: &str, generation: Option<i64>) -> Condition {
        let (limit, ends) = (self.limit, &self.ends);
        if self.exhausted() {
            Condition::new(
                types::BUDGET_EXCEEDED,
                ConditionStatus::True,
                "LimitReached",
                format!(
                    "spent {} + reserved {} of {limit} USD; the period ends {ends}",
                    self.counters.spent, self.counters.reserved
                ),
                now,
                generation,
            )
        } else {
            Condition::new(
                types::BUDGET_EXCEEDED,
                ConditionStatus::False,
                "WithinBudget",
                format!("{} of {limit} USD left until {ends}", self.remaining),
                now,
                generation,
            )
        }
    }

    /// The `ThresholdCrossed` condition: the highest threshold reached, if any.
    fn threshold(&self, now: &str, generation: Option<i64>) -> Condition {
        match self.crossed.last() {
            Some(t) => Condition::new(
                types::THRESHOLD_CROSSED,
                ConditionStatus::True,
                "ThresholdReached",
                format!("spend reached {t}% of the {} USD limit", self.limit),
                now,
                generation,
            ),
            None => Condition::new(
                types::THRESHOLD_CROSSED,
                ConditionStatus::False,
                "BelowThresholds",
                "no alert threshold reached",
                now,
                generation,
            ),
        }
    }

    /// The alerts raised in period `key` after this reading, and the events for those not
    /// raised before: each threshold and the exhaustion once per period and limit.
    fn alerts(&self, team: &str, prev: Option<AlertsRaised>, key: &str) -> (AlertsRaised, Vec<EventToEmit>) {
        let limit_usd = self.limit.to_string();
        // Alerts recorded before the limit was remembered (no `limitUSD`) count for this limit,
        // so an upgrade repeats nothing.
        let mut alerts = match prev {
            Some(a) if a.period == key && a.limit_usd.as_ref().is_none_or(|l| *l == limit_usd) => a,
            _ => AlertsRaised {
                period: key.to_string(),
                ..Default::default()
            },
        };
        alerts.limit_usd = Some(limit_usd);
        let (limit, ends) = (self.limit, &self.ends);
        let mut events = vec![];
        for &t in &self.crossed {
            if !alerts.thresholds.contains(&t) {
                alerts.thresholds.push(t);
                events.push(EventToEmit {
                    warning: t >= 100,
                    reason: "ThresholdCrossed".into(),
                    action: "ReadCounters",
                    note: format!(
                        "team {team} reached {t}% of its {} budget of {limit} USD (spent {}, reserved {}); the period ends {ends}",
                        period_name(self.budget),
                        self.counters.spent,
                        self.counters.reserved
                    ),
                });
            }
        }
        alerts.thresholds.sort_unstable();
        if self.exhausted() && !alerts.exhausted {
            alerts.exhausted = true;
            events.push(self.exhausted_event(team));
        }
        // Before the money runs out: the rate so far would overrun the limit by the period's end.
        if self.forecast > self.limit && !self.exhausted() && !alerts.projected {
            alerts.projected = true;
            events.push(EventToEmit {
                warning: true,
                reason: "ProjectedOverrun".into(),
                action: "ReadCounters",
                note: format!(
                    "team {team} is projected to spend {} USD this {} period at its rate so far, over its {limit} USD budget ({} committed); the period ends {ends}",
                    self.forecast,
                    period_name(self.budget),
                    self.committed
                ),
            });
        }
        (alerts, events)
    }

    fn exhausted_event(&self, team: &str) -> EventToEmit {
        let what = match self.budget.enforcement {
            Enforcement::Block => "calls are refused",
            Enforcement::Warn => "calls continue (enforcement Warn) and are recorded as over budget",
        };
        EventToEmit {
            warning: true,
            reason: "BudgetExhausted".into(),
            action: "ReadCounters",
            note: format!(
                "team {team} has no budget left ({} of {} USD); {what} until {}",
                self.remaining, self.limit, self.ends
            ),
        }
    }
}

/// The team id, the budget in force and its current period, when there is one.
fn budget_window(enforced: &Enforced, now: Timestamp) -> Option<(&str, &BudgetConfig, period::Window)> {
    let (team, budget) = enforced.budget()?;
    // The compiler validated the timezone; a config that still names an unknown one has no period.
    let tz = period::timezone(&budget.timezone).ok()?;
    Some((team, budget, period::window(now, budget.period, &tz)))
}

/// The team id and period key (the Redis counter key parts) of the budget in force, if any.
pub fn counter_scope(enforced: &Enforced, now: Timestamp) -> Option<(&str, String)> {
    budget_window(enforced, now).map(|(team, _, w)| (team, w.key))
}

/// `committed >= percent% of limit`, exactly.
fn reached(committed: Nanos, limit: Nanos, percent: u8) -> bool {
    i128::from(committed.0) * 100 >= i128::from(limit.0) * i128::from(percent)
}

fn period_name(budget: &BudgetConfig) -> &'static str {
    match budget.period {
        Period::Daily => "daily",
        Period::Weekly => "weekly",
        Period::Monthly => "monthly",
    }
}

/// Whether the status on the server differs from the computed one (patch only then).
pub fn status_needs_patch(current: Option<&TeamBudgetStatus>, desired: &TeamBudgetStatus) -> bool {
    current != Some(desired)
}

#[cfg(test)]
mod tests;
