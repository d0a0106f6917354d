//! The simulated Bedrock against the real `aws-sdk-bedrockruntime` client, no
//! gateway: proves the simulator's bodies, headers, event streams, errors and
//! SigV4 check are what the SDK sends and parses, so the end-to-end suites
//! test Tally and not the simulator.

use aws_sdk_bedrockruntime::error::ProvideErrorMetadata as _;
use aws_sdk_bedrockruntime::types::{ContentBlockDelta, ConverseStreamOutput, ResponseStream};
use serde_json::Value;
use tally_tests::bedrock_sim::SimOptions;
use tally_tests::bedrock_sim::sigv4::SigV4Verifier;
use tally_tests::client::{
    AppClient, Attribution, CLIENT_ACCESS_KEY, CLIENT_SECRET_KEY, anthropic_body, bedrock_client, llama_body, nova_body,
};
use tally_tests::fixtures::sim::SimServer;
use tally_tests::scenarios::{HAIKU, LLAMA_8B, NOVA_LITE, US_HAIKU};

const USAGE: &str = "hello [[usage in=120 out=7 cr=30 cw5m=5 cw1h=2]]";

/// A simulator with the default options and an SDK client of it, no attribution.
async fn simulator() -> (SimServer, AppClient) {
    let sim = SimServer::start(SimOptions::default()).await;
    let client = bedrock_client(&sim.url(), Attribution::none(), false);
    (sim, client)
}

#[tokio::test]
async fn converse_usage_and_cache_details_parse() {
    let (sim, client) = simulator().await;
    let out = client.converse(US_HAIKU, USAGE).await.expect("converse");
    let usage = out.usage().expect("usage");
    assert_eq!(
        (usage.input_tokens(), usage.output_tokens(), usage.total_tokens()),
        (120, 7, 164)
    );
    assert_eq!(
        (usage.cache_read_input_tokens(), usage.cache_write_input_tokens()),
        (Some(30), Some(7))
    );
    let details: Vec<(String, i32)> = usage
        .cache_details()
        .iter()
        .map(|d| (d.ttl().as_str().to_string(), d.input_tokens()))
        .collect();
    assert_eq!(details, vec![("5m".to_string(), 5), ("1h".to_string(), 2)]);
    assert_eq!(sim.stats().requests.get("Converse"), Some(&1));
    assert_eq!(
        sim.stats().received[0].model_id,
        US_HAIKU,
        "the percent-encoded id is decoded"
    );
}

#[tokio::test]
async fn converse_stream_events_parse() {
    let (sim, client) = simulator().await;
    let mut out = client
        .converse_stream(HAIKU, "[[usage in=11 out=3]] [[chunks 4]]")
        .await
        .expect("converse-stream");
    let (mut text, mut usage) = (String::new(), None);
    while let Some(event) = out.stream.recv().await.expect("stream event") {
        match event {
            ConverseStreamOutput::ContentBlockDelta(d) => {
                if let Some(ContentBlockDelta::Text(t)) = d.delta() {
                    text.push_str(t);
                }
            }
            ConverseStreamOutput::Metadata(m) => usage = m.usage().map(|u| (u.input_tokens(), u.output_tokens())),
            _ => {}
        }
    }
    assert_eq!(text, "word1 word2 word3 word4 ");
    assert_eq!(usage, Some((11, 3)));
    assert_eq!(sim.stats().streams_completed, 1);
}

#[tokio::test]
async fn invoke_bodies_and_token_headers_per_family() {
    let (_sim, client) = simulator().await;
    let cases = [
        (
            US_HAIKU,
            anthropic_body(USAGE),
            "/usage/input_tokens",
            "/usage/cache_read_input_tokens",
        ),
        (
            NOVA_LITE,
            nova_body(USAGE),
            "/usage/inputTokens",
            "/usage/cacheReadInputTokenCount",
        ),
        (LLAMA_8B, llama_body(USAGE), "/prompt_token_count", ""),
    ];
    for (model, body, input_ptr, cache_ptr) in cases {
        let out = client.invoke(model, body).await.expect("invoke");
        let json: Value = serde_json::from_slice(out.body().as_ref()).expect("JSON body");
        assert_eq!(json.pointer(input_ptr), Some(&Value::from(120)), "{model}: {json}");
        if !cache_ptr.is_empty() {
            assert_eq!(json.pointer(cache_ptr), Some(&Value::from(30)), "{model}: {json}");
        }
        let headers = client.responses.last();
        assert_eq!(
            headers.get("x-amzn-bedrock-input-token-count").map(String::as_str),
            Some("120")
        );
        assert_eq!(
            headers.get("x-amzn-bedrock-output-token-count").map(String::as_str),
            Some("7")
        );
        assert_eq!(
            headers
                .get("x-amzn-bedrock-cache-write-input-token-count")
                .map(String::as_str),
            Some("7")
        );
    }
    let anthropic = client.invoke(HAIKU, anthropic_body(USAGE)).await.unwrap();
    let json: Value = serde_json::from_slice(anthropic.body().as_ref()).unwrap();
    assert_eq!(json["usage"]["cache_creation"]["ephemeral_1h_input_tokens"], 2);

    let quiet = SimServer::start(SimOptions {
        token_headers: false,
        ..SimOptions::default()
    })
    .await;
    let client = bedrock_client(&quiet.url(), Attribution::none(), false);
    client.invoke(HAIKU, anthropic_body(USAGE)).await.unwrap();
    assert!(
        !client.responses.last().contains_key("x-amzn-bedrock-input-token-count"),
        "--no-token-headers"
    );
}

#[tokio::test]
async fn invoke_streams_carry_invocation_metrics_last() {
    let (_sim, client) = simulator().await;
    for (model, body) in [
        (US_HAIKU, anthropic_body(USAGE)),
        (NOVA_LITE, nova_body(USAGE)),
        (LLAMA_8B, llama_body(USAGE)),
    ] {
        let mut out = client.invoke_stream(model, body).await.unwrap();
        let mut chunks = Vec::new();
        while let Some(event) = out.body.recv().await.expect("stream event") {
            if let ResponseStream::Chunk(part) = event {
                chunks
                    .push(serde_json::from_slice::<Value>(part.bytes().expect("bytes").as_ref()).expect("chunk JSON"));
            }
        }
        let metrics = &chunks.last().expect("chunks")["amazon-bedrock-invocationMetrics"];
        assert_eq!(
            (
                metrics["inputTokenCount"].as_u64(),
                metrics["outputTokenCount"].as_u64()
            ),
            (Some(120), Some(7)),
            "{model}"
        );
    }
}

#[tokio::test]
async fn count_tokens_and_modeled_errors() {
    let (sim, client) = simulator().await;
    let out = client
        .count_tokens(HAIKU, "one two three four five")
        .await
        .expect("count-tokens");
    assert_eq!(out.input_tokens(), 5);

    let err = client
        .invoke(HAIKU, anthropic_body("[[error ThrottlingException]]"))
        .await
        .expect_err("throttled");
    assert!(
        err.as_service_error().is_some_and(|e| e.is_throttling_exception()),
        "{err:?}"
    );
    let err = client
        .converse(HAIKU, "[[error ValidationException]]")
        .await
        .expect_err("invalid");
    assert_eq!(err.code(), Some("ValidationException"));
    assert_eq!(sim.stats().total_requests(), 3);
}

#[tokio::test]
async fn sigv4_mode_accepts_the_right_key_and_refuses_others() {
    let sim = SimServer::verifying(SigV4Verifier::us_east_1(CLIENT_ACCESS_KEY, CLIENT_SECRET_KEY)).await;
    let client = bedrock_client(&sim.url(), Attribution::new("search", "acme", "rag"), false);
    client.converse(US_HAIKU, "hi").await.expect("signed by the client key");
    let body = anthropic_body("hi");
    client.invoke(US_HAIKU, body).await.expect("invoke with a body hash");
    let stats = sim.stats();
    assert_eq!((stats.signatures_verified, stats.signatures_failed), (2, 0));
    assert_eq!(
        stats.received[0].headers.get("x-team-id").map(String::as_str),
        Some("search")
    );

    let strict = SimServer::verifying(SigV4Verifier::us_east_1(CLIENT_ACCESS_KEY, "other")).await;
    let client = bedrock_client(&strict.url(), Attribution::none(), false);
    let err = client.converse(US_HAIKU, "hi").await.expect_err("bad signature");
    assert_eq!(err.code(), Some("InvalidSignatureException"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    assert_eq!(strict.stats().signatures_failed, 1);
}

#[tokio::test]
async fn a_stream_error_arrives_as_an_in_band_exception() {
    let (sim, client) = simulator().await;
    let mut out = client
        .converse_stream(HAIKU, "[[chunks 2]] [[stream-error ModelStreamErrorException]]")
        .await
        .expect("the stream starts with 200");
    let mut events = 0;
    let err = loop {
        match out.stream.recv().await {
            Ok(Some(_)) => events += 1,
            Ok(None) => panic!("the stream ended without the exception"),
            Err(e) => break e,
        }
    };
    assert_eq!(events, 3, "messageStart and two deltas, then the exception");
    let service = err
        .as_service_error()
        .unwrap_or_else(|| panic!("a modeled stream error: {err:?}"));
    assert!(service.is_model_stream_error_exception(), "{service:?}");
    assert_eq!(sim.stats().streams_completed, 1, "the simulator sent its last frame");
}
