//! What a `TeamBudget`'s status should say, and which events to raise: pure functions over the
//! spec, the previous status, the live counters and the clock. No Kubernetes or Redis calls.
//!
//! Utilization is committed money, `(spent + reserved) / limit`, so a burst of in-flight calls
//! already shows; thresholds and exhaustion are decided with integer arithmetic only.
//! "Once per threshold per period" is remembered in `status.alerts` (keyed by the period key), not
//! in memory, so a restarted or newly elected operator does not repeat events.

use jiff::Timestamp;
use tally_config::money::Nanos;
use tally_config::period;

use tally_api::crd::condition::{Condition, ConditionStatus, set_condition, types};
use tally_api::crd::team_budget::{AlertsRaised, utilization_percent};
use tally_api::crd::{Budget, TeamBudget, TeamBudgetStatus};

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
}

/// An event to publish about the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventToEmit {
    pub warning: bool,
    /// CamelCase reason (`ThresholdCrossed`, `BudgetExhausted`, `InvalidSpec`).
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
    }
}

/// The status a `TeamBudget` should have, and the events to raise on the way there.
pub fn team_status(
    tb: &TeamBudget,
    readiness: &Readiness,
    reading: Reading,
    now: Timestamp,
) -> (TeamBudgetStatus, Vec<EventToEmit>) {
    let (status, mut events) = spend_status(tb, readiness, reading, now);
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
    readiness: &Readiness,
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
    set_condition(&mut status.conditions, ready_condition(readiness, generation, &now_s));

    let Some((budget, limit, window)) = budget_window(tb.spec.budget.as_ref(), now) else {
        // No (usable) budget: nothing to measure against.
        status.conditions.retain(|c| c.type_ == types::READY);
        return (status, vec![]);
    };
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
            // Keep what was last known, but only for the same period.
            if prev.period_start == status.period_start {
                status.spent_usd = prev.spent_usd;
                status.reserved_usd = prev.reserved_usd;
                status.remaining_usd = prev.remaining_usd;
                status.utilization = prev.utilization;
                status.requests = prev.requests;
                status.blocked = prev.blocked;
            }
            status.alerts = prev.alerts;
            return (status, vec![]);
        }
    };

    let committed = counters.spent.saturating_add(counters.reserved);
    let remaining = limit.saturating_sub(committed);
    status.spent_usd = Some(counters.spent.to_string());
    status.reserved_usd = Some(counters.reserved.to_string());
    status.remaining_usd = Some(remaining.to_string());
    status.utilization = utilization_percent(committed, limit);
    status.requests = Some(i64::try_from(counters.requests).unwrap_or(i64::MAX));
    status.blocked = Some(i64::try_from(counters.blocked).unwrap_or(i64::MAX));

    let crossed: Vec<u8> = budget
        .alert_thresholds
        .iter()
        .copied()
        .filter(|t| reached(committed, limit, *t))
        .collect();
    let exhausted = committed >= limit;
    let ends = window.end.to_string();

    let exceeded = if exhausted {
        Condition::new(
            types::BUDGET_EXCEEDED,
            ConditionStatus::True,
            "LimitReached",
            format!(
                "spent {} + reserved {} of {} USD; the period ends {ends}",
                counters.spent, counters.reserved, limit
            ),
            &now_s,
            generation,
        )
    } else {
        Condition::new(
            types::BUDGET_EXCEEDED,
            ConditionStatus::False,
            "WithinBudget",
            format!("{remaining} of {limit} USD left until {ends}"),
            &now_s,
            generation,
        )
    };
    set_condition(&mut status.conditions, exceeded);
    let threshold = match crossed.last() {
        Some(t) => Condition::new(
            types::THRESHOLD_CROSSED,
            ConditionStatus::True,
            "ThresholdReached",
            format!("spend reached {t}% of the {limit} USD limit"),
            &now_s,
            generation,
        ),
        None => Condition::new(
            types::THRESHOLD_CROSSED,
            ConditionStatus::False,
            "BelowThresholds",
            "no alert threshold reached",
            &now_s,
            generation,
        ),
    };
    set_condition(&mut status.conditions, threshold);

    // Alerts: each threshold and the exhaustion once per period key.
    let mut alerts = match prev.alerts {
        Some(a) if a.period == window.key => a,
        _ => AlertsRaised {
            period: window.key.clone(),
            ..Default::default()
        },
    };
    let mut events = vec![];
    for t in crossed {
        if !alerts.thresholds.contains(&t) {
            alerts.thresholds.push(t);
            events.push(EventToEmit {
                warning: t >= 100,
                reason: "ThresholdCrossed".into(),
                action: "ReadCounters",
                note: format!(
                    "team {} reached {t}% of its {} budget of {limit} USD (spent {}, reserved {}); the period ends {ends}",
                    tb.spec.team,
                    period_name(budget),
                    counters.spent,
                    counters.reserved
                ),
            });
        }
    }
    alerts.thresholds.sort_unstable();
    if exhausted && !alerts.exhausted {
        alerts.exhausted = true;
        let what = match budget.enforcement {
            tally_api::crd::Enforcement::Block => "calls are refused",
            tally_api::crd::Enforcement::Warn => "calls continue (enforcement Warn) and are recorded as over budget",
        };
        events.push(EventToEmit {
            warning: true,
            reason: "BudgetExhausted".into(),
            action: "ReadCounters",
            note: format!(
                "team {} has no budget left ({remaining} of {limit} USD); {what} until {ends}",
                tb.spec.team
            ),
        });
    }
    status.alerts = Some(alerts);
    (status, events)
}

/// The budget, its limit and the current period, when the budget is usable.
fn budget_window(budget: Option<&Budget>, now: Timestamp) -> Option<(&Budget, Nanos, period::Window)> {
    let budget = budget?;
    let limit = Nanos::parse_usd(budget.limit_usd.as_str()).ok()?;
    let tz = period::timezone(&budget.timezone).ok()?;
    Some((budget, limit, period::window(now, budget.period.into(), &tz)))
}

/// The period key of the budget's current window (the Redis counter key part), if usable.
pub fn period_key(budget: Option<&Budget>, now: Timestamp) -> Option<String> {
    budget_window(budget, now).map(|(_, _, w)| w.key)
}

/// `committed >= percent% of limit`, exactly.
fn reached(committed: Nanos, limit: Nanos, percent: u8) -> bool {
    i128::from(committed.0) * 100 >= i128::from(limit.0) * i128::from(percent)
}

fn period_name(budget: &Budget) -> &'static str {
    match budget.period {
        tally_api::crd::BudgetPeriod::Daily => "daily",
        tally_api::crd::BudgetPeriod::Weekly => "weekly",
        tally_api::crd::BudgetPeriod::Monthly => "monthly",
    }
}

/// Whether the status on the server differs from the computed one (patch only then).
pub fn status_needs_patch(current: Option<&TeamBudgetStatus>, desired: &TeamBudgetStatus) -> bool {
    current != Some(desired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_api::crd::condition::find_condition;
    use tally_api::crd::{BudgetPeriod, Enforcement, TeamBudgetSpec};

    const USD: i64 = 1_000_000_000;

    #[test]
    fn an_invalid_spec_is_announced_once_per_distinct_problem() {
        let invalid = |message: &str| Readiness::Invalid {
            message: message.into(),
            kept_last_good: true,
        };
        let now = "2026-11-26T10:00:00Z";
        let ready = ready_condition(&Readiness::Ready, Some(1), now);
        let bad = ready_condition(&invalid("spec.budget.timezone: unknown"), Some(2), now);
        assert_eq!(invalid_event(&[], &ready), None, "valid objects raise nothing");
        let e = invalid_event(std::slice::from_ref(&ready), &bad).expect("newly invalid");
        assert!(e.warning && e.reason == "InvalidSpec" && e.action == "Compile");
        assert!(e.note.contains("spec.budget.timezone"), "{}", e.note);
        assert_eq!(
            invalid_event(std::slice::from_ref(&bad), &bad),
            None,
            "already recorded in status"
        );
        let other = ready_condition(&invalid("spec.budget.limitUSD: negative"), Some(3), now);
        assert!(invalid_event(&[bad], &other).is_some(), "a different problem is news");
    }

    fn team(limit: &str, thresholds: Vec<u8>) -> TeamBudget {
        let mut tb = TeamBudget::new(
            "search",
            TeamBudgetSpec {
                team: "search".into(),
                cost_center: None,
                tenants: vec![],
                budget: Some(Budget {
                    limit_usd: limit.into(),
                    period: BudgetPeriod::Monthly,
                    timezone: "Europe/Berlin".into(),
                    enforcement: Enforcement::Block,
                    alert_thresholds: thresholds,
                }),
                workflows: vec![],
                allowed_models: vec![],
                principals: vec![],
            },
        );
        tb.metadata.namespace = Some("search".into());
        tb.metadata.generation = Some(3);
        tb
    }

    fn spend(spent: i64, reserved: i64) -> Reading {
        Reading::Counters(Counters {
            spent: Nanos(spent),
            reserved: Nanos(reserved),
            requests: 7,
            blocked: 1,
        })
    }

    fn now() -> Timestamp {
        "2026-11-26T10:00:00Z".parse().unwrap()
    }

    fn cond(s: &TeamBudgetStatus, t: &str) -> ConditionStatus {
        find_condition(&s.conditions, t).unwrap().status
    }

    #[test]
    fn fields_come_from_counters_in_the_budget_timezone() {
        let tb = team("100", vec![50, 80, 100]);
        let (s, events) = team_status(&tb, &Readiness::Ready, spend(40 * USD, 2 * USD + USD / 2), now());
        assert_eq!(s.period_start.as_deref(), Some("2026-10-31T23:00:00Z"));
        assert_eq!(s.period_end.as_deref(), Some("2026-11-30T23:00:00Z"));
        assert_eq!(s.spent_usd.as_deref(), Some("40.00"));
        assert_eq!(s.reserved_usd.as_deref(), Some("2.50"));
        assert_eq!(s.remaining_usd.as_deref(), Some("57.50"));
        assert_eq!(s.utilization.as_deref(), Some("42.5"));
        assert_eq!(
            (s.requests, s.blocked, s.observed_generation),
            (Some(7), Some(1), Some(3))
        );
        assert_eq!(cond(&s, types::READY), ConditionStatus::True);
        assert_eq!(cond(&s, types::BUDGET_EXCEEDED), ConditionStatus::False);
        assert_eq!(cond(&s, types::THRESHOLD_CROSSED), ConditionStatus::False);
        assert!(events.is_empty());
        assert_eq!(
            s.alerts,
            Some(AlertsRaised {
                period: "2026-11".into(),
                thresholds: vec![],
                exhausted: false
            })
        );
    }

    #[test]
    fn each_threshold_fires_once_per_period_across_restarts() {
        let mut tb = team("100", vec![50, 80, 100]);
        // Jump straight to 85 %: both 50 and 80 are announced, in order.
        let (s, events) = team_status(&tb, &Readiness::Ready, spend(85 * USD, 0), now());
        assert_eq!(
            events
                .iter()
                .map(|e| e.note.contains("reached 50%"))
                .collect::<Vec<_>>(),
            [true, false]
        );
        assert!(events[1].note.contains("reached 80%"));
        assert_eq!(cond(&s, types::THRESHOLD_CROSSED), ConditionStatus::True);
        // The status is all a restarted operator knows: same spend, no new events.
        tb.status = Some(s);
        let (s, events) = team_status(&tb, &Readiness::Ready, spend(85 * USD, 0), now());
        assert!(events.is_empty());
        // Reservations released below 80 % and back up again: still nothing new.
        tb.status = Some(s);
        let (s, _) = team_status(&tb, &Readiness::Ready, spend(70 * USD, 0), now());
        tb.status = Some(s);
        let (s, events) = team_status(&tb, &Readiness::Ready, spend(81 * USD, 0), now());
        assert!(events.is_empty());
        // Exhaustion: the 100 % threshold and one BudgetExhausted event.
        tb.status = Some(s);
        let (s, events) = team_status(&tb, &Readiness::Ready, spend(99 * USD, USD), now());
        let reasons: Vec<_> = events.iter().map(|e| (e.reason.as_str(), e.warning)).collect();
        assert_eq!(reasons, [("ThresholdCrossed", true), ("BudgetExhausted", true)]);
        assert_eq!(cond(&s, types::BUDGET_EXCEEDED), ConditionStatus::True);
        assert_eq!(s.remaining_usd.as_deref(), Some("0.00"));
        tb.status = Some(s);
        let (s, events) = team_status(&tb, &Readiness::Ready, spend(120 * USD, 0), now());
        assert!(events.is_empty());
        assert_eq!(s.remaining_usd.as_deref(), Some("-20.00"));
        // Next month: counters start from zero and alerts may fire again.
        tb.status = Some(s);
        let december: Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
        let (s, events) = team_status(&tb, &Readiness::Ready, spend(60 * USD, 0), december);
        assert_eq!(events.len(), 1);
        assert_eq!(
            s.alerts.unwrap(),
            AlertsRaised {
                period: "2026-12".into(),
                thresholds: vec![50],
                exhausted: false
            }
        );
    }

    #[test]
    fn thresholds_are_exact_at_the_boundary() {
        let tb = team("0.000000003", vec![33, 34]);
        // 1 of 3 nano-USD is 33.33 %: reaches 33, not 34.
        let (s, events) = team_status(&tb, &Readiness::Ready, spend(1, 0), now());
        assert_eq!(events.len(), 1);
        assert_eq!(s.alerts.unwrap().thresholds, [33]);
    }

    #[test]
    fn unavailable_store_keeps_the_last_known_figures() {
        let mut tb = team("100", vec![50]);
        let (s, _) = team_status(&tb, &Readiness::Ready, spend(10 * USD, 0), now());
        tb.status = Some(s.clone());
        let (kept, events) = team_status(&tb, &Readiness::Ready, Reading::Unavailable, now());
        assert!(events.is_empty());
        assert_eq!(kept, s);
        let (none, _) = team_status(&tb, &Readiness::Ready, Reading::NoStore, now());
        assert_eq!(none.spent_usd, None);
        assert_eq!(cond(&none, types::BUDGET_EXCEEDED), ConditionStatus::Unknown);
    }

    #[test]
    fn invalid_objects_say_why_and_what_is_served() {
        let tb = team("100", vec![]);
        let bad = Readiness::Invalid {
            message: "spec.budget.timezone: unknown timezone".into(),
            kept_last_good: true,
        };
        let (s, _) = team_status(&tb, &bad, spend(0, 0), now());
        let ready = find_condition(&s.conditions, types::READY).unwrap();
        assert_eq!(
            (ready.status, ready.reason.as_str()),
            (ConditionStatus::False, "InvalidSpec")
        );
        assert!(ready.message.contains("spec.budget.timezone") && ready.message.contains("previous valid version"));
    }

    #[test]
    fn unchanged_status_is_not_patched() {
        let mut tb = team("100", vec![50]);
        let (s, _) = team_status(&tb, &Readiness::Ready, spend(1, 0), now());
        assert!(status_needs_patch(None, &s));
        tb.status = Some(s);
        // A later reconcile with the same data keeps the transition times: no patch.
        let later: Timestamp = "2026-11-26T10:05:00Z".parse().unwrap();
        let (again, _) = team_status(&tb, &Readiness::Ready, spend(1, 0), later);
        assert!(!status_needs_patch(tb.status.as_ref(), &again));
    }

    #[test]
    fn no_budget_means_no_period_and_only_ready() {
        let mut tb = team("100", vec![]);
        tb.spec.budget = None;
        let (s, events) = team_status(&tb, &Readiness::Ready, spend(5, 0), now());
        assert!(events.is_empty() && s.period_start.is_none() && s.spent_usd.is_none());
        assert_eq!(s.conditions.len(), 1);
    }
}
