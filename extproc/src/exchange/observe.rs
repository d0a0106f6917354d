//! What an exchange reports to Prometheus and the log. Label values come from
//! the settled record, so metrics and ledger always agree — folded to the ids the
//! compiled config names ([`Policy::label_for_workflow`], [`Policy::label_for_model`]):
//! any other value is `other`, so clients cannot grow the registry without bound.
//! The log line keeps the ids as sent.

use tally_config::compiled::{Enforcement, UNKNOWN_TEAM};
use tally_config::ledger::Outcome;
use tally_config::money::Nanos;
use tally_config::pricing::Usage;
use tally_store::Settlement;

use crate::metrics::{
    CallLabels, DecisionLabels, Metrics, MissingLabels, ModelLabels, OpLabels, ReservationLabels, TeamLabels,
    TokenLabels,
};
use crate::policy::Policy;

/// One decision of `outcome` for `team` (`tally_decisions_total`).
pub fn decision(m: &Metrics, team: &str, outcome: &'static str) {
    m.decisions
        .get_or_create(&DecisionLabels {
            team: team.to_string(),
            outcome,
        })
        .inc();
}

pub fn reservation(m: &Metrics, tentative: bool, result: &'static str) {
    m.reservations
        .get_or_create(&ReservationLabels {
            bound: if tentative { "headers" } else { "body" },
            result,
        })
        .inc();
}

pub fn store_error(m: &Metrics, op: &'static str) {
    m.store_errors.get_or_create(&OpLabels { op }).inc();
}

/// An unpriced call: no catalog prices its model, so its label is `other`
/// unless the catalog names the id exactly (priced in another region).
pub fn unpriced(m: &Metrics, policy: &Policy, model: &str) {
    m.unpriced
        .get_or_create(&ModelLabels {
            model: policy.label_for_model(model).to_string(),
        })
        .inc();
}

/// A settled call: its decision, spend, tokens, the team's remaining budget, and the log line.
pub fn settled(m: &Metrics, policy: &Policy, s: &Settlement, usage: &Usage, remaining: Option<Nanos>) {
    let r = &s.record;
    let model = if r.model.is_empty() { &r.model_id } else { &r.model };
    let workflow = r.workflow.clone().unwrap_or_else(|| "none".into());
    decision(m, &r.team, r.outcome.as_str());
    let call = CallLabels {
        team: r.team.clone(),
        tenant: policy.label_for_tenant(&r.team, r.tenant.as_deref()).to_string(),
        workflow: policy.label_for_workflow(&r.team, r.workflow.as_deref()).to_string(),
        model: policy.label_for_model(model).to_string(),
    };
    m.spend.get_or_create(&call).inc_by(s.cost.0.max(0) as u64);
    attribution(m, &r.team, r.tenant.as_deref(), r.workflow.as_deref(), s.cost);
    for (class, n) in [
        ("input", usage.input),
        ("output", usage.output),
        ("cache_read", usage.cache_read),
        ("cache_write_5m", usage.cache_write_5m),
        ("cache_write_1h", usage.cache_write_1h),
    ] {
        if n > 0 {
            let labels = TokenLabels {
                team: call.team.clone(),
                tenant: call.tenant.clone(),
                workflow: call.workflow.clone(),
                model: call.model.clone(),
                class,
            };
            m.tokens.get_or_create(&labels).inc_by(n);
        }
    }
    if let Some(rem) = remaining {
        m.budget_remaining
            .get_or_create(&TeamLabels { team: r.team.clone() })
            .set(rem.0);
    }
    let enforcement = policy
        .team(&r.team)
        .and_then(|t| t.budget.as_ref())
        .map(|b| b.enforcement);
    if enforcement == Some(Enforcement::Warn) && !r.over_budget.is_empty() {
        tracing::warn!(request_id = %r.request_id, team = %r.team, over = ?r.over_budget, "over a Warn budget");
    }
    tracing::info!(
        request_id = %r.request_id,
        team = %r.team,
        workflow = %workflow,
        model = %model,
        outcome = r.outcome.as_str(),
        cost_usd = %r.cost_usd,
        "settled"
    );
}

/// Attribution coverage (`tally_unattributed_calls_total`, `tally_unattributed_spend_nanos_total`):
/// what a settled call arrived without, so a rollout can be tracked to 100 %.
pub fn attribution(m: &Metrics, team: &str, tenant: Option<&str>, workflow: Option<&str>, cost: Nanos) {
    let missing = [
        ("team", team == UNKNOWN_TEAM),
        ("tenant", tenant.is_none()),
        ("workflow", workflow.is_none()),
    ];
    for (missing, _) in missing.into_iter().filter(|(_, absent)| *absent) {
        let labels = MissingLabels { missing };
        m.unattributed_calls.get_or_create(&labels).inc();
        m.unattributed_spend.get_or_create(&labels).inc_by(cost.0.max(0) as u64);
    }
}

/// A refused call (allowlist or budget).
pub fn refused(m: &Metrics, team: &str, outcome: Outcome) {
    decision(m, team, outcome.as_str());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_calls_and_spend_by_missing_attribution() {
        let m = Metrics::new();
        attribution(&m, "search", Some("acme"), Some("rag"), Nanos(500));
        attribution(&m, "search", None, Some("rag"), Nanos(300));
        attribution(&m, UNKNOWN_TEAM, None, None, Nanos(100));
        let text = m.encode();
        for line in [
            r#"tally_unattributed_calls_total{missing="team"} 1"#,
            r#"tally_unattributed_calls_total{missing="tenant"} 2"#,
            r#"tally_unattributed_calls_total{missing="workflow"} 1"#,
            r#"tally_unattributed_spend_nanos_total{missing="team"} 100"#,
            r#"tally_unattributed_spend_nanos_total{missing="tenant"} 400"#,
            r#"tally_unattributed_spend_nanos_total{missing="workflow"} 100"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
