use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::*;

fn facts(v: &Value) -> RequestFacts {
    request_facts(v.to_string().as_bytes(), "anthropic.claude-sonnet-4-5-20250929-v1:0")
}

fn input(v: &Value) -> InputBound {
    facts(v).input.expect("a JSON body")
}

fn png(w: u32, h: u32) -> String {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    b.extend(w.to_be_bytes());
    b.extend(h.to_be_bytes());
    b.extend([8, 6, 0, 0, 0, 0, 0, 0, 0]);
    STANDARD.encode(b)
}

#[test]
fn output_caps_in_every_spelling() {
    let max = |b: Value| facts(&b).max_output_tokens;
    assert_eq!(
        max(json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100, "messages": []})),
        Some(100)
    );
    assert_eq!(
        max(json!({"messages": [], "inferenceConfig": {"maxTokens": 200}})),
        Some(200)
    );
    assert_eq!(
        max(json!({"messages": [], "inferenceConfig": {"max_new_tokens": 300}})),
        Some(300)
    );
    assert_eq!(max(json!({"prompt": "x", "max_gen_len": 400})), Some(400));
    assert_eq!(
        max(json!({"inputText": "x", "textGenerationConfig": {"maxTokenCount": 500}})),
        Some(500)
    );
    assert_eq!(max(json!({"messages": []})), None);
    // Two spellings at once: the larger bounds the call.
    assert_eq!(
        max(json!({"max_tokens": 10, "inferenceConfig": {"maxTokens": 9000}})),
        Some(9000)
    );
    let f = facts(&json!({"modelId": "amazon.nova-reel-v1:0", "modelInput": {}, "outputDataConfig": {}}));
    assert_eq!(f.model_id.as_deref(), Some("amazon.nova-reel-v1:0"));
    let f = facts(&json!({"messages": [], "serviceTier": {"type": "priority"}}));
    assert_eq!(f.service_tier.as_deref(), Some("priority"));
    assert_eq!(request_facts(b"[1,2", "m"), RequestFacts::default());
}

#[test]
fn the_input_bound_counts_content_not_syntax() {
    let body = json!({"messages": [{"role": "user", "content": [{"text": "Say hi"}]}]});
    let tight = input(&body);
    // 64 per request + 4 per object/array (5 of them) + "user" + "Say hi"
    assert_eq!(tight.tokens, 64 + 5 * 4 + 4 + 6);
    assert!(!tight.external && !tight.cache_write);
    // Whitespace padding (a free-call trick against a bytes bound) adds nothing.
    let padded = format!("{}{}", " ".repeat(1 << 20), body);
    let f = request_facts(padded.as_bytes(), "m");
    assert_eq!(f.input.unwrap().tokens, tight.tokens);
    // Escapes count as the bytes they decode to: "\u00e9" is é, two bytes.
    let escaped = br#"{"messages":[{"content":[{"text":"\u00e9"}]}]}"#;
    assert_eq!(request_facts(escaped, "m").input.unwrap().tokens, 64 + 5 * 4 + 2);
}

#[test]
fn cache_writes_are_asked_for_by_cache_points_or_cache_control() {
    assert!(
        input(&json!({"messages": [{"content": [{"text": "x"}, {"cachePoint": {"type": "default"}}]}]})).cache_write
    );
    assert!(
        input(&json!({"system": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}]})).cache_write
    );
    assert!(!input(&json!({"messages": [{"content": [{"text": "cachePoint"}]}]})).cache_write);
}

#[test]
fn images_count_by_their_size_and_media_elsewhere_by_the_context_window() {
    let converse = |source: Value| json!({"messages": [{"content": [{"image": {"format": "png", "source": source}}]}]});
    let base = input(&converse(json!({}))).tokens;
    // Claude: 1000 × 1000 / 750, rounded up
    let img = input(&converse(json!({"bytes": png(1000, 1000)})));
    assert_eq!(img.tokens, base + 1_334);
    assert!(!img.external);
    // Anthropic's own shape, for another family: one token per 400 px
    let anthropic =
        json!({"messages": [{"content": [{"type": "image", "source": {"type": "base64", "data": png(400, 400)}}]}]});
    let f = request_facts(
        anthropic.to_string().as_bytes(),
        "meta.llama4-maverick-17b-instruct-v1:0",
    );
    assert!(f.input.unwrap().tokens >= 400 && !f.input.unwrap().external);
    // Not carried, or not measurable: the context window bounds it.
    assert!(input(&converse(json!({"s3Location": {"uri": "s3://bucket/cat.png"}}))).external);
    assert!(input(&converse(json!({"bytes": STANDARD.encode(b"%PDF-1.7 not an image")}))).external);
    // Plain text under a media key is text.
    assert!(!input(&json!({"source": {"type": "text", "data": "plain words!"}})).external);
}

#[test]
fn tools_add_the_tool_prompt_and_their_schema_keys() {
    let without = input(&json!({"messages": []})).tokens;
    let tools = json!({"messages": [], "toolConfig": {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}]}});
    let with = input(&tools).tokens;
    assert!(with >= without + TOOLS_ALLOWANCE + "toolSpecnameinputSchemajsontype".len() as u64);
}

#[test]
fn units_ordered_by_async_image_and_guardrail_calls() {
    let reel = json!({"modelId": "amazon.nova-reel-v1:1", "modelInput": {"taskType": "TEXT_VIDEO",
        "videoGenerationConfig": {"durationSeconds": 12, "fps": 24}}});
    assert_eq!(facts(&reel).video_seconds, Some(12));
    let luma = json!({"modelId": "luma.ray-v2:0", "modelInput": {"prompt": "x", "duration": "9s"}});
    assert_eq!(facts(&luma).video_seconds, Some(9));
    let canvas = json!({"taskType": "TEXT_IMAGE", "imageGenerationConfig": {"numberOfImages": 3}});
    assert_eq!(facts(&canvas).images, Some(3));
    let text = "x".repeat(2_500);
    let guardrail = json!({"source": "INPUT", "content": [{"text": {"text": text}}]});
    // 3 units for the text, 1 for "INPUT"
    assert_eq!(input(&guardrail).text_units, 4);
}
