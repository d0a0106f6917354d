//! One call (or one billing row) as a source recorded it: which fields it
//! carries under which key, and the context the checks need (when, whether it
//! succeeded, which attempts belong together, which regions it names).

use std::collections::{BTreeMap, BTreeSet};

use crate::field::Field;

pub use crate::lookup::Found;

/// How a source counts input tokens when part of the prompt was cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Convention {
    /// Input includes cache reads and writes (OpenTelemetry GenAI, OpenAI-style `prompt_tokens`).
    Inclusive,
    /// Input is the non-cached part only (Bedrock `inputTokens`, Tally's ledger).
    Exclusive,
}

/// The token price class of a billing row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenClass {
    Input,
    Output,
    CacheRead,
    CacheWrite,
}

impl TokenClass {
    pub fn field(self) -> Field {
        match self {
            TokenClass::Input => Field::InputTokens,
            TokenClass::Output => Field::OutputTokens,
            TokenClass::CacheRead => Field::CacheReadTokens,
            TokenClass::CacheWrite => Field::CacheWriteTokens,
        }
    }
}

/// Attempts that belong to one logical call.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RetryKey {
    pub value: String,
    /// `true` when the key is an identity the client keeps across attempts (the
    /// SDK's invocation id): attempts under it are certainly retries. `false`
    /// for a payload fingerprint: only a failed attempt followed by another
    /// soon after counts as a retry.
    pub certain: bool,
}

/// What the checks need to know about a call besides its fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallContext {
    /// When the call started, as written (RFC 3339 or similar).
    pub time: Option<String>,
    /// `Some(false)` for an error, a throttle, a refusal.
    pub succeeded: Option<bool>,
    /// Why it failed, for evidence (`429`, `ThrottlingException`).
    pub failure: Option<String>,
    pub retry_key: Option<RetryKey>,
    /// The model id the source resolved an opaque id (ARN) to, if it did.
    pub resolved_model: Option<String>,
    /// The region of the endpoint called (the billing region).
    pub endpoint_region: Option<String>,
    /// Where a cross-region profile routed the call.
    pub inference_region: Option<String>,
    /// `total_tokens` as the source reports it.
    pub total_tokens: Option<u64>,
    /// Currency named next to the cost (a column or the key itself).
    pub currency: Option<String>,
    /// The exact cost in nano-USD, when the source records one (Tally's `costNanos`).
    pub cost_nanos: Option<i64>,
    /// Of the cache-write tokens, those written for one hour (priced above 5-minute writes).
    pub cache_write_1h: Option<u64>,
    /// IAM principal (billing rows) or workload identity.
    pub principal: Option<String>,
    /// Billing rows: the token class this row counts.
    pub token_class: Option<TokenClass>,
    /// Billing rows: the resource (model or profile ARN).
    pub resource: Option<String>,
}

/// One record of a sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// 1-based position in its source (line or row), for evidence.
    pub record: usize,
    pub found: BTreeMap<Field, Found>,
    /// Fields that do not apply to this record (a billing row's other token classes).
    pub not_applicable: BTreeSet<Field>,
    pub call: CallContext,
}

impl Observation {
    pub fn new(record: usize) -> Observation {
        Observation {
            record,
            ..Observation::default()
        }
    }

    pub fn set(&mut self, field: Field, found: Option<Found>) {
        if let Some(f) = found {
            self.found.insert(field, f);
        }
    }

    pub fn get(&self, field: Field) -> Option<&Found> {
        self.found.get(&field)
    }

    /// The field's value as a string (numbers as written).
    pub fn text(&self, field: Field) -> Option<String> {
        self.get(field).map(|f| crate::lookup::text(&f.value))
    }

    /// The field's value as a count (a number or a numeric string).
    pub fn count(&self, field: Field) -> Option<u64> {
        self.get(field).and_then(|f| crate::lookup::as_u64(&f.value))
    }

    /// Whether `field` is expected on this record: not marked inapplicable,
    /// and not a usage field of a failed call that does not carry it.
    pub fn applies(&self, field: Field) -> bool {
        if self.not_applicable.contains(&field) {
            return false;
        }
        !(field.is_usage() && self.call.succeeded == Some(false) && self.get(field).is_none())
    }
}
