//! AWS event-stream framing of Bedrock's streaming responses: event, chunk and
//! exception frames. The one encoder of the test crate: the simulator streams
//! these, and the gRPC suite feeds them to the ext_proc as Envoy would.

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};

/// One frame with a JSON payload: its `:message-type` and the header naming what it carries.
fn frame(message_type: &'static str, (name, value): (&'static str, String), payload: &Value) -> Bytes {
    let message = Message::new(Bytes::from(payload.to_string()))
        .add_header(Header::new(name, HeaderValue::String(value.into())))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(":message-type", HeaderValue::String(message_type.into())));
    let mut buf = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut buf).expect("event-stream frame encodes");
    Bytes::from(buf)
}

/// One `:message-type event` frame with a JSON payload.
pub fn event_frame(event_type: &str, payload: &Value) -> Bytes {
    frame("event", (":event-type", event_type.to_string()), payload)
}

fn chunk_payload(model_json: &Value) -> Value {
    json!({"bytes": base64::engine::general_purpose::STANDARD.encode(model_json.to_string())})
}

/// One `chunk` event of an invoke stream: `{"bytes": base64(model json)}`.
pub fn chunk_frame(model_json: &Value) -> Bytes {
    event_frame("chunk", &chunk_payload(model_json))
}

/// A `chunk` event with the random `"p"` padding field Bedrock adds, which readers must ignore.
pub fn padded_chunk_frame(model_json: &Value, padding: &str) -> Bytes {
    let mut payload = chunk_payload(model_json);
    payload["p"] = json!(padding);
    event_frame("chunk", &payload)
}

/// An in-band `:message-type exception` frame (the only error signal once a stream has started).
pub fn exception_frame(code: &str, message: &str) -> Bytes {
    let mut type_name = code.to_string();
    if let Some(first) = type_name.get_mut(..1) {
        first.make_ascii_lowercase();
    }
    frame(
        "exception",
        (":exception-type", type_name),
        &json!({ "message": message }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::scenario::SimUsage;
    use super::super::wire::{converse_stream_events, pieces};
    use super::*;

    #[test]
    fn frames_decode_incrementally_with_the_smithy_decoder() {
        use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
        let u = SimUsage {
            input: 3,
            output: 2,
            ..SimUsage::default()
        };
        let frames: Vec<Bytes> = converse_stream_events(&u, &pieces(2), 1)
            .iter()
            .map(|(t, p)| event_frame(t, p))
            .collect();
        let all: Vec<u8> = frames.iter().flat_map(|f| f.to_vec()).collect();
        // Feed 7 bytes at a time: frames split across body chunks.
        let (mut decoder, mut buf, mut types) = (MessageFrameDecoder::new(), bytes::BytesMut::new(), Vec::new());
        for piece in all.chunks(7) {
            buf.extend_from_slice(piece);
            while let DecodedFrame::Complete(m) = decoder.decode_frame(&mut buf).expect("valid frame") {
                let t = m
                    .headers()
                    .iter()
                    .find(|h| h.name().as_str() == ":event-type")
                    .expect(":event-type");
                types.push(t.value().as_string().expect("string").as_str().to_string());
            }
        }
        assert_eq!(
            types,
            [
                "messageStart",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockStop",
                "messageStop",
                "metadata"
            ]
        );
        let chunk = chunk_frame(&json!({"type": "message_stop"}));
        let message = aws_smithy_eventstream::frame::read_message_from(chunk).expect("chunk frame");
        let payload: Value = serde_json::from_slice(message.payload()).unwrap();
        let inner = base64::engine::general_purpose::STANDARD
            .decode(payload["bytes"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&inner).unwrap(),
            json!({"type": "message_stop"})
        );
    }
}
