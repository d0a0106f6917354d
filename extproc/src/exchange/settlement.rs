//! Settlement, decided: what a finished or refused call is charged and the
//! ledger record it leaves. Pure — the exchange hands the result to the store.

use std::time::Instant;

use jiff::Timestamp;
use tally_config::ledger::{LedgerRecord, Outcome};
use tally_config::money::Nanos;
use tally_config::pricing::Usage;
use tally_config::tariff::{self, Units};
use tally_store::Settlement;

use crate::policy::Plan;

use super::admission::PriceInfo;
use super::call::Call;

pub const NOTE_NO_BODY: &str = "request body not seen: admitted without a reservation";
pub const NOTE_NO_USAGE: &str = "no final usage arrived before the exchange ended: charged the worst-case reservation";

/// What a finished call is charged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub usage: Usage,
    pub units: Units,
    pub cost: Nanos,
    pub note: Option<String>,
}

/// The charge of a call that ended with `outcome`. An upstream error with no
/// usage costs nothing; a call cut before its final usage arrived is charged
/// its whole worst-case reservation (a stream's start, e.g. Anthropic's
/// `message_start` with `output_tokens: 1`, is not its cost); non-inference
/// calls are free.
pub fn charge(call: &Call, outcome: Outcome) -> Charge {
    let usage = match outcome {
        Outcome::UpstreamError if call.stream().is_none_or(|s| !s.usage.any()) => Usage::default(),
        _ => call.observed_usage(),
    };
    // Units are billed for what a successful call ordered.
    let units = if (200..300).contains(&call.status) {
        call.ordered_units()
    } else {
        Units::default()
    };
    let tier = call.facts.service_tier.as_deref();
    let mut cost = call
        .price
        .as_ref()
        .map_or(Nanos::ZERO, |p| tariff::cost(&p.entry, tier, &usage, &units));
    let mut note = call.note.clone();
    let tokens_priced = call.price.as_ref().is_none_or(PriceInfo::prices_tokens);
    if outcome == Outcome::Incomplete && tokens_priced && !final_usage_seen(call) {
        cost = call.worst_case;
        note = Some(NOTE_NO_USAGE.into());
    }
    if !call.facts.operation.is_metered() {
        cost = Nanos::ZERO;
    }
    Charge {
        usage,
        units,
        cost,
        note,
    }
}

/// Whether the call's real cost arrived: a stream's final usage, or the
/// usage of headers or a JSON body (always final).
fn final_usage_seen(call: &Call) -> bool {
    call.stream().map_or(call.usage.final_seen(), |s| s.usage.final_seen())
}

/// The settlement of a finished call: its charge against every counter of `plan`.
pub fn finished(
    call: &Call,
    plan: &Plan,
    outcome: Outcome,
    charge: &Charge,
    time: Timestamp,
    started: Instant,
) -> Settlement {
    let mut record = base_record(call, time, started, outcome, charge.note.clone());
    let u = &charge.usage;
    record.model = call.price.as_ref().map(|p| p.model.clone()).unwrap_or_default();
    record.input_tokens = u.input;
    record.output_tokens = u.output;
    record.cache_read_tokens = u.cache_read;
    record.cache_write5m_tokens = u.cache_write_5m;
    record.cache_write1h_tokens = u.cache_write_1h;
    record.cost_nanos = charge.cost.0;
    record.cost_usd = charge.cost.to_string();
    record.units = (!charge.units.is_zero()).then_some(charge.units);
    record.price_source = call.price.as_ref().map(|p| p.entry.source.clone()).unwrap_or_default();
    record.unpriced = call.price.is_none() && call.facts.operation.is_metered();
    record.over_budget = call.over.clone();
    Settlement {
        team: plan.team.clone(),
        charge_id: call.facts.charge_id.clone(),
        cost: charge.cost,
        counters: plan.budgets.iter().map(|b| b.key.clone()).collect(),
        count_request: true,
        team_limit: plan.team_limit(),
        record,
    }
}

/// The headers a finished call's response carries: its cost, and what remains of its tightest
/// budget given each counter's `used` after it (when known).
pub fn cost_headers(cost: Nanos, used: Option<&[Nanos]>, plan: &Plan) -> Vec<(String, String)> {
    let mut headers = vec![("x-tally-cost-usd".to_string(), cost.to_string())];
    if let Some((remaining, scope)) = used.and_then(|u| plan.tightest(u)) {
        headers.push(("x-tally-budget-remaining-usd".to_string(), remaining.to_string()));
        headers.push(("x-tally-budget-scope".to_string(), scope.to_string()));
    }
    headers
}

/// The record of a refused call: zero cost, not counted as a request. A budget refusal was
/// already counted (`blocked`) by the reservation that refused it; an allowlist or identity
/// denial is counted on the team counter (`denied`) by this settlement.
pub fn refused(
    call: &Call,
    plan: &Plan,
    outcome: Outcome,
    message: &str,
    time: Timestamp,
    started: Instant,
) -> Settlement {
    let mut record = base_record(call, time, started, outcome, Some(message.to_string()));
    record.status = if outcome == Outcome::Denied { 403 } else { 400 };
    Settlement {
        team: plan.team.clone(),
        charge_id: format!("{}/{}", call.facts.charge_id, outcome.as_str()),
        cost: Nanos::ZERO,
        counters: match outcome {
            Outcome::Denied => plan.budgets.iter().take(1).map(|b| b.key.clone()).collect(),
            _ => vec![],
        },
        count_request: false,
        team_limit: None,
        record,
    }
}

/// The ledger record of this call with zero usage and cost; callers fill in the rest.
fn base_record(call: &Call, time: Timestamp, started: Instant, outcome: Outcome, note: Option<String>) -> LedgerRecord {
    let f = &call.facts;
    LedgerRecord {
        request_id: f.request_id.clone(),
        charge_id: f.charge_id.clone(),
        time: time.to_string(),
        operation: f.operation.as_str().to_string(),
        model_id: f.model_id.clone(),
        model: String::new(),
        region: f.region.clone(),
        team: f.who.team.clone(),
        tenant: f.who.tenant.clone(),
        workflow: f.who.workflow.clone(),
        claimed_team: f.who.claimed_team.clone(),
        principal: f.principals.first().cloned(),
        client: f.client.clone(),
        input_tokens: 0,
        output_tokens: 0,
        cache_read_tokens: 0,
        cache_write5m_tokens: 0,
        cache_write1h_tokens: 0,
        units: None,
        latency_ms: started.elapsed().as_millis() as u64,
        status: call.status,
        outcome,
        cost_nanos: 0,
        cost_usd: Nanos::ZERO.to_string(),
        team_budget_remaining_nanos: None,
        price_source: String::new(),
        unpriced: false,
        over_budget: vec![],
        service_tier: f.service_tier.clone(),
        note,
    }
}
