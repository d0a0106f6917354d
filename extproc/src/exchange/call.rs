//! One call's state across its phases: an explicit [`Phase`] instead of flags,
//! and one buffer per direction.

use tally_config::money::Nanos;
use tally_config::pricing::Usage;
use tally_config::tariff::{Bounds, Units};

use crate::eventstream::StreamUsage;
use crate::policy::Plan;
use crate::usage::Accumulator;

use super::admission::PriceInfo;
use super::facts::CallFacts;
use super::options::FailMode;

/// The most request body kept to read `max_tokens` & co; the rest is only counted.
const MAX_BODY_FACTS: usize = 4 * 1024 * 1024;
/// The most of a JSON response body kept when Envoy streams it in pieces.
const MAX_JSON_RESPONSE: usize = 8 * 1024 * 1024;

/// Where a call is in its life. Moves forward only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Headers seen; nothing reserved yet (the body may still be coming).
    Requested,
    /// Admission ran: reserved, or let through without a reservation (zero cost,
    /// fail-open, a duplicate id); settlement is owed.
    Admitted,
    /// Settled or refused and recorded; nothing more happens.
    Finished,
}

/// The ledger message of a call refused because its ext_proc stream failed.
pub const STREAM_ERROR_MESSAGE: &str = "The request could not be read by the cost gateway; it was not sent.";

/// What a failed ext_proc stream means for the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFailure {
    /// Fail-closed before admission: refuse the call.
    Refuse,
    /// Fail-open before admission: let it through, charged its worst case.
    ChargeWorstCase,
    /// Admitted or finished already: settle as a cut call (or nothing).
    Settle,
}

/// Whether a failed stream refuses the call, charges its worst case, or only settles.
pub fn on_stream_error(phase: Phase, fail_mode: FailMode) -> StreamFailure {
    match (phase, fail_mode) {
        (Phase::Requested, FailMode::Closed) => StreamFailure::Refuse,
        (Phase::Requested, FailMode::Open) => StreamFailure::ChargeWorstCase,
        (Phase::Admitted | Phase::Finished, _) => StreamFailure::Settle,
    }
}

/// What the response body is read as.
#[derive(Debug, Default)]
pub enum ResponseBody {
    /// Not read (priced from headers, or not asked for yet).
    #[default]
    Unread,
    /// A JSON body, kept until its end (bounded).
    Json(Vec<u8>),
    /// An event stream, decoded as it passes.
    Stream(Box<StreamUsage>),
}

#[derive(Debug)]
pub struct Call {
    pub facts: CallFacts,
    pub phase: Phase,
    /// Request body bytes seen, and the first [`MAX_BODY_FACTS`] of them.
    pub body_len: u64,
    pub body: Vec<u8>,
    /// The body was asked for BUFFERED: Envoy sends it whole in one message.
    pub body_buffered: bool,
    /// Set at admission.
    pub price: Option<PriceInfo>,
    pub plan: Option<Plan>,
    /// What bounded the reservation; what a call billed per unit is charged by.
    pub bounds: Bounds,
    pub worst_case: Nanos,
    /// `Warn` budgets the reservation went beyond.
    pub over: Vec<String>,
    pub note: Option<String>,
    /// Response status (0 until the response headers arrive).
    pub status: u16,
    /// Usage from the response headers and a JSON body.
    pub usage: Accumulator,
    /// Guardrail text units the response reported (ApplyGuardrail).
    pub text_units: Option<u64>,
    pub response: ResponseBody,
}

impl Call {
    pub fn new(facts: CallFacts) -> Call {
        Call {
            facts,
            phase: Phase::Requested,
            body_len: 0,
            body: Vec::new(),
            body_buffered: false,
            price: None,
            plan: None,
            bounds: Bounds::default(),
            worst_case: Nanos::ZERO,
            over: vec![],
            note: None,
            status: 0,
            usage: Accumulator::default(),
            text_units: None,
            response: ResponseBody::Unread,
        }
    }

    /// Counts a request body chunk and keeps what fits for reading its facts.
    pub fn push_request_body(&mut self, chunk: &[u8]) {
        self.body_len += chunk.len() as u64;
        let room = MAX_BODY_FACTS.saturating_sub(self.body.len());
        self.body.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    /// Whether a request body message is the body's last: its `end_of_stream`, or
    /// any message of a BUFFERED body — Envoy sends that whole in one message, with
    /// `end_of_stream=false` when trailers follow (whatever the trailer mode).
    pub fn is_last_body_chunk(&self, end_of_stream: bool) -> bool {
        end_of_stream || self.body_buffered
    }

    /// The whole request body, if all of it was kept; the buffer is released.
    pub fn take_request_body(&mut self) -> Option<Vec<u8>> {
        let body = std::mem::take(&mut self.body);
        (body.len() as u64 == self.body_len).then_some(body)
    }

    /// Bytes the worst case counts as input: the body seen, else `content-length`.
    pub fn input_bytes(&self) -> u64 {
        if self.body_len > 0 {
            self.body_len
        } else {
            self.facts.content_length.unwrap_or(0)
        }
    }

    /// Keeps a JSON response chunk (bounded).
    pub fn push_json(&mut self, chunk: &[u8]) {
        if !matches!(self.response, ResponseBody::Json(_)) {
            self.response = ResponseBody::Json(Vec::new());
        }
        if let ResponseBody::Json(json) = &mut self.response {
            let room = MAX_JSON_RESPONSE.saturating_sub(json.len());
            json.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
    }

    /// The stream decoder, when the response is an event stream.
    pub fn stream(&self) -> Option<&StreamUsage> {
        match &self.response {
            ResponseBody::Stream(s) => Some(s),
            _ => None,
        }
    }

    /// The usage to charge: the stream's when streaming, else headers + JSON.
    pub fn observed_usage(&self) -> Usage {
        self.stream().map_or(self.usage, |s| s.usage).usage()
    }

    /// What a call that succeeded is charged per unit: what it ordered (images,
    /// seconds of video: Bedrock bills what was asked for), and the guardrail
    /// text units the response reported, else the bound.
    pub fn ordered_units(&self) -> Units {
        Units {
            text_units: self.text_units.unwrap_or(self.bounds.units.text_units),
            ..self.bounds.units
        }
    }
}
