//! Reading usage from what Bedrock returns: tokens, and guardrail text units.
//!
//! Usage arrives in several shapes: response headers (InvokeModel), Converse
//! `usage`, model-native bodies (Anthropic, Nova, Titan, Llama), event-stream
//! chunks (Anthropic `message_start`/`message_delta`, Nova `metadata`,
//! `amazon-bedrock-invocationMetrics`) and ConverseStream `metadata`. Each shape
//! is turned into an [`Observation`]; an [`Accumulator`] merges them (later
//! totals replace earlier ones, since Anthropic's `message_delta` counts are
//! cumulative) into the [`Usage`] that is priced.
//!
//! Only a final usage is the real cost of a stream: Anthropic's
//! `message_delta`, a `metadata` event, or `amazon-bedrock-invocationMetrics`.
//! Counts a stream gives on the way (`message_start` says `output_tokens: 1`,
//! Llama chunks count as they go) are provisional: a stream cut before its
//! final usage is not priced from them.

use serde_json::Value;

use tally_config::pricing::Usage;

/// Token counts seen in one place; `None` = this place did not say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observation {
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub cache_read: Option<u64>,
    /// Total cache writes, when the TTL split is not given.
    pub cache_write: Option<u64>,
    pub cache_write_5m: Option<u64>,
    pub cache_write_1h: Option<u64>,
    /// Counts given on the way (a stream's start or running totals), not the final usage.
    pub provisional: bool,
}

impl Observation {
    /// Says no count at all.
    pub fn is_empty(&self) -> bool {
        Observation {
            provisional: false,
            ..*self
        } == Observation::default()
    }
}

/// Merges observations from one response into a final usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accumulator {
    seen: Observation,
    /// A final (non-provisional) usage arrived.
    final_seen: bool,
}

impl Accumulator {
    pub fn observe(&mut self, o: &Observation) {
        let s = &mut self.seen;
        for (dst, src) in [
            (&mut s.input, o.input),
            (&mut s.output, o.output),
            (&mut s.cache_read, o.cache_read),
            (&mut s.cache_write, o.cache_write),
            (&mut s.cache_write_5m, o.cache_write_5m),
            (&mut s.cache_write_1h, o.cache_write_1h),
        ] {
            if src.is_some() {
                *dst = src;
            }
        }
        self.final_seen |= !o.provisional && !o.is_empty();
    }

    /// Whether any usage at all has been seen, provisional or final.
    pub fn any(&self) -> bool {
        !self.seen.is_empty()
    }

    /// Whether a final usage has been seen: the call's real cost is known.
    pub fn final_seen(&self) -> bool {
        self.final_seen
    }

    /// A final usage seen, with input and output both known: enough to price the call.
    pub fn complete(&self) -> bool {
        self.final_seen && self.seen.input.is_some() && self.seen.output.is_some()
    }

    /// The usage to price. Cache writes without a TTL split are priced as
    /// 5-minute writes (Bedrock's default TTL); a total larger than the split
    /// puts the remainder there too.
    pub fn usage(&self) -> Usage {
        let s = &self.seen;
        let w1h = s.cache_write_1h.unwrap_or(0);
        // Saturating: the counts are Bedrock's, and a wrapped sum would charge almost nothing.
        let split = s.cache_write_5m.unwrap_or(0).saturating_add(w1h);
        let total = s.cache_write.unwrap_or(split).max(split);
        Usage {
            input: s.input.unwrap_or(0),
            output: s.output.unwrap_or(0),
            cache_read: s.cache_read.unwrap_or(0),
            cache_write_5m: total - w1h,
            cache_write_1h: w1h,
        }
    }

    /// Whether the cache-write total is known but its TTL split is not.
    pub fn cache_write_split_unknown(&self) -> bool {
        self.seen.cache_write.unwrap_or(0) > 0
            && self.seen.cache_write_5m.is_none()
            && self.seen.cache_write_1h.is_none()
    }
}

/// `X-Amzn-Bedrock-*-Token-Count` response headers (observed on InvokeModel).
pub fn from_headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Observation {
    let mut o = Observation::default();
    for (name, value) in headers {
        let slot = match name.to_ascii_lowercase().as_str() {
            "x-amzn-bedrock-input-token-count" => &mut o.input,
            "x-amzn-bedrock-output-token-count" => &mut o.output,
            "x-amzn-bedrock-cache-read-input-token-count" => &mut o.cache_read,
            "x-amzn-bedrock-cache-write-input-token-count" => &mut o.cache_write,
            _ => continue,
        };
        if let Ok(n) = value.trim().parse() {
            *slot = Some(n);
        }
    }
    o
}

fn u(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

/// Every usage shape we know, found anywhere a Bedrock body or stream chunk puts it.
pub fn from_json(v: &Value) -> Observation {
    let mut o = Observation::default();
    // Converse / ConverseStream metadata / Nova invoke: `usage.inputTokens`.
    // Anthropic invoke: `usage.input_tokens`; stream `message.usage` or `usage`.
    let usage = v
        .get("usage")
        .or_else(|| v.get("message").and_then(|m| m.get("usage")))
        .or_else(|| v.get("metadata").and_then(|m| m.get("usage")));
    if let Some(us) = usage {
        o.input = u(us, "inputTokens").or_else(|| u(us, "input_tokens"));
        o.output = u(us, "outputTokens").or_else(|| u(us, "output_tokens"));
        o.cache_read = u(us, "cacheReadInputTokens")
            .or_else(|| u(us, "cacheReadInputTokenCount"))
            .or_else(|| u(us, "cache_read_input_tokens"));
        o.cache_write = u(us, "cacheWriteInputTokens")
            .or_else(|| u(us, "cacheWriteInputTokenCount"))
            .or_else(|| u(us, "cache_creation_input_tokens"));
        if let Some(details) = us.get("cacheDetails").and_then(Value::as_array) {
            for d in details {
                let n = u(d, "inputTokens").unwrap_or(0);
                match d.get("ttl").and_then(Value::as_str) {
                    Some("1h") => o.cache_write_1h = Some(o.cache_write_1h.unwrap_or(0).saturating_add(n)),
                    _ => o.cache_write_5m = Some(o.cache_write_5m.unwrap_or(0).saturating_add(n)),
                }
            }
        }
        if let Some(cc) = us.get("cache_creation") {
            o.cache_write_5m = u(cc, "ephemeral_5m_input_tokens").or(o.cache_write_5m);
            o.cache_write_1h = u(cc, "ephemeral_1h_input_tokens").or(o.cache_write_1h);
        }
    }
    // Llama: `prompt_token_count`, `generation_token_count`.
    if let Some(n) = u(v, "prompt_token_count") {
        o.input = Some(n);
    }
    if let Some(n) = u(v, "generation_token_count") {
        o.output = Some(n);
    }
    // Titan text: `inputTextTokenCount`, `results[].tokenCount`.
    if let Some(n) = u(v, "inputTextTokenCount") {
        o.input = Some(n);
        let out = v.get("results").and_then(Value::as_array).map(|rs| {
            rs.iter()
                .filter_map(|r| u(r, "tokenCount"))
                .fold(0, u64::saturating_add)
        });
        o.output = out.or(o.output);
    }
    // Any invoke stream's last chunk: totals Bedrock itself measured.
    if let Some(m) = v.get("amazon-bedrock-invocationMetrics") {
        o.input = u(m, "inputTokenCount").or(o.input);
        o.output = u(m, "outputTokenCount").or(o.output);
        o.cache_read = u(m, "cacheReadInputTokenCount").or(o.cache_read);
        o.cache_write = u(m, "cacheWriteInputTokenCount").or(o.cache_write);
    }
    o
}

/// Parses a JSON body and reads its usage; garbage yields an empty observation.
pub fn from_json_bytes(body: &[u8]) -> Observation {
    serde_json::from_slice::<Value>(body)
        .map(|v| from_json(&v))
        .unwrap_or_default()
}

/// The usage in one invoke-stream chunk (model JSON). Final only in the shapes
/// that carry a stream's totals: Anthropic's `message_delta`, a `metadata`
/// object (Nova), or `amazon-bedrock-invocationMetrics` (every model's last
/// chunk); anything else (`message_start`, running counts) is provisional.
pub fn from_stream_chunk(chunk: &[u8]) -> Observation {
    let Ok(v) = serde_json::from_slice::<Value>(chunk) else {
        return Observation::default();
    };
    let mut o = from_json(&v);
    o.provisional = !(v.get("type").and_then(Value::as_str) == Some("message_delta")
        || v.get("metadata").is_some()
        || v.get("amazon-bedrock-invocationMetrics").is_some());
    o
}

/// Guardrail text units an ApplyGuardrail response's `usage` reports, summed
/// over the policies billed per text unit; an image unit counts as five (its
/// price is five content-filter text units). `None` when the body says nothing.
pub fn guardrail_units(body: &[u8]) -> Option<u64> {
    const BILLED: [(&str, u64); 6] = [
        ("topicPolicyUnits", 1),
        ("contentPolicyUnits", 1),
        ("sensitiveInformationPolicyUnits", 1),
        ("contextualGroundingPolicyUnits", 1),
        ("automatedReasoningPolicyUnits", 1),
        ("contentPolicyImageUnits", 5),
    ];
    let v = serde_json::from_slice::<Value>(body).ok()?;
    let usage = v.get("usage")?.as_object()?;
    Some(
        BILLED
            .iter()
            .filter_map(|(key, weight)| usage.get(*key)?.as_u64().map(|n| n.saturating_mul(*weight)))
            .fold(0u64, u64::saturating_add),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn usage_of(values: &[Value]) -> Usage {
        let mut acc = Accumulator::default();
        for v in values {
            acc.observe(&from_json(v));
        }
        acc.usage()
    }

    #[test]
    fn converse_usage_with_cache_details() {
        let v = json!({"output": {}, "usage": {"inputTokens": 12, "outputTokens": 34, "totalTokens": 99,
            "cacheReadInputTokens": 40, "cacheWriteInputTokens": 13,
            "cacheDetails": [{"ttl": "5m", "inputTokens": 3}, {"ttl": "1h", "inputTokens": 10}]}});
        assert_eq!(
            usage_of(&[v]),
            Usage {
                input: 12,
                output: 34,
                cache_read: 40,
                cache_write_5m: 3,
                cache_write_1h: 10
            }
        );
    }

    #[test]
    fn converse_cache_writes_without_details_are_5m() {
        let v = json!({"usage": {"inputTokens": 1, "outputTokens": 2, "cacheWriteInputTokens": 7}});
        assert_eq!(
            usage_of(&[v]),
            Usage {
                input: 1,
                output: 2,
                cache_write_5m: 7,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn anthropic_invoke_body_with_ttl_split() {
        let v = json!({"type": "message", "usage": {"input_tokens": 5, "output_tokens": 6,
            "cache_read_input_tokens": 7, "cache_creation_input_tokens": 9,
            "cache_creation": {"ephemeral_5m_input_tokens": 4, "ephemeral_1h_input_tokens": 5}}});
        assert_eq!(
            usage_of(&[v]),
            Usage {
                input: 5,
                output: 6,
                cache_read: 7,
                cache_write_5m: 4,
                cache_write_1h: 5
            }
        );
    }

    #[test]
    fn anthropic_stream_takes_the_last_cumulative_delta() {
        let events = [
            json!({"type": "message_start", "message": {"usage": {"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 3}}}),
            json!({"type": "content_block_delta", "delta": {"text": "hi"}}),
            json!({"type": "message_delta", "usage": {"output_tokens": 10}}),
            json!({"type": "message_delta", "usage": {"output_tokens": 15}}),
        ];
        assert_eq!(
            usage_of(&events),
            Usage {
                input: 25,
                output: 15,
                cache_read: 3,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn invocation_metrics_are_authoritative() {
        let events = [
            json!({"type": "message_start", "message": {"usage": {"input_tokens": 25, "output_tokens": 1}}}),
            json!({"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 26, "outputTokenCount": 16, "invocationLatency": 100, "firstByteLatency": 10}}),
        ];
        assert_eq!(
            usage_of(&events),
            Usage {
                input: 26,
                output: 16,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn nova_llama_titan_bodies() {
        let nova = json!({"output": {}, "usage": {"inputTokens": 3, "outputTokens": 4, "cacheReadInputTokenCount": 5, "cacheWriteInputTokenCount": 6}});
        assert_eq!(
            usage_of(&[nova]),
            Usage {
                input: 3,
                output: 4,
                cache_read: 5,
                cache_write_5m: 6,
                ..Usage::default()
            }
        );
        let nova_stream = json!({"metadata": {"usage": {"inputTokens": 8, "outputTokens": 9}}});
        assert_eq!(
            usage_of(&[nova_stream]),
            Usage {
                input: 8,
                output: 9,
                ..Usage::default()
            }
        );
        let llama =
            json!({"generation": "x", "prompt_token_count": 11, "generation_token_count": 12, "stop_reason": "stop"});
        assert_eq!(
            usage_of(&[llama]),
            Usage {
                input: 11,
                output: 12,
                ..Usage::default()
            }
        );
        let titan = json!({"inputTextTokenCount": 13, "results": [{"tokenCount": 14, "outputText": "x"}]});
        assert_eq!(
            usage_of(&[titan]),
            Usage {
                input: 13,
                output: 14,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn headers_give_counts_and_flag_an_unknown_ttl_split() {
        let o = from_headers([
            ("X-Amzn-Bedrock-Input-Token-Count", "10"),
            ("x-amzn-bedrock-output-token-count", "20"),
            ("X-Amzn-Bedrock-Cache-Read-Input-Token-Count", "30"),
            ("X-Amzn-Bedrock-Cache-Write-Input-Token-Count", "40"),
            ("X-Amzn-Bedrock-Invocation-Latency", "500"),
            ("content-type", "application/json"),
        ]);
        let mut acc = Accumulator::default();
        acc.observe(&o);
        assert!(acc.complete());
        assert!(acc.cache_write_split_unknown());
        assert_eq!(
            acc.usage(),
            Usage {
                input: 10,
                output: 20,
                cache_read: 30,
                cache_write_5m: 40,
                ..Usage::default()
            }
        );
        assert!(from_headers([("x-amzn-bedrock-input-token-count", "lots")]).is_empty());
    }

    #[test]
    fn garbage_yields_nothing() {
        assert!(from_json_bytes(b"\x00\xff not json").is_empty());
        assert!(from_json_bytes(b"{\"usage\": \"nope\"}").is_empty());
        assert!(from_json_bytes(b"{\"usage\": {\"inputTokens\": -1}}").is_empty());
    }

    #[test]
    fn guardrail_usage_sums_the_billed_policies() {
        let body = json!({"action": "NONE", "usage": {
            "topicPolicyUnits": 2, "contentPolicyUnits": 2, "wordPolicyUnits": 2,
            "sensitiveInformationPolicyUnits": 2, "sensitiveInformationPolicyFreeUnits": 2,
            "contextualGroundingPolicyUnits": 0, "contentPolicyImageUnits": 1}});
        assert_eq!(guardrail_units(body.to_string().as_bytes()), Some(11));
        assert_eq!(guardrail_units(b"{}"), None);
        assert_eq!(guardrail_units(b"not json"), None);
    }

    /// Found by the `usage` fuzz target (fuzz/regressions/usage): these sums
    /// panicked with overflow checks on, and in a release build wrapped to a
    /// small count, so the call was charged almost nothing.
    #[test]
    fn counts_that_overflow_when_added_saturate() {
        const MAX: u64 = u64::MAX;
        let titan = json!({"inputTextTokenCount": 1, "results": [{"tokenCount": MAX}, {"tokenCount": 1}]});
        assert_eq!(from_json(&titan).output, Some(MAX));
        let details =
            json!({"usage": {"cacheDetails": [{"ttl": "1h", "inputTokens": MAX}, {"ttl": "1h", "inputTokens": 1}]}});
        assert_eq!(from_json(&details).cache_write_1h, Some(MAX));
        let split = json!({"type": "message_start", "message": {"usage": {"input_tokens": 1,
            "cache_creation": {"ephemeral_5m_input_tokens": MAX, "ephemeral_1h_input_tokens": 1}}}});
        let used = usage_of(&[split]);
        assert_eq!((used.cache_write_5m, used.cache_write_1h), (MAX - 1, 1));
    }
}
