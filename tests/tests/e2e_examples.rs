//! End to end from the user's own objects: the shipped `examples/` TeamBudgets
//! and ModelPricing catalogs, compiled by the operator's compiler, drive the
//! real ext_proc behind the chart's Envoy.

use std::time::Duration;

use aws_sdk_bedrockruntime::error::ProvideErrorMetadata as _;
use tally_tests::client::{Attribution, anthropic_body};
use tally_tests::expect::{cost_nanos, record_for, usd_to_nanos};
use tally_tests::fixtures::stack::{Stack, StackOptions};
use tally_tests::fixtures::tools::workspace_root;
use tally_tests::scenarios::{US_HAIKU, compile_manifests};

/// `examples/catalog/application-profiles.yaml`: routes to [`US_HAIKU`].
const SEARCH_PROFILE: &str = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/sb7k2m9x1q4w";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_examples_attribute_price_and_restrict_calls() {
    let root = workspace_root();
    let config = compile_manifests(&[root.join("examples/teams"), root.join("examples/catalog")]);
    let stack = Stack::start(StackOptions::new(config)).await;

    // search / help-center / rag on the US Haiku profile: 1.1 in, 5.5 out per 1M (bedrock-on-demand.yaml).
    let search = stack.client(Attribution::new("search", "help-center", "rag"));
    let cost = cost_nanos(
        [1000, 100, 0, 0, 0],
        [1_100_000_000, 5_500_000_000, 110_000_000, 1_375_000_000, 2_200_000_000],
    );
    assert_eq!(cost, 1_650_000);
    let mut ids = Vec::new();
    for model_id in [US_HAIKU, SEARCH_PROFILE] {
        search
            .converse(model_id, "[[usage in=1000 out=100]]")
            .await
            .unwrap_or_else(|e| panic!("search/rag may call {model_id}: {e:?}"));
        let headers = search.responses.last();
        assert_eq!(usd_to_nanos(&headers["x-tally-cost-usd"]), cost);
        ids.push((model_id, headers["x-tally-request-id"].clone()));
    }

    // data-science may only call small models.
    let notebooks = stack.client(Attribution::team("data-science"));
    let err = notebooks
        .invoke(US_HAIKU, anthropic_body("hi"))
        .await
        .expect_err("Claude is outside data-science's allowlist");
    assert_eq!(err.code(), Some("AccessDeniedException"), "{err:?}");

    let ledger = stack.extproc.wait_ledger(3, Duration::from_secs(15)).await;
    for (model_id, id) in &ids {
        let record = record_for(&ledger, id);
        assert_eq!(
            (
                record["team"].as_str(),
                record["tenant"].as_str(),
                record["workflow"].as_str()
            ),
            (Some("search"), Some("help-center"), Some("rag")),
            "{record:#}"
        );
        assert_eq!(
            (record["modelId"].as_str(), record["model"].as_str()),
            (Some(*model_id), Some(US_HAIKU))
        );
        assert_eq!(record["costNanos"], cost);
    }
    assert_eq!(
        stack.sim.stats().total_requests(),
        2,
        "the denied call never reached Bedrock"
    );
}
