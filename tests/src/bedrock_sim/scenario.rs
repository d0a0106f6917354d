//! What a simulated call does, as a pure function of the request.
//!
//! Tests steer the simulator with directives written into the prompt text, so a
//! request carries its own expected outcome and tests can compute exact costs:
//!
//! | directive | effect |
//! |---|---|
//! | `[[usage in=10 out=5 cr=3 cw5m=2 cw1h=1]]` | exactly these token counts (missing keys are 0) |
//! | `[[error ThrottlingException]]` | a Bedrock-shaped error instead of an answer (status from [`error_status`]) |
//! | `[[chunks N]]` | streams carry `N` text deltas (default 3) |
//! | `[[chunk-delay-ms D]]` | streams wait `D` ms before every event after the first |
//! | `[[stream-error ModelStreamErrorException]]` | streams send their first `1 + N` events, then this in-band exception frame, and end |
//!
//! Without a `usage` directive: input = the number of whitespace-separated words
//! of all text in the request (messages, system, prompt), directives excluded;
//! output = min(max tokens from the body, 16) (16 when the body sets none); no
//! cache tokens. "Text" is every string under a `text`, `content`, `prompt`,
//! `system` or `inputText` key anywhere in the body (CountTokens' base64
//! `invokeModel.body` is decoded first).

use base64::Engine as _;
use serde_json::Value;

/// Output tokens when the body does not cap them lower.
pub const DEFAULT_OUTPUT_TOKENS: u64 = 16;
/// Text deltas per stream when there is no `chunks` directive.
pub const DEFAULT_CHUNKS: u32 = 3;

/// Token counts of one call, as Bedrock reports them (`input` is the non-cached input).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimUsage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
}

impl SimUsage {
    pub fn cache_write(&self) -> u64 {
        self.cache_write_5m + self.cache_write_1h
    }
}

/// Everything the request asks of the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub usage: SimUsage,
    /// `Some(code)`: answer with this Bedrock error.
    pub error: Option<String>,
    pub chunks: u32,
    pub chunk_delay_ms: u64,
    /// `Some(code)`: streams break off with this exception frame.
    pub stream_error: Option<String>,
}

/// HTTP status Bedrock uses for an error code (bedrock-wire.md); 400 for codes it does not list.
pub fn error_status(code: &str) -> u16 {
    match code {
        "ThrottlingException" | "ModelNotReadyException" => 429,
        "AccessDeniedException" | "InvalidSignatureException" | "MissingAuthenticationTokenException" => 403,
        "ResourceNotFoundException" => 404,
        "ModelTimeoutException" => 408,
        "ModelErrorException" => 424,
        "InternalServerException" => 500,
        "ServiceUnavailableException" => 503,
        _ => 400,
    }
}

impl Scenario {
    /// Reads the scenario of a request body (any operation's JSON).
    pub fn from_body(body: &Value) -> Scenario {
        let mut texts = Vec::new();
        collect_text(body, None, &mut texts);
        let joined = texts.join(" ");
        let (plain, directives) = split_directives(&joined);
        let words = plain.split_whitespace().count() as u64;
        let output = max_tokens(body).map_or(DEFAULT_OUTPUT_TOKENS, |m| m.min(DEFAULT_OUTPUT_TOKENS));
        let mut scenario = Scenario {
            usage: SimUsage {
                input: words,
                output,
                ..SimUsage::default()
            },
            error: None,
            chunks: DEFAULT_CHUNKS,
            chunk_delay_ms: 0,
            stream_error: None,
        };
        for d in directives {
            let mut parts = d.split_whitespace();
            match parts.next() {
                Some("usage") => {
                    let mut u = SimUsage::default();
                    for kv in parts {
                        let Some((k, v)) = kv.split_once('=') else {
                            continue;
                        };
                        let Ok(n) = v.parse::<u64>() else { continue };
                        match k {
                            "in" => u.input = n,
                            "out" => u.output = n,
                            "cr" => u.cache_read = n,
                            "cw5m" => u.cache_write_5m = n,
                            "cw1h" => u.cache_write_1h = n,
                            _ => {}
                        }
                    }
                    scenario.usage = u;
                }
                Some("error") => scenario.error = parts.next().map(str::to_string),
                Some("stream-error") => scenario.stream_error = parts.next().map(str::to_string),
                Some("chunks") => {
                    if let Some(n) = parts.next().and_then(|n| n.parse().ok()) {
                        scenario.chunks = n;
                    }
                }
                Some("chunk-delay-ms") => {
                    if let Some(n) = parts.next().and_then(|n| n.parse().ok()) {
                        scenario.chunk_delay_ms = n;
                    }
                }
                _ => {}
            }
        }
        scenario
    }
}

const TEXT_KEYS: &[&str] = &["text", "content", "prompt", "system", "inputText"];

fn collect_text(v: &Value, key: Option<&str>, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            if key.is_some_and(|k| TEXT_KEYS.contains(&k)) {
                out.push(s.clone());
            } else if key == Some("body") {
                // CountTokens wraps an InvokeModel body as base64.
                if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(s)
                    && let Ok(inner) = serde_json::from_slice::<Value>(&bytes)
                {
                    collect_text(&inner, None, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_text(i, key, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| collect_text(v, Some(k), out)),
        _ => {}
    }
}

/// Removes `[[…]]` directives from `text`; returns the rest and the directives' insides.
fn split_directives(text: &str) -> (String, Vec<String>) {
    let mut plain = String::new();
    let mut directives = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("[[") {
        let Some(len) = rest[start..].find("]]") else {
            break;
        };
        plain.push_str(&rest[..start]);
        plain.push(' ');
        directives.push(rest[start + 2..start + len].trim().to_string());
        rest = &rest[start + len + 2..];
    }
    plain.push_str(rest);
    (plain, directives)
}

const MAX_TOKEN_KEYS: &[&str] = &["max_tokens", "maxTokens", "max_gen_len", "maxTokenCount"];

fn max_tokens(v: &Value) -> Option<u64> {
    match v {
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if MAX_TOKEN_KEYS.contains(&k.as_str()) {
                v.as_u64()
            } else {
                max_tokens(v)
            }
        }),
        Value::Array(items) => items.iter().find_map(max_tokens),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_words_and_caps_output() {
        let body = json!({
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 10,
            "system": "be brief",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "one two three"}]}]
        });
        let s = Scenario::from_body(&body);
        assert_eq!(
            s.usage,
            SimUsage {
                input: 5,
                output: 10,
                ..SimUsage::default()
            }
        );
        assert_eq!((s.chunks, s.chunk_delay_ms, s.error), (DEFAULT_CHUNKS, 0, None));
        let converse = json!({"messages": [{"role": "user", "content": [{"text": "a b"}]}], "inferenceConfig": {"maxTokens": 500}});
        assert_eq!(Scenario::from_body(&converse).usage.output, DEFAULT_OUTPUT_TOKENS);
        assert_eq!(Scenario::from_body(&json!({"prompt": "x y z"})).usage.input, 3);
    }

    #[test]
    fn directives_override_and_are_not_words() {
        let body = json!({"messages": [{"role": "user", "content": [{"text":
            "hi [[usage in=10 out=5 cr=3 cw5m=2 cw1h=1]] [[chunks 7]] [[chunk-delay-ms 40]] there"}]}]});
        let s = Scenario::from_body(&body);
        assert_eq!(
            s.usage,
            SimUsage {
                input: 10,
                output: 5,
                cache_read: 3,
                cache_write_5m: 2,
                cache_write_1h: 1
            }
        );
        assert_eq!((s.chunks, s.chunk_delay_ms), (7, 40));
        let err = Scenario::from_body(&json!({"prompt": "[[error ThrottlingException]] a b"}));
        assert_eq!(err.error.as_deref(), Some("ThrottlingException"));
        assert_eq!(err.usage.input, 2);
    }

    #[test]
    fn count_tokens_reads_the_wrapped_invoke_body() {
        let inner = base64::engine::general_purpose::STANDARD.encode(br#"{"prompt":"four words right here"}"#);
        let body = json!({"input": {"invokeModel": {"body": inner}}});
        assert_eq!(Scenario::from_body(&body).usage.input, 4);
    }

    #[test]
    fn error_statuses_follow_bedrock() {
        assert_eq!(error_status("ThrottlingException"), 429);
        assert_eq!(error_status("ValidationException"), 400);
        assert_eq!(error_status("AccessDeniedException"), 403);
        assert_eq!(error_status("ServiceUnavailableException"), 503);
    }
}
