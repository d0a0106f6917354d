//! AWS event-stream frames built from structured fuzz input. CRCs are right by
//! default, so the decoder's paths past the checksums are reached at all; a
//! [`Corruption`] flips one byte to reach the paths after a broken frame.

use arbitrary::Arbitrary;
use base64::Engine;

use crate::usage_json::UsageJson;

#[derive(Arbitrary, Debug, Clone)]
pub enum MessageType {
    Event,
    Exception,
    Error,
    Other(String),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum EventType {
    Chunk,
    Metadata,
    ContentBlockDelta,
    Other(String),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Payload {
    /// ConverseStream `metadata` / Nova shape: the usage JSON itself.
    Usage(UsageJson),
    /// InvokeModelWithResponseStream: `{"bytes":"<base64 of the usage JSON>"}`.
    Chunk(UsageJson),
    /// An Anthropic text delta, the common chunk (the pre-filter skips it).
    TextDelta(String),
    /// `{"bytes":"<base64 of these bytes>"}`.
    ChunkOf(Vec<u8>),
    Raw(Vec<u8>),
}

/// Header values of every wire type (0–9), for the header walker.
#[derive(Arbitrary, Debug, Clone)]
pub enum HeaderValue {
    True,
    False,
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Bytes(Vec<u8>),
    Str(String),
    Timestamp(i64),
    Uuid([u8; 16]),
}

#[derive(Arbitrary, Debug, Clone)]
pub struct FrameSpec {
    pub message_type: MessageType,
    pub event_type: EventType,
    pub payload: Payload,
    pub extra: Vec<(String, HeaderValue)>,
    /// Also send `:exception-type` (read only on non-event frames).
    pub exception_type: Option<String>,
}

/// One byte of the encoded stream XOR-ed with a non-zero mask.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Corruption {
    pub at: u32,
    pub mask: u8,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Payload {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Payload::Usage(u) => u.render().into_bytes(),
            Payload::Chunk(u) => format!(r#"{{"bytes":"{}","p":"abc"}}"#, b64(u.render().as_bytes())).into_bytes(),
            Payload::TextDelta(t) => {
                let text = t.replace(['"', '\\'], "");
                let inner = format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"text":"{text}"}}}}"#);
                format!(r#"{{"bytes":"{}"}}"#, b64(inner.as_bytes())).into_bytes()
            }
            Payload::ChunkOf(b) => format!(r#"{{"bytes":"{}"}}"#, b64(b)).into_bytes(),
            Payload::Raw(b) => b.clone(),
        }
    }
}

fn string_of(m: &MessageType) -> &str {
    match m {
        MessageType::Event => "event",
        MessageType::Exception => "exception",
        MessageType::Error => "error",
        MessageType::Other(s) => s,
    }
}

fn event_of(e: &EventType) -> &str {
    match e {
        EventType::Chunk => "chunk",
        EventType::Metadata => "metadata",
        EventType::ContentBlockDelta => "contentBlockDelta",
        EventType::Other(s) => s,
    }
}

/// Appends one encoded header; names longer than 255 bytes are cut (the wire's limit).
fn put_header(out: &mut Vec<u8>, name: &str, value: &HeaderValue) {
    let name = &name.as_bytes()[..name.len().min(255)];
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    let var = |out: &mut Vec<u8>, ty: u8, b: &[u8]| {
        let b = &b[..b.len().min(u16::MAX as usize)];
        out.push(ty);
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        out.extend_from_slice(b);
    };
    match value {
        HeaderValue::True => out.push(0),
        HeaderValue::False => out.push(1),
        HeaderValue::Byte(v) => out.extend_from_slice(&[2, *v as u8]),
        HeaderValue::Short(v) => [&[3][..], &v.to_be_bytes()]
            .iter()
            .for_each(|s| out.extend_from_slice(s)),
        HeaderValue::Int(v) => [&[4][..], &v.to_be_bytes()]
            .iter()
            .for_each(|s| out.extend_from_slice(s)),
        HeaderValue::Long(v) => [&[5][..], &v.to_be_bytes()]
            .iter()
            .for_each(|s| out.extend_from_slice(s)),
        HeaderValue::Bytes(b) => var(out, 6, b),
        HeaderValue::Str(s) => var(out, 7, s.as_bytes()),
        HeaderValue::Timestamp(v) => [&[8][..], &v.to_be_bytes()]
            .iter()
            .for_each(|s| out.extend_from_slice(s)),
        HeaderValue::Uuid(u) => [&[9][..], &u[..]].iter().for_each(|s| out.extend_from_slice(s)),
    }
}

/// A frame with both CRCs right, from encoded headers and a payload.
pub fn frame(headers: &[u8], payload: &[u8]) -> Vec<u8> {
    let total = (12 + headers.len() + payload.len() + 4) as u32;
    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(headers);
    out.extend_from_slice(payload);
    let message_crc = crc32fast::hash(&out);
    out.extend_from_slice(&message_crc.to_be_bytes());
    out
}

impl FrameSpec {
    pub fn encode(&self) -> Vec<u8> {
        let mut headers = Vec::new();
        let str_header = |s: &str| HeaderValue::Str(s.to_string());
        put_header(
            &mut headers,
            ":message-type",
            &str_header(string_of(&self.message_type)),
        );
        put_header(&mut headers, ":event-type", &str_header(event_of(&self.event_type)));
        if let Some(t) = &self.exception_type {
            put_header(&mut headers, ":exception-type", &str_header(t));
        }
        for (name, value) in self.extra.iter().take(4) {
            put_header(&mut headers, name, value);
        }
        frame(&headers, &self.payload.bytes())
    }
}

/// Encodes `frames` back to back, then applies `corruption` if any.
pub fn stream(frames: &[FrameSpec], corruption: Option<Corruption>) -> Vec<u8> {
    let mut out: Vec<u8> = frames.iter().flat_map(FrameSpec::encode).collect();
    if let Some(c) = corruption
        && !out.is_empty()
    {
        let at = c.at as usize % out.len();
        out[at] ^= c.mask.max(1);
    }
    out
}
