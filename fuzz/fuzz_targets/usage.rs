//! Every usage reader: JSON bodies, stream chunks and token-count headers, raw
//! or in Bedrock's shapes with fuzz-chosen counts, merged the way an exchange
//! merges them and priced. A chunk reads the same counts as a body; nothing
//! that is not a count is seen as one; nothing panics (overflow included: the
//! fuzz build has debug assertions).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tally_config::compiled::Prices;
use tally_config::money::NanosPerMillion;
use tally_config::pricing;
use tally_extproc::usage::{self, Accumulator, Observation};
use tally_fuzz::usage_json::UsageJson;

#[derive(Arbitrary, Debug)]
enum Body {
    Raw(Vec<u8>),
    Shaped(UsageJson),
}

#[derive(Arbitrary, Debug)]
struct Input {
    bodies: Vec<Body>,
    headers: Vec<(u8, String)>,
    prices: [u64; 5],
}

const COUNT_HEADERS: [&str; 5] = [
    "x-amzn-bedrock-input-token-count",
    "X-Amzn-Bedrock-Output-Token-Count",
    "x-amzn-bedrock-cache-read-input-token-count",
    "x-amzn-bedrock-cache-write-input-token-count",
    "content-type",
];

fuzz_target!(|input: Input| {
    let mut acc = Accumulator::default();
    let headers: Vec<(&str, &str)> = input
        .headers
        .iter()
        .map(|(n, v)| (COUNT_HEADERS[usize::from(*n) % COUNT_HEADERS.len()], v.as_str()))
        .collect();
    let from_headers = usage::from_headers(headers.iter().copied());
    assert!(!from_headers.provisional);
    acc.observe(&from_headers);
    for body in input.bodies.iter().take(8) {
        let bytes = match body {
            Body::Raw(b) => b.clone(),
            Body::Shaped(u) => u.render().into_bytes(),
        };
        let as_body = usage::from_json_bytes(&bytes);
        let as_chunk = usage::from_stream_chunk(&bytes);
        assert_eq!(
            Observation {
                provisional: false,
                ..as_chunk
            },
            as_body,
            "a chunk and a body read different counts"
        );
        if as_body.is_empty() {
            assert!(!Accumulator::default().any());
        }
        acc.observe(&as_chunk);
    }
    let used = acc.usage();
    let _ = (acc.complete(), acc.final_seen(), acc.cache_write_split_unknown());
    let [input_p, output, cache_read, write_5m, write_1h] = input.prices.map(NanosPerMillion);
    let prices = Prices {
        input: input_p,
        output,
        cache_read,
        cache_write_5m: write_5m,
        cache_write_1h: write_1h,
    };
    let cost = pricing::cost(&used, &prices);
    assert!(cost.0 >= 0, "negative cost {cost:?} for {used:?}");
});
