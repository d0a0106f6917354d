//! One HTTP exchange as Envoy shows it to us, phase by phase.
//!
//! [`Exchange`] has one method per ext_proc phase. Each turns what Envoy sent
//! into plain data, asks the pure rooms what to do — [`facts`] (what the
//! request headers say), [`admission`] (worst case, reservation, what the
//! store's answer means), [`settlement`] (the charge and the ledger record) —
//! moves money through the store where it must, reports through [`observe`],
//! and answers with a [`Reply`], domain data that `server` converts to protobuf.
//!
//! Whatever Envoy's processing mode, an exchange does the most it can with what
//! it receives: without a request body it reserves the model's worst case from
//! `content-length`; without a response body it prices from the token-count
//! headers; a stream cut short is settled by [`Exchange::abandon`].

pub mod admission;
pub mod behind;
pub mod call;
pub mod facts;
pub mod hold;
pub mod lease;
pub mod observe;
pub mod options;
pub mod reply;
pub mod settlement;
pub mod shared;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;
use tally_config::ledger::Outcome;
use tally_config::money::Nanos;
use tally_store::ReserveRequest;

use crate::bedrock::Operation;
use crate::bounds::{self, RequestFacts};
use crate::eventstream::StreamUsage;
use crate::policy::{Plan, Policy};
use crate::usage;
use admission::Decision;
use call::{Call, Phase, ResponseBody, StreamFailure};
use facts::CallFacts;

pub use options::{FailMode, Options, RequestBody};
pub use reply::{BodyMode, Headers, Mode, Reply};
pub use shared::Shared;

/// What bounds the worst case at admission.
#[derive(Debug)]
enum Bound {
    /// The request headers alone (`content-length`, the model's output cap):
    /// a tentative reservation, which falls back to reading the body.
    Headers,
    /// What the request body said (nothing, when there is no body).
    Body(RequestFacts),
}

/// One request/response through Envoy.
pub struct Exchange {
    shared: Arc<Shared>,
    /// The config as it was when the call arrived: a reload mid-call changes nothing.
    policy: Arc<Policy>,
    started: Instant,
    time: Timestamp,
    call: Option<Call>,
    /// The charge and outcome once settled, for the response's metadata.
    settled: Option<(Nanos, Outcome)>,
    /// Keeps the call's reservation (or its claim on leases) until it settles.
    hold: lease::Held,
}

impl Exchange {
    pub fn new(shared: Arc<Shared>) -> Self {
        let policy = shared.policy.load_full();
        Exchange {
            shared,
            policy,
            started: Instant::now(),
            time: Timestamp::now(),
            call: None,
            settled: None,
            hold: lease::Held::Nothing,
        }
    }

    /// Request headers: recognise the call, attribute it, check identity and allowlists.
    pub async fn request_headers(&mut self, h: &Headers, end_of_stream: bool, peer_principals: Vec<String>) -> Reply {
        let remove = facts::internal_headers(h);
        let Some(facts) = CallFacts::from_headers(h, &self.shared.opts, &self.policy, peer_principals) else {
            return Reply::proceed(vec![], Some(Mode::SKIP_REST), vec![]).removing(remove);
        };
        let needs_body = facts.needs_body();
        let from_headers = self.shared.opts.request_body == RequestBody::WhenNeeded && facts.may_reserve_from_headers();
        self.call = Some(Call::new(facts));
        let reply = if let Some(denied) = self.authorize().await {
            denied
        } else if !needs_body || end_of_stream {
            self.admit(Bound::Body(RequestFacts::default()))
                .await
                .unwrap_or_else(Reply::pass)
        } else {
            let admitted = if from_headers {
                self.admit(Bound::Headers).await
            } else {
                None
            };
            admitted.unwrap_or_else(|| self.read_body())
        };
        reply.removing(remove)
    }

    /// Request body: with the whole body (or its end) in hand, reserve the worst case.
    pub async fn request_body(&mut self, body: &[u8], end_of_stream: bool) -> Reply {
        let Some(call) = self.call.as_mut() else {
            return Reply::pass();
        };
        call.push_request_body(body);
        if !call.is_last_body_chunk(end_of_stream) || call.phase != Phase::Requested {
            return Reply::pass();
        }
        self.admit_read_body().await
    }

    /// Request trailers: the request is complete, so a call still waiting for
    /// its body is admitted now on what arrived — nothing goes upstream unreserved.
    pub async fn request_trailers(&mut self) -> Reply {
        match &self.call {
            Some(call) if call.phase == Phase::Requested => self.admit_read_body().await,
            _ => Reply::pass(),
        }
    }

    /// Asks Envoy for the request body, buffered (one message, the whole body).
    fn read_body(&mut self) -> Reply {
        if let Some(call) = self.call.as_mut() {
            call.body_buffered = true;
        }
        Reply::proceed(vec![], Some(Mode::READ_REQUEST_BODY), self.attribution_metadata())
    }

    /// Admits on the request body read so far (all of it, at its end).
    async fn admit_read_body(&mut self) -> Reply {
        let Some(call) = self.call.as_mut() else {
            return Reply::pass();
        };
        let facts = call
            .take_request_body()
            .map(|b| bounds::request_facts(&b, &call.facts.model_id))
            .unwrap_or_default();
        self.admit(Bound::Body(facts)).await.unwrap_or_else(Reply::pass)
    }

    /// Response headers: the status decides; token-count headers may already price the call.
    pub async fn response_headers(&mut self, h: &Headers, end_of_stream: bool) -> Reply {
        let Some(call) = self.call.as_mut() else {
            return Reply::pass();
        };
        call.status = h.get(":status").and_then(|s| s.parse().ok()).unwrap_or(0);
        call.usage
            .observe(&usage::from_headers(h.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))));
        let mut set_headers = vec![("x-tally-request-id".to_string(), call.facts.request_id.clone())];
        if call.status >= 400 || call.status == 0 {
            set_headers.extend(self.finish(Outcome::UpstreamError).await);
            return Reply::proceed(set_headers, None, self.cost_metadata());
        }
        let operation = call.facts.operation;
        if operation.streams_response() && !end_of_stream {
            call.response = ResponseBody::Stream(Box::new(StreamUsage::new()));
            return Reply::proceed(set_headers, Some(Mode::STREAM_RESPONSE), vec![]);
        }
        let priced_by_headers = call.usage.complete() && !call.usage.cache_write_split_unknown();
        let usage_in_body = operation.is_inference() || operation == Operation::ApplyGuardrail;
        if !usage_in_body || priced_by_headers || end_of_stream {
            set_headers.extend(self.finish(Outcome::Ok).await);
            return Reply::proceed(set_headers, None, self.cost_metadata());
        }
        Reply::proceed(vec![], Some(Mode::BUFFER_RESPONSE), vec![])
    }

    /// Response body: decode streams as they pass; read JSON usage at the end.
    pub async fn response_body(&mut self, body: &[u8], end_of_stream: bool) -> Reply {
        let Some(call) = self.call.as_mut() else {
            return Reply::pass();
        };
        if call.phase == Phase::Finished {
            return Reply::pass();
        }
        if let ResponseBody::Stream(stream) = &mut call.response {
            stream.push(body);
            if !end_of_stream {
                return Reply::pass();
            }
            if stream.decoder().failed().is_some() {
                self.shared.metrics.stream_decode_errors.inc();
            }
            let outcome = match (&stream.exception, stream.usage.complete()) {
                (Some(_), _) => Outcome::UpstreamError,
                (None, true) => Outcome::Ok,
                (None, false) => Outcome::Incomplete,
            };
            self.finish(outcome).await;
            return Reply::proceed(vec![], None, self.cost_metadata());
        }
        call.push_json(body);
        if !end_of_stream {
            return Reply::pass();
        }
        if let ResponseBody::Json(json) = std::mem::take(&mut call.response) {
            call.usage.observe(&usage::from_json_bytes(&json));
            if call.facts.operation == Operation::ApplyGuardrail {
                call.text_units = usage::guardrail_units(&json);
            }
        }
        let priced_by_units = call.price.as_ref().is_some_and(|p| !p.prices_tokens());
        let outcome = if call.usage.complete() || priced_by_units {
            Outcome::Ok
        } else {
            Outcome::Incomplete
        };
        let mut set_headers = vec![("x-tally-request-id".to_string(), call.facts.request_id.clone())];
        set_headers.extend(self.finish(outcome).await);
        Reply::proceed(set_headers, None, self.cost_metadata())
    }

    /// The exchange ended (client gone, Envoy reset) before it finished: settle
    /// what we know. Rule for a cut stream: the usage seen so far if any usage
    /// event arrived, else the whole worst-case reservation.
    pub async fn abandon(&mut self) {
        if self.call.as_ref().is_some_and(|c| c.phase == Phase::Admitted) {
            self.finish(Outcome::Incomplete).await;
        }
    }

    /// The ext_proc stream failed (a message Envoy sent could not be read, a
    /// transport error): never a free pass. Closed: the call is refused, if it
    /// was not admitted yet. Open: it goes through but is charged its worst case
    /// and recorded (by [`Exchange::abandon`]). The answer, if any, is for Envoy.
    pub async fn stream_failed(&mut self, error: &str) -> Option<Reply> {
        let call = self.call.as_ref()?;
        let action = call::on_stream_error(call.phase, self.shared.opts.fail_mode);
        tracing::warn!(request_id = %call.facts.request_id, team = %call.facts.who.team, %error, ?action, "ext_proc stream failed");
        match action {
            StreamFailure::Refuse => {
                self.record_refusal(Outcome::Blocked, call::STREAM_ERROR_MESSAGE).await;
                Some(self.respond(
                    503,
                    "ServiceUnavailableException",
                    call::STREAM_ERROR_MESSAGE.into(),
                    vec![],
                ))
            }
            StreamFailure::ChargeWorstCase => {
                self.plan_reservation(&RequestFacts::default(), false);
                let call = self.call.as_mut().expect("a call");
                call.phase = Phase::Admitted;
                None
            }
            StreamFailure::Settle => None,
        }
    }

    fn attribution_metadata(&self) -> Vec<(&'static str, String)> {
        self.call
            .as_ref()
            .map(|c| c.facts.attribution_metadata())
            .unwrap_or_default()
    }

    fn cost_metadata(&self) -> Vec<(&'static str, String)> {
        let mut m = self.attribution_metadata();
        if let Some((cost, outcome)) = self.settled {
            m.push(("costUsd", cost.to_string()));
            m.push(("outcome", outcome.as_str().to_string()));
        }
        m
    }

    /// Identity and allowlist checks; a refusal is recorded and returned.
    async fn authorize(&mut self) -> Option<Reply> {
        let call = self.call.as_ref()?;
        let f = &call.facts;
        let principals: Vec<&str> = f.principals.iter().map(String::as_str).collect();
        // Model allowlists are about models: a guardrail is priced, never denied by them.
        let names_model = !f.model_id.is_empty() && f.operation != Operation::ApplyGuardrail;
        let model = names_model.then(|| {
            let aliased = self.policy.prices.alias(&f.model_id);
            crate::bedrock::pricing_model_id(aliased).to_string()
        });
        let denial = self.policy.authorize(&f.who, &principals, model.as_deref()).err()?;
        let message = denial.message();
        tracing::info!(request_id = %f.request_id, team = %f.who.team, %message, "denied");
        self.record_refusal(Outcome::Denied, &message).await;
        Some(self.respond(403, "AccessDeniedException", message, vec![]))
    }

    /// Checks policy and reserves the worst case against every budget of the call.
    /// `None`: a tentative reservation from the headers did not fit; nothing was
    /// held, and the body must be read.
    async fn admit(&mut self, bound: Bound) -> Option<Reply> {
        let decided = Instant::now();
        let reply = self.admit_inner(bound).await;
        self.shared
            .metrics
            .decision_seconds
            .observe(decided.elapsed().as_secs_f64());
        reply
    }

    async fn admit_inner(&mut self, bound: Bound) -> Option<Reply> {
        let (body, tentative) = match bound {
            Bound::Headers => (RequestFacts::default(), true),
            Bound::Body(facts) => (facts, false),
        };
        // After a reservation from the headers nothing else of the request is needed.
        let mode = tentative.then_some(Mode::HEADERS_ONLY);
        if let Some(denied) = self.take_body_facts(&body).await {
            return Some(denied);
        }
        let reserve = self.plan_reservation(&body, tentative);
        // Zero-cost calls (CountTokens, unpriced models) are never blocked by budgets.
        if reserve.amount == Nanos::ZERO {
            return Some(Reply::proceed(vec![], mode, self.attribution_metadata()));
        }
        let outcome = lease::reserve(&self.shared, self.call.as_ref(), &reserve, &mut self.hold).await;
        observe::reservation(&self.shared.metrics, tentative, admission::result_label(&outcome));
        if let Err(e) = &outcome {
            observe::store_error(&self.shared.metrics, "reserve");
            let request_id = self
                .call
                .as_ref()
                .map(|c| c.facts.request_id.clone())
                .unwrap_or_default();
            tracing::warn!(%request_id, error = %e, fail_mode = ?self.shared.opts.fail_mode, "store unavailable at admission");
        }
        let decision = admission::decide(&outcome, tentative, self.shared.opts.fail_mode);
        let call = self.call.as_mut().expect("admitting a call");
        match decision {
            Decision::Admit { over, note } => {
                call.over = over;
                if let Some(note) = note {
                    call.note = Some(note.into());
                }
            }
            Decision::ReadBody => {
                call.phase = Phase::Requested;
                call.plan = None;
                call.worst_case = Nanos::ZERO;
                return None;
            }
            Decision::Refuse {
                label,
                limit,
                remaining,
            } => return Some(self.refuse(&label, limit, remaining, reserve.amount).await),
            Decision::Unavailable => return Some(self.unavailable()),
        }
        Some(Reply::proceed(vec![], mode, self.attribution_metadata()))
    }

    /// Takes what the body says into the call; a model first named there
    /// (StartAsyncInvoke) is checked against identity and allowlists, which the
    /// request headers could not do.
    async fn take_body_facts(&mut self, body: &RequestFacts) -> Option<Reply> {
        let call = self.call.as_mut()?;
        call.phase = Phase::Admitted;
        let model_from_body = body.model_id.clone().filter(|_| call.facts.model_id.is_empty());
        let check_model = model_from_body.is_some();
        if let Some(m) = model_from_body {
            call.facts.model_id = m;
        }
        if body.service_tier.is_some() {
            call.facts.service_tier = body.service_tier.clone();
        }
        if check_model { self.authorize().await } else { None }
    }

    /// Prices the call, fixes its plan and worst case, and builds the reservation.
    fn plan_reservation(&mut self, body: &RequestFacts, tentative: bool) -> ReserveRequest {
        let call = self.call.as_mut().expect("admitting a call");
        let plan = self.policy.plan(&call.facts.who, self.time);
        call.price = admission::price_info(&self.policy, &call.facts.model_id, &call.facts.region);
        if call.price.is_none() && call.facts.operation.is_metered() {
            observe::unpriced(&self.shared.metrics, &self.policy, &call.facts.model_id);
        }
        if let Some(p) = &call.price {
            call.bounds = admission::bounds(&call.facts, &p.entry, body, call.input_bytes());
        }
        call.worst_case = admission::worst_case(&call.facts, call.price.as_ref(), &call.bounds);
        let reserve = admission::reserve_request(
            &call.facts,
            &plan,
            call.worst_case,
            &self.shared.opts,
            self.time,
            tentative,
        );
        call.plan = Some(plan);
        reserve
    }

    /// Refuses the call on a budget: recorded, and answered in Bedrock's shape.
    async fn refuse(&mut self, label: &str, limit: Nanos, remaining: Nanos, amount: Nanos) -> Reply {
        let call = self.call.as_ref().expect("admitting a call");
        let resets = call.plan.as_ref().map(|p| p.window.end.to_string()).unwrap_or_default();
        let (message, headers) = admission::refusal(label, limit, remaining, amount, &resets);
        tracing::info!(request_id = %call.facts.request_id, team = %call.facts.who.team, %message, "blocked");
        self.record_refusal(Outcome::Blocked, &message).await;
        self.respond(400, "ServiceQuotaExceededException", message, headers)
    }

    /// Fail-closed with the store down: a retryable 503, nothing recorded.
    fn unavailable(&mut self) -> Reply {
        let call = self.call.as_mut().expect("admitting a call");
        call.phase = Phase::Finished;
        observe::decision(&self.shared.metrics, &call.facts.who.team, "unavailable");
        self.respond(
            503,
            "ServiceUnavailableException",
            admission::UNAVAILABLE_MESSAGE.into(),
            vec![],
        )
    }

    /// An error answer in Bedrock's shape (the AWS SDKs read `x-amzn-ErrorType` and `message`).
    fn respond(&self, status: u16, error_type: &'static str, message: String, extra: Vec<(String, String)>) -> Reply {
        let request_id = self
            .call
            .as_ref()
            .map(|c| c.facts.request_id.clone())
            .unwrap_or_default();
        let mut metadata = self.attribution_metadata();
        metadata.push(("outcome", if status == 403 { "denied" } else { "blocked" }.to_string()));
        let mut headers = vec![("x-tally-request-id".to_string(), request_id)];
        headers.extend(extra);
        Reply::Respond {
            status,
            error_type,
            message,
            headers,
            metadata,
        }
    }

    /// The call's plan: the one it was admitted under, else today's.
    fn plan_of(&self, call: &Call) -> Plan {
        call.plan
            .clone()
            .unwrap_or_else(|| self.policy.plan(&call.facts.who, self.time))
    }

    /// Prices, settles and records the call once; returns the cost headers.
    async fn finish(&mut self, outcome: Outcome) -> Vec<(String, String)> {
        let Some(call) = self.call.as_mut() else { return vec![] };
        match call.phase {
            Phase::Finished => return vec![],
            // Envoy never showed us the request body (its mode was not overridable):
            // nothing was reserved, but the call is still priced and recorded.
            Phase::Requested => {
                call.price = admission::price_info(&self.policy, &call.facts.model_id, &call.facts.region);
                call.note.get_or_insert_with(|| settlement::NOTE_NO_BODY.into());
            }
            Phase::Admitted => {}
        }
        call.phase = Phase::Finished;
        let call = self.call.as_ref().expect("finishing a call");
        let charge = settlement::charge(call, outcome);
        let plan = self.plan_of(call);
        let s = settlement::finished(call, &plan, outcome, &charge, self.time, self.started);
        let used = behind::settle_or_estimate(&self.shared, &mut self.hold, &s, self.started, call.worst_case).await;
        let team_used = used.as_ref().and_then(|u| u.first());
        let team_remaining = plan.team_limit().zip(team_used).map(|(l, &u)| l.saturating_sub(u));
        self.settled = Some((charge.cost, outcome));
        observe::settled(&self.shared.metrics, &self.policy, &s, &charge.usage, team_remaining);
        self.shared
            .traces
            .record(&s.record, team_remaining, &call.facts.trace, self.started);
        let headers = settlement::cost_headers(charge.cost, used.as_deref(), &plan);
        if self.shared.write_behind.is_some() {
            behind::queue_or_settle(&self.shared, std::mem::take(&mut self.hold), s).await;
        }
        headers
    }

    /// Records a refused call (zero cost, not counted as a request).
    async fn record_refusal(&mut self, outcome: Outcome, message: &str) {
        let Some(call) = self.call.as_mut() else { return };
        call.phase = Phase::Finished;
        let call = self.call.as_ref().expect("refusing a call");
        let plan = self.plan_of(call);
        let s = settlement::refused(call, &plan, outcome, message, self.time, self.started);
        observe::refused(&self.shared.metrics, &s.record.team, outcome);
        self.shared
            .traces
            .record(&s.record, None, &call.facts.trace, self.started);
        behind::queue_or_settle(&self.shared, lease::Held::Nothing, s).await;
    }
}
