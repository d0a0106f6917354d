//! End to end, when parts fail: a client that disconnects mid-stream, the
//! ext_proc killed and restarted (Envoy's configured failure mode), Redis
//! killed and restarted under traffic (no completed charge lost).
//!
//! Each test starts its own stack: simulated Bedrock, redis-server,
//! `tally-extproc` and Envoy 1.40 with the chart's gateway config.

use std::time::{Duration, Instant};

use tally_tests::client::{Attribution, anthropic_body, bedrock_client, invoke_stream_cut_after};
use tally_tests::expect::{PricesNanos, cost_nanos, record_for};
use tally_tests::fixtures::envoy::{Envoy, EnvoyOptions};
use tally_tests::fixtures::extproc::FailMode;
use tally_tests::fixtures::process::{free_port, wait_until};
use tally_tests::fixtures::sim::SimServer;
use tally_tests::fixtures::stack::{Stack, StackOptions, gateway_keys, gateway_verifier};
use tally_tests::scenarios::{HAIKU, US_HAIKU, default_config};

/// Nano-USD per 1M tokens (input, output, cache read, cache write 5m, cache write 1h), from bedrock-wire.md.
const HAIKU_PRICES: PricesNanos = [1_000_000_000, 5_000_000_000, 100_000_000, 1_250_000_000, 2_000_000_000];
const US_HAIKU_PRICES: PricesNanos = [1_100_000_000, 5_500_000_000, 110_000_000, 1_375_000_000, 2_200_000_000];

/// A stream of 40 chunks 100 ms apart with 500 input tokens: time to hang up in the middle.
const SLOW_STREAM: &str = "[[usage in=500 out=40]] [[chunks 40]] [[chunk-delay-ms 100]]";

/// `search`'s team counter holds `spent`, and no reservation is left.
async fn assert_settled(stack: &Stack, spent: i64) {
    assert_eq!(stack.counter("search", "team", "spent").await, spent);
    assert_eq!(
        stack.counter("search", "team", "reserved").await,
        0,
        "the reservation was released"
    );
}

/// The chart's gateway, fail-open, with no ext_proc listening at all: calls pass,
/// and Bedrock sees them signed by the gateway's identity (not the app's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_gateway_without_ext_proc_fails_open_and_signs_as_the_gateway() {
    let sim = SimServer::verifying(gateway_verifier()).await;
    let envoy = Envoy::start(&EnvoyOptions {
        upstream_port: sim.port(),
        ext_proc_port: free_port(),
        fail_open: true,
        signing: Some(gateway_keys()),
        extra_values: vec![],
    })
    .await;
    let client = bedrock_client(&envoy.url(), Attribution::new("search", "acme", "rag"), false);
    let out = client
        .converse(US_HAIKU, "[[usage in=3 out=2]]")
        .await
        .expect("fail-open call");
    assert_eq!(out.usage().map(|u| u.input_tokens()), Some(3));
    client
        .invoke(US_HAIKU, anthropic_body("hi"))
        .await
        .expect("invoke fail-open");
    let stats = sim.stats();
    assert_eq!(
        (stats.signatures_verified, stats.signatures_failed),
        (2, 0),
        "{stats:#?}"
    );
    let allowed = envoy.stats("failure_mode_allowed").await;
    assert!(
        allowed.lines().any(|l| l.ends_with(": 2")),
        "Envoy counted 2 fail-open passes: {allowed}"
    );
}

/// A stream cut after its `message_start` (input usage seen, output 1 so far) is
/// recorded `incomplete` and charged its worst-case reservation: `message_start`'s
/// counts are not a final usage (issue #12, item 4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_mid_stream_is_recorded_incomplete() {
    let stack = Stack::start(StackOptions::new(default_config())).await;
    let client = stack.client(Attribution::new("search", "acme", "rag"));
    // message_start (carries input_tokens=500, output_tokens=1) and the first delta, then hang up.
    let id = invoke_stream_cut_after(&client, US_HAIKU, anthropic_body(SLOW_STREAM), 2).await;
    drop(client);
    let ledger = stack.extproc.wait_ledger(1, Duration::from_secs(15)).await;
    let record = record_for(&ledger, &id);
    assert_eq!(record["outcome"], "incomplete", "{record:#}");
    assert_eq!(record["operation"], "InvokeModelWithResponseStream");
    assert_eq!(record["inputTokens"], 500);
    let charged = record["costNanos"].as_i64().expect("costNanos");
    let actual_if_finished = cost_nanos([500, 40, 0, 0, 0], US_HAIKU_PRICES);
    assert!(
        charged > actual_if_finished,
        "the worst case ({charged}), not the usage seen so far: {record:#}"
    );
    assert_eq!(
        stack.sim.stats().streams_completed,
        0,
        "the simulator never finished the stream"
    );
    assert_settled(&stack, charged).await;
}

/// A ConverseStream cut before any usage event is charged its full reservation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_before_any_usage_charges_the_reservation() {
    let stack = Stack::start(StackOptions::new(default_config())).await;
    let client = stack.client(Attribution::new("search", "acme", "rag"));
    let mut out = client.converse_stream(HAIKU, SLOW_STREAM).await.expect("stream starts");
    let id = client.request_id();
    out.stream.recv().await.expect("first event").expect("stream open");
    drop(out);
    drop(client);
    let ledger = stack.extproc.wait_ledger(1, Duration::from_secs(15)).await;
    let record = record_for(&ledger, &id);
    assert_eq!(record["outcome"], "incomplete", "{record:#}");
    let charged = record["costNanos"].as_i64().expect("costNanos");
    let actual_if_finished = cost_nanos([500, 40, 0, 0, 0], HAIKU_PRICES);
    assert!(
        charged > actual_if_finished,
        "the full reservation ({charged}) exceeds the real usage cost ({actual_if_finished})"
    );
    assert_settled(&stack, charged).await;
}

async fn ext_proc_restart(fail_open: bool) {
    let mut opts = StackOptions::new(default_config());
    opts.envoy_fail_open = fail_open;
    let mut stack = Stack::start(opts).await;
    let client = stack.client(Attribution::new("search", "acme", "rag"));
    let call = || client.converse(HAIKU, "[[usage in=100 out=10]]");
    call().await.expect("before the kill");
    let before = client.request_id();

    stack.extproc.kill();
    let during = call().await;
    let sim_requests = stack.sim.stats().total_requests();
    if fail_open {
        during.expect("fail-open: Envoy lets the call through");
        assert_eq!(sim_requests, 2, "the call reached Bedrock");
    } else {
        let err = during.expect_err("fail-closed: Envoy refuses");
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500), "{err:?}");
        assert_eq!(sim_requests, 1, "nothing reached Bedrock");
    }

    stack.extproc.restart().await;
    call().await.expect("after the restart");
    let after = client.request_id();
    let ledger = stack.extproc.wait_ledger(2, Duration::from_secs(15)).await;
    let expected = cost_nanos([100, 10, 0, 0, 0], HAIKU_PRICES);
    for id in [&before, &after] {
        let record = record_for(&ledger, id);
        assert_eq!(
            (record["outcome"].as_str(), record["costNanos"].as_i64()),
            (Some("ok"), Some(expected)),
            "{record:#}"
        );
    }
    assert_eq!(
        stack.counter("search", "team", "spent").await,
        2 * expected,
        "charged before and after the outage"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext_proc_killed_fail_open_passes_calls_and_restart_resumes_charging() {
    ext_proc_restart(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext_proc_killed_fail_closed_refuses_calls_and_restart_resumes_charging() {
    ext_proc_restart(false).await;
}

/// Fail-open: Redis SIGKILLed and restarted (AOF, fsync always) while two
/// clients keep calling. Every call that completed is in the Redis counters and
/// ledger stream once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_traffic_loses_no_completed_charge() {
    let mut opts = StackOptions::new(default_config());
    opts.persistent_redis = true;
    opts.fail_mode = FailMode::Open;
    let mut stack = Stack::start(opts).await;
    const CALLS_PER_CLIENT: usize = 40;
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let client = stack.client(Attribution::new("search", "acme", "rag"));
        tasks.push(tokio::spawn(async move {
            // Completion instants of the calls that succeeded.
            let mut completed = Vec::new();
            for _ in 0..CALLS_PER_CLIENT {
                if client.converse(HAIKU, "[[usage in=100 out=10]]").await.is_ok() {
                    completed.push(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            completed
        }));
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    stack.redis.kill();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let restarting = Instant::now();
    stack.redis.restart().await;
    let mut completed = Vec::new();
    for t in tasks {
        completed.extend(t.await.expect("traffic task"));
    }
    let ok = completed.len() as u64;
    assert_eq!(ok, 2 * CALLS_PER_CLIENT as u64, "fail-open: every call succeeded");
    let during_outage = completed.iter().filter(|t| **t > killed && **t < restarting).count();
    assert!(
        during_outage >= 5,
        "calls completed while Redis was down: {during_outage}"
    );
    let expected = ok as i64 * cost_nanos([100, 10, 0, 0, 0], HAIKU_PRICES);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (spent, ledger_len) = loop {
        let spent = stack.counter("search", "team", "spent").await;
        let len = stack.ledger_len("search").await;
        if (spent == expected && len == ok as i64) || std::time::Instant::now() > deadline {
            break (spent, len);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        ledger_len, ok as i64,
        "every completed call has a ledger entry in Redis"
    );
    assert_eq!(
        spent, expected,
        "every completed call is in the spend counter, exactly once"
    );
}

/// Fail-open: settlements spooled while Redis is down survive the ext_proc being SIGKILLed
/// with a record torn mid-append at the end of its spool. Once Redis and the ext_proc are
/// back, every completed call is charged exactly once, and the torn record not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_spool_left_by_a_killed_ext_proc_is_replayed_once_after_restart() {
    const CALLS: i64 = 5;
    let mut stack = Stack::start(StackOptions::new(default_config())).await;
    let client = stack.client(Attribution::new("search", "acme", "rag"));
    stack.redis.kill();
    for _ in 0..CALLS {
        let out = client.converse(HAIKU, "[[usage in=100 out=10]]").await;
        out.expect("fail-open: calls pass while Redis is down");
    }
    let spooled = wait_until(Duration::from_secs(15), || async {
        stack
            .extproc
            .metrics()
            .await
            .contains(&format!("tally_spool_depth {CALLS}"))
    })
    .await;
    assert!(spooled, "{}", stack.extproc.metrics().await);

    stack.extproc.kill();
    // What a crash in the middle of one more append leaves: half a record, no newline.
    let spool = stack.extproc.spool_dir();
    let segment = std::fs::read_dir(&spool)
        .expect("the spool dir")
        .map(|e| e.expect("a spool file").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .max()
        .expect("a spool segment");
    let bytes = std::fs::read(&segment).expect("read the segment");
    let first = &bytes[..bytes.iter().position(|b| *b == b'\n').expect("a whole record")];
    let mut file = std::fs::OpenOptions::new().append(true).open(&segment).unwrap();
    std::io::Write::write_all(&mut file, &first[..first.len() / 2]).unwrap();

    stack.redis.restart().await;
    stack.extproc.restart().await;
    let expected = CALLS * cost_nanos([100, 10, 0, 0, 0], HAIKU_PRICES);
    let replayed = wait_until(Duration::from_secs(20), || async {
        stack.ledger_len("search").await == CALLS && stack.counter("search", "team", "spent").await == expected
    })
    .await;
    let metrics = stack.extproc.metrics().await;
    assert!(
        replayed,
        "ledger {} of {CALLS}, spent {} of {expected}:\n{metrics}",
        stack.ledger_len("search").await,
        stack.counter("search", "team", "spent").await
    );
    for line in [
        "tally_spool_depth 0".to_string(),
        format!("tally_spool_replayed_total {CALLS}"),
        "tally_spool_quarantined_total 0".to_string(),
    ] {
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }
    assert_settled(&stack, expected).await;
}

/// A Bedrock error reaches the client unchanged (status, code), costs nothing,
/// releases its reservation, and is recorded `upstream_error`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_errors_pass_through_and_release_the_reservation() {
    let stack = Stack::start(StackOptions::new(default_config())).await;
    let client = stack.client(Attribution::new("search", "acme", "rag"));
    let err = client
        .invoke(HAIKU, anthropic_body("[[error ThrottlingException]]"))
        .await
        .expect_err("throttled upstream");
    assert!(
        err.as_service_error().is_some_and(|e| e.is_throttling_exception()),
        "{err:?}"
    );
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(429));
    let id = client.request_id();
    let ledger = stack.extproc.wait_ledger(1, Duration::from_secs(15)).await;
    let record = record_for(&ledger, &id);
    assert_eq!(
        (record["outcome"].as_str(), record["status"].as_u64()),
        (Some("upstream_error"), Some(429)),
        "{record:#}"
    );
    assert_eq!(record["costNanos"], 0);
    assert_settled(&stack, 0).await;
}
