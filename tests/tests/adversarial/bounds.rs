//! Items 6 and 7: the worst case is a true bound, and a tight one. A request's own
//! `max_tokens` bounds its output even above the catalog's `maxOutputTokens` (1,024 in
//! the e2e catalog: a catalog can be stale, Bedrock enforces the model's real limit);
//! input is bounded by content, media by reference by the context window; a service
//! tier is priced at its own prices. Through real Envoy.

use std::time::Duration;

use aws_sdk_bedrockruntime::primitives::Blob;
use tally_config::compiled::{Prices, TierPrices};
use tally_config::money::NanosPerMillion;
use tally_tests::client::Attribution;
use tally_tests::fixtures::stack::{Stack, StackOptions};
use tally_tests::scenarios::{HAIKU, US_HAIKU, config, team};

use crate::envoy_h2::post_with;

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

/// A Converse body asking for 100 output tokens, with `content` as its one content block.
fn converse_with(content: serde_json::Value) -> Vec<u8> {
    serde_json::json!({
        "messages": [{"role": "user", "content": [{"text": "[[usage in=10 out=5]]"}, content]}],
        "inferenceConfig": {"maxTokens": 100},
    })
    .to_string()
    .into_bytes()
}

/// Items 6 and 7: the input bound is the content, not the bytes — whitespace padding does not
/// inflate it (a padded call fits a budget its bytes would not), and media the body only names
/// (`s3Location`) is bounded by the context window (refused where its bytes would fit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_input_bound_is_the_content_and_media_by_reference_the_context_window() {
    let stack = crate::exhausted_stack().await;
    let path = format!("/model/{HAIKU}/converse");
    let port = stack.envoy.listen_port();
    // 200 KB of whitespace: as bytes at the dearest input price, 0.4 USD; as content, ~0.0006.
    let mut padded = converse_with(serde_json::json!({"text": "hi"}));
    padded.extend(std::iter::repeat_n(b' ', 200_000));
    let (status, _, body) = post_with(port, &path, &[], padded).await;
    assert_eq!(status, 200, "padding costs nothing: {body}");
    // An image Bedrock reads from S3: up to the model's context window of input, over 0.01 USD.
    let by_reference =
        serde_json::json!({"image": {"format": "png", "source": {"s3Location": {"uri": "s3://bucket/cat.png"}}}});
    let (status, error_type, body) = post_with(port, &path, &[], converse_with(by_reference)).await;
    assert_eq!(
        (status, error_type.as_str()),
        (400, "ServiceQuotaExceededException"),
        "{body}"
    );
    let ledger = stack.extproc.wait_ledger(2, Duration::from_secs(15)).await;
    let outcomes: Vec<_> = ledger.iter().map(|r| r["outcome"].as_str().unwrap_or("")).collect();
    assert!(outcomes.contains(&"ok") && outcomes.contains(&"blocked"), "{ledger:#?}");
    crate::assert_counters_match_ledger(&stack.redis).await;
}

/// Item 6: a call on the priority tier is priced (and bounded) at the tier's prices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_priority_tier_call_is_priced_at_the_tier() {
    let mut cfg = config(vec![team("search", "1.00", &[], &[])]);
    let haiku = cfg
        .catalog
        .entries
        .iter_mut()
        .find(|e| e.pattern == HAIKU)
        .expect("haiku");
    haiku.tiers = vec![TierPrices {
        tier: "priority".into(),
        prices: Prices {
            input: NanosPerMillion::parse_usd("1.75").unwrap(),
            output: NanosPerMillion::parse_usd("8.75").unwrap(),
            ..Prices::default()
        },
    }];
    let stack = Stack::start(StackOptions::new(cfg)).await;
    let body = serde_json::json!({"messages": [{"role": "user", "content": [{"text": "[[usage in=1000 out=1000]]"}]}]});
    let path = format!("/model/{HAIKU}/converse");
    let tier = [("x-amzn-bedrock-service-tier", "priority")];
    let (status, _, answer) = post_with(stack.envoy.listen_port(), &path, &tier, body.to_string().into_bytes()).await;
    assert_eq!(status, 200, "{answer}");
    let ledger = stack.extproc.wait_ledger(1, Duration::from_secs(15)).await;
    // 1,000 × 1.75 + 1,000 × 8.75 USD per 1M (standard: 1 + 5)
    assert_eq!(ledger[0]["costNanos"].as_i64(), Some(10_500_000), "{ledger:#?}");
    assert_eq!(ledger[0]["serviceTier"], "priority");
}
