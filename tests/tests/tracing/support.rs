//! What the tracing tests share: a stack exporting to a collector, calls that carry a
//! `traceparent`, the Redis ledger records and the ext_proc's trace counters.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tally_tests::client::{AppClient, user_message};
use tally_tests::expect::metric_sum;
use tally_tests::fixtures::stack::{Stack, StackOptions};
use tally_tests::scenarios::default_config;

/// A stack whose ext_proc exports its spans as `service` with these `OTEL_*` variables
/// (batches every 100 ms, so a test waits little for them).
pub async fn traced_stack(service: &str, otel: &[(&str, String)]) -> Stack {
    let mut opts = StackOptions::new(default_config());
    opts.extproc_env = vec![
        ("OTEL_SERVICE_NAME".into(), service.into()),
        ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
    ];
    opts.extproc_env
        .extend(otel.iter().map(|(k, v)| (k.to_string(), v.clone())));
    Stack::start(opts).await
}

/// `Converse` of `model` sent with the W3C `traceparent` header (as an instrumented app sends it).
pub async fn converse_with_traceparent(client: &AppClient, model: &str, text: &str, traceparent: &str) {
    let traceparent = traceparent.to_string();
    client
        .sdk
        .converse()
        .model_id(model)
        .messages(user_message(text))
        .customize()
        .mutate_request(move |req| {
            req.headers_mut().insert("traceparent", traceparent.clone());
            req.headers_mut().insert("tracestate", "tally-test=1");
        })
        .send()
        .await
        .expect("the traced call succeeds");
}

/// The ledger records in Redis (read through the ext_proc's ledger API), by request id;
/// waits until there are `n`.
pub async fn ledger_by_request_id(stack: &Stack, n: usize) -> BTreeMap<String, Value> {
    let records = stack.extproc.wait_ledger(n, Duration::from_secs(10)).await;
    records
        .into_iter()
        .map(|r| (r["requestId"].as_str().expect("a request id").to_string(), r))
        .collect()
}

/// `tally_trace_spans_<what>_total` on the ext_proc's `/metrics`.
pub async fn span_counter(stack: &Stack, what: &str) -> f64 {
    metric_sum(
        &stack.extproc.metrics().await,
        &format!("tally_trace_spans_{what}_total"),
        &[],
    )
}

/// Polls until `tally_trace_spans_<what>_total` reaches `at_least`; its value.
pub async fn wait_counter(stack: &Stack, what: &str, at_least: f64, timeout: Duration) -> f64 {
    let start = std::time::Instant::now();
    loop {
        let v = span_counter(stack, what).await;
        if v >= at_least || start.elapsed() > timeout {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
