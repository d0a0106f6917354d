//! One HTTP exchange as Envoy shows it to us, phase by phase.
//!
//! [`Exchange`] has one method per ext_proc phase. Each turns what Envoy sent
//! into plain data, asks the pure modules (`bedrock`, `policy`, `usage`,
//! `eventstream`, `pricing`) what to do, talks to the store where money moves,
//! and answers with a [`Reply`] — domain data that `server` converts to protobuf.
//!
//! Whatever Envoy's processing mode, an exchange does the most it can with what
//! it receives: without a request body it reserves the model's worst case from
//! `content-length`; without a response body it prices from the token-count
//! headers; a stream cut short is settled by [`Exchange::abandon`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jiff::Timestamp;

use crate::bedrock::{self, Operation};
use crate::eventstream::StreamUsage;
use crate::metrics::{CallLabels, DecisionLabels, Metrics, OpLabels, ReservationLabels, TeamLabels, TokenLabels};
use crate::policy::{self, Attribution, Claims, Plan, Policy};
use crate::usage::{self, Accumulator, RequestFacts};
use tally_config::compiled::{Enforcement, Prices};
use tally_config::ledger::{LedgerRecord, Outcome};
use tally_config::money::Nanos;
use tally_config::pricing::{self, Usage};
use tally_store::spool::Spool;
use tally_store::{ReserveOutcome, ReserveRequest, SettleOutcome, Settlement, Store, StoreError};

/// The most request body kept to read `max_tokens` & co; the rest is only counted.
const MAX_BODY_FACTS: usize = 4 * 1024 * 1024;
/// The most of a JSON response body kept when Envoy streams it in pieces.
const MAX_JSON_RESPONSE: usize = 8 * 1024 * 1024;
/// A store operation slower than this counts as an outage (the fail mode applies).
const STORE_DEADLINE: Duration = Duration::from_millis(500);

/// What to do when the store cannot be reached before a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailMode {
    /// Let the call through unreserved; its charge is spooled if still unreachable after it.
    Open,
    /// Refuse the call with a retryable 503.
    Closed,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub team_header: String,
    pub tenant_header: String,
    pub workflow_header: String,
    pub fail_mode: FailMode,
    pub default_region: String,
    pub reservation_ttl: Duration,
    pub ledger_max_len: u64,
    pub request_body: RequestBody,
}

/// When the request body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RequestBody {
    /// Always, before reserving: the tightest bound (the request's `max_tokens`), and a
    /// Converse `serviceTier` given only in the body is recorded.
    Always,
    /// Only when the headers cannot settle admission: a non-streaming call is
    /// reserved from `content-length` and the model's output cap if that fits
    /// every budget, else the body is read for the tighter `max_tokens` bound.
    /// Streaming calls always have it read. Saves one ext_proc round trip per call
    /// (one pod-network round trip when the ext_proc runs apart from Envoy); a call
    /// cut before its response is then charged the output-cap bound.
    WhenNeeded,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            team_header: "x-team-id".into(),
            tenant_header: "x-tenant-id".into(),
            workflow_header: "x-workflow-id".into(),
            fail_mode: FailMode::Open,
            default_region: "us-east-1".into(),
            reservation_ttl: Duration::from_secs(15 * 60),
            ledger_max_len: 1_000_000,
            request_body: RequestBody::Always,
        }
    }
}

/// State shared by every exchange.
pub struct Shared {
    pub policy: ArcSwap<Policy>,
    pub store: Store,
    pub spool: Option<Spool>,
    pub metrics: Metrics,
    pub opts: Options,
    /// One task per Envoy stream; shutdown waits for them, so an exchange
    /// cut short as the process stops is still settled.
    pub exchanges: tokio_util::task::TaskTracker,
}

impl Shared {
    /// Settles, or spools the settlement if the store is unreachable.
    /// Returns the team's used amount after it, when the store answered.
    async fn settle_or_spool(&self, s: &Settlement) -> Option<Nanos> {
        match tokio::time::timeout(STORE_DEADLINE, self.store.settle(s, self.opts.ledger_max_len)).await {
            Ok(Ok(SettleOutcome::Settled { team_used })) => return Some(team_used),
            Ok(Ok(SettleOutcome::AlreadySettled)) => return None,
            Ok(Err(e)) => tracing::warn!(request_id = %s.record.request_id, error = %e, "settle failed; spooling"),
            Err(_) => tracing::warn!(request_id = %s.record.request_id, "settle timed out; spooling"),
        }
        self.metrics
            .store_errors
            .get_or_create(&OpLabels { op: "settle" })
            .inc();
        match &self.spool {
            Some(spool) => match spool.push(s) {
                Ok(()) => {
                    self.metrics.spool_depth.set(spool.depth() as i64);
                }
                Err(e) => {
                    tracing::error!(request_id = %s.record.request_id, charge = %s.cost, error = %e, "CHARGE NOT RECORDED: store down and spool refused it")
                }
            },
            None => {
                tracing::error!(request_id = %s.record.request_id, charge = %s.cost, "CHARGE NOT RECORDED: store down and no spool configured")
            }
        }
        None
    }

    /// Replays the spool into the store; returns how many settlements were replayed.
    pub async fn replay_spool(&self) -> Result<u64, StoreError> {
        let Some(spool) = &self.spool else { return Ok(0) };
        if spool.depth() == 0 {
            return Ok(0);
        }
        let n = spool
            .replay(|s| async move {
                match tokio::time::timeout(STORE_DEADLINE, self.store.settle(&s, self.opts.ledger_max_len)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(StoreError::Protocol("timed out".into())),
                }
            })
            .await?;
        self.metrics.spool_depth.set(spool.depth() as i64);
        self.metrics.spool_replayed.inc_by(n);
        if n > 0 {
            tracing::info!(replayed = n, left = spool.depth(), "replayed spooled settlements");
        }
        Ok(n)
    }
}

/// Which body mode to ask Envoy for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    None,
    Buffered,
    Streamed,
}

/// The complete processing mode for the rest of the exchange (an override
/// replaces the whole mode, so it is always sent whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub request_body: BodyMode,
    pub response_headers: bool,
    pub response_body: BodyMode,
}

impl Mode {
    /// Headers both ways and no bodies: the mode after admission from the headers.
    const HEADERS_ONLY: Mode = Mode {
        request_body: BodyMode::None,
        response_headers: true,
        response_body: BodyMode::None,
    };
}

/// What bounds the worst case at admission.
#[derive(Debug)]
enum Bound {
    /// The request headers alone (`content-length`, the model's output cap):
    /// a tentative reservation, which falls back to reading the body.
    Headers,
    /// What the request body said (nothing, when there is no body).
    Body(RequestFacts),
}

/// What to tell Envoy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Continue {
        set_headers: Vec<(String, String)>,
        remove_headers: Vec<String>,
        mode: Option<Mode>,
        metadata: Vec<(&'static str, String)>,
    },
    Respond {
        status: u16,
        error_type: &'static str,
        message: String,
        headers: Vec<(String, String)>,
        metadata: Vec<(&'static str, String)>,
    },
}

impl Reply {
    pub fn pass() -> Reply {
        Reply::Continue {
            set_headers: vec![],
            remove_headers: vec![],
            mode: None,
            metadata: vec![],
        }
    }
}

/// A header list with lowercase names, as Envoy sends them.
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Resolved price of the call's model, copied out so a config swap mid-call changes nothing.
#[derive(Debug, Clone)]
struct PriceInfo {
    model: String,
    prices: Prices,
    source: String,
    max_output_tokens: u32,
}

struct Call {
    operation: Operation,
    model_id: String,
    region: String,
    who: Attribution,
    principals: Vec<String>,
    request_id: String,
    charge_id: String,
    service_tier: Option<String>,
    body_len: u64,
    body: Vec<u8>,
    content_length: Option<u64>,
    price: Option<PriceInfo>,
    plan: Option<Plan>,
    worst_case: Nanos,
    over: Vec<String>,
    note: Option<String>,
    admitted: bool,
    status: u16,
    usage: Accumulator,
    stream: Option<StreamUsage>,
    json: Vec<u8>,
    finished: bool,
}

fn price_info(policy: &Policy, model_id: &str, region: &str) -> Option<PriceInfo> {
    policy.price(model_id, region).map(|p| PriceInfo {
        model: p.model.to_string(),
        prices: p.entry.prices,
        source: p.entry.source.clone(),
        max_output_tokens: p.entry.max_output_tokens,
    })
}

/// The ledger record of this call with zero usage and cost; callers fill in the rest.
fn base_record(call: &Call, time: Timestamp, started: Instant, outcome: Outcome, note: Option<String>) -> LedgerRecord {
    LedgerRecord {
        request_id: call.request_id.clone(),
        charge_id: call.charge_id.clone(),
        time: time.to_string(),
        operation: call.operation.as_str().to_string(),
        model_id: call.model_id.clone(),
        model: String::new(),
        region: call.region.clone(),
        team: call.who.team.clone(),
        tenant: call.who.tenant.clone(),
        workflow: call.who.workflow.clone(),
        claimed_team: call.who.claimed_team.clone(),
        input_tokens: 0,
        output_tokens: 0,
        cache_read_tokens: 0,
        cache_write5m_tokens: 0,
        cache_write1h_tokens: 0,
        latency_ms: started.elapsed().as_millis() as u64,
        status: call.status,
        outcome,
        cost_nanos: 0,
        cost_usd: Nanos::ZERO.to_string(),
        team_budget_remaining_nanos: None,
        price_source: String::new(),
        unpriced: false,
        over_budget: vec![],
        service_tier: call.service_tier.clone(),
        note,
    }
}

/// One request/response through Envoy.
pub struct Exchange {
    shared: Arc<Shared>,
    policy: Arc<Policy>,
    started: Instant,
    time: Timestamp,
    call: Option<Call>,
    last_cost: Nanos,
    last_outcome: Option<Outcome>,
}

fn internal_headers(h: &Headers) -> Vec<String> {
    h.0.iter()
        .filter(|(n, _)| n.starts_with("x-tally-"))
        .map(|(n, _)| n.clone())
        .collect()
}

fn sdk_attempt(h: &Headers) -> u32 {
    // `amz-sdk-request: attempt=2; max=3`
    h.get("amz-sdk-request")
        .and_then(|v| v.split(';').find_map(|p| p.trim().strip_prefix("attempt=")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(1)
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
            last_cost: Nanos::ZERO,
            last_outcome: None,
        }
    }

    /// Request headers: recognise the call, attribute it, check identity and allowlists.
    pub async fn request_headers(&mut self, h: &Headers, end_of_stream: bool, peer_principals: Vec<String>) -> Reply {
        let remove_headers = internal_headers(h);
        let skip_rest = Mode {
            request_body: BodyMode::None,
            response_headers: false,
            response_body: BodyMode::None,
        };
        let method = h.get(":method").unwrap_or("");
        let path = h.get(":path").unwrap_or("");
        let parsed = bedrock::parse_call(method, path);
        let Some(parsed) =
            parsed.filter(|c| !matches!(c.operation, Operation::GetAsyncInvoke | Operation::ListAsyncInvokes))
        else {
            return Reply::Continue {
                set_headers: vec![],
                remove_headers,
                mode: Some(skip_rest),
                metadata: vec![],
            };
        };
        let opts = &self.shared.opts;
        let model_id = parsed.model_id.unwrap_or_default();
        let region = h
            .get(":authority")
            .and_then(bedrock::region_from_host)
            .or_else(|| {
                bedrock::Arn::parse(&model_id)
                    .map(|a| a.region)
                    .filter(|r| !r.is_empty())
            })
            .unwrap_or(&opts.default_region)
            .to_string();
        let claims = Claims {
            team: h.get(&opts.team_header),
            tenant: h.get(&opts.tenant_header),
            workflow: h.get(&opts.workflow_header),
            principals: peer_principals.iter().map(String::as_str).collect(),
        };
        let who = self.policy.attribute(&claims);
        let request_id = h
            .get("amz-sdk-invocation-id")
            .or_else(|| h.get("x-request-id"))
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let charge_id = format!("{request_id}/{}", sdk_attempt(h));
        self.call = Some(Call {
            operation: parsed.operation,
            model_id,
            region,
            who,
            principals: peer_principals,
            request_id,
            charge_id,
            service_tier: h.get("x-amzn-bedrock-service-tier").map(str::to_string),
            body_len: 0,
            body: Vec::new(),
            content_length: h.get("content-length").and_then(|v| v.parse().ok()),
            price: None,
            plan: None,
            worst_case: Nanos::ZERO,
            over: vec![],
            note: None,
            admitted: false,
            status: 0,
            usage: Accumulator::default(),
            stream: None,
            json: Vec::new(),
            finished: false,
        });
        let needs_body = parsed.operation.is_inference() || parsed.operation.model_in_body();
        // Streams are cancelled mid-way (a chat UI's stop button) before any usage arrives and are
        // then charged their whole reservation: that must be the request's own max_tokens bound.
        let from_headers = opts.request_body == RequestBody::WhenNeeded
            && parsed.operation.is_inference()
            && !parsed.operation.streams_response()
            && self
                .call
                .as_ref()
                .is_some_and(|c| !c.model_id.is_empty() && c.content_length.is_some());
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
            match admitted {
                Some(reply) => reply,
                None => {
                    // Ask for the body (max_tokens bounds the worst case); the response
                    // phases are set once we know the status and content type.
                    let mode = Mode {
                        request_body: BodyMode::Buffered,
                        response_headers: true,
                        response_body: BodyMode::None,
                    };
                    Reply::Continue {
                        set_headers: vec![],
                        remove_headers: vec![],
                        mode: Some(mode),
                        metadata: self.attribution_metadata(),
                    }
                }
            }
        };
        match reply {
            Reply::Continue {
                set_headers,
                mode,
                metadata,
                ..
            } => Reply::Continue {
                set_headers,
                remove_headers,
                mode,
                metadata,
            },
            respond => respond,
        }
    }

    /// Request body: with the whole body (or its end) in hand, reserve the worst case.
    pub async fn request_body(&mut self, body: &[u8], end_of_stream: bool) -> Reply {
        let Some(call) = self.call.as_mut() else {
            return Reply::pass();
        };
        call.body_len += body.len() as u64;
        let room = MAX_BODY_FACTS.saturating_sub(call.body.len());
        call.body.extend_from_slice(&body[..body.len().min(room)]);
        if !end_of_stream || call.admitted {
            return Reply::pass();
        }
        let facts = if call.body.len() as u64 == call.body_len {
            usage::request_facts(&call.body)
        } else {
            RequestFacts::default()
        };
        call.body = Vec::new();
        self.admit(Bound::Body(facts)).await.unwrap_or_else(Reply::pass)
    }

    fn attribution_metadata(&self) -> Vec<(&'static str, String)> {
        let Some(c) = &self.call else { return vec![] };
        let mut m = vec![
            ("team", c.who.team.clone()),
            ("requestId", c.request_id.clone()),
            ("model", c.model_id.clone()),
        ];
        if let Some(t) = &c.who.tenant {
            m.push(("tenant", t.clone()));
        }
        if let Some(w) = &c.who.workflow {
            m.push(("workflow", w.clone()));
        }
        m
    }

    /// Identity and allowlist checks; a refusal is recorded and returned.
    async fn authorize(&mut self) -> Option<Reply> {
        let call = self.call.as_ref()?;
        let principals: Vec<&str> = call.principals.iter().map(String::as_str).collect();
        let model = (!call.model_id.is_empty()).then(|| {
            let aliased = self.policy.prices.alias(&call.model_id);
            bedrock::pricing_model_id(aliased).to_string()
        });
        let denial = self.policy.authorize(&call.who, &principals, model.as_deref()).err()?;
        let message = denial.message();
        tracing::info!(request_id = %call.request_id, team = %call.who.team, %message, "denied");
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
        let call = self.call.as_mut()?;
        call.admitted = true;
        let (facts, tentative) = match bound {
            Bound::Headers => (RequestFacts::default(), true),
            Bound::Body(facts) => (facts, false),
        };
        // After a reservation from the headers nothing else of the request is needed.
        let mode = tentative.then_some(Mode::HEADERS_ONLY);
        // Identity and allowlists were checked on the request headers; only a
        // model first named in the body (StartAsyncInvoke) needs checking again.
        let model_from_body = facts.model_id.filter(|_| call.model_id.is_empty());
        let check_model = model_from_body.is_some();
        if let Some(m) = model_from_body {
            call.model_id = m;
        }
        if facts.service_tier.is_some() {
            call.service_tier = facts.service_tier.clone();
        }
        if check_model && let Some(denied) = self.authorize().await {
            return Some(denied);
        }
        let call = self.call.as_mut().expect("call present");
        let policy = &self.policy;
        let plan = policy.plan(&call.who, self.time);
        call.price = price_info(policy, &call.model_id, &call.region);
        if call.price.is_none() && call.operation.is_inference() {
            self.shared
                .metrics
                .unpriced
                .get_or_create(&crate::metrics::ModelLabels {
                    model: call.model_id.clone(),
                })
                .inc();
        }
        let body_bytes = if call.body_len > 0 {
            call.body_len
        } else {
            call.content_length.unwrap_or(0)
        };
        call.worst_case = match (&call.price, call.operation.is_inference()) {
            (Some(p), true) => policy::worst_case(&p.prices, p.max_output_tokens, body_bytes, facts.max_output_tokens),
            _ => Nanos::ZERO,
        };
        let mut reserve = ReserveRequest {
            team: plan.team.clone(),
            charge_id: call.charge_id.clone(),
            amount: call.worst_case,
            budgets: plan.budgets.clone(),
            now_ms: self.time.as_millisecond(),
            ttl: self.shared.opts.reservation_ttl,
            tentative,
        };
        call.plan = Some(plan);
        // Zero-cost calls (CountTokens, unpriced models) are never blocked by budgets.
        if reserve.amount == Nanos::ZERO {
            return Some(Reply::Continue {
                set_headers: vec![],
                remove_headers: vec![],
                mode,
                metadata: self.attribution_metadata(),
            });
        }
        let mut outcome = self.try_reserve(&reserve).await;
        if matches!(outcome, Ok(ReserveOutcome::Duplicate)) {
            // The client reused an id for a different call: charge it separately.
            reserve.charge_id = format!("{}/{}", reserve.charge_id, uuid::Uuid::new_v4());
            self.call.as_mut().expect("call present").charge_id = reserve.charge_id.clone();
            outcome = self.try_reserve(&reserve).await;
        }
        let result = match &outcome {
            Ok(ReserveOutcome::Reserved { .. }) => "held",
            Ok(ReserveOutcome::Refused { .. }) => "refused",
            Ok(ReserveOutcome::Duplicate) => "duplicate",
            Err(_) => "error",
        };
        self.shared
            .metrics
            .reservations
            .get_or_create(&ReservationLabels {
                bound: if tentative { "headers" } else { "body" },
                result,
            })
            .inc();
        let call = self.call.as_mut().expect("call present");
        match outcome {
            Ok(ReserveOutcome::Reserved { over, .. }) => {
                call.over = over;
            }
            Ok(ReserveOutcome::Refused { .. }) if tentative => {
                call.admitted = false;
                call.plan = None;
                call.worst_case = Nanos::ZERO;
                return None;
            }
            Ok(ReserveOutcome::Refused {
                label,
                limit,
                remaining,
            }) => {
                let resets = call.plan.as_ref().map(|p| p.window.end.to_string()).unwrap_or_default();
                let message = format!(
                    "Tally budget exhausted for {label}: this call may cost up to {} USD but {} USD of {} USD remain; the budget resets at {resets}",
                    reserve.amount,
                    remaining.max(Nanos::ZERO),
                    limit
                );
                tracing::info!(request_id = %call.request_id, team = %call.who.team, %message, "blocked");
                let headers = vec![
                    ("x-tally-budget".to_string(), label.clone()),
                    (
                        "x-tally-budget-remaining-usd".to_string(),
                        remaining.max(Nanos::ZERO).to_string(),
                    ),
                    ("x-tally-budget-resets-at".to_string(), resets),
                ];
                self.record_refusal(Outcome::Blocked, &message).await;
                return Some(self.respond(400, "ServiceQuotaExceededException", message, headers));
            }
            Ok(ReserveOutcome::Duplicate) => {
                call.note = Some("duplicate charge id twice; not reserved".into());
            }
            Err(e) => {
                self.shared
                    .metrics
                    .store_errors
                    .get_or_create(&OpLabels { op: "reserve" })
                    .inc();
                match self.shared.opts.fail_mode {
                    FailMode::Open => {
                        tracing::warn!(request_id = %call.request_id, error = %e, "store unavailable; fail-open: call proceeds unreserved");
                        call.note = Some("store unavailable at admission (fail-open): not reserved".into());
                    }
                    FailMode::Closed => {
                        tracing::warn!(request_id = %call.request_id, error = %e, "store unavailable; fail-closed: refusing");
                        call.finished = true;
                        self.shared
                            .metrics
                            .decisions
                            .get_or_create(&DecisionLabels {
                                team: call.who.team.clone(),
                                outcome: "unavailable",
                            })
                            .inc();
                        return Some(self.respond(
                            503,
                            "ServiceUnavailableException",
                            "Tally cannot reach its budget store and is configured to fail closed; retry later".into(),
                            vec![],
                        ));
                    }
                }
            }
        }
        Some(Reply::Continue {
            set_headers: vec![],
            remove_headers: vec![],
            mode,
            metadata: self.attribution_metadata(),
        })
    }

    async fn try_reserve(&self, r: &ReserveRequest) -> Result<ReserveOutcome, StoreError> {
        match tokio::time::timeout(STORE_DEADLINE, self.shared.store.reserve(r)).await {
            Ok(res) => res,
            Err(_) => Err(StoreError::Protocol("reserve timed out".into())),
        }
    }

    /// An error answer in Bedrock's shape (the AWS SDKs read `x-amzn-ErrorType` and `message`).
    fn respond(&self, status: u16, error_type: &'static str, message: String, extra: Vec<(String, String)>) -> Reply {
        let request_id = self.call.as_ref().map(|c| c.request_id.clone()).unwrap_or_default();
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

    /// Response headers: the status decides; token-count headers may already price the call.
    pub async fn response_headers(&mut self, h: &Headers, end_of_stream: bool) -> Reply {
        let Some(call) = self.call.as_mut() else {
            return Reply::pass();
        };
        call.status = h.get(":status").and_then(|s| s.parse().ok()).unwrap_or(0);
        call.usage
            .observe(&usage::from_headers(h.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))));
        let mut set_headers = vec![("x-tally-request-id".to_string(), call.request_id.clone())];
        if call.status >= 400 || call.status == 0 {
            let extra = self.finish(Outcome::UpstreamError).await;
            set_headers.extend(extra);
            return Reply::Continue {
                set_headers,
                remove_headers: vec![],
                mode: None,
                metadata: self.cost_metadata(),
            };
        }
        if call.operation.streams_response() && !end_of_stream {
            call.stream = Some(StreamUsage::new());
            let mode = Mode {
                request_body: BodyMode::None,
                response_headers: true,
                response_body: BodyMode::Streamed,
            };
            return Reply::Continue {
                set_headers,
                remove_headers: vec![],
                mode: Some(mode),
                metadata: vec![],
            };
        }
        let priced_by_headers = call.usage.complete() && !call.usage.cache_write_split_unknown();
        if !call.operation.is_inference() || priced_by_headers || end_of_stream {
            set_headers.extend(self.finish(Outcome::Ok).await);
            return Reply::Continue {
                set_headers,
                remove_headers: vec![],
                mode: None,
                metadata: self.cost_metadata(),
            };
        }
        // The usage is in the JSON body: have Envoy hold the headers until we have read it.
        let mode = Mode {
            request_body: BodyMode::None,
            response_headers: true,
            response_body: BodyMode::Buffered,
        };
        Reply::Continue {
            set_headers: vec![],
            remove_headers: vec![],
            mode: Some(mode),
            metadata: vec![],
        }
    }

    /// Response body: decode streams as they pass; read JSON usage at the end.
    pub async fn response_body(&mut self, body: &[u8], end_of_stream: bool) -> Reply {
        let Some(call) = self.call.as_mut() else {
            return Reply::pass();
        };
        if call.finished {
            return Reply::pass();
        }
        if let Some(stream) = call.stream.as_mut() {
            stream.push(body);
            if !end_of_stream {
                return Reply::pass();
            }
            if stream.decoder().failed().is_some() {
                self.shared.metrics.stream_decode_errors.inc();
            }
            let outcome = if stream.exception.is_some() {
                Outcome::UpstreamError
            } else if stream.usage.complete() {
                Outcome::Ok
            } else {
                Outcome::Incomplete
            };
            self.finish(outcome).await;
            return Reply::Continue {
                set_headers: vec![],
                remove_headers: vec![],
                mode: None,
                metadata: self.cost_metadata(),
            };
        }
        let room = MAX_JSON_RESPONSE.saturating_sub(call.json.len());
        call.json.extend_from_slice(&body[..body.len().min(room)]);
        if !end_of_stream {
            return Reply::pass();
        }
        let observed = usage::from_json_bytes(&call.json);
        call.json = Vec::new();
        call.usage.observe(&observed);
        let outcome = if call.usage.complete() {
            Outcome::Ok
        } else {
            Outcome::Incomplete
        };
        let mut set_headers = vec![("x-tally-request-id".to_string(), call.request_id.clone())];
        set_headers.extend(self.finish(outcome).await);
        Reply::Continue {
            set_headers,
            remove_headers: vec![],
            mode: None,
            metadata: self.cost_metadata(),
        }
    }

    /// The exchange ended (client gone, Envoy reset) before it finished: settle
    /// what we know. Rule for a cut stream: the usage seen so far if any usage
    /// event arrived, else the whole worst-case reservation.
    pub async fn abandon(&mut self) {
        let Some(call) = self.call.as_ref() else { return };
        if call.finished || !call.admitted {
            return;
        }
        self.finish(Outcome::Incomplete).await;
    }

    fn cost_metadata(&self) -> Vec<(&'static str, String)> {
        let mut m = self.attribution_metadata();
        if let Some(o) = self.last_outcome {
            m.push(("costUsd", self.last_cost.to_string()));
            m.push(("outcome", o.as_str().to_string()));
        }
        m
    }

    /// Prices, settles and records the call once; returns the cost headers.
    async fn finish(&mut self, outcome: Outcome) -> Vec<(String, String)> {
        let Some(call) = self.call.as_mut() else { return vec![] };
        if call.finished {
            return vec![];
        }
        call.finished = true;
        if !call.admitted {
            // Envoy never showed us the request body (its mode was not overridable):
            // nothing was reserved, but the call is still priced and recorded.
            call.price = price_info(&self.policy, &call.model_id, &call.region);
            call.note
                .get_or_insert_with(|| "request body not seen: admitted without a reservation".into());
        }
        let usage = match outcome {
            Outcome::UpstreamError if call.stream.as_ref().is_none_or(|s| !s.usage.any()) => Usage::default(),
            _ => call.stream.as_ref().map_or(call.usage, |s| s.usage).usage(),
        };
        let seen_usage = call.stream.as_ref().map_or(call.usage.any(), |s| s.usage.any());
        let mut cost = call
            .price
            .as_ref()
            .map_or(Nanos::ZERO, |p| pricing::cost(&usage, &p.prices));
        let mut note = call.note.take();
        if outcome == Outcome::Incomplete && !seen_usage {
            cost = call.worst_case;
            note = Some("no usage arrived before the exchange ended: charged the worst-case reservation".into());
        }
        if !call.operation.is_inference() {
            cost = Nanos::ZERO;
        }
        let plan = call
            .plan
            .clone()
            .unwrap_or_else(|| self.policy.plan(&call.who, self.time));
        let limit = plan.team_limit();
        let mut record = base_record(call, self.time, self.started, outcome, note);
        record.model = call.price.as_ref().map(|p| p.model.clone()).unwrap_or_default();
        record.input_tokens = usage.input;
        record.output_tokens = usage.output;
        record.cache_read_tokens = usage.cache_read;
        record.cache_write5m_tokens = usage.cache_write_5m;
        record.cache_write1h_tokens = usage.cache_write_1h;
        record.cost_nanos = cost.0;
        record.cost_usd = cost.to_string();
        record.price_source = call.price.as_ref().map(|p| p.source.clone()).unwrap_or_default();
        record.unpriced = call.price.is_none() && call.operation.is_inference();
        record.over_budget = call.over.clone();
        let settlement = Settlement {
            team: plan.team.clone(),
            charge_id: call.charge_id.clone(),
            cost,
            counters: plan.budgets.iter().map(|b| b.key.clone()).collect(),
            count_request: true,
            team_limit: limit,
            record,
        };
        let used = self.shared.settle_or_spool(&settlement).await;
        let remaining = limit.zip(used).map(|(l, u)| l.saturating_sub(u));
        self.last_cost = cost;
        self.last_outcome = Some(outcome);
        self.observe(&settlement, &usage, remaining);
        let mut headers = vec![("x-tally-cost-usd".to_string(), cost.to_string())];
        if let Some(r) = remaining {
            headers.push(("x-tally-budget-remaining-usd".to_string(), r.to_string()));
        }
        headers
    }

    /// Records a refused call (zero cost, not counted as a request).
    async fn record_refusal(&mut self, outcome: Outcome, message: &str) {
        let Some(call) = self.call.as_mut() else { return };
        call.finished = true;
        let plan = call
            .plan
            .clone()
            .unwrap_or_else(|| self.policy.plan(&call.who, self.time));
        let mut record = base_record(call, self.time, self.started, outcome, Some(message.to_string()));
        record.status = if outcome == Outcome::Denied { 403 } else { 400 };
        let settlement = Settlement {
            team: plan.team.clone(),
            charge_id: format!("{}/{}", call.charge_id, outcome.as_str()),
            cost: Nanos::ZERO,
            counters: vec![],
            count_request: false,
            team_limit: None,
            record,
        };
        self.shared.settle_or_spool(&settlement).await;
        let team = settlement.record.team.clone();
        self.shared
            .metrics
            .decisions
            .get_or_create(&DecisionLabels {
                team,
                outcome: outcome.as_str(),
            })
            .inc();
    }

    fn observe(&self, s: &Settlement, usage: &Usage, remaining: Option<Nanos>) {
        let m = &self.shared.metrics;
        let r = &s.record;
        let model = if r.model.is_empty() {
            r.model_id.clone()
        } else {
            r.model.clone()
        };
        let workflow = r.workflow.clone().unwrap_or_else(|| "none".into());
        m.decisions
            .get_or_create(&DecisionLabels {
                team: r.team.clone(),
                outcome: r.outcome.as_str(),
            })
            .inc();
        m.spend
            .get_or_create(&CallLabels {
                team: r.team.clone(),
                workflow: workflow.clone(),
                model: model.clone(),
            })
            .inc_by(s.cost.0.max(0) as u64);
        for (class, n) in [
            ("input", usage.input),
            ("output", usage.output),
            ("cache_read", usage.cache_read),
            ("cache_write_5m", usage.cache_write_5m),
            ("cache_write_1h", usage.cache_write_1h),
        ] {
            if n > 0 {
                m.tokens
                    .get_or_create(&TokenLabels {
                        team: r.team.clone(),
                        workflow: workflow.clone(),
                        model: model.clone(),
                        class,
                    })
                    .inc_by(n);
            }
        }
        if let Some(rem) = remaining {
            m.budget_remaining
                .get_or_create(&TeamLabels { team: r.team.clone() })
                .set(rem.0);
        }
        let enforcement = self
            .policy
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
}
