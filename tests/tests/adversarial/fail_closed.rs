//! Item 9: fail-closed is closed. The chart renders Envoy's failure mode closed
//! when the ext_proc fails closed, refuses a message timeout that Envoy would hit
//! before the ext_proc's store deadline (twice over: reserve, then record), and a
//! reservation whose reply timed out on the client is voided, not held for the TTL.

use std::process::Command;
use std::time::Duration;

use tally_tests::fixtures::extproc::FailMode;
use tally_tests::fixtures::process::wait_until;
use tally_tests::fixtures::redis::RedisServer;
use tally_tests::fixtures::tools;

use crate::assert_counters_match_ledger;
use crate::support::*;

/// `helm template` of the chart with `sets`: the manifests, or helm's error.
fn render(sets: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(tools::helm());
    cmd.args(["template", "tally"])
        .arg(tools::workspace_root().join("charts/tally"));
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = cmd.output().expect("run helm");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

#[test]
fn closed_mode_renders_envoys_failure_mode_closed() {
    for mode in ["gateway", "istio"] {
        let gateway_mode = format!("gateway.mode={mode}");
        let closed = render(&[&gateway_mode, "extproc.failMode=closed"]).expect("renders");
        assert!(closed.contains("failure_mode_allow: false"), "{mode}: closed mode");
        assert!(!closed.contains("failure_mode_allow: true"), "{mode}: closed mode");
        let open = render(&[&gateway_mode]).expect("renders");
        assert!(open.contains("failure_mode_allow: true"), "{mode}: the open default");
    }
}

#[test]
fn a_message_timeout_envoy_would_hit_before_the_store_deadline_fails_rendering() {
    let twice = 2 * tally_store::DEADLINE.as_millis();
    let err = render(&[&format!("gateway.extProc.messageTimeout={twice}ms")]).expect_err("refused");
    assert!(err.contains("gateway.extProc.messageTimeout"), "{err}");
    render(&[&format!("gateway.extProc.messageTimeout={}ms", twice + 1)]).expect("above twice the deadline");
    render(&[]).expect("the default message timeout is ordered after the store deadline");
}

#[tokio::test]
async fn a_reservation_that_timed_out_on_the_client_is_released() {
    let redis = RedisServer::start(false).await;
    let svc = start(&config(Some("1000")), &redis, FailMode::Closed).await;
    // One whole call first: Redis then knows the scripts, so the paused one runs as sent.
    one_converse(&svc, "warm-up").await;
    let mut call = svc.open().await;
    let headers = req_headers(&model_path(HAIKU, "invoke"), &[("x-team-id", "search")], false);
    call.send(headers).await;
    // Scripts queue while Redis is paused and run when it resumes, after the client gave up.
    let mut admin = redis.connection().await;
    let paused: String = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1000)
        .arg("WRITE")
        .query_async(&mut admin)
        .await
        .expect("CLIENT PAUSE");
    assert_eq!(paused, "OK");
    let body = br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[]}"#;
    let answer = call.send(req_body(body)).await;
    assert_eq!(refusal_status(&answer), Some(503), "fail-closed refuses: {answer:?}");
    call.finish().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let released = wait_until(Duration::from_secs(5), || async {
        counter(&redis, "search", "reserved").await == 0
    })
    .await;
    assert!(
        released,
        "held {} nano-USD",
        counter(&redis, "search", "reserved").await
    );
    let records = assert_counters_match_ledger(&redis).await;
    assert_eq!(
        records.len(),
        1,
        "only the warm-up: a 503 from an outage records nothing: {records:?}"
    );
    svc.stop().await;
}
