//! Admission, decided: what a call may cost at worst, what to reserve, and what
//! the store's answer means for the call. Pure — the exchange does the I/O.

use std::sync::Arc;

use jiff::Timestamp;
use tally_config::compiled::{DEFAULT_MAX_INPUT_TOKENS, PriceEntry, Prices};
use tally_config::money::Nanos;
use tally_config::tariff::{self, Bounds, Units};
use tally_store::{ReserveOutcome, ReserveRequest, StoreError};

use crate::bedrock::Operation;
use crate::bounds::{GUARDRAIL_POLICIES, MAX_VIDEO_SECONDS, RequestFacts};
use crate::policy::{Plan, Policy};

use super::facts::CallFacts;
use super::options::{FailMode, Options};

/// Resolved price of the call's model, copied out so a config swap mid-call changes nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceInfo {
    /// The model id the entry matched (after alias and geo fallback).
    pub model: String,
    pub entry: Arc<PriceEntry>,
}

impl PriceInfo {
    /// Whether the entry prices tokens (image, video and guardrail entries price units only).
    pub fn prices_tokens(&self) -> bool {
        self.entry.prices != Prices::default()
    }
}

pub fn price_info(policy: &Policy, model_id: &str, region: &str) -> Option<PriceInfo> {
    policy.price(model_id, region).map(|p| PriceInfo {
        model: p.model.to_string(),
        entry: p.entry.clone(),
    })
}

/// The largest output bound: 2³² tokens, orders of magnitude above any model's
/// real limit, and at even 1,000 USD per 1M tokens only ~4.3 million USD.
pub const MAX_OUTPUT_BOUND: u64 = 1 << 32;

/// What bounds the call's cost, from its facts and what its body said (nothing
/// but `input_bytes` when the body was not read or is not JSON).
///
/// Output: the request's own cap whenever it gives one — even above the
/// catalog's `maxOutputTokens`, since a catalog can be stale and Bedrock
/// enforces the model's real limit, not ours — else the catalog's; absurd caps
/// stop at [`MAX_OUTPUT_BOUND`]. Input: the body's content bound plus the
/// context window when it references media it does not carry; without one,
/// every byte a token at the dearest input price.
pub fn bounds(facts: &CallFacts, entry: &PriceEntry, body: &RequestFacts, input_bytes: u64) -> Bounds {
    let op = facts.operation;
    let metered_units = |price: Nanos, n: u64| if price.is_zero() { 0 } else { n };
    let units = Units {
        requests: 1,
        images: metered_units(entry.units.image, body.images.unwrap_or(1)),
        seconds: metered_units(entry.units.second, body.video_seconds.unwrap_or(MAX_VIDEO_SECONDS)),
        text_units: match (op, body.input) {
            (Operation::ApplyGuardrail, Some(b)) => b.text_units.saturating_mul(GUARDRAIL_POLICIES),
            (Operation::ApplyGuardrail, None) => input_bytes.saturating_mul(GUARDRAIL_POLICIES),
            _ => 0,
        },
    };
    if !op.is_inference() {
        return Bounds {
            units,
            ..Bounds::default()
        };
    }
    let context = u64::from(entry.max_input_tokens.unwrap_or(DEFAULT_MAX_INPUT_TOKENS));
    let (input_tokens, cache_write) = match body.input {
        Some(b) if b.external => (b.tokens.saturating_add(context), b.cache_write),
        Some(b) => (b.tokens, b.cache_write),
        None => (input_bytes, true),
    };
    let output_tokens = body
        .max_output_tokens
        .unwrap_or(u64::from(entry.max_output_tokens))
        .min(MAX_OUTPUT_BOUND);
    Bounds {
        input_tokens,
        cache_write,
        output_tokens,
        units,
    }
}

/// The worst case of a call within `bounds`. Unmetered and unpriced calls cost nothing.
pub fn worst_case(facts: &CallFacts, price: Option<&PriceInfo>, bounds: &Bounds) -> Nanos {
    match price {
        Some(p) if facts.operation.is_metered() => tariff::worst_case(&p.entry, facts.service_tier.as_deref(), bounds),
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
        "Tally: insufficient budget for this call's worst case on {label}: it may cost up to {amount} USD but {remaining} USD of {limit} USD remain; the budget resets at {resets}"
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
            "Tally: insufficient budget for this call's worst case on team \"search\": it may cost up to 0.0125 USD but 0.00 USD of 5.00 USD remain; the budget resets at 2026-12-01T00:00:00Z"
        );
        assert_eq!(
            headers[1],
            ("x-tally-budget-remaining-usd".to_string(), "0.00".to_string())
        );
    }

    mod bounds {
        use tally_config::compiled::{CompiledConfig, PriceEntry, UnitPrices};
        use tally_config::money::NanosPerMillion;

        use super::super::*;
        use crate::bounds::InputBound;
        use crate::exchange::Headers;

        fn facts(method: &str, path: &str) -> CallFacts {
            let h = Headers(vec![(":method".into(), method.into()), (":path".into(), path.into())]);
            let policy = Policy::new(CompiledConfig::empty());
            CallFacts::from_headers(&h, &Options::default(), &policy, vec![]).expect("a Bedrock call")
        }

        /// Nova Pro: 0.8 / 3.2 per 1M, 10,000 output tokens, a 300k context window.
        fn nova_pro() -> PriceEntry {
            PriceEntry {
                pattern: "amazon.nova-pro-v1:0".into(),
                prices: Prices {
                    input: NanosPerMillion(800_000_000),
                    output: NanosPerMillion(3_200_000_000),
                    ..Prices::default()
                },
                max_output_tokens: 10_000,
                max_input_tokens: Some(300_000),
                ..PriceEntry::default()
            }
        }

        fn converse() -> CallFacts {
            facts("POST", "/model/amazon.nova-pro-v1:0/converse")
        }

        fn body(max_output: Option<u64>, input: InputBound) -> RequestFacts {
            RequestFacts {
                max_output_tokens: max_output,
                input: Some(input),
                ..RequestFacts::default()
            }
        }

        fn measured(tokens: u64) -> InputBound {
            InputBound {
                tokens,
                ..InputBound::default()
            }
        }

        #[test]
        fn the_requests_own_output_cap_bounds_it_even_above_the_catalogs() {
            let (f, e) = (converse(), nova_pro());
            let wc = |b: &RequestFacts| {
                let p = PriceInfo {
                    model: "m".into(),
                    entry: Arc::new(e.clone()),
                };
                worst_case(&f, Some(&p), &bounds(&f, &e, b, 0))
            };
            // 1000 tokens × 0.8 $/1M + 500 × 3.2 $/1M
            assert_eq!(wc(&body(Some(500), measured(1000))), Nanos(800_000 + 1_600_000));
            // above the catalog's maxOutputTokens (10,000): the request's own cap, 1M × 3.2 $/1M
            assert_eq!(wc(&body(Some(1_000_000), measured(0))), Nanos(3_200_000_000));
            // an absurd cap stops at MAX_OUTPUT_BOUND: 2³² × 3.2 $/1M
            assert_eq!(wc(&body(Some(u64::MAX), measured(0))), Nanos(13_743_895_347_200));
            // asked for nothing: the catalog's maxOutputTokens
            assert_eq!(wc(&body(None, measured(0))), Nanos(32_000_000));
        }

        #[test]
        fn input_outside_the_body_is_bounded_by_the_context_window_and_no_body_by_its_bytes() {
            let (f, e) = (converse(), nova_pro());
            let external = InputBound {
                external: true,
                ..measured(100)
            };
            assert_eq!(bounds(&f, &e, &body(None, external), 0).input_tokens, 300_100);
            let unknown = bounds(&f, &e, &RequestFacts::default(), 4_096);
            assert_eq!((unknown.input_tokens, unknown.cache_write), (4_096, true));
            let none = PriceEntry {
                max_input_tokens: None,
                ..nova_pro()
            };
            assert_eq!(
                bounds(&f, &none, &body(None, external), 0).input_tokens,
                100 + u64::from(DEFAULT_MAX_INPUT_TOKENS)
            );
        }

        #[test]
        fn async_jobs_and_guardrails_are_bounded_by_what_they_order() {
            let reel = PriceEntry {
                pattern: "amazon.nova-reel-v1:1".into(),
                units: UnitPrices {
                    second: Nanos(80_000_000),
                    ..UnitPrices::default()
                },
                ..PriceEntry::default()
            };
            let job = facts("POST", "/async-invoke");
            let asked = RequestFacts {
                video_seconds: Some(12),
                ..RequestFacts::default()
            };
            let b = bounds(&job, &reel, &asked, 500);
            assert_eq!((b.units.seconds, b.input_tokens, b.output_tokens), (12, 0, 0));
            // a duration it does not state: the longest a job can ask for
            let b = bounds(&job, &reel, &RequestFacts::default(), 500);
            assert_eq!(b.units.seconds, MAX_VIDEO_SECONDS);
            let guardrail = facts("POST", "/guardrail/gr1/version/1/apply");
            let text = body(
                None,
                InputBound {
                    text_units: 3,
                    ..InputBound::default()
                },
            );
            let b = bounds(&guardrail, &reel, &text, 0);
            assert_eq!(b.units.text_units, 3 * GUARDRAIL_POLICIES);
        }
    }
}
