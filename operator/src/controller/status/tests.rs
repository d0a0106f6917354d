//! The status decisions against hand-made specs, counters and clocks.

use super::*;
use tally_api::crd::condition::find_condition;
use tally_api::crd::{Budget, BudgetPeriod, Enforcement, TeamBudgetSpec};

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

/// What the running config enforces for `tb` when it compiles as written.
fn in_force(tb: &TeamBudget) -> Enforced {
    let compiled = tally_api::compiler::compile_lenient(std::slice::from_ref(tb), &[]);
    Enforced::of(&compiled, &compiled.config, tb)
}

fn spend(spent: i64, reserved: i64) -> Reading {
    Reading::Counters(Counters {
        spent: Nanos(spent),
        reserved: Nanos(reserved),
        requests: 7,
        blocked: 1,
        denied: 2,
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
    let (s, events) = team_status(&tb, &in_force(&tb), spend(40 * USD, 2 * USD + USD / 2), now());
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
            limit_usd: Some("100.00".into()),
            thresholds: vec![],
            exhausted: false,
            projected: false
        })
    );
    assert_eq!(
        s.refusals,
        Some(tally_api::crd::team_budget::Refusals {
            budget: 1,
            allowlist: 2
        })
    );
}

#[test]
fn each_threshold_fires_once_per_period_across_restarts() {
    let mut tb = team("100", vec![50, 80, 100]);
    // Jump straight to 85 %: both 50 and 80 are announced, in order (and, at this rate, the
    // projected overrun: `a_projected_overrun_is_announced_once_before_the_money_runs_out`).
    let (s, events) = team_status(&tb, &in_force(&tb), spend(85 * USD, 0), now());
    let events = thresholds_only(events);
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
    let (s, events) = team_status(&tb, &in_force(&tb), spend(85 * USD, 0), now());
    assert!(events.is_empty());
    // Reservations released below 80 % and back up again: still nothing new.
    tb.status = Some(s);
    let (s, _) = team_status(&tb, &in_force(&tb), spend(70 * USD, 0), now());
    tb.status = Some(s);
    let (s, events) = team_status(&tb, &in_force(&tb), spend(81 * USD, 0), now());
    assert!(events.is_empty());
    // Exhaustion: the 100 % threshold and one BudgetExhausted event.
    tb.status = Some(s);
    let (s, events) = team_status(&tb, &in_force(&tb), spend(99 * USD, USD), now());
    let reasons: Vec<_> = events.iter().map(|e| (e.reason.as_str(), e.warning)).collect();
    assert_eq!(reasons, [("ThresholdCrossed", true), ("BudgetExhausted", true)]);
    assert_eq!(cond(&s, types::BUDGET_EXCEEDED), ConditionStatus::True);
    assert_eq!(s.remaining_usd.as_deref(), Some("0.00"));
    tb.status = Some(s);
    let (s, events) = team_status(&tb, &in_force(&tb), spend(120 * USD, 0), now());
    assert!(events.is_empty());
    assert_eq!(s.remaining_usd.as_deref(), Some("-20.00"));
    // Next month: counters start from zero and alerts may fire again.
    tb.status = Some(s);
    let december: Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
    let (s, events) = team_status(&tb, &in_force(&tb), spend(60 * USD, 0), december);
    assert_eq!(thresholds_only(events).len(), 1);
    assert_eq!(
        s.alerts.unwrap(),
        AlertsRaised {
            period: "2026-12".into(),
            limit_usd: Some("100.00".into()),
            thresholds: vec![50],
            exhausted: false,
            projected: true
        }
    );
}

fn thresholds_only(events: Vec<EventToEmit>) -> Vec<EventToEmit> {
    events.into_iter().filter(|e| e.reason == "ThresholdCrossed").collect()
}

#[test]
fn a_projected_overrun_is_announced_once_before_the_money_runs_out() {
    let mut tb = team("100", vec![]);
    // 611 of 720 hours gone: 80.00 committed projects to 94.27, within the limit.
    let (s, events) = team_status(&tb, &in_force(&tb), spend(80 * USD, 0), now());
    assert!(events.is_empty(), "{events:?}");
    assert!(!s.alerts.as_ref().unwrap().projected);
    // 85.00 projects to 100.16: one warning naming the projection, while 15.00 remain.
    tb.status = Some(s);
    let (s, events) = team_status(&tb, &in_force(&tb), spend(85 * USD, 0), now());
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].reason.as_str(), events[0].warning),
        ("ProjectedOverrun", true)
    );
    assert!(
        events[0].note.contains("projected to spend 100.16 USD"),
        "{}",
        events[0].note
    );
    assert_eq!(s.remaining_usd.as_deref(), Some("15.00"));
    // Once per period and limit, across restarts.
    tb.status = Some(s);
    let (s, events) = team_status(&tb, &in_force(&tb), spend(90 * USD, 0), now());
    assert!(events.is_empty(), "{events:?}");
    // A raised limit re-arms it.
    let mut raised = team("120", vec![]);
    raised.status = Some(s);
    let (_, events) = team_status(&raised, &in_force(&raised), spend(119 * USD, 0), now());
    assert_eq!(
        events.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(),
        ["ProjectedOverrun"]
    );
}

#[test]
fn thresholds_are_exact_at_the_boundary() {
    let tb = team("0.000000003", vec![33, 34]);
    // 1 of 3 nano-USD is 33.33 %: reaches 33, not 34.
    let (s, events) = team_status(&tb, &in_force(&tb), spend(1, 0), now());
    assert_eq!(events.len(), 1);
    assert_eq!(s.alerts.unwrap().thresholds, [33]);
}

#[test]
fn unavailable_store_keeps_the_last_known_figures() {
    let mut tb = team("100", vec![50]);
    let (s, _) = team_status(&tb, &in_force(&tb), spend(10 * USD, 0), now());
    tb.status = Some(s.clone());
    let (kept, events) = team_status(&tb, &in_force(&tb), Reading::Unavailable, now());
    assert!(events.is_empty());
    assert_eq!(kept, s);
    let (none, _) = team_status(&tb, &in_force(&tb), Reading::NoStore, now());
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
    let enforced = Enforced {
        readiness: bad,
        ..in_force(&tb)
    };
    let (s, _) = team_status(&tb, &enforced, spend(0, 0), now());
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
    let (s, _) = team_status(&tb, &in_force(&tb), spend(1, 0), now());
    assert!(status_needs_patch(None, &s));
    tb.status = Some(s);
    // A later reconcile with the same data keeps the transition times: no patch.
    let later: Timestamp = "2026-11-26T10:05:00Z".parse().unwrap();
    let (again, _) = team_status(&tb, &in_force(&tb), spend(1, 0), later);
    assert!(!status_needs_patch(tb.status.as_ref(), &again));
}

#[test]
fn no_budget_means_no_period_and_only_ready() {
    let mut tb = team("100", vec![]);
    tb.spec.budget = None;
    let (s, events) = team_status(&tb, &in_force(&tb), spend(5, 0), now());
    assert!(events.is_empty() && s.period_start.is_none() && s.spent_usd.is_none());
    assert_eq!(s.conditions.len(), 1);
}

#[test]
fn status_describes_the_enforced_limit_while_a_newer_spec_is_rejected() {
    // In force: the last good spec, 5.00 USD. Written: 1.00 USD, rejected by the compiler.
    let enforced = Enforced {
        readiness: Readiness::Invalid {
            message: "spec.workflows[0].limitUSD: 50 is above the team limit 1".into(),
            kept_last_good: true,
        },
        ..in_force(&team("5", vec![50, 80, 100]))
    };
    let tb = team("1", vec![50, 80, 100]);
    let (s, events) = team_status(&tb, &enforced, spend(USD / 2, 9 * USD / 100), now());
    assert_eq!(s.limit_usd.as_deref(), Some("5.00"));
    assert_eq!(s.remaining_usd.as_deref(), Some("4.41"));
    assert_eq!(s.utilization.as_deref(), Some("11.8"));
    assert_eq!(s.enforcement.as_deref(), Some("Block"));
    assert_eq!(cond(&s, types::THRESHOLD_CROSSED), ConditionStatus::False);
    assert_eq!(cond(&s, types::READY), ConditionStatus::False);
    assert_eq!(
        s.config_generation.as_deref(),
        Some(enforced.config_generation.as_str())
    );
    let reasons: Vec<_> = events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, ["InvalidSpec"], "no threshold of the rejected limit fires");
}

#[test]
fn a_new_limit_rearms_the_alerts() {
    let mut tb = team("100", vec![50]);
    let (s, events) = team_status(&tb, &in_force(&tb), spend(60 * USD, 0), now());
    assert_eq!(events.len(), 1);
    tb.status = Some(s);
    tb.spec.budget.as_mut().unwrap().limit_usd = "200".into();
    let (s, events) = team_status(&tb, &in_force(&tb), spend(60 * USD, 0), now());
    assert!(events.is_empty(), "30 % of the new limit");
    tb.status = Some(s);
    let (s, events) = team_status(&tb, &in_force(&tb), spend(110 * USD, 0), now());
    assert_eq!(events.len(), 1, "50 % of the new limit is news");
    assert!(
        events[0].note.contains("50% of its monthly budget of 200.00 USD"),
        "{}",
        events[0].note
    );
    let alerts = s.alerts.unwrap();
    assert_eq!(
        (alerts.limit_usd.as_deref(), alerts.thresholds),
        (Some("200.00"), vec![50])
    );
}

#[test]
fn an_object_not_in_the_running_config_shows_no_budget() {
    let tb = team("100", vec![50]);
    let enforced = Enforced {
        readiness: Readiness::Invalid {
            message: "spec.budget.timezone: unknown".into(),
            kept_last_good: false,
        },
        team: None,
        config_generation: "abc".into(),
    };
    let (s, events) = team_status(&tb, &enforced, spend(60 * USD, 0), now());
    assert_eq!(
        (
            s.limit_usd,
            s.spent_usd,
            s.remaining_usd,
            s.utilization,
            s.period_start,
            s.config_generation
        ),
        (None, None, None, None, None, None)
    );
    assert_eq!(s.conditions.len(), 1);
    assert_eq!(events.len(), 1, "only InvalidSpec");
}

#[test]
fn the_forecast_extrapolates_the_rate_so_far_in_whole_hours() {
    let tb = team("100", vec![]);
    // 611 whole hours of the 720-hour Berlin November: 42.50 × 720 / 611 = 50.0818…
    let (s, _) = team_status(&tb, &in_force(&tb), spend(40 * USD, 2 * USD + USD / 2), now());
    assert_eq!(s.forecast_usd.as_deref(), Some("50.08"));
    // Minutes later, same counters: the same figure, so no patch.
    let later: Timestamp = "2026-11-26T10:59:00Z".parse().unwrap();
    let (again, _) = team_status(&tb, &in_force(&tb), spend(40 * USD, 2 * USD + USD / 2), later);
    assert_eq!(again.forecast_usd, s.forecast_usd);
    // In the period's first hour the hour counts whole: 1.00 × 720 = 720.00, not a division by ~0.
    let start: Timestamp = "2026-10-31T23:05:00Z".parse().unwrap();
    let (early, _) = team_status(&tb, &in_force(&tb), spend(USD, 0), start);
    assert_eq!(early.forecast_usd.as_deref(), Some("720.00"));
    // 1.00 of 100 in the first hour: the limit falls 100 hours into the period.
    assert_eq!(early.exhausts_at.as_deref(), Some("2026-11-05T03:00:00Z"));
    assert_eq!(s.exhausts_at, None, "50.08 by the end: the limit holds");
}
