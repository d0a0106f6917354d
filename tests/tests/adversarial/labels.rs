//! Item 11: random label values. Every call names its own workflow and every other
//! one its own (unpriced) model id; `/metrics` must stay a bounded set of series —
//! only configured ids become label values, the rest fold into `other` — while the
//! ledger keeps the ids as sent.

use tally_tests::fixtures::extproc::FailMode;
use tally_tests::fixtures::redis::RedisServer;

use crate::assert_counters_match_ledger;
use crate::support::*;

const CALLS: usize = 2_000;

/// Sample lines of a Prometheus text (not `#` comments).
fn series(metrics: &str) -> usize {
    metrics.lines().filter(|l| !l.starts_with('#')).count()
}

fn model(i: usize) -> String {
    if i.is_multiple_of(2) {
        SONNET_US.to_string()
    } else {
        format!("anthropic.random-{i}-{}", "x".repeat(200))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_workflow_and_model_ids_do_not_grow_the_metrics() {
    let redis = RedisServer::start(false).await;
    let svc = start(&config(None), &redis, FailMode::Open).await;
    let body: &[u8] = br#"{"messages":[],"inferenceConfig":{"maxTokens":100}}"#;
    let call = |model: String, workflow: String| {
        let headers = req_headers(
            &converse_path(&model),
            &[("x-team-id", "search"), ("x-workflow-id", &workflow)],
            false,
        );
        svc.exchange(converse_call(headers, body))
    };
    call(SONNET_US.to_string(), "rag".to_string()).await;
    call(model(1), "rag".to_string()).await;
    let before = series(&svc.metrics().await);
    for i in 0..CALLS {
        call(model(i), format!("wf-{i}")).await;
    }
    let metrics = svc.metrics().await;
    let after = series(&metrics);
    // The `other` series of each metric are new (a dozen); one per id would be thousands.
    assert!(
        after <= before + 50,
        "{after} series after {CALLS} ids, {before} before:\n{metrics}"
    );
    assert!(
        !metrics.contains("wf-") && !metrics.contains("anthropic.random-"),
        "{metrics}"
    );
    for kept in [
        format!(r#"workflow="rag",model="{SONNET_US}""#),
        format!(r#"workflow="other",model="{SONNET_US}""#),
        format!(r#"tally_unpriced_calls_total{{model="other"}} {}"#, CALLS / 2 + 1),
    ] {
        assert!(metrics.contains(&kept), "{kept} in\n{metrics}");
    }
    let records = assert_counters_match_ledger(&redis).await;
    assert_eq!(records.len(), CALLS + 2);
    assert!(
        records.iter().any(|r| r["modelId"] == model(1).as_str()),
        "the ledger keeps the model id as sent"
    );
    svc.stop().await;
}
