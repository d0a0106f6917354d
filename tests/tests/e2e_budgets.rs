//! End to end, enforcement: a budget that runs out refuses calls before they
//! reach Bedrock with an error the SDKs parse and do not retry, and spend never
//! passes the limit; a model outside the allowlist is denied.

use std::time::Duration;

use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata as _, SdkError};
use aws_sdk_bedrockruntime::operation::invoke_model::InvokeModelError;
use tally_tests::client::{AppClient, Attribution, anthropic_body, boto3_calls, nova_body};
use tally_tests::expect::metric_sum;
use tally_tests::fixtures::stack::{Stack, StackOptions};
use tally_tests::scenarios::{HAIKU, NOVA_LITE, OPUS, config, default_config, team};

/// `tiny`'s monthly limit: $0.01.
const TINY_LIMIT_NANOS: i64 = 10_000_000;
/// Bounded loop: at 1.5 m$ per call a $0.01 budget is exhausted well before this.
const MAX_CALLS: usize = 30;

fn tiny_stack_options() -> StackOptions {
    StackOptions::new(config(vec![team("tiny", "0.01", &[], &[])]))
}

/// How many calls the ext_proc refused on a budget.
async fn blocked_decisions(stack: &Stack) -> f64 {
    metric_sum(
        &stack.extproc.metrics().await,
        "tally_decisions_total",
        &[("outcome", "blocked")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_budget_is_refused_with_service_quota_exceeded_and_never_overspent() {
    // `--request-body when-needed`, so both admission bounds are exercised through Envoy.
    let mut opts = tiny_stack_options();
    opts.extproc_args = vec!["--request-body".into(), "when-needed".into()];
    let stack = Stack::start(opts).await;
    // Standard retries on: the refusal must still be the first and only attempt.
    let client = stack.retrying_client(Attribution::team("tiny"));
    let (ok, err) = call_until_refused(&client).await;
    assert!(ok >= 1, "calls pass while the budget lasts");
    let service = err
        .as_service_error()
        .unwrap_or_else(|| panic!("a service error: {err:?}"));
    assert!(service.is_service_quota_exceeded_exception(), "{service:?}");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    let message = service.message().unwrap_or_default();
    assert!(
        message.contains("budget") && message.contains("tiny"),
        "the message names the budget: {message}"
    );
    assert_eq!(
        stack.sim.stats().total_requests(),
        ok,
        "the refused call never reached Bedrock"
    );
    assert_eq!(
        blocked_decisions(&stack).await,
        1.0,
        "the SDK did not retry the refusal"
    );
    assert_both_bounds_used(&stack).await;
    assert_charged_within_the_limit(&stack, ok).await;
}

/// 1.5 m$ calls until the first refusal: how many passed, and the refusal.
async fn call_until_refused(client: &AppClient) -> (u64, SdkError<InvokeModelError>) {
    let mut ok = 0;
    for _ in 0..MAX_CALLS {
        // 1000 in × $1 + 100 out × $5 per 1M = 1.5 m$
        match client.invoke(HAIKU, anthropic_body("[[usage in=1000 out=100]]")).await {
            Ok(_) => ok += 1,
            Err(e) => return (ok, e),
        }
    }
    panic!("the budget did not run out within {MAX_CALLS} calls");
}

/// Through Envoy: while the model's output cap fits, calls are reserved from the headers and
/// the body never goes to the ext_proc; near the limit the body is read and the tighter
/// max_tokens bound admits calls the cap could not, and refuses the last one.
async fn assert_both_bounds_used(stack: &Stack) {
    let metrics = stack.extproc.metrics().await;
    let reservations = |bound: &str, result: &str| {
        metric_sum(
            &metrics,
            "tally_reservations_total",
            &[("bound", bound), ("result", result)],
        )
    };
    assert!(reservations("headers", "held") >= 1.0, "{metrics}");
    assert!(reservations("body", "held") >= 1.0, "{metrics}");
    assert_eq!(reservations("body", "refused"), 1.0, "{metrics}");
    assert_eq!(
        reservations("headers", "refused"),
        reservations("body", "held") + reservations("body", "refused"),
        "every body read follows a tentative refusal: {metrics}"
    );
}

/// The `ok` calls are charged 1.5 m$ each in the ledger and the counter, the refusal is
/// in the ledger, and spend stays within the limit.
async fn assert_charged_within_the_limit(stack: &Stack, ok: u64) {
    let ledger = stack
        .extproc
        .wait_ledger(ok as usize + 1, Duration::from_secs(15))
        .await;
    let charged: i64 = ledger
        .iter()
        .filter(|r| r["outcome"] == "ok")
        .map(|r| r["costNanos"].as_i64().unwrap())
        .sum();
    assert_eq!(charged, ok as i64 * 1_500_000);
    assert!(
        ledger.iter().any(|r| r["outcome"] == "blocked" && r["team"] == "tiny"),
        "{ledger:#?}"
    );
    let spent = stack.counter("tiny", "team", "spent").await;
    assert_eq!(spent, charged);
    assert!(spent <= TINY_LIMIT_NANOS, "spend {spent} ≤ limit {TINY_LIMIT_NANOS}");
}

/// boto3's default retry mode retries any 429: the refusal must be a 400 it does not retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_does_not_retry_a_budget_refusal() {
    let stack = Stack::start(tiny_stack_options()).await;
    let lines = boto3_calls(
        &stack.envoy.url(),
        &[
            "--model",
            HAIKU,
            "--text",
            "[[usage in=1000 out=100]]",
            "--team",
            "tiny",
            "--repeat",
            &MAX_CALLS.to_string(),
            "--until-error",
        ],
    )
    .await;
    let last = lines.last().expect("boto3 made calls");
    assert_eq!(
        last["ok"], false,
        "the budget ran out within {MAX_CALLS} calls: {lines:#?}"
    );
    assert_eq!(
        (last["status"].as_u64(), last["code"].as_str()),
        (Some(400), Some("ServiceQuotaExceededException")),
        "{last:#}"
    );
    assert_eq!(last["retryAttempts"], 0, "boto3 did not retry: {last:#}");
    assert!(
        last["message"].as_str().unwrap_or_default().contains("tiny"),
        "{last:#}"
    );
    let ok = lines.iter().filter(|l| l["ok"] == true).count() as u64;
    assert!(ok >= 1);
    assert_eq!(stack.sim.stats().total_requests(), ok);
    assert_eq!(blocked_decisions(&stack).await, 1.0, "exactly one refused attempt");
}

/// `ads` may only call `amazon.nova-*`: Claude is denied before Bedrock, Nova passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disallowed_model_is_denied_with_access_denied() {
    let stack = Stack::start(StackOptions::new(default_config())).await;
    let client = stack.client(Attribution {
        workflow: Some("banners".into()),
        ..Attribution::team("ads")
    });
    let err = client.invoke(OPUS, anthropic_body("hi")).await.expect_err("denied");
    let service = err
        .as_service_error()
        .unwrap_or_else(|| panic!("a service error: {err:?}"));
    assert!(service.is_access_denied_exception(), "{service:?}");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    assert!(
        err.message().unwrap_or_default().contains(OPUS),
        "the message names the model: {:?}",
        err.message()
    );
    assert_eq!(
        stack.sim.stats().total_requests(),
        0,
        "a denied call never reaches Bedrock"
    );
    client
        .invoke(NOVA_LITE, nova_body("hi"))
        .await
        .expect("an allowed model passes");
    assert_eq!(stack.sim.stats().total_requests(), 1);
    let ledger = stack.extproc.wait_ledger(2, Duration::from_secs(15)).await;
    assert!(
        ledger.iter().any(|r| r["outcome"] == "denied" && r["modelId"] == OPUS),
        "{ledger:#?}"
    );
}
