//! The Bedrock path parser, model-id decoding, ARNs and endpoint regions. Any
//! model id, percent-encoded the SDKs' way, parses back to itself (when Bedrock
//! would accept its length); what is parsed stays within its bounds.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tally_extproc::bedrock::{self, Arn, MAX_MODEL_ID_LEN, Operation};

#[derive(Arbitrary, Debug)]
struct Input {
    get: bool,
    path: String,
    model_id: String,
    authority: String,
}

fuzz_target!(|input: Input| {
    let method = if input.get { "GET" } else { "POST" };
    if let Some(call) = bedrock::parse_call(method, &input.path) {
        if let Some(m) = &call.model_id {
            assert!(!m.is_empty() && m.len() <= MAX_MODEL_ID_LEN, "{call:?}");
        }
        assert_eq!(call.model_id.is_none(), !input.path.starts_with("/model/"), "{call:?}");
    }
    let _ = bedrock::decode_model_id(&input.path);

    let encoded = utf8_percent_encode(&input.model_id, NON_ALPHANUMERIC).to_string();
    let call = bedrock::parse_call("POST", &format!("/model/{encoded}/converse-stream"));
    let fits = !input.model_id.is_empty() && input.model_id.len() <= MAX_MODEL_ID_LEN;
    match call {
        Some(c) => {
            assert_eq!(c.operation, Operation::ConverseStream);
            assert_eq!(c.model_id.as_deref(), Some(input.model_id.as_str()));
        }
        None => assert!(!fits, "an encoded id that fits did not parse: {:?}", input.model_id),
    }

    if let Some(arn) = Arn::parse(&input.model_id) {
        assert!(input.model_id.starts_with("arn:") && input.model_id.ends_with(arn.resource_id));
    }
    let priced = bedrock::pricing_model_id(&input.model_id);
    assert!(input.model_id.ends_with(priced));

    if let Some(region) = bedrock::region_from_host(&input.authority) {
        assert!(input.authority.contains(region));
        assert!(
            region.len() <= 20
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
    }
});
