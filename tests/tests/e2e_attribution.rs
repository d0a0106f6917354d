//! End to end, the way users run it: `aws-sdk-bedrockruntime` (and boto3) →
//! Envoy 1.40 with the chart's gateway config (ext_proc filter, and
//! `aws_request_signing` in gateway-signing mode) → simulated Bedrock, with
//! the real `tally-extproc` and Redis.
//!
//! Every call is attributed to the right team/tenant/workflow and charged the
//! exact nano-dollars its usage costs, visible in the `x-tally-*` headers, the
//! ledger, the Redis counters and `/metrics`. Expected costs come from prices
//! written below (bedrock-wire.md), not from the code under test.

use std::time::Duration;

use serde_json::Value;
use tally_tests::bedrock_sim::SimOptions;
use tally_tests::client::{
    AppClient, Attribution, anthropic_body, boto3_calls, drain_converse_stream, drain_invoke_stream, llama_body,
    nova_body,
};
use tally_tests::expect::{PricesNanos, Tokens, cost_nanos, metric_sum, monthly_counter_key, record_for, usd_to_nanos};
use tally_tests::fixtures::stack::{Stack, StackOptions};
use tally_tests::scenarios::{APP_PROFILE_ARN, HAIKU, LLAMA_8B, NOVA_LITE, US_HAIKU, default_config};

/// Nano-USD per 1M tokens: input, output, cache read, cache write 5m, cache write 1h.
const HAIKU_PRICES: PricesNanos = [1_000_000_000, 5_000_000_000, 100_000_000, 1_250_000_000, 2_000_000_000];
const US_HAIKU_PRICES: PricesNanos = [1_100_000_000, 5_500_000_000, 110_000_000, 1_375_000_000, 2_200_000_000];
const NOVA_LITE_PRICES: PricesNanos = [60_000_000, 240_000_000, 15_000_000, 0, 0];
const LLAMA_8B_PRICES: PricesNanos = [220_000_000, 220_000_000, 0, 0, 0];
/// The `search` team's monthly limit: $100.
const SEARCH_LIMIT_NANOS: i64 = 100_000_000_000;

const DIRECTIVE: &str = "Summarise the quarterly report [[usage in=1200 out=300 cr=4000 cw5m=500 cw1h=100]]";
const TOKENS: Tokens = [1200, 300, 4000, 500, 100];

/// The last response's `x-tally-cost-usd`, nano-USD.
fn cost_header(client: &AppClient) -> i64 {
    usd_to_nanos(&client.last_header("x-tally-cost-usd"))
}

/// The last response was charged `cost` and left `remaining` of `search`'s budget.
fn assert_charged(client: &AppClient, cost: i64, remaining: i64) {
    assert_eq!(cost_header(client), cost);
    assert_eq!(
        usd_to_nanos(&client.last_header("x-tally-budget-remaining-usd")),
        remaining
    );
}

fn record_tokens(record: &Value) -> Tokens {
    [
        &record["inputTokens"],
        &record["outputTokens"],
        &record["cacheReadTokens"],
        &record["cacheWrite5mTokens"],
        &record["cacheWrite1hTokens"],
    ]
    .map(|v| v.as_u64().unwrap_or(0))
}

fn assert_record(record: &Value, operation: &str, model_id: &str, model: &str, tokens: Tokens, cost: i64) {
    let got = (
        record["operation"].as_str(),
        record["modelId"].as_str(),
        record["model"].as_str(),
        record_tokens(record),
        record["costNanos"].as_i64(),
        record["outcome"].as_str(),
    );
    assert_eq!(
        got,
        (
            Some(operation),
            Some(model_id),
            Some(model),
            tokens,
            Some(cost),
            Some("ok")
        ),
        "{record:#}"
    );
    assert_eq!(
        usd_to_nanos(record["costUsd"].as_str().expect("costUsd")),
        cost,
        "{record:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_attributed_and_charged_exactly() {
    let stack = Stack::start(StackOptions::new(default_config())).await;
    let client = stack.client(Attribution::new("search", "acme", "rag"));
    let cost = cost_nanos(TOKENS, US_HAIKU_PRICES);
    assert_eq!(
        cost, 4_317_500,
        "1200×1.1 + 300×5.5 + 4000×0.11 + 500×1.375 + 100×2.2 µ$"
    );
    let ids = call_every_operation(&client, cost).await;
    // Four calls charged; CountTokens is free.
    let spent = 4 * cost;

    let ledger = stack.extproc.wait_ledger(5, Duration::from_secs(15)).await;
    for (operation, id, expected) in &ids {
        let record = record_for(&ledger, id);
        let tokens = if *operation == "CountTokens" {
            record_tokens(record)
        } else {
            TOKENS
        };
        assert_record(record, operation, US_HAIKU, US_HAIKU, tokens, *expected);
        assert_eq!(
            (
                record["team"].as_str(),
                record["tenant"].as_str(),
                record["workflow"].as_str(),
                record["region"].as_str()
            ),
            (Some("search"), Some("acme"), Some("rag"), Some("us-east-1")),
            "{record:#}"
        );
    }
    assert_counters_and_metrics(&stack, spent).await;
}

/// Every operation once, each checked as its response arrives; `(operation, request id,
/// cost)` of each.
async fn call_every_operation(client: &AppClient, cost: i64) -> Vec<(&'static str, String, i64)> {
    let mut ids = Vec::new();
    client
        .invoke(US_HAIKU, anthropic_body(DIRECTIVE))
        .await
        .expect("InvokeModel");
    assert_charged(client, cost, SEARCH_LIMIT_NANOS - cost);
    ids.push(("InvokeModel", client.request_id(), cost));

    let out = client.invoke_stream(US_HAIKU, anthropic_body(DIRECTIVE)).await.unwrap();
    ids.push(("InvokeModelWithResponseStream", client.request_id(), cost));
    assert!(
        drain_invoke_stream(out).await >= 5,
        "the whole stream reached the client"
    );

    let out = client.converse(US_HAIKU, DIRECTIVE).await.expect("Converse");
    assert_eq!(
        out.usage().map(|u| u.cache_read_input_tokens()),
        Some(Some(4000)),
        "the body reached the client unchanged"
    );
    assert_charged(client, cost, SEARCH_LIMIT_NANOS - 3 * cost);
    ids.push(("Converse", client.request_id(), cost));

    let out = client.converse_stream(US_HAIKU, DIRECTIVE).await.unwrap();
    ids.push(("ConverseStream", client.request_id(), cost));
    assert_eq!(drain_converse_stream(out).await, Some((1200, 300)));

    let out = client
        .count_tokens(US_HAIKU, "one two three")
        .await
        .expect("CountTokens");
    assert_eq!(out.input_tokens(), 3);
    ids.push(("CountTokens", client.request_id(), 0));
    ids
}

/// `search`'s counters (team, workflow, tenant) and metrics hold `spent`, with every
/// reservation settled and one ledger stream entry per call.
async fn assert_counters_and_metrics(stack: &Stack, spent: i64) {
    for scope in ["team", "wf/rag", "tn/acme"] {
        let key = monthly_counter_key("search", scope);
        assert_eq!(stack.counter("search", scope, "spent").await, spent, "{key}");
        assert_eq!(
            stack.counter("search", scope, "reserved").await,
            0,
            "{key}: every reservation settled"
        );
    }
    assert_eq!(stack.ledger_len("search").await, 5, "one ledger stream entry per call");

    let metrics = stack.extproc.metrics().await;
    let labels = [("team", "search"), ("workflow", "rag")];
    assert_eq!(
        metric_sum(&metrics, "tally_spend_nanos_total", &labels),
        spent as f64,
        "{metrics}"
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "tally_tokens_total",
            &[("team", "search"), ("class", "output")]
        ),
        4.0 * 300.0,
        "{metrics}"
    );
    assert!(
        metric_sum(&metrics, "tally_decisions_total", &[("outcome", "ok")]) >= 4.0,
        "{metrics}"
    );
}

/// Nova and Llama bodies (invoke and invoke stream), with Bedrock's token-count
/// headers switched off: usage comes from the bodies and event streams alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nova_and_llama_bodies_are_priced_without_token_headers() {
    let mut opts = StackOptions::new(default_config());
    opts.sim = SimOptions {
        token_headers: false,
        ..SimOptions::default()
    };
    let stack = Stack::start(opts).await;
    let client = stack.client(Attribution::new("search", "globex", "rag"));
    let nova_tokens = [1000, 200, 400, 0, 0];
    let llama_tokens = [1000, 200, 0, 0, 0];
    let nova_cost = cost_nanos(nova_tokens, NOVA_LITE_PRICES);
    let llama_cost = cost_nanos(llama_tokens, LLAMA_8B_PRICES);
    assert_eq!((nova_cost, llama_cost), (114_000, 264_000));
    let nova_text = "[[usage in=1000 out=200 cr=400]]";
    let llama_text = "[[usage in=1000 out=200]]";

    let calls = || {
        [
            (NOVA_LITE, nova_body(nova_text), nova_tokens, nova_cost),
            (LLAMA_8B, llama_body(llama_text), llama_tokens, llama_cost),
        ]
    };
    let mut expected = Vec::new();
    for (model, body, tokens, cost) in calls() {
        client
            .invoke(model, body)
            .await
            .unwrap_or_else(|e| panic!("{model} invoke: {e:?}"));
        assert_eq!(cost_header(&client), cost);
        expected.push(("InvokeModel", model, client.request_id(), tokens, cost));
    }
    for (model, body, tokens, cost) in calls() {
        let out = client.invoke_stream(model, body).await.unwrap();
        expected.push((
            "InvokeModelWithResponseStream",
            model,
            client.request_id(),
            tokens,
            cost,
        ));
        drain_invoke_stream(out).await;
    }

    let ledger = stack.extproc.wait_ledger(4, Duration::from_secs(15)).await;
    for (operation, model, id, tokens, cost) in &expected {
        let record = record_for(&ledger, id);
        assert_record(record, operation, model, model, *tokens, *cost);
        assert_eq!(record["tenant"], "globex");
    }
    assert_eq!(
        stack.counter("search", "tn/globex", "spent").await,
        2 * (nova_cost + llama_cost)
    );
}

/// No attribution headers: the call still succeeds and is charged to `unknown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_attribution_headers_are_charged_to_unknown() {
    let stack = Stack::start(StackOptions::new(default_config())).await;
    let client = stack.client(Attribution::none());
    let out = client.converse(HAIKU, "[[usage in=2000 out=100]]").await;
    out.expect("an unattributed call is never broken");
    let id = client.request_id();
    let cost = cost_nanos([2000, 100, 0, 0, 0], HAIKU_PRICES);
    let ledger = stack.extproc.wait_ledger(1, Duration::from_secs(15)).await;
    let record = record_for(&ledger, &id);
    assert_eq!(record["team"], "unknown", "{record:#}");
    assert_record(record, "Converse", HAIKU, HAIKU, [2000, 100, 0, 0, 0], cost);
    assert_eq!(stack.ledger_len("unknown").await, 1);
    let metrics = stack.extproc.metrics().await;
    assert_eq!(
        metric_sum(&metrics, "tally_spend_nanos_total", &[("team", "unknown")]),
        cost as f64,
        "{metrics}"
    );
}

/// Model ids as SDKs send them: percent-encoded (`:` → `%3A`), geo and global
/// inference-profile prefixes, an application-inference-profile ARN mapped by an
/// alias, a foundation-model ARN, and a raw `:` some clients leave unencoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_ids_as_sdks_send_them_are_resolved_and_priced() {
    let stack = Stack::start(StackOptions::new(default_config())).await;
    let client = stack.client(Attribution::new("search", "acme", "rag"));
    let tokens = [1000, 100, 0, 0, 0];
    let text = "[[usage in=1000 out=100]]";
    let global = format!("global.{HAIKU}");
    let foundation_arn = format!("arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}");
    let cases: Vec<(&str, &str, PricesNanos)> = vec![
        (US_HAIKU, US_HAIKU, US_HAIKU_PRICES),
        (&global, HAIKU, HAIKU_PRICES),
        (APP_PROFILE_ARN, US_HAIKU, US_HAIKU_PRICES),
        (&foundation_arn, HAIKU, HAIKU_PRICES),
    ];
    let mut expected = Vec::new();
    for (model_id, model, prices) in &cases {
        client.converse(model_id, text).await.expect(model_id);
        expected.push((
            "Converse",
            *model_id,
            *model,
            client.request_id(),
            cost_nanos(tokens, *prices),
        ));
    }
    // InvokeModel on the application profile: the body format decides the family.
    client
        .invoke(APP_PROFILE_ARN, anthropic_body(text))
        .await
        .expect("invoke via profile");
    expected.push((
        "InvokeModel",
        APP_PROFILE_ARN,
        US_HAIKU,
        client.request_id(),
        cost_nanos(tokens, US_HAIKU_PRICES),
    ));

    // A raw ':' in the path (unsigned: the gateway does not need the client's signature).
    let (status, headers) = raw_converse(stack.envoy.listen_port(), &format!("/model/{US_HAIKU}/converse"), text).await;
    assert_eq!(status, 200);
    let raw_id = headers
        .get("x-tally-request-id")
        .expect("x-tally-request-id")
        .to_str()
        .unwrap()
        .to_string();
    expected.push((
        "Converse",
        US_HAIKU,
        US_HAIKU,
        raw_id,
        cost_nanos(tokens, US_HAIKU_PRICES),
    ));

    let ledger = stack.extproc.wait_ledger(expected.len(), Duration::from_secs(15)).await;
    for (operation, model_id, model, id, cost) in &expected {
        assert_record(record_for(&ledger, id), operation, model_id, model, tokens, *cost);
    }
    let received: Vec<String> = stack.sim.stats().received.iter().map(|r| r.model_id.clone()).collect();
    assert!(
        received.iter().any(|m| m == APP_PROFILE_ARN),
        "Bedrock got the id as called: {received:?}"
    );
}

async fn raw_converse(port: u16, path: &str, text: &str) -> (u16, http::HeaderMap) {
    use http_body_util::{BodyExt as _, Full};
    use hyper_util::client::legacy::Client;
    let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
    let body = serde_json::json!({"messages": [{"role": "user", "content": [{"text": text}]}]}).to_string();
    let request = http::Request::post(format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/json")
        .header("x-team-id", "search")
        .header("x-tenant-id", "acme")
        .header("x-workflow-id", "rag")
        .body(Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let response = client.request(request).await.expect("raw request");
    let (parts, body) = response.into_parts();
    let _ = body.collect().await;
    (parts.status.as_u16(), parts.headers)
}

/// Gateway-signing mode (`aws_request_signing` after ext_proc): Bedrock sees every
/// call signed by the gateway's identity, and charging is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_signing_is_verified_by_bedrock() {
    let mut opts = StackOptions::new(default_config());
    opts.signing = true;
    let stack = Stack::start(opts).await;
    let client = stack.client(Attribution::new("search", "acme", "rag"));
    client.converse(US_HAIKU, DIRECTIVE).await.expect("Converse, re-signed");
    client
        .invoke(US_HAIKU, anthropic_body(DIRECTIVE))
        .await
        .expect("InvokeModel, re-signed");
    let out = client.converse_stream(US_HAIKU, DIRECTIVE).await.unwrap();
    assert_eq!(drain_converse_stream(out).await, Some((1200, 300)));
    let stats = stack.sim.stats();
    assert_eq!(
        (stats.signatures_verified, stats.signatures_failed),
        (3, 0),
        "{stats:#?}"
    );
    let ledger = stack.extproc.wait_ledger(3, Duration::from_secs(15)).await;
    let cost = cost_nanos(TOKENS, US_HAIKU_PRICES);
    assert!(ledger.iter().all(|r| r["costNanos"] == cost), "{ledger:#?}");
}

/// boto3 as a second real client: attribution headers from an event hook, exact charge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_calls_are_attributed_and_charged() {
    let stack = Stack::start(StackOptions::new(default_config())).await;
    let lines = boto3_calls(
        &stack.envoy.url(),
        &[
            "--model",
            US_HAIKU,
            "--text",
            DIRECTIVE,
            "--team",
            "search",
            "--tenant",
            "globex",
            "--workflow",
            "rag",
            "--repeat",
            "2",
        ],
    )
    .await;
    assert_eq!(lines.len(), 2);
    let cost = cost_nanos(TOKENS, US_HAIKU_PRICES);
    let ledger = stack.extproc.wait_ledger(2, Duration::from_secs(15)).await;
    for line in &lines {
        assert_eq!(line["ok"], true, "{line:#}");
        assert_eq!(line["usage"]["inputTokens"], 1200);
        let headers = &line["headers"];
        assert_eq!(
            usd_to_nanos(headers["x-tally-cost-usd"].as_str().expect("x-tally-cost-usd")),
            cost,
            "{line:#}"
        );
        let record = record_for(
            &ledger,
            headers["x-tally-request-id"].as_str().expect("x-tally-request-id"),
        );
        assert_record(record, "Converse", US_HAIKU, US_HAIKU, TOKENS, cost);
        assert_eq!(
            (record["team"].as_str(), record["tenant"].as_str()),
            (Some("search"), Some("globex"))
        );
    }
}
