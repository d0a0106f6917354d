//! Item 6 (output): a request's own `max_tokens` bounds its output even above the
//! catalog's `maxOutputTokens` (1,024 in the e2e catalog): a catalog can be stale,
//! Bedrock enforces the model's real limit. Through real Envoy, against a budget
//! that covers the catalog's bound but not the request's.

use std::time::Duration;

use aws_sdk_bedrockruntime::primitives::Blob;
use tally_tests::client::Attribution;
use tally_tests::fixtures::stack::{Stack, StackOptions};
use tally_tests::scenarios::{US_HAIKU, config, team};

/// An Anthropic invoke body asking for `max_tokens` output tokens.
fn asking_for(max_tokens: u64) -> Blob {
    let body = serde_json::json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "[[usage in=10 out=5]]"}]}],
    });
    Blob::new(body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_max_tokens_above_the_catalogs_maximum_is_the_bound() {
    // 0.10 USD covers 1,024 out at 5.5 $/1M (~0.0056) but not 100,000 out (0.55).
    let stack = Stack::start(StackOptions::new(config(vec![team("search", "0.10", &[], &[])]))).await;
    let client = stack.client(Attribution::team("search"));
    let refused = client.invoke(US_HAIKU, asking_for(100_000)).await;
    let err = refused.expect_err("refused: its own max_tokens cannot be covered");
    let message = format!("{:?}", err.into_service_error());
    assert!(message.contains("ServiceQuotaExceeded"), "{message}");
    client
        .invoke(US_HAIKU, asking_for(1_000))
        .await
        .expect("a request within the budget passes");
    let ledger = stack.extproc.wait_ledger(2, Duration::from_secs(15)).await;
    let outcomes: Vec<_> = ledger.iter().map(|r| r["outcome"].as_str().unwrap_or("")).collect();
    assert!(outcomes.contains(&"blocked") && outcomes.contains(&"ok"), "{ledger:#?}");
    let sum: i64 = ledger.iter().map(|r| r["costNanos"].as_i64().unwrap_or(0)).sum();
    assert_eq!(
        stack.counter("search", "team", "spent").await,
        sum,
        "counters == ledger sum"
    );
    assert_eq!(stack.counter("search", "team", "reserved").await, 0);
}
