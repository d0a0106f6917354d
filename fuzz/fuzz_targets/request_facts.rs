//! What a request tells before any money moves: the body's facts (output cap,
//! model, tier) and the headers' facts (operation, model, region, team, ids).
//! Ids stay within their bounds, the charge id names the request id and is
//! unique, the team is configured or `unknown`; nothing panics.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tally_extproc::bedrock::MAX_MODEL_ID_LEN;
use tally_extproc::exchange::facts::CallFacts;
use tally_extproc::exchange::{Headers, Options};
use tally_extproc::policy::Policy;
use tally_extproc::bounds;
use tally_fuzz::world;

#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Other(String),
}

const NAMES: [&str; 14] = [
    ":method",
    ":path",
    ":authority",
    "x-team-id",
    "x-tenant-id",
    "x-workflow-id",
    "amz-sdk-invocation-id",
    "x-request-id",
    "amz-sdk-request",
    "user-agent",
    "content-length",
    "x-amzn-bedrock-service-tier",
    "x-tally-cost-usd",
    "X-Team-Id",
];

#[derive(Arbitrary, Debug)]
struct Input {
    body: Vec<u8>,
    /// The model the body is read for (image token rules depend on its family).
    model: String,
    headers: Vec<(Name, String)>,
    principals: Vec<String>,
}

fuzz_target!(|input: Input| {
    let _ = bounds::request_facts(&input.body, &input.model);
    let headers = Headers(
        input
            .headers
            .into_iter()
            .map(|(n, v)| {
                let name = match n {
                    Name::Known(i) => NAMES[usize::from(i) % NAMES.len()].to_string(),
                    Name::Other(s) => s,
                };
                (name, v)
            })
            .collect(),
    );
    let policy = Policy::new(world::config(tally_config::money::Nanos(1_000), tally_config::money::Nanos(1_000)));
    let opts = Options::default();
    let Some(f) = CallFacts::from_headers(&headers, &opts, &policy, input.principals.clone()) else {
        return;
    };
    assert!(!f.request_id.is_empty() && f.request_id.len() <= 128, "{f:?}");
    assert!(f.charge_id.starts_with(&format!("{}/", f.request_id)), "{f:?}");
    let again = CallFacts::from_headers(&headers, &opts, &policy, input.principals).expect("the same call");
    assert_ne!(f.charge_id, again.charge_id, "a charge id is unique per exchange");
    assert!(f.model_id.len() <= MAX_MODEL_ID_LEN, "{f:?}");
    assert!(!f.region.is_empty());
    assert!(world::TEAMS.contains(&f.who.team.as_str()), "{f:?}");
    if let Some(c) = &f.client {
        assert!(c.starts_with("app/") && c.len() <= 4 + 64, "{f:?}");
    }
    let _ = (f.needs_body(), f.may_reserve_from_headers(), f.attribution_metadata());
});
