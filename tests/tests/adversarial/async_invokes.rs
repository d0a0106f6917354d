//! Item 5: StartAsyncInvoke and ApplyGuardrail are billed by Bedrock, so they are
//! reserved, refused and charged like inference — a video job per second of video, a
//! guardrail per text unit and policy. Through real Envoy with the AWS SDK.

use std::time::Duration;

use tally_config::money::Nanos;
use tally_tests::client::Attribution;
use tally_tests::fixtures::stack::{Stack, StackOptions};
use tally_tests::scenarios::{NOVA_REEL, config, team};

use crate::exhausted_stack;

/// `Err` message of an SDK call, for asserting on the error type.
fn refusal<T, E: std::fmt::Debug>(result: Result<T, E>) -> String {
    match result {
        Ok(_) => panic!("expected a refusal"),
        Err(e) => format!("{e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_jobs_and_guardrails_are_refused_on_an_exhausted_budget() {
    let stack = exhausted_stack().await;
    let client = stack.client(Attribution::team("search"));
    // 6 s × 0.08 USD: far over the 0.01 budget.
    let job = refusal(client.start_video_job(NOVA_REEL, 6).await);
    assert!(job.contains("ServiceQuotaExceeded"), "{job}");
    // About 21 text units (the text's 20, "INPUT" 1) × 5 policies × 0.00015 USD ≈ 0.016 USD
    // worst case: bounded by the body's text, not by its bytes (which would be ~15 USD).
    let guardrail = refusal(client.apply_guardrail("gr-1", &"x".repeat(20_000)).await);
    assert!(guardrail.contains("ServiceQuotaExceeded"), "{guardrail}");
    let quoted = guardrail
        .split("may cost up to ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| Nanos::parse_usd(s).ok())
        .unwrap_or_else(|| panic!("the refusal quotes its worst case: {guardrail}"));
    assert!((Nanos(15_000_000)..Nanos(20_000_000)).contains(&quoted), "{guardrail}");
    assert_eq!(stack.sim.stats().total_requests(), 0, "nothing reached Bedrock");
    let ledger = stack.extproc.wait_ledger(2, Duration::from_secs(15)).await;
    assert!(ledger.iter().all(|r| r["outcome"] == "blocked"), "{ledger:#?}");
    assert_eq!(stack.counter("search", "team", "spent").await, 0);
    assert_eq!(stack.counter("search", "team", "reserved").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_jobs_are_charged_per_second_and_guardrails_per_reported_unit() {
    let stack = Stack::start(StackOptions::new(config(vec![team("search", "1.00", &[], &[])]))).await;
    let client = stack.client(Attribution::team("search"));
    client
        .start_video_job(NOVA_REEL, 6)
        .await
        .expect("the job is submitted");
    client
        .apply_guardrail("gr-1", "hello")
        .await
        .expect("the guardrail answers");
    let ledger = stack.extproc.wait_ledger(2, Duration::from_secs(15)).await;
    let by_op = |op: &str| {
        ledger
            .iter()
            .find(|r| r["operation"] == op)
            .unwrap_or_else(|| panic!("no {op} record: {ledger:#?}"))
    };
    let job = by_op("StartAsyncInvoke");
    // 6 s × 0.08 USD, the model named in the body
    assert_eq!(
        (job["costNanos"].as_i64(), job["model"].as_str()),
        (Some(480_000_000), Some(NOVA_REEL))
    );
    assert_eq!(job["units"]["seconds"], 6);
    let guardrail = by_op("ApplyGuardrail");
    // the simulator reports 1 unit for each of 2 policies: 2 × 0.00015 USD
    assert_eq!(guardrail["costNanos"].as_i64(), Some(300_000), "{guardrail:#}");
    assert_eq!(guardrail["model"], "guardrail/gr-1");
    assert_eq!(
        stack.counter("search", "team", "spent").await,
        480_000_000 + 300_000,
        "counters == ledger sum"
    );
    assert_eq!(stack.counter("search", "team", "reserved").await, 0);
}
