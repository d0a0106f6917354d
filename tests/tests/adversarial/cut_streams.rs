//! Item 4: a client that hangs up on an Anthropic invoke stream right after its
//! `message_start` (which says `output_tokens: 1`) must not be charged one output
//! token: only a final usage is the call's cost, so the cut stream is charged its
//! worst-case reservation and recorded `incomplete`. Through real Envoy: with a
//! budget that covers one worst case but not two, the next call is refused.

use std::time::Duration;

use tally_tests::client::{Attribution, anthropic_body, invoke_stream_cut_after};
use tally_tests::expect::{PricesNanos, cost_nanos, record_for};
use tally_tests::fixtures::stack::{Stack, StackOptions};
use tally_tests::scenarios::{US_HAIKU, config, team};

/// US Haiku in the e2e catalog, nano-USD per 1M tokens.
const US_HAIKU_PRICES: PricesNanos = [1_100_000_000, 5_500_000_000, 110_000_000, 1_375_000_000, 2_200_000_000];
/// 40 chunks 100 ms apart with 500 input tokens: time to hang up in the middle.
const SLOW_STREAM: &str = "[[usage in=500 out=40]] [[chunks 40]] [[chunk-delay-ms 100]]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_after_message_start_is_charged_its_worst_case() {
    // One worst case (~0.0032 USD: ~170 body bytes at 2.2 $/1M + 512 out at 5.5 $/1M) fits, two do not.
    let stack = Stack::start(StackOptions::new(config(vec![team(
        "search",
        "0.005",
        &["acme"],
        &["rag"],
    )])))
    .await;
    let client = stack.client(Attribution::new("search", "acme", "rag"));
    // message_start (input_tokens=500, output_tokens=1) and the first delta, then hang up.
    let id = invoke_stream_cut_after(&client, US_HAIKU, anthropic_body(SLOW_STREAM), 2).await;
    let ledger = stack.extproc.wait_ledger(1, Duration::from_secs(15)).await;
    let record = record_for(&ledger, &id);
    assert_eq!(record["outcome"], "incomplete", "{record:#}");
    let charged = record["costNanos"].as_i64().expect("costNanos");
    let provisional = cost_nanos([500, 1, 0, 0, 0], US_HAIKU_PRICES);
    let finished = cost_nanos([500, 40, 0, 0, 0], US_HAIKU_PRICES);
    assert!(
        charged > finished && charged > provisional,
        "charged the worst case ({charged}), not message_start's count ({provisional}): {record:#}"
    );
    assert_eq!(
        stack.counter("search", "team", "spent").await,
        charged,
        "counters == ledger"
    );
    assert_eq!(stack.counter("search", "team", "reserved").await, 0);
    let refused = client.invoke_stream(US_HAIKU, anthropic_body(SLOW_STREAM)).await;
    assert!(refused.is_err(), "the budget cannot cover a second worst case");
    let ledger = stack.extproc.wait_ledger(2, Duration::from_secs(15)).await;
    assert!(ledger.iter().any(|r| r["outcome"] == "blocked"), "{ledger:#?}");
    let sum: i64 = ledger.iter().map(|r| r["costNanos"].as_i64().unwrap_or(0)).sum();
    assert_eq!(
        stack.counter("search", "team", "spent").await,
        sum,
        "counters == ledger sum"
    );
}
