//! What a request body says about its worst case: the output cap it asks for,
//! an upper bound on its input tokens, whether it asks for a cache write, and
//! what it orders that is billed per unit (images, seconds of video, guardrail
//! text units). Pure: bytes in, [`RequestFacts`] out.
//!
//! The input bound counts content, not JSON syntax: every string value's
//! decoded bytes (a token covers at least one byte of text in every Bedrock
//! tokenizer), numbers by their digits, object keys only inside tool
//! definitions (which are rendered into the prompt), plus a fixed allowance per
//! structural element and per request for the chat template, and more when
//! tools are defined (the tool-use system prompt). Images count by their pixel
//! size and the model family's rule; media the body references but does not
//! carry (`s3Location`, unreadable image bytes, documents, video) makes the
//! bound the model's context window.

pub mod image;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use image::Family;

/// Tokens the chat template may add to any request (turn markers, system preamble).
const REQUEST_ALLOWANCE: u64 = 64;
/// Tokens per object or array (a message, a content block: role and separator tokens).
const ELEMENT_ALLOWANCE: u64 = 4;
/// Tokens of the tool-use system prompt a model adds when tools are defined.
const TOOLS_ALLOWANCE: u64 = 1_000;
/// Characters per guardrail text unit.
const TEXT_UNIT_CHARS: u64 = 1_000;
/// Guardrail policies billed per text unit (content, denied topics, sensitive
/// information, contextual grounding, automated reasoning): the most that can
/// evaluate one text unit.
pub const GUARDRAIL_POLICIES: u64 = 5;
/// Image units are billed at five times a text unit's content-filter price.
const TEXT_UNITS_PER_IMAGE: u64 = 5;
/// Longest video a StartAsyncInvoke job can ask for (Nova Reel multi-shot: 2 minutes).
pub const MAX_VIDEO_SECONDS: u64 = 120;
/// Most images one image-generation call can ask for.
const MAX_IMAGES: u64 = 100;

/// What the request body tells about its worst case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFacts {
    /// Output-token cap the client asked for, in any family's spelling.
    pub max_output_tokens: Option<u64>,
    /// `modelId` in the body (StartAsyncInvoke).
    pub model_id: Option<String>,
    /// Converse `serviceTier.type` (or the string form).
    pub service_tier: Option<String>,
    /// `None` when the body is not JSON: then only its size bounds it.
    pub input: Option<InputBound>,
    /// Images an image-generation call asks for (`numberOfImages`).
    pub images: Option<u64>,
    /// Seconds of video an async job asks for (`durationSeconds`, `duration: "5s"`).
    pub video_seconds: Option<u64>,
}

/// An upper bound on the input a JSON body carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputBound {
    /// Tokens of what the body carries (content bytes, images by size, allowances).
    pub tokens: u64,
    /// The body references input it does not carry: bound by the context window.
    pub external: bool,
    /// A cache point / `cache_control` asks for a cache write.
    pub cache_write: bool,
    /// Guardrail text units of the content, before multiplying by policies.
    pub text_units: u64,
}

/// Reads [`RequestFacts`] from a request body for `model` (its family decides
/// how images count). A body that is not JSON yields no facts.
pub fn request_facts(body: &[u8], model: &str) -> RequestFacts {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return RequestFacts::default();
    };
    let mut walk = Walk {
        family: Family::of(model),
        bound: InputBound {
            tokens: REQUEST_ALLOWANCE,
            ..InputBound::default()
        },
        max_output: None,
        images: None,
        seconds: None,
    };
    walk.value(&v, false);
    RequestFacts {
        max_output_tokens: walk.max_output,
        model_id: v.get("modelId").and_then(Value::as_str).map(str::to_string),
        service_tier: v.get("serviceTier").and_then(|t| match t {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("type").and_then(Value::as_str).map(str::to_string),
            _ => None,
        }),
        input: Some(walk.bound),
        images: walk.images.map(|n| n.clamp(1, MAX_IMAGES)),
        video_seconds: walk.seconds,
    }
}

struct Walk {
    family: Family,
    bound: InputBound,
    max_output: Option<u64>,
    images: Option<u64>,
    seconds: Option<u64>,
}

impl Walk {
    /// `keys`: object keys count as prompt text here (inside tool definitions).
    fn value(&mut self, v: &Value, keys: bool) {
        let b = &mut self.bound;
        match v {
            Value::String(s) => {
                b.tokens = b.tokens.saturating_add(s.len() as u64);
                b.text_units = b
                    .text_units
                    .saturating_add((s.chars().count() as u64).div_ceil(TEXT_UNIT_CHARS));
            }
            Value::Number(n) => b.tokens = b.tokens.saturating_add(n.to_string().len() as u64),
            Value::Bool(_) | Value::Null => b.tokens = b.tokens.saturating_add(1),
            Value::Array(items) => {
                b.tokens = b.tokens.saturating_add(ELEMENT_ALLOWANCE);
                for item in items {
                    self.value(item, keys);
                }
            }
            Value::Object(map) => {
                b.tokens = b.tokens.saturating_add(ELEMENT_ALLOWANCE);
                for (key, value) in map {
                    self.field(key, value, keys);
                }
            }
        }
    }

    fn field(&mut self, key: &str, value: &Value, keys: bool) {
        if keys {
            self.bound.tokens = self.bound.tokens.saturating_add(key.len() as u64);
        }
        let number = value.as_u64();
        match key {
            "cachePoint" | "cache_control" => self.bound.cache_write = true,
            "s3Location" | "s3Uri" => self.bound.external = true,
            "uri" if value.as_str().is_some_and(|u| u.starts_with("s3://")) => self.bound.external = true,
            "bytes" | "data" if value.is_string() => self.media(value),
            "toolConfig" | "tools" => {
                self.bound.tokens = self.bound.tokens.saturating_add(TOOLS_ALLOWANCE);
                self.value(value, true);
            }
            // Output caps in every family's spelling (Anthropic, Converse, Nova, Llama, Titan).
            "max_tokens" | "maxTokens" | "max_new_tokens" | "max_gen_len" | "maxTokenCount" if number.is_some() => {
                self.max_output = self.max_output.max(number);
            }
            "numberOfImages" | "samples" if number.is_some() => self.images = self.images.max(number),
            "durationSeconds" if number.is_some() => self.seconds = self.seconds.max(number),
            "duration" => {
                let secs = number.or_else(|| value.as_str()?.strip_suffix('s')?.parse().ok());
                self.seconds = self.seconds.max(secs);
            }
            _ => self.value(value, keys),
        }
    }

    /// Base64 media: an image counts by its size; anything else (documents,
    /// video, unreadable images) is input we cannot measure.
    /// Text that is not base64 counts as text.
    fn media(&mut self, value: &Value) {
        // Enough of the file for any header (JPEG metadata segments come first).
        const HEAD: usize = 256 * 1024;
        let encoded = value.as_str().unwrap_or_default();
        let head = &encoded[..encoded.len().min(HEAD) / 4 * 4];
        let Ok(decoded) = STANDARD.decode(head) else {
            return self.value(value, false);
        };
        match image::size(&decoded) {
            Some(s) => {
                let b = &mut self.bound;
                b.tokens = b.tokens.saturating_add(self.family.image_tokens(s));
                b.text_units = b.text_units.saturating_add(TEXT_UNITS_PER_IMAGE);
            }
            None => self.bound.external = true,
        }
    }
}

#[cfg(test)]
mod tests;
