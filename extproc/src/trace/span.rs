//! One call's span, decided: its name, attributes and status, from the settled
//! ledger record alone — so the span and the ledger can never disagree. Pure:
//! no clock, no exporter; `super::Traces` gives it times and a parent and sends it.
//!
//! The span follows the OpenTelemetry GenAI conventions for a model call:
//! kind CLIENT (Tally is on the way to Bedrock, metering a call the app makes —
//! the span describes the remote model call, as a GenAI client span does; a
//! SERVER span would claim an entry point the app's own span already is),
//! named `{gen_ai.operation.name} {gen_ai.request.model}`, with the
//! `gen_ai.usage.*` token counts and `tally.*` attribution and money.

use opentelemetry::KeyValue;
use opentelemetry::trace::Status;
use tally_config::ledger::{LedgerRecord, Outcome};
use tally_config::money::Nanos;

/// What the exporter edge needs from the settlement: the span's content.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSpan {
    pub name: String,
    pub attributes: Vec<KeyValue>,
    pub status: Status,
}

/// The W3C trace context the request carried (`traceparent`, `tracestate`), kept
/// as sent: parsed only when a span is made, so a call pays nothing for it when
/// tracing is off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parent {
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

impl Parent {
    /// Reads the two headers through `get` (a header lookup by lower-case name).
    pub fn from_headers<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Parent {
        Parent {
            traceparent: get("traceparent").map(str::to_string),
            tracestate: get("tracestate").map(str::to_string),
        }
    }
}

/// `gen_ai.operation.name` for a Bedrock operation: the convention's well-known
/// value where one applies (it must then be used), else a custom one. Converse is
/// chat; InvokeModel carries the model's native body, which is no chat protocol
/// of Bedrock's own: a completion, or embeddings for an embedding model.
pub fn operation_name(operation: &str, model_id: &str) -> &'static str {
    match operation {
        "Converse" | "ConverseStream" => "chat",
        "InvokeModel" | "InvokeModelWithResponseStream" | "InvokeModelWithBidirectionalStream"
            if model_id.contains("embed") =>
        {
            "embeddings"
        }
        "InvokeModel" | "InvokeModelWithResponseStream" | "InvokeModelWithBidirectionalStream" => "text_completion",
        // Video and other media generation jobs.
        "StartAsyncInvoke" => "generate_content",
        "ApplyGuardrail" => "apply_guardrail",
        "CountTokens" => "count_tokens",
        _ => "invoke",
    }
}

/// The span of a settled or refused call; `remaining` is the team's budget left
/// right after it (none for teams without a budget, and for refusals).
pub fn call_span(r: &LedgerRecord, remaining: Option<Nanos>) -> CallSpan {
    let operation = operation_name(&r.operation, &r.model_id);
    let name = if r.model_id.is_empty() {
        operation.to_string()
    } else {
        format!("{operation} {}", r.model_id)
    };
    let mut a = Vec::with_capacity(24);
    a.push(KeyValue::new("gen_ai.provider.name", "aws.bedrock"));
    a.push(KeyValue::new("gen_ai.operation.name", operation));
    if !r.model_id.is_empty() {
        a.push(KeyValue::new("gen_ai.request.model", r.model_id.clone()));
    }
    a.push(KeyValue::new("rpc.method", r.operation.clone()));
    a.push(KeyValue::new("cloud.region", r.region.clone()));
    if r.status > 0 {
        a.push(KeyValue::new("http.response.status_code", i64::from(r.status)));
    }
    let refused = matches!(r.outcome, Outcome::Blocked | Outcome::Denied);
    if !refused {
        usage(&mut a, r);
    }
    attribution(&mut a, r, remaining);
    let status = match error_type(r) {
        Some(kind) => {
            let description = r.note.clone().unwrap_or_else(|| kind.clone());
            a.push(KeyValue::new("error.type", kind));
            Status::error(description)
        }
        None => Status::Unset,
    };
    CallSpan {
        name,
        attributes: a,
        status,
    }
}

/// Token counts. `gen_ai.usage.input_tokens` counts every input token, cached
/// ones included, as the convention says; Bedrock's `inputTokens` (the ledger's)
/// leaves out cache reads and writes.
fn usage(a: &mut Vec<KeyValue>, r: &LedgerRecord) {
    let cache_write = r.cache_write5m_tokens.saturating_add(r.cache_write1h_tokens);
    let input = r
        .input_tokens
        .saturating_add(r.cache_read_tokens)
        .saturating_add(cache_write);
    a.push(KeyValue::new("gen_ai.usage.input_tokens", int(input)));
    a.push(KeyValue::new("gen_ai.usage.output_tokens", int(r.output_tokens)));
    a.push(KeyValue::new(
        "gen_ai.usage.cache_read.input_tokens",
        int(r.cache_read_tokens),
    ));
    a.push(KeyValue::new(
        "gen_ai.usage.cache_creation.input_tokens",
        int(cache_write),
    ));
}

/// Who is charged, what, and under which ids. Money as the ledger writes it: an
/// exact decimal string, never a float.
fn attribution(a: &mut Vec<KeyValue>, r: &LedgerRecord, remaining: Option<Nanos>) {
    a.push(KeyValue::new("tally.team", r.team.clone()));
    if let Some(t) = &r.tenant {
        a.push(KeyValue::new("tally.tenant", t.clone()));
    }
    if let Some(w) = &r.workflow {
        a.push(KeyValue::new("tally.workflow", w.clone()));
    }
    a.push(KeyValue::new("tally.cost_usd", r.cost_usd.clone()));
    if let Some(rem) = remaining {
        a.push(KeyValue::new("tally.budget_remaining_usd", rem.to_string()));
    }
    a.push(KeyValue::new("tally.request_id", r.request_id.clone()));
    a.push(KeyValue::new("tally.charge_id", r.charge_id.clone()));
    a.push(KeyValue::new("tally.outcome", r.outcome.as_str()));
}

/// `error.type` of a call that failed for its caller, `None` otherwise. A refusal
/// is the error Bedrock's SDKs see (the exception Tally answers with); an
/// upstream failure is its HTTP status, as the HTTP conventions say when nothing
/// better is known (`_OTHER` without a response). A call its client cut short is
/// no error of the call's.
fn error_type(r: &LedgerRecord) -> Option<String> {
    match r.outcome {
        Outcome::Ok | Outcome::Incomplete => None,
        Outcome::Denied => Some("AccessDeniedException".into()),
        Outcome::Blocked => Some("ServiceQuotaExceededException".into()),
        Outcome::UpstreamError if r.status == 0 => Some("_OTHER".into()),
        Outcome::UpstreamError => Some(r.status.to_string()),
    }
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
