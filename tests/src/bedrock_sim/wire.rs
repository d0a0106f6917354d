//! Bedrock response shapes: model-family bodies, Converse bodies and the events of streams
//! (framed by [`super::frames`]).
//!
//! Shapes follow what Bedrock sends and what `aws-sdk-bedrockruntime` parses
//! (its `protocol_serde` and `event_stream_serde`); the simulator's unit tests
//! run the real SDK against them.

use serde_json::{Value, json};

use super::scenario::SimUsage;

/// The request/response body format of `InvokeModel*`, which depends on the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Anthropic Messages API (`anthropic.*`).
    Anthropic,
    /// Amazon Nova (`amazon.nova-*`).
    Nova,
    /// Meta Llama (`meta.*`).
    Llama,
}

/// Geo prefixes of cross-region inference profiles.
const GEO_PREFIXES: &[&str] = &["us-gov.", "global.", "apac.", "us.", "eu.", "jp.", "au.", "ca."];

impl Family {
    /// The family of a decoded model id; `None` for opaque ids (application
    /// inference profiles, provisioned models), where the body decides.
    pub fn of_model(model_id: &str) -> Option<Family> {
        let id = if model_id.starts_with("arn:") {
            model_id.rsplit_once('/').map_or(model_id, |(_, last)| last)
        } else {
            model_id
        };
        let id = GEO_PREFIXES.iter().find_map(|p| id.strip_prefix(p)).unwrap_or(id);
        if id.starts_with("anthropic.") {
            Some(Family::Anthropic)
        } else if id.starts_with("amazon.nova") {
            Some(Family::Nova)
        } else if id.starts_with("meta.") {
            Some(Family::Llama)
        } else {
            None
        }
    }

    /// Guesses the family from an invoke request body.
    pub fn of_body(body: &Value) -> Option<Family> {
        if body.get("anthropic_version").is_some() || body.get("max_tokens").is_some() {
            Some(Family::Anthropic)
        } else if body.get("prompt").is_some() {
            Some(Family::Llama)
        } else if body.get("messages").is_some() {
            Some(Family::Nova)
        } else {
            None
        }
    }
}

/// The text the simulated model "generates": one word per chunk.
pub fn pieces(chunks: u32) -> Vec<String> {
    (1..=chunks).map(|i| format!("word{i} ")).collect()
}

fn invocation_metrics(u: &SimUsage, latency_ms: u64) -> Value {
    json!({
        "inputTokenCount": u.input,
        "outputTokenCount": u.output,
        "invocationLatency": latency_ms,
        "firstByteLatency": latency_ms,
        "cacheReadInputTokenCount": u.cache_read,
        "cacheWriteInputTokenCount": u.cache_write(),
    })
}

fn anthropic_usage(u: &SimUsage, output: u64) -> Value {
    json!({
        "input_tokens": u.input,
        "output_tokens": output,
        "cache_creation_input_tokens": u.cache_write(),
        "cache_read_input_tokens": u.cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": u.cache_write_5m,
            "ephemeral_1h_input_tokens": u.cache_write_1h,
        },
    })
}

/// The `InvokeModel` response body.
pub fn invoke_body(family: Family, model_id: &str, u: &SimUsage, text: &str) -> Value {
    match family {
        Family::Anthropic => json!({
            "id": "msg_bdrk_sim",
            "type": "message",
            "role": "assistant",
            "model": model_id,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": anthropic_usage(u, u.output),
        }),
        Family::Nova => json!({
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": "end_turn",
            "usage": {
                "inputTokens": u.input,
                "outputTokens": u.output,
                "totalTokens": u.input + u.output + u.cache_read + u.cache_write(),
                "cacheReadInputTokenCount": u.cache_read,
                "cacheWriteInputTokenCount": u.cache_write(),
            },
        }),
        Family::Llama => json!({
            "generation": text,
            "prompt_token_count": u.input,
            "generation_token_count": u.output,
            "stop_reason": "stop",
        }),
    }
}

/// The decoded model JSON of every `chunk` of an `InvokeModelWithResponseStream`.
/// The last one carries `amazon-bedrock-invocationMetrics`.
pub fn invoke_stream_chunks(
    family: Family,
    model_id: &str,
    u: &SimUsage,
    pieces: &[String],
    latency_ms: u64,
) -> Vec<Value> {
    let metrics = invocation_metrics(u, latency_ms);
    let mut out = Vec::new();
    match family {
        Family::Anthropic => {
            let mut message = invoke_body(family, model_id, u, "");
            message["content"] = json!([]);
            message["stop_reason"] = Value::Null;
            message["usage"] = anthropic_usage(u, u.output.min(1));
            out.push(json!({"type": "message_start", "message": message}));
            out.push(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}));
            for p in pieces {
                out.push(
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}),
                );
            }
            out.push(json!({"type": "content_block_stop", "index": 0}));
            out.push(json!({
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": u.output},
            }));
            out.push(json!({"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics}));
        }
        Family::Nova => {
            out.push(json!({"messageStart": {"role": "assistant"}}));
            for p in pieces {
                out.push(json!({"contentBlockDelta": {"delta": {"text": p}, "contentBlockIndex": 0}}));
            }
            out.push(json!({"contentBlockStop": {"contentBlockIndex": 0}}));
            out.push(json!({"messageStop": {"stopReason": "end_turn"}}));
            let usage = invoke_body(family, model_id, u, "")["usage"].clone();
            out.push(json!({
                "metadata": {"usage": usage, "metrics": {}, "trace": {}},
                "amazon-bedrock-invocationMetrics": metrics,
            }));
        }
        Family::Llama => {
            let n = pieces.len().max(1);
            for i in 0..n {
                let last = i + 1 == n;
                let generated = if last { u.output } else { (i as u64 + 1).min(u.output) };
                let mut chunk = json!({
                    "generation": pieces.get(i).cloned().unwrap_or_default(),
                    "prompt_token_count": if i == 0 { json!(u.input) } else { Value::Null },
                    "generation_token_count": generated,
                    "stop_reason": if last { json!("stop") } else { Value::Null },
                });
                if last {
                    chunk["amazon-bedrock-invocationMetrics"] = metrics.clone();
                }
                out.push(chunk);
            }
        }
    }
    out
}

/// Converse `TokenUsage`.
pub fn token_usage(u: &SimUsage) -> Value {
    let mut usage = json!({
        "inputTokens": u.input,
        "outputTokens": u.output,
        "totalTokens": u.input + u.output + u.cache_read + u.cache_write(),
    });
    if u.cache_read > 0 || u.cache_write() > 0 {
        usage["cacheReadInputTokens"] = json!(u.cache_read);
        usage["cacheWriteInputTokens"] = json!(u.cache_write());
        let mut details = Vec::new();
        if u.cache_write_5m > 0 {
            details.push(json!({"ttl": "5m", "inputTokens": u.cache_write_5m}));
        }
        if u.cache_write_1h > 0 {
            details.push(json!({"ttl": "1h", "inputTokens": u.cache_write_1h}));
        }
        if !details.is_empty() {
            usage["cacheDetails"] = Value::Array(details);
        }
    }
    usage
}

/// The `Converse` response body.
pub fn converse_body(u: &SimUsage, text: &str, latency_ms: u64) -> Value {
    json!({
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": token_usage(u),
        "metrics": {"latencyMs": latency_ms},
    })
}

/// `(event type, payload)` of every `ConverseStream` event.
pub fn converse_stream_events(u: &SimUsage, pieces: &[String], latency_ms: u64) -> Vec<(&'static str, Value)> {
    let mut out = vec![("messageStart", json!({"role": "assistant"}))];
    for p in pieces {
        out.push((
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": p}}),
        ));
    }
    out.push(("contentBlockStop", json!({"contentBlockIndex": 0})));
    out.push(("messageStop", json!({"stopReason": "end_turn"})));
    out.push((
        "metadata",
        json!({"usage": token_usage(u), "metrics": {"latencyMs": latency_ms}}),
    ));
    out
}

/// An ApplyGuardrail answer: nothing blocked; the content filter and denied topics each
/// evaluated every text unit (up to 1,000 characters) of every text block.
pub fn guardrail_body(request: &Value) -> Value {
    let units: u64 = request["content"]
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| b["text"]["text"].as_str())
                .map(|t| (t.chars().count() as u64).div_ceil(1000))
                .sum()
        })
        .unwrap_or(0);
    json!({
        "action": "NONE",
        "outputs": [],
        "assessments": [],
        "usage": {
            "topicPolicyUnits": units, "contentPolicyUnits": units, "wordPolicyUnits": 0,
            "sensitiveInformationPolicyUnits": 0, "sensitiveInformationPolicyFreeUnits": 0,
            "contextualGroundingPolicyUnits": 0
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_from_ids_and_bodies() {
        assert_eq!(
            Family::of_model("us.anthropic.claude-haiku-4-5-20251001-v1:0"),
            Some(Family::Anthropic)
        );
        assert_eq!(
            Family::of_model("arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0"),
            Some(Family::Nova)
        );
        assert_eq!(Family::of_model("meta.llama3-1-8b-instruct-v1:0"), Some(Family::Llama));
        assert_eq!(
            Family::of_model("arn:aws:bedrock:us-east-1:1:application-inference-profile/x1"),
            None
        );
        assert_eq!(
            Family::of_body(&json!({"anthropic_version": "x", "messages": []})),
            Some(Family::Anthropic)
        );
        assert_eq!(Family::of_body(&json!({"prompt": "x"})), Some(Family::Llama));
    }

    #[test]
    fn anthropic_stream_reports_cumulative_output_last() {
        let u = SimUsage {
            input: 9,
            output: 4,
            cache_read: 2,
            cache_write_5m: 1,
            cache_write_1h: 3,
        };
        let chunks = invoke_stream_chunks(Family::Anthropic, "anthropic.m", &u, &pieces(2), 5);
        assert_eq!(chunks[0]["message"]["usage"]["input_tokens"], 9);
        assert_eq!(chunks[0]["message"]["usage"]["cache_creation_input_tokens"], 4);
        let delta = chunks.iter().find(|c| c["type"] == "message_delta").unwrap();
        assert_eq!(delta["usage"]["output_tokens"], 4);
        assert_eq!(
            chunks.last().unwrap()["amazon-bedrock-invocationMetrics"]["outputTokenCount"],
            4
        );
    }

    #[test]
    fn token_usage_splits_cache_writes_by_ttl() {
        let u = SimUsage {
            input: 1,
            output: 2,
            cache_read: 3,
            cache_write_5m: 4,
            cache_write_1h: 5,
        };
        let t = token_usage(&u);
        assert_eq!(t["cacheWriteInputTokens"], 9);
        assert_eq!(
            t["cacheDetails"],
            json!([{"ttl": "5m", "inputTokens": 4}, {"ttl": "1h", "inputTokens": 5}])
        );
        assert_eq!(t["totalTokens"], 15);
    }
}
