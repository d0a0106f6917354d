//! Admission, decided: what a call may cost at worst, what to reserve, and what
//! the store's answer means for the call. Pure — the exchange does the I/O.

use jiff::Timestamp;
use tally_config::compiled::Prices;
use tally_config::money::Nanos;
use tally_store::{ReserveOutcome, ReserveRequest, StoreError};

use crate::policy::{self, Plan, Policy};

use super::facts::CallFacts;
use super::options::{FailMode, Options};

/// Resolved price of the call's model, copied out so a config swap mid-call changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceInfo {
    pub model: String,
    pub prices: Prices,
    pub source: String,
    pub max_output_tokens: u32,
}

pub fn price_info(policy: &Policy, model_id: &str, region: &str) -> Option<PriceInfo> {
    policy.price(model_id, region).map(|p| PriceInfo {
        model: p.model.to_string(),
        prices: p.entry.prices,
        source: p.entry.source.clone(),
        max_output_tokens: p.entry.max_output_tokens,
    })
}

/// The worst case of a call: every input byte a token at the dearest input
/// price plus the output bound. Non-inference and unpriced calls cost nothing.
pub fn worst_case(facts: &CallFacts, price: Option<&PriceInfo>, input_bytes: u64, max_output: Option<u64>) -> Nanos {
    match price {
        Some(p) if facts.operation.is_inference() => {
            policy::worst_case(&p.prices, p.max_output_tokens, input_bytes, max_output)
        }
        _ => Nanos::ZERO,
    }
}

/// The reservation of `amount` against every budget of `plan`.
pub fn reserve_request(
    facts: &CallFacts,
    plan: &Plan,
    amount: Nanos,
    opts: &Options,
    now: Timestamp,
    tentative: bool,
) -> ReserveRequest {
    ReserveRequest {
        team: plan.team.clone(),
        charge_id: facts.charge_id.clone(),
        amount,
        budgets: plan.budgets.clone(),
        now_ms: now.as_millisecond(),
        ttl: opts.reservation_ttl,
        tentative,
    }
}

/// What the store's answer to a reservation means for the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let it through; `over` lists `Warn` budgets it goes beyond, `note` says
    /// why it holds no reservation when it holds none.
    Admit {
        over: Vec<String>,
        note: Option<&'static str>,
    },
    /// A tentative reservation from the headers did not fit: nothing is held,
    /// read the body for the tighter bound.
    ReadBody,
    /// An enforcing budget cannot cover the worst case.
    Refuse {
        label: String,
        limit: Nanos,
        remaining: Nanos,
    },
    /// The store is unreachable and the fail mode is closed.
    Unavailable,
}

pub const NOTE_DUPLICATE: &str = "duplicate charge id twice; not reserved";
pub const NOTE_FAIL_OPEN: &str = "store unavailable at admission (fail-open): not reserved";

pub fn decide(outcome: &Result<ReserveOutcome, StoreError>, tentative: bool, fail_mode: FailMode) -> Decision {
    match outcome {
        Ok(ReserveOutcome::Reserved { over, .. }) => Decision::Admit {
            over: over.clone(),
            note: None,
        },
        Ok(ReserveOutcome::Refused { .. }) if tentative => Decision::ReadBody,
        Ok(ReserveOutcome::Refused {
            label,
            limit,
            remaining,
        }) => Decision::Refuse {
            label: label.clone(),
            limit: *limit,
            remaining: *remaining,
        },
        Ok(ReserveOutcome::Duplicate) => Decision::Admit {
            over: vec![],
            note: Some(NOTE_DUPLICATE),
        },
        Err(_) if fail_mode == FailMode::Open => Decision::Admit {
            over: vec![],
            note: Some(NOTE_FAIL_OPEN),
        },
        Err(_) => Decision::Unavailable,
    }
}

/// The `result` label of `tally_reservations_total`.
pub fn result_label(outcome: &Result<ReserveOutcome, StoreError>) -> &'static str {
    match outcome {
        Ok(ReserveOutcome::Reserved { .. }) => "held",
        Ok(ReserveOutcome::Refused { .. }) => "refused",
        Ok(ReserveOutcome::Duplicate) => "duplicate",
        Err(_) => "error",
    }
}

/// A budget refusal as the client sees it: the message (naming the budget, the
/// worst case, what remains and when it resets) and the `x-tally-budget*` headers.
pub fn refusal(
    label: &str,
    limit: Nanos,
    remaining: Nanos,
    amount: Nanos,
    resets: &str,
) -> (String, Vec<(String, String)>) {
    let remaining = remaining.max(Nanos::ZERO);
    let message = format!(
        "Tally budget exhausted for {label}: this call may cost up to {amount} USD but {remaining} USD of {limit} USD remain; the budget resets at {resets}"
    );
    let headers = vec![
        ("x-tally-budget".to_string(), label.to_string()),
        ("x-tally-budget-remaining-usd".to_string(), remaining.to_string()),
        ("x-tally-budget-resets-at".to_string(), resets.to_string()),
    ];
    (message, headers)
}

pub const UNAVAILABLE_MESSAGE: &str =
    "Tally cannot reach its budget store and is configured to fail closed; retry later";

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Result<ReserveOutcome, StoreError> {
        Ok(ReserveOutcome::Refused {
            label: "team \"search\"".into(),
            limit: Nanos(5_000_000_000),
            remaining: Nanos(-3),
        })
    }

    #[test]
    fn a_refused_tentative_reservation_reads_the_body_instead() {
        assert_eq!(decide(&refused(), true, FailMode::Closed), Decision::ReadBody);
        assert!(matches!(
            decide(&refused(), false, FailMode::Open),
            Decision::Refuse { .. }
        ));
    }

    #[test]
    fn a_store_outage_follows_the_fail_mode() {
        let down = Err(StoreError::Timeout { op: "reserve" });
        assert_eq!(
            decide(&down, false, FailMode::Open),
            Decision::Admit {
                over: vec![],
                note: Some(NOTE_FAIL_OPEN)
            }
        );
        assert_eq!(decide(&down, false, FailMode::Closed), Decision::Unavailable);
        assert_eq!(result_label(&down), "error");
    }

    #[test]
    fn warn_budgets_gone_over_are_kept_and_duplicates_noted() {
        let held = Ok(ReserveOutcome::Reserved {
            team_used: Nanos(1),
            over: vec!["workflow \"search/rag\"".into()],
        });
        assert_eq!(
            decide(&held, false, FailMode::Closed),
            Decision::Admit {
                over: vec!["workflow \"search/rag\"".into()],
                note: None
            }
        );
        let dup = Ok(ReserveOutcome::Duplicate);
        assert_eq!(
            decide(&dup, false, FailMode::Closed),
            Decision::Admit {
                over: vec![],
                note: Some(NOTE_DUPLICATE)
            }
        );
    }

    #[test]
    fn a_refusal_names_the_budget_the_bound_and_the_reset_and_never_a_negative_remainder() {
        let (message, headers) = refusal(
            "team \"search\"",
            Nanos(5_000_000_000),
            Nanos(-3),
            Nanos(12_500_000),
            "2026-12-01T00:00:00Z",
        );
        assert_eq!(
            message,
            "Tally budget exhausted for team \"search\": this call may cost up to 0.0125 USD but 0.00 USD of 5.00 USD remain; the budget resets at 2026-12-01T00:00:00Z"
        );
        assert_eq!(
            headers[1],
            ("x-tally-budget-remaining-usd".to_string(), "0.00".to_string())
        );
    }
}
