//! Item 10 and header spoofing: what a client says about where a call goes, or what it
//! costs, changes nothing. A gateway forwards every call to one endpoint
//! (`--upstream-region`), so a `Host` naming a cheaper region's endpoint does not buy
//! that region's price; `x-tally-*` headers a client sends never reach Bedrock. Through
//! real Envoy with a raw HTTP/2 client (the SDKs set `Host` from the endpoint).

use std::time::Duration;

use tally_config::compiled::{PriceEntry, Prices};
use tally_config::money::NanosPerMillion;
use tally_tests::fixtures::stack::{Stack, StackOptions};
use tally_tests::scenarios::{HAIKU, config, team};

use crate::envoy_h2::post_to;

/// A Converse body asking for 1,000 output tokens: 0.005 USD at Haiku's 5 USD/1M.
fn converse_body() -> Vec<u8> {
    serde_json::json!({
        "messages": [{"role": "user", "content": [{"text": "[[usage in=10 out=5]]"}]}],
        "inferenceConfig": {"maxTokens": 1000},
    })
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_naming_a_cheaper_region_does_not_buy_its_price() {
    // us-east-2 is (fictionally) almost free; the gateway forwards to us-east-1.
    let mut cfg = config(vec![team("search", "0.001", &[], &[])]);
    cfg.catalog.entries.insert(
        0,
        PriceEntry {
            pattern: HAIKU.into(),
            regions: vec!["us-east-2".into()],
            prices: Prices {
                input: NanosPerMillion(1),
                output: NanosPerMillion(1),
                ..Prices::default()
            },
            max_output_tokens: 1024,
            source: "cheap region".into(),
            ..PriceEntry::default()
        },
    );
    let mut opts = StackOptions::new(cfg);
    opts.extproc_args = vec!["--upstream-region".into(), "us-east-1".into()];
    let stack = Stack::start(opts).await;
    let path = format!("/model/{HAIKU}/converse");
    let (status, error_type, body) = post_to(
        stack.envoy.listen_port(),
        "bedrock-runtime.us-east-2.amazonaws.com",
        &path,
        "search",
        converse_body(),
        None,
    )
    .await;
    assert_eq!(
        (status, error_type.as_str()),
        (400, "ServiceQuotaExceededException"),
        "{body}"
    );
    let ledger = stack.extproc.wait_ledger(1, Duration::from_secs(15)).await;
    assert_eq!(ledger[0]["region"], "us-east-1", "recorded where it would have gone");
    assert_eq!(stack.sim.stats().total_requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tally_headers_a_client_sends_never_reach_bedrock() {
    let stack = Stack::start(StackOptions::new(config(vec![team("search", "1.00", &[], &[])]))).await;
    let path = format!("/model/{HAIKU}/converse");
    let tcp = stack.envoy.listen_port();
    let (status, _, body) = crate::envoy_h2::post_with(
        tcp,
        &path,
        &[
            ("x-tally-cost-usd", "0"),
            ("x-tally-team", "free"),
            ("x-tally-budget", "none"),
        ],
        converse_body(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let received = stack.sim.stats().received;
    let headers = &received.last().expect("the call reached Bedrock").headers;
    assert!(!headers.keys().any(|k| k.starts_with("x-tally-")), "{headers:?}");
    let ledger = stack.extproc.wait_ledger(1, Duration::from_secs(15)).await;
    assert!(ledger[0]["costNanos"].as_i64().unwrap_or(0) > 0, "charged: {ledger:#?}");
    crate::assert_counters_match_ledger(&stack.redis).await;
}
