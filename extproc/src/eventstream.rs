//! Incremental AWS event-stream decoding, and the usage inside Bedrock streams.
//!
//! Frames (`total_len | headers_len | prelude_crc | headers | payload | message_crc`,
//! big-endian) arrive split across arbitrary body chunks. [`FrameDecoder`] keeps
//! at most one partial frame, verifies both CRCs and refuses absurd lengths, so
//! memory per stream stays bounded whatever the stream's length. After a corrupt
//! frame it stops decoding (the stream cannot be resynchronised) and says so;
//! the bytes still flow to the client — decoding is observation, never a gate.

use base64::Engine;

use crate::usage::{self, Accumulator};

const PRELUDE_LEN: usize = 12;
const MIN_FRAME_LEN: usize = PRELUDE_LEN + 4;
/// Frames larger than this are treated as corruption (smithy-rs uses 16 MiB too).
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame length {0} is outside {MIN_FRAME_LEN}..={MAX_FRAME_LEN}")]
    BadLength(usize),
    #[error("prelude CRC mismatch")]
    PreludeCrc,
    #[error("message CRC mismatch")]
    MessageCrc,
    #[error("malformed headers")]
    Headers,
}

/// The parts of a frame Tally reads, borrowed from the decoder's input (no copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Frame<'a> {
    /// `:message-type`: `event` or `exception` (or `error`).
    pub message_type: &'a [u8],
    /// `:event-type` or, for exceptions, `:exception-type`.
    pub event_type: &'a [u8],
    pub payload: &'a [u8],
}

/// Decodes frames from a byte stream delivered in arbitrary pieces.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    failed: Option<FrameError>,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The error that stopped decoding, if any.
    pub fn failed(&self) -> Option<&FrameError> {
        self.failed.as_ref()
    }

    /// Bytes held for an incomplete frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds a chunk and calls `on_frame` for every frame it completes.
    pub fn push(&mut self, chunk: &[u8], mut on_frame: impl FnMut(Frame<'_>)) {
        if self.failed.is_some() {
            return;
        }
        // Fast path: nothing buffered, decode straight from the chunk.
        let mut input: &[u8] = chunk;
        if !self.buf.is_empty() {
            self.buf.extend_from_slice(chunk);
            input = &[];
        }
        let data: &[u8] = if self.buf.is_empty() { input } else { &self.buf };
        let mut pos = 0;
        let mut error = None;
        while data.len() - pos >= PRELUDE_LEN {
            match decode_one(&data[pos..]) {
                Ok(Some((frame, len))) => {
                    on_frame(frame);
                    pos += len;
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = error {
            self.failed = Some(e);
            self.buf = Vec::new();
            return;
        }
        if self.buf.is_empty() {
            self.buf.extend_from_slice(&input[pos..]);
        } else {
            self.buf.drain(..pos);
        }
    }
}

/// One frame from the front of `data`: `Ok(None)` when it is not all there yet.
fn decode_one(data: &[u8]) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let total = u32::from_be_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
    let headers_len = u32::from_be_bytes(data[4..8].try_into().expect("4 bytes")) as usize;
    let prelude_crc = u32::from_be_bytes(data[8..12].try_into().expect("4 bytes"));
    if crc32fast::hash(&data[0..8]) != prelude_crc {
        return Err(FrameError::PreludeCrc);
    }
    if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&total) || headers_len > total - MIN_FRAME_LEN {
        return Err(FrameError::BadLength(total));
    }
    if data.len() < total {
        return Ok(None);
    }
    let message_crc = u32::from_be_bytes(data[total - 4..total].try_into().expect("4 bytes"));
    if crc32fast::hash(&data[..total - 4]) != message_crc {
        return Err(FrameError::MessageCrc);
    }
    let headers = &data[PRELUDE_LEN..PRELUDE_LEN + headers_len];
    let mut frame = Frame {
        payload: &data[PRELUDE_LEN + headers_len..total - 4],
        ..Frame::default()
    };
    let mut exception_type = None;
    for (name, value) in (HeaderIter { rest: headers }) {
        let value = value?;
        match name {
            b":message-type" => frame.message_type = value,
            b":event-type" => frame.event_type = value,
            b":exception-type" | b":error-code" => exception_type = Some(value),
            _ => {}
        }
    }
    if frame.message_type != b"event"
        && let Some(t) = exception_type
    {
        frame.event_type = t;
    }
    Ok(Some((frame, total)))
}

/// Iterates `(name, string-or-bytes value)` over encoded headers; values of
/// other types are skipped (yielded empty).
struct HeaderIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a [u8], Result<&'a [u8], FrameError>);

    fn next(&mut self) -> Option<Self::Item> {
        let r = self.rest;
        if r.is_empty() {
            return None;
        }
        let fail = |this: &mut Self| {
            this.rest = &[];
            Some((&b""[..], Err(FrameError::Headers)))
        };
        let name_len = r[0] as usize;
        if r.len() < 1 + name_len + 1 {
            return fail(self);
        }
        let name = &r[1..1 + name_len];
        let ty = r[1 + name_len];
        let body = &r[2 + name_len..];
        let fixed = |n: usize| if body.len() >= n { Some((n, &body[..0])) } else { None };
        let parsed = match ty {
            0 | 1 => Some((0, &body[..0])),
            2 => fixed(1),
            3 => fixed(2),
            4 => fixed(4),
            5 | 8 => fixed(8),
            9 => fixed(16),
            6 | 7 => {
                if body.len() < 2 {
                    None
                } else {
                    let len = u16::from_be_bytes([body[0], body[1]]) as usize;
                    (body.len() >= 2 + len).then(|| (2 + len, &body[2..2 + len]))
                }
            }
            _ => None,
        };
        match parsed {
            Some((consumed, value)) => {
                self.rest = &body[consumed..];
                Some((name, Ok(value)))
            }
            None => fail(self),
        }
    }
}

/// Follows a Bedrock response stream and keeps the usage it reports.
#[derive(Debug, Default)]
pub struct StreamUsage {
    decoder: FrameDecoder,
    pub usage: Accumulator,
    /// `:exception-type` of an exception frame, if the stream carried one.
    pub exception: Option<String>,
    pub frames: u64,
}

impl StreamUsage {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn decoder(&self) -> &FrameDecoder {
        &self.decoder
    }

    pub fn push(&mut self, chunk: &[u8]) {
        let usage = &mut self.usage;
        let exception = &mut self.exception;
        let frames = &mut self.frames;
        self.decoder.push(chunk, |frame| {
            *frames += 1;
            if frame.message_type != b"event" {
                exception.get_or_insert_with(|| String::from_utf8_lossy(frame.event_type).into_owned());
                return;
            }
            match frame.event_type {
                // ConverseStream: `{"usage": {...}, "metrics": {...}}`.
                b"metadata" => usage.observe(&usage::from_json_bytes(frame.payload)),
                // InvokeModelWithResponseStream: `{"bytes": "<base64 model JSON>"}`.
                b"chunk" => {
                    if let Some(inner) = chunk_bytes(frame.payload)
                        && mentions_usage(&inner)
                    {
                        usage.observe(&usage::from_stream_chunk(&inner));
                    }
                }
                _ => {}
            }
        });
    }
}

/// The model JSON inside an invoke-stream `chunk` event, or `None` when it
/// cannot carry usage. Anthropic text deltas (nearly every chunk) are told
/// apart from the first few decoded bytes, so only usage-bearing chunks are
/// decoded and parsed whole.
fn chunk_bytes(payload: &[u8]) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::STANDARD;
    let b64 = base64_field(payload)?;
    // 48 base64 characters decode to 36 bytes: enough for `{"type":"content_block_delta"`.
    if b64.len() > 48
        && let Ok(head) = STANDARD.decode(&b64[..48])
        && (head.starts_with(br#"{"type":"content_block_"#) || head.starts_with(br#"{"type":"ping""#))
    {
        return None;
    }
    STANDARD.decode(b64).ok()
}

/// The base64 text of `{"bytes":"…", …}`: found directly in the common
/// unescaped form, else through a JSON parse.
fn base64_field(payload: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    const KEY: &[u8] = br#""bytes":""#;
    if let Some(start) = memchr::memmem::find(payload, KEY).map(|i| i + KEY.len())
        && let Some(len) = memchr::memchr(b'"', &payload[start..])
        && !payload[start..start + len].contains(&b'\\')
    {
        return Some(std::borrow::Cow::Borrowed(&payload[start..start + len]));
    }
    #[derive(serde::Deserialize)]
    struct Chunk {
        bytes: String,
    }
    let c: Chunk = serde_json::from_slice(payload).ok()?;
    Some(std::borrow::Cow::Owned(c.bytes.into_bytes()))
}

/// Cheap pre-filter: most chunks are text deltas without any usage. Every
/// usage shape has `usage` or a `…Count`/`…_count` key in it.
fn mentions_usage(json: &[u8]) -> bool {
    memchr::memmem::find(json, b"usage").is_some() || memchr::memmem::find(json, b"ount").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    use base64::Engine;
    use tally_config::pricing::Usage;

    fn event(event_type: &str, payload: &[u8]) -> Vec<u8> {
        let msg = Message::new(payload.to_vec())
            .add_header(Header::new(":message-type", HeaderValue::String("event".into())))
            .add_header(Header::new(
                ":event-type",
                HeaderValue::String(event_type.to_string().into()),
            ))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ))
            .add_header(Header::new("flag", HeaderValue::Bool(true)))
            .add_header(Header::new("n", HeaderValue::Int64(7)));
        let mut out = Vec::new();
        write_message_to(&msg, &mut out).unwrap();
        out
    }

    fn exception(kind: &str) -> Vec<u8> {
        let msg = Message::new(br#"{"message":"boom"}"#.to_vec())
            .add_header(Header::new(":message-type", HeaderValue::String("exception".into())))
            .add_header(Header::new(
                ":exception-type",
                HeaderValue::String(kind.to_string().into()),
            ));
        let mut out = Vec::new();
        write_message_to(&msg, &mut out).unwrap();
        out
    }

    fn chunk(model_json: &str) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(model_json);
        event("chunk", format!(r#"{{"bytes":"{b64}","p":"abcdef"}}"#).as_bytes())
    }

    fn anthropic_stream() -> Vec<u8> {
        [
            chunk(r#"{"type":"message_start","message":{"usage":{"input_tokens":21,"output_tokens":1,"cache_read_input_tokens":5,"cache_creation_input_tokens":4,"cache_creation":{"ephemeral_5m_input_tokens":1,"ephemeral_1h_input_tokens":3}}}}"#),
            chunk(r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#),
            chunk(r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}"#),
            chunk(r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":21,"outputTokenCount":9,"invocationLatency":300,"firstByteLatency":100}}"#),
        ]
        .concat()
    }

    const EXPECTED: Usage = Usage {
        input: 21,
        output: 9,
        cache_read: 5,
        cache_write_5m: 1,
        cache_write_1h: 3,
    };

    #[test]
    fn invoke_stream_usage_at_every_split_point() {
        let stream = anthropic_stream();
        for split in 0..=stream.len() {
            let mut s = StreamUsage::new();
            s.push(&stream[..split]);
            s.push(&stream[split..]);
            assert_eq!(s.usage.usage(), EXPECTED, "split at {split}");
            assert_eq!(s.frames, 4);
            assert_eq!(s.decoder().buffered(), 0);
        }
    }

    #[test]
    fn byte_by_byte() {
        let mut s = StreamUsage::new();
        for b in anthropic_stream() {
            s.push(&[b]);
        }
        assert_eq!(s.usage.usage(), EXPECTED);
    }

    #[test]
    fn converse_stream_metadata() {
        let stream = [
            event("messageStart", br#"{"role":"assistant"}"#),
            event("contentBlockDelta", br#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#),
            event("messageStop", br#"{"stopReason":"end_turn"}"#),
            event("metadata", br#"{"usage":{"inputTokens":10,"outputTokens":20,"totalTokens":30,"cacheReadInputTokens":2},"metrics":{"latencyMs":5}}"#),
        ]
        .concat();
        let mut s = StreamUsage::new();
        for piece in stream.chunks(7) {
            s.push(piece);
        }
        assert_eq!(
            s.usage.usage(),
            Usage {
                input: 10,
                output: 20,
                cache_read: 2,
                ..Usage::default()
            }
        );
        assert!(s.exception.is_none());
    }

    #[test]
    fn exceptions_are_noted() {
        let mut s = StreamUsage::new();
        s.push(
            &[
                chunk(r#"{"type":"message_start","message":{"usage":{"input_tokens":3,"output_tokens":1}}}"#),
                exception("throttlingException"),
            ]
            .concat(),
        );
        assert_eq!(s.exception.as_deref(), Some("throttlingException"));
        assert!(s.usage.any());
    }

    #[test]
    fn a_stream_start_is_provisional_and_only_a_final_usage_completes() {
        let mut s = StreamUsage::new();
        s.push(&chunk(
            r#"{"type":"message_start","message":{"usage":{"input_tokens":25,"output_tokens":1}}}"#,
        ));
        s.push(&chunk(r#"{"generation":"x","generation_token_count":3}"#));
        assert!(
            s.usage.any() && !s.usage.final_seen() && !s.usage.complete(),
            "{:?}",
            s.usage
        );
        s.push(&chunk(r#"{"type":"message_delta","usage":{"output_tokens":15}}"#));
        assert!(s.usage.complete());
        assert_eq!((s.usage.usage().input, s.usage.usage().output), (25, 15));
        for last in [
            chunk(
                r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":2,"outputTokenCount":3}}"#,
            ),
            event("metadata", br#"{"usage":{"inputTokens":8,"outputTokens":9}}"#),
            chunk(r#"{"metadata":{"usage":{"inputTokens":8,"outputTokens":9}}}"#),
        ] {
            let mut s = StreamUsage::new();
            s.push(&last);
            assert!(s.usage.complete(), "{:?}", s.usage);
        }
    }

    #[test]
    fn corrupt_frames_stop_decoding_without_panicking() {
        let mut good = anthropic_stream();
        let last = good.len() - 1;
        good[last] ^= 0xff; // break the last frame's message CRC
        let mut s = StreamUsage::new();
        s.push(&good);
        assert_eq!(s.decoder().failed(), Some(&FrameError::MessageCrc));
        assert_eq!(s.frames, 3);

        let mut s = StreamUsage::new();
        let mut huge = Vec::new();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        huge.extend_from_slice(&0u32.to_be_bytes());
        huge.extend_from_slice(&crc32fast::hash(&huge[..8]).to_be_bytes());
        s.push(&huge);
        assert_eq!(s.decoder().failed(), Some(&FrameError::BadLength(u32::MAX as usize)));
        assert_eq!(s.decoder().buffered(), 0);

        let mut s = StreamUsage::new();
        s.push(b"this is not an event stream at all, just text");
        assert_eq!(s.decoder().failed(), Some(&FrameError::PreludeCrc));
        s.push(&anthropic_stream()); // stays stopped
        assert_eq!(s.frames, 0);
    }

    #[test]
    fn truncated_stream_keeps_what_it_saw_as_provisional() {
        let stream = anthropic_stream();
        let mut s = StreamUsage::new();
        s.push(&stream[..stream.len() / 2]);
        assert!(s.usage.any());
        assert!(!s.usage.final_seen(), "message_start is not the final usage");
        assert_eq!(s.usage.usage().input, 21);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512), cut in 0usize..512) {
            let mut s = StreamUsage::new();
            let cut = cut.min(data.len());
            s.push(&data[..cut]);
            s.push(&data[cut..]);
            proptest::prop_assert!(s.decoder().buffered() <= data.len());
        }

        #[test]
        fn arbitrary_chunking_gives_the_same_usage(cuts in proptest::collection::vec(1usize..64, 1..40)) {
            let stream = anthropic_stream();
            let mut s = StreamUsage::new();
            let mut pos = 0;
            for c in cuts {
                let end = (pos + c).min(stream.len());
                s.push(&stream[pos..end]);
                pos = end;
            }
            s.push(&stream[pos..]);
            proptest::prop_assert_eq!(s.usage.usage(), EXPECTED);
        }
    }
}
